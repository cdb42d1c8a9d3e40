// Package netstack is the control partition's TCP/IP: gVisor's netstack
// (gvisor.dev/gvisor/pkg/tcpip), on an Ethernet port of the switch, with
// one static IPv4 address and a default route. Frames move by polling, in
// the caller's loop: Send takes a frame from the wire, Transmit hands
// the stack's outgoing frames to the NIC. Nothing here touches a device,
// so it runs under go test on the host as it does at EL1.
package netstack

import (
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/link/ethernet"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
)

const (
	nicID = 1
	// MTU is Ethernet's, the virtio-net driver's frame less its header.
	MTU = 1500
	// txQueue is how many outgoing frames wait for Transmit; the stack
	// drops beyond it, and TCP sends again.
	txQueue = 512
)

// Config is the stack's address, as the instance's configuration gives
// it: ADDR/PREFIX and the gateway of the default route.
type Config struct {
	MAC     [6]byte
	Addr    netip.Prefix
	Gateway netip.Addr
}

// ParseConfig reads an address in CIDR form and a gateway, both IPv4.
func ParseConfig(mac [6]byte, addr, gateway string) (Config, error) {
	p, err := netip.ParsePrefix(addr)
	if err != nil || !p.Addr().Is4() || p.Bits() < 1 || p.Bits() > 30 {
		return Config{}, fmt.Errorf("address %q: want IPv4 in CIDR form, e.g. 10.0.2.10/24", addr)
	}
	g, err := netip.ParseAddr(gateway)
	if err != nil || !g.Is4() || !p.Contains(g) || g == p.Addr() {
		return Config{}, fmt.Errorf("gateway %q: want an IPv4 address in %v other than the stack's own", gateway, p.Masked())
	}
	return Config{MAC: mac, Addr: p, Gateway: g}, nil
}

// Stack is one interface's TCP/IP.
type Stack struct {
	s     *stack.Stack
	ep    *channel.Endpoint
	cfg   Config
	clock *clock
}

// clock is the stack's time, read once a poll (Tick) rather than at each
// segment: under emulation a read of the counter can wait on the device
// model's lock, which the NIC's traffic holds. TCP's timers run on the
// runtime's own; a millisecond's lag in its round-trip estimates is
// nothing beside a retransmission timeout.
type clock struct {
	base time.Time
	now  atomic.Int64 // since base, at the last Tick
}

func (c *clock) tick() { c.now.Store(int64(time.Since(c.base))) }

func (c *clock) Now() time.Time { return c.base.Add(time.Duration(c.now.Load())) }

func (c *clock) NowMonotonic() tcpip.MonotonicTime {
	return tcpip.MonotonicTime{}.Add(time.Duration(c.now.Load()))
}

func (c *clock) AfterFunc(d time.Duration, f func()) tcpip.Timer {
	return tcpip.NewStdTimer(time.AfterFunc(d, f))
}

// Tick brings the stack's clock up to date: its poller calls it once a
// round, and Transmit does.
func (st *Stack) Tick() { st.clock.tick() }

// New starts a stack with cfg's address.
func New(cfg Config) (*Stack, error) {
	clk := &clock{base: time.Now()}
	clk.tick()
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol},
		Clock:              clk,
	})
	ep := channel.New(txQueue, MTU, tcpip.LinkAddress(cfg.MAC[:]))
	if err := s.CreateNIC(nicID, ethernet.New(ep)); err != nil {
		return nil, fmt.Errorf("netstack: NIC: %v", err)
	}
	a := cfg.Addr.Addr().As4()
	pa := tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddressWithPrefix{Address: tcpip.AddrFrom4(a), PrefixLen: cfg.Addr.Bits()}}
	if err := s.AddProtocolAddress(nicID, pa, stack.AddressProperties{}); err != nil {
		return nil, fmt.Errorf("netstack: address %v: %v", cfg.Addr, err)
	}
	sub := pa.AddressWithPrefix.Subnet()
	s.SetRouteTable([]tcpip.Route{
		{Destination: sub, NIC: nicID},
		{Destination: header.IPv4EmptySubnet, Gateway: tcpip.AddrFrom4(cfg.Gateway.As4()), NIC: nicID},
	})
	// Windows large enough for an upload of a kernel, the common
	// transfer, and small enough that the control plane's 16 connections
	// fit the control partition's heap at once.
	rcv := tcpip.TCPReceiveBufferSizeRangeOption{Min: 4 << 10, Default: 256 << 10, Max: 1 << 20}
	s.SetTransportProtocolOption(tcp.ProtocolNumber, &rcv)
	sack := tcpip.TCPSACKEnabled(true)
	s.SetTransportProtocolOption(tcp.ProtocolNumber, &sack)
	return &Stack{s: s, ep: ep, cfg: cfg, clock: clk}, nil
}

// Config is the stack's configuration.
func (st *Stack) Config() Config { return st.cfg }

// Send gives the stack a frame from the wire, as a port of the switch;
// it copies the frame. A frame shorter than an Ethernet header is
// dropped.
func (st *Stack) Send(frame []byte) error {
	if len(frame) < header.EthernetMinimumSize {
		return nil
	}
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(frame)})
	st.ep.InjectInbound(0, pkt)
	pkt.DecRef()
	return nil
}

// Transmit hands each frame the stack has queued to send, at most max of
// them, and returns how many it handed. send must not keep the frame; a
// frame it refuses (a full NIC) is dropped, as a NIC would.
func (st *Stack) Transmit(max int, send func(frame []byte) error) int {
	st.Tick()
	n := 0
	var buf []byte
	for n < max {
		pkt := st.ep.Read()
		if pkt == nil {
			break
		}
		buf = buf[:0]
		for _, v := range pkt.AsSlices() {
			buf = append(buf, v...)
		}
		pkt.DecRef()
		send(buf)
		n++
	}
	return n
}

// Pending is how many frames wait for Transmit.
func (st *Stack) Pending() int { return st.ep.NumQueued() }

// Listen listens on the stack's address at port.
func (st *Stack) Listen(port uint16) (net.Listener, error) {
	a := st.cfg.Addr.Addr().As4()
	return gonet.ListenTCP(st.s, tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFrom4(a), Port: port}, ipv4.ProtocolNumber)
}

// Dial connects to addr:port, for tests.
func (st *Stack) Dial(addr netip.AddrPort) (net.Conn, error) {
	a := addr.Addr().As4()
	return gonet.DialTCP(st.s, tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFrom4(a), Port: addr.Port()}, ipv4.ProtocolNumber)
}
