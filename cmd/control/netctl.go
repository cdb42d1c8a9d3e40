//go:build tamago

package main

import (
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"math/big"
	"net"
	"runtime"
	"sync"
	"time"

	"github.com/bulkhead-hv/bulkhead/abi"
	vm "github.com/bulkhead-hv/bulkhead/board/bulkheadvm"
	"github.com/bulkhead-hv/bulkhead/cpu"
	"github.com/bulkhead-hv/bulkhead/ctlstate"
	"github.com/bulkhead-hv/bulkhead/mtls"
	"github.com/bulkhead-hv/bulkhead/netstack"
)

// The network control plane (docs/architecture.md, "The network control
// plane"): the line protocol over TLS 1.3 with client certificates, on
// TCP through gVisor's netstack, on the uplink. It is configured by the
// state drive (package ctlstate), and absent without one.
type netControl struct {
	st    *netstack.Stack
	state *ctlstate.State
	drive *drive
	cfg   *tls.Config
	pin   string

	mu       sync.Mutex // guards what the accepting goroutines share with the loop
	incoming []*session
	conns    int // connections open: in their handshake, or served
	// Counters, for stats.
	accepted, refused, cut uint64
}

var netctl *netControl

const (
	// maxConns bounds the connections open at once, handshaking or
	// served: beyond it, a new one is closed as it is accepted.
	maxConns = 16
	// handshakeTimeout bounds a TLS handshake.
	handshakeTimeout = 10 * time.Second
	// writeTimeout cuts a client that stops reading its answers.
	writeTimeout = 30 * time.Second
	// outQueue is how many lines may wait for a client.
	outQueue = 1024
)

// wallclock is the time as the host last gave it, or the state drive's
// when it has not.
func wallclock() time.Time { return time.Unix(int64(hostSeconds()), 0) }

func identityPin() string {
	if netctl == nil {
		return ""
	}
	return netctl.pin
}

// openNetControl starts the network control plane if the machine has a
// state drive; the identity it keeps there outlives a restart of the
// partition after a crash, and the instance's reboots.
func openNetControl() {
	var d *drive
	for i, x := range drives {
		if x.name == ctlstate.DriveName {
			d = x
			// Not a drive any guest may have.
			drives = append(drives[:i], drives[i+1:]...)
			break
		}
	}
	if d == nil {
		return
	}
	fail := func(format string, args ...any) {
		fmt.Printf("control: no network control plane: "+format+"\n", args...)
	}
	buf := make([]byte, min(d.blk.Size(), ctlstate.Size))
	if _, err := d.blk.ReadAt(buf, 0); err != nil {
		fail("reading the state drive: %v", err)
		return
	}
	state, err := ctlstate.Decode(buf)
	if err != nil {
		fail("%v", err)
		return
	}
	if uplink == nil {
		fail("the state drive asks for one, but the instance has no uplink (a virtio-net device)")
		return
	}
	if hostEpoch == 0 {
		setHostTime(uint64(state.Time))
	}
	if state.IdentityKey == "" {
		// The first boot: the instance makes its identity, and keeps it.
		if !vm.HardwareEntropy() {
			fail("no hardware entropy (FEAT_RNG) to make the instance's key with")
			return
		}
		k, err := mtls.NewKey()
		if err != nil {
			fail("making the instance's key: %v", err)
			return
		}
		p, _ := mtls.KeyPEM(k)
		state.IdentityKey = string(p)
		if err := writeState(d, state); err != nil {
			fail("keeping the instance's key on the state drive: %v", err)
			return
		}
		fmt.Printf("control: first boot: made the instance's identity and kept it on the state drive\n")
	}
	sk, err := mtls.ParseKey([]byte(state.IdentityKey))
	if err != nil {
		fail("the state drive's identity key: %v", err)
		return
	}
	id, err := mtls.Identity(sk, "bulkhead instance", wallclock())
	if err != nil {
		fail("the instance's certificate: %v", err)
		return
	}
	pin, _ := mtls.Pin(sk.Public())
	n := &netControl{state: state, drive: d, pin: pin}
	n.cfg, err = mtls.ServerConfig(id, []byte(state.CA), n.revoked, wallclock)
	if err != nil {
		fail("%v", err)
		return
	}
	ncfg, err := netstack.ParseConfig(uplink.MAC(), state.Addr, state.Gateway)
	if err != nil {
		fail("%v", err)
		return
	}
	if n.st, err = netstack.New(ncfg); err != nil {
		fail("%v", err)
		return
	}
	sw.Local, sw.LocalMAC = n.st, uplink.MAC()
	ln, err := n.st.Listen(state.Port)
	if err != nil {
		fail("listening on port %d: %v", state.Port, err)
		return
	}
	netctl = n
	go n.accept(ln)
	fmt.Printf("control: network control plane on %v port %d, TLS 1.3 with client certificates; identity %s\n", ncfg.Addr, state.Port, pin)
}

