package vswitch

import (
	"bytes"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
)

type wire struct {
	frames [][]byte
	full   bool
}

func (w *wire) Send(f []byte) error {
	if w.full {
		return errors.New("full")
	}
	w.frames = append(w.frames, bytes.Clone(f))
	return nil
}

func frame(d, s MAC, payload string) []byte {
	return append(append(append([]byte{}, d[:]...), s[:]...), append([]byte{0x08, 0x00}, payload...)...)
}

var broadcast = MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

func TestGuestsReachOnlyTheUplink(t *testing.T) {
	up, a, b := &wire{}, &wire{}, &wire{}
	s := &Switch{Uplink: up}
	ma, mb := GuestMAC(3), GuestMAC(4)
	assert.True(t, s.Attach(ma, a, ""))
	assert.True(t, s.Attach(mb, b, ""))
	assert.False(t, s.Attach(ma, b, ""), "one port per MAC")
	host := MAC{0x52, 0x55, 0x0a, 0x00, 0x02, 0x02}

	s.FromGuest(ma, frame(mb, ma, "to b"))         // a guest's unicast to another
	s.FromGuest(ma, frame(broadcast, ma, "arp?"))  // and its broadcast
	s.FromGuest(ma, frame(host, mb, "spoofed"))    // posing as b
	s.FromGuest(ma, []byte{1, 2, 3})               // a runt
	s.FromGuest(MAC{9}, frame(host, MAC{9}, "no")) // no such port
	assert.Len(t, up.frames, 2, "both of a's own frames go up")
	assert.Empty(t, b.frames, "nothing of a's reaches b, not even a broadcast")
	assert.Equal(t, Counters{InFrames: 2, InBytes: uint64(len(frame(mb, ma, "to b")) + len(frame(broadcast, ma, "arp?"))), Dropped: 2}, s.Counters(ma))

	s.FromUplink(frame(ma, host, "to a"))
	s.FromUplink(frame(broadcast, host, "all"))
	s.FromUplink(frame(MAC{0x02, 9, 9, 9, 9, 9}, host, "nobody"))
	s.FromUplink([]byte{1})
	assert.Equal(t, [][]byte{frame(ma, host, "to a"), frame(broadcast, host, "all")}, a.frames)
	assert.Equal(t, [][]byte{frame(broadcast, host, "all")}, b.frames)
	assert.Equal(t, uint64(1), s.UplinkCounters.Dropped)

	b.full = true
	s.FromUplink(frame(mb, host, "to b"))
	assert.Equal(t, uint64(1), s.Counters(mb).Dropped, "a guest with no room drops")
	s.Detach(mb)
	s.FromUplink(frame(broadcast, host, "after"))
	assert.Len(t, b.frames, 1, "a detached guest gets nothing")
}

func TestGuestMAC(t *testing.T) {
	m := GuestMAC(0x123456)
	assert.Equal(t, MAC{0x02, 0xb1, 0x4b, 0x12, 0x34, 0x56}, m)
	assert.False(t, group(m), "unicast")
	assert.NotZero(t, m[0]&2, "locally administered")
}

// Peers (ports of one group) reach each other; others still do not.
func TestPeers(t *testing.T) {
	up, a, b, c := &wire{}, &wire{}, &wire{}, &wire{}
	s := &Switch{Uplink: up}
	ma, mb, mc := GuestMAC(3), GuestMAC(4), GuestMAC(5)
	s.Attach(ma, a, "lab")
	s.Attach(mb, b, "")
	s.Attach(mc, c, "lab")
	s.FromGuest(mc, frame(ma, mc, "to a"))
	s.FromGuest(mc, frame(broadcast, mc, "arp"))
	s.FromGuest(mc, frame(mb, mc, "to b"))
	s.FromGuest(mb, frame(ma, mb, "b to a"))
	assert.Equal(t, [][]byte{frame(ma, mc, "to a"), frame(broadcast, mc, "arp")}, a.frames, "a gets its peer's unicast and broadcast")
	assert.Empty(t, b.frames, "b is no one's peer")
	assert.Empty(t, c.frames, "a broadcast does not come back to its sender")
	assert.Equal(t, [][]byte{frame(broadcast, mc, "arp"), frame(mb, mc, "to b"), frame(ma, mb, "b to a")}, up.frames,
		"the uplink gets the broadcast and what is for no peer")
}

func TestTheLocalStackHearsTheUplinkAndNoGuest(t *testing.T) {
	up, local, a := &wire{}, &wire{}, &wire{}
	nic := MAC{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	s := &Switch{Uplink: up, Local: local, LocalMAC: nic}
	ma := GuestMAC(3)
	assert.True(t, s.Attach(ma, a, ""))
	host := MAC{0x52, 0x55, 0x0a, 0x00, 0x02, 0x02}

	s.FromUplink(frame(nic, host, "to the control plane"))
	s.FromUplink(frame(broadcast, host, "arp?"))
	s.FromUplink(frame(ma, host, "to a"))
	s.FromGuest(ma, frame(nic, ma, "a guest knocks"))
	s.FromGuest(ma, frame(broadcast, ma, "a guest's arp"))

	assert.Equal(t, [][]byte{frame(nic, host, "to the control plane"), frame(broadcast, host, "arp?")}, local.frames)
	assert.Equal(t, [][]byte{frame(broadcast, host, "arp?"), frame(ma, host, "to a")}, a.frames)
	assert.Len(t, up.frames, 2, "a guest's frames go to the uplink only")
	assert.Equal(t, uint64(2), s.LocalCounters.OutFrames)
}
