//go:build tamago

package main

import (
	"fmt"

	"github.com/bulkhead-hv/bulkhead/vdev/virtionet"
	"github.com/bulkhead-hv/bulkhead/virtio"
	"github.com/bulkhead-hv/bulkhead/virtio/mmioreg"
	"github.com/bulkhead-hv/bulkhead/vswitch"
)

// The instance's uplink, under QEMU a virtio-net device (bulkhead up
// --net), and the switch that joins the guests' network devices to it.
var (
	uplink *virtio.Net
	sw     = &vswitch.Switch{}
)

// openUplink drives the machine's first virtio-net device, if it has one.
func openUplink() {
	devs := hostDevices(mmioreg.DeviceNet)
	if len(devs) == 0 {
		return
	}
	n, err := devs[0].openNet()
	if err != nil {
		fmt.Printf("control: uplink at %v: %v\n", devs[0], err)
		return
	}
	uplink, sw.Uplink = n, n
	mac := n.MAC()
	fmt.Printf("control: uplink %v at %v\n", macText(mac), devs[0])
}

// guestNet is a guest's virtio-net device, a port of the switch.
type guestNet struct {
	*virtdev
	nic *virtionet.Device
	mac vswitch.MAC
}

// mapNet gives the guest a network device on the uplink, its next
// transport, with a MAC of its own, a peer of the guests of the same
// group (none for "").
func (g *guest) mapNet(group string) error {
	if uplink == nil {
		return fmt.Errorf("the instance has no uplink for --net (bulkhead up --net user)")
	}
	gn := &guestNet{mac: vswitch.GuestMAC(g.handle)}
	vd, err := g.mapVirtio("network device", func(v *virtdev) device {
		gn.nic = virtionet.New(gn.mac, v.queue(virtionet.RX), v.queue(virtionet.TX),
			func(f []byte) { sw.FromGuest(gn.mac, f) })
		return gn.nic
	})
	if err != nil {
		return err
	}
	gn.virtdev = vd
	if !sw.Attach(gn.mac, gn.nic, group) {
		return fmt.Errorf("MAC %v is in use", macText(gn.mac))
	}
	g.net = gn
	return nil
}

// releaseNet takes the guest's port off the switch.
func (g *guest) releaseNet() {
	if g.net != nil {
		sw.Detach(g.net.mac)
		g.net = nil
	}
}

// pollUplink moves the uplink's frames to the guests' devices, then
// drives every network device's interrupt line: frames reach a guest from
// the uplink and from its peers, whose transmits are served apart from
// its own device. It reports whether frames came.
func (c *control) pollUplink() bool {
	if uplink == nil {
		return false
	}
	n := uplink.Receive(sw.FromUplink)
	for _, g := range c.guests {
		if g.net != nil {
			g.driveLine(g.net.virtdev)
		}
	}
	return n > 0
}

// netInfo describes g's network device for ps and stats.
func (g *guest) netInfo() map[string]any {
	if g.net == nil {
		return nil
	}
	st, sc := g.net.nic.Stats, sw.Counters(g.net.mac)
	return map[string]any{"mac": macText(g.net.mac), "dev": "eth0",
		"tx_frames": st.TxFrames, "tx_bytes": st.TxBytes, "rx_frames": st.RxFrames, "rx_bytes": st.RxBytes,
		"rx_dropped": st.RxDropped, "errors": st.Errors, "switch_dropped": sc.Dropped, "peers": g.boot.Peers}
}

func macText(m [6]byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}