func writeState(d *drive, s *ctlstate.State) error {
	b, err := s.Encode()
	if err != nil {
		return err
	}
	if _, err := d.blk.WriteAt(b, 0); err != nil {
		return err
	}
	return d.blk.Flush()
}

func (n *netControl) revoked(sn *big.Int) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.state.IsRevoked(sn)
}

// revoke refuses a client certificate from now on, on this boot and the
// next, and cuts its sessions.
func (c *control) revoke(serial string) error {
	n := netctl
	if n == nil {
		return fmt.Errorf("the instance has no network control plane")
	}
	n.mu.Lock()
	err := n.state.Revoke(serial)
	if err == nil {
		err = writeState(n.drive, n.state)
	}
	n.mu.Unlock()
	if err != nil {
		return err
	}
	for _, s := range c.sessions {
		if nc, ok := s.t.(*netConn); ok && n.revoked(nc.serial) {
			s.shut("its certificate was revoked")
		}
	}
	return nil
}

func (n *netControl) log(format string, args ...any) {
	fmt.Printf("control: net: "+format+"\n", args...)
}

// accept takes connections until the listener closes: each gets its TLS
// handshake in a goroutine of its own, bounded in time and in number.
func (n *netControl) accept(ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			n.log("the listener ended: %v", err)
			return
		}
		n.mu.Lock()
		full := n.conns >= maxConns
		if full {
			n.refused++
		} else {
			n.conns++
		}
		n.mu.Unlock()
		if full {
			n.log("%v: refused: %d connections are open already", conn.RemoteAddr(), maxConns)
			conn.Close()
			continue
		}
		go n.handshake(conn)
	}
}

func (n *netControl) handshake(conn net.Conn) {
	conn.SetDeadline(time.Now().Add(handshakeTimeout))
	tc := tls.Server(conn, n.cfg)
	if err := tc.Handshake(); err != nil {
		n.mu.Lock()
		n.refused++
		n.conns--
		n.mu.Unlock()
		n.log("%v: refused: %v", conn.RemoteAddr(), err)
		tc.Close()
		return
	}
	conn.SetDeadline(time.Time{})
	leaf := tc.ConnectionState().PeerCertificates[0]
	nc := &netConn{c: tc, n: n, serial: leaf.SerialNumber,
		peer: fmt.Sprintf("%v (%s, serial %s)", conn.RemoteAddr(), leaf.Subject.CommonName, hex.EncodeToString(leaf.SerialNumber.Bytes())),
		in:   make(chan []byte, 16), free: make(chan []byte, 17), out: make(chan []byte, outQueue), done: make(chan struct{}), flushed: make(chan struct{})}
	go nc.reader()
	go nc.writer()
	s := &session{t: nc, vms: map[string]bool{}, network: true, lastRecv: cpu.ReadCNTPCT()}
	n.mu.Lock()
	n.accepted++
	n.incoming = append(n.incoming, s)
	n.mu.Unlock()
	n.log("%s: connected", nc.peer)
}

// pollNet runs the network's goroutines (the stack's, the TLS
// connections'), sends what the stack queued, and takes new sessions in.
// It reports whether anything moved.
func (c *control) pollNet() bool {
	n := netctl
	if n == nil {
		return false
	}
	n.st.Tick()
	runtime.Gosched()
	uplink.Batch()
	moved := n.st.Transmit(256, func(f []byte) error {
		sw.UplinkCounters.OutFrames++
		sw.UplinkCounters.OutBytes += uint64(len(f))
		return uplink.Send(f)
	})
	uplink.Flush()
	n.mu.Lock()
	in := n.incoming
	n.incoming = nil
	n.mu.Unlock()
	for _, s := range in {
		c.sessions = append(c.sessions, s)
		s.send(map[string]any{"event": "hello", "protocol": protocolVersion, "identity": n.pin})
	}
	return moved > 0 || len(in) > 0
}

// closeNet ends every network session as the partition shuts down, and
// keeps the stack going, for a second at most, until their last answers
// (the shutdown's own) and their connections' ends are on the wire.
func (c *control) closeNet() {
	if netctl == nil {
		return
	}
	var conns []*netConn
	for _, s := range c.sessions {
		if nc, ok := s.t.(*netConn); ok {
			s.shut("the instance shuts down")
			conns = append(conns, nc)
		}
	}
	deadline := cpu.ReadCNTPCT() + cpu.ReadCNTFRQ()
	for cpu.ReadCNTPCT() < deadline {
		c.now = cpu.ReadCNTPCT()
		c.pollNet()
		c.pollUplink()
		done := netctl.st.Pending() == 0
		for _, nc := range conns {
			select {
			case <-nc.flushed:
			default:
				done = false
			}
		}
		if done {
			return
		}
		call(abi.YIELD, 100)
	}
}

// reap forgets the sessions that ended.
func (c *control) reap() {
	kept := c.sessions[:0]
	for _, s := range c.sessions {
		if !s.closed {
			kept = append(kept, s)
		}
	}
	clear(c.sessions[len(kept):])
	c.sessions = kept
}

func (c *control) netStats() map[string]any {
	n := netctl
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return map[string]any{"addr": n.st.Config().Addr.String(), "port": n.state.Port, "identity": n.pin,
		"open": n.conns, "accepted": n.accepted, "refused": n.refused, "cut": n.cut,
		"revoked": len(n.state.Revoked)}
}

// netConn is a network client's transport: a TLS connection, read and
// written by goroutines of its own so that the loop never blocks on it.
type netConn struct {
	c      *tls.Conn
	n      *netControl
	peer   string
	serial *big.Int
	in     chan []byte // what the reader received; closed when it ends
	free   chan []byte // chunks the loop is done with, to read into again
	last   []byte      // the chunk receive returned last
	out    chan []byte
	done   chan struct{}
	// flushed closes when the writer has sent what was queued and
	// closed the connection.
	flushed chan struct{}
	once    sync.Once
	eof     bool
}

func (nc *netConn) String() string { return nc.peer }

func (nc *netConn) reader() {
	for {
		var buf []byte
		select {
		case buf = <-nc.free:
		default:
			buf = make([]byte, chunk)
		}
		k, err := nc.c.Read(buf[:chunk])
		if k > 0 {
			select {
			case nc.in <- buf[:k]:
			case <-nc.done:
				return
			}
		}
		if err != nil {
			close(nc.in)
			return
		}
	}
}

func (nc *netConn) writer() {
	defer close(nc.flushed)
	defer nc.c.Close()
	for {
		select {
		case line := <-nc.out:
			if !nc.put(line, writeTimeout) {
				return
			}
		case <-nc.done:
			// Closed by the loop: what it queued before, an answer
			// that says why, still goes out.
			for {
				select {
				case line := <-nc.out:
					if !nc.put(line, time.Second) {
						return
					}
				default:
					return
				}
			}
		}
	}
}

func (nc *netConn) put(line []byte, timeout time.Duration) bool {
	nc.c.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := nc.c.Write(line); err != nil {
		nc.close(fmt.Sprintf("writing to it: %v", err))
		return false
	}
	return true
}

// receive takes the reader's next chunk, and gives the last one back
// for it to read into again.
func (nc *netConn) receive() []byte {
	if nc.last != nil {
		select {
		case nc.free <- nc.last[:cap(nc.last)]:
		default:
		}
		nc.last = nil
	}
	select {
	case b, ok := <-nc.in:
		if !ok {
			nc.eof = true
			return nil
		}
		nc.last = b
		return b
	default:
		return nil
	}
}

// chunk is what the reader reads at most at once: a TLS record.
const chunk = 16 << 10

func (nc *netConn) ended() bool { return nc.eof }

func (nc *netConn) write(line []byte) bool {
	select {
	case <-nc.done:
		return false
	case nc.out <- line:
		return true
	default:
		nc.close(fmt.Sprintf("fell %d answers behind", outQueue))
		return false
	}
}

// close ends the connection once the writer has sent what was queued.
func (nc *netConn) close(reason string) {
	nc.once.Do(func() {
		close(nc.done)
		nc.n.mu.Lock()
		nc.n.conns--
		if reason != "hung up" {
			nc.n.cut++
		}
		nc.n.mu.Unlock()
		nc.n.log("%s: %s", nc.peer, reason)
	})
}
