// Package vswitch is the control partition's Ethernet switch: it joins
// the guests' network devices to the instance's uplink. Each guest port
// has one MAC, given by the control partition; a frame a guest sends from
// any other source address is dropped, so a guest cannot pose as another
// or fill the table. Guests are isolated from each other unless they are
// peers (ports attached with the same group name): a guest's frames go to
// the uplink, and to a peer they are addressed to, or, broadcast and
// multicast, to its peers as well; the uplink's frames go to the guest
// whose MAC they are addressed to, or, broadcast and multicast, to every
// guest.
package vswitch

// MAC is an Ethernet address.
type MAC [6]byte

// Port is where the switch sends frames out: the uplink, or a guest's
// device. Send must not keep frame.
type Port interface {
	Send(frame []byte) error
}

// Counters are a port's traffic, as the switch sees it.
type Counters struct {
	InFrames, InBytes   uint64 // from the port into the switch
	OutFrames, OutBytes uint64 // out of the switch to the port
	Dropped             uint64 // from the port and dropped (spoofed, runt), or to it and refused
}

type guest struct {
	port  Port
	group string // its peers' name; "" for none
	c     Counters
}

// Switch joins guests to one uplink.
type Switch struct {
	Uplink Port
	// UplinkCounters counts the uplink's traffic.
	UplinkCounters Counters
	// Local, if set, is the control partition's own stack, on the
	// uplink with LocalMAC; LocalCounters count what it is given.
	Local         Port
	LocalMAC      MAC
	LocalCounters Counters
	guests        map[MAC]*guest
}

// MinFrame is the shortest frame forwarded: an Ethernet header.
const MinFrame = 14

// Attach adds a guest port with the given MAC, a peer of the ports of the
// same group (none for ""). It reports false if the MAC has a port
// already.
func (s *Switch) Attach(mac MAC, p Port, group string) bool {
	if s.guests == nil {
		s.guests = map[MAC]*guest{}
	}
	if _, ok := s.guests[mac]; ok {
		return false
	}
	s.guests[mac] = &guest{port: p, group: group}
	return true
}

// peers reports whether a and b may see each other's frames.
func peers(a, b *guest) bool { return a != b && a.group != "" && a.group == b.group }

// Detach removes the guest port of mac.
func (s *Switch) Detach(mac MAC) { delete(s.guests, mac) }

// Counters returns the guest port's counters.
func (s *Switch) Counters(mac MAC) Counters {
	if g := s.guests[mac]; g != nil {
		return g.c
	}
	return Counters{}
}

func dst(f []byte) MAC { return MAC(f[0:6]) }
func src(f []byte) MAC { return MAC(f[6:12]) }

// group reports whether a is a broadcast or multicast address (IEEE 802:
// the I/G bit, bit 0 of the first octet).
func group(a MAC) bool { return a[0]&1 != 0 }

// FromGuest takes a frame the guest of mac sent, if its source address is
// the guest's: to the peer it is addressed to, else to the uplink, and a
// group address's to the guest's peers too.
func (s *Switch) FromGuest(mac MAC, frame []byte) {
	g := s.guests[mac]
	if g == nil {
		return
	}
	if len(frame) < MinFrame || src(frame) != mac {
		g.c.Dropped++
		return
	}
	g.c.InFrames++
	g.c.InBytes += uint64(len(frame))
	d := dst(frame)
	if p := s.guests[d]; p != nil && peers(g, p) {
		s.out(p, frame)
		return
	}
	if group(d) {
		for _, p := range s.guests {
			if peers(g, p) {
				s.out(p, frame)
			}
		}
	}
	if s.Uplink == nil || s.Uplink.Send(frame) != nil {
		s.UplinkCounters.Dropped++
		return
	}
	s.UplinkCounters.OutFrames++
	s.UplinkCounters.OutBytes += uint64(len(frame))
}

// FromUplink takes a frame from the uplink: to the guest it is addressed
// to, or to every guest for a group address; others are dropped.
func (s *Switch) FromUplink(frame []byte) {
	if len(frame) < MinFrame {
		s.UplinkCounters.Dropped++
		return
	}
	s.UplinkCounters.InFrames++
	s.UplinkCounters.InBytes += uint64(len(frame))
	d := dst(frame)
	if s.Local != nil && (d == s.LocalMAC || group(d)) {
		s.LocalCounters.OutFrames++
		s.LocalCounters.OutBytes += uint64(len(frame))
		s.Local.Send(frame)
	}
	if !group(d) {
		if g := s.guests[d]; g != nil {
			s.out(g, frame)
		}
		return
	}
	for _, g := range s.guests {
		s.out(g, frame)
	}
}

func (s *Switch) out(g *guest, frame []byte) {
	if g.port.Send(frame) != nil {
		g.c.Dropped++
		return
	}
	g.c.OutFrames++
	g.c.OutBytes += uint64(len(frame))
}

// GuestMAC is the MAC the control partition gives a guest's network
// device: locally administered, unicast (IEEE 802, the U/L and I/G bits of
// the first octet), from the VM's handle, so two live guests never share
// one.
func GuestMAC(handle uint64) MAC {
	return MAC{0x02, 0xb1, 0x4b, byte(handle >> 16), byte(handle >> 8), byte(handle)}
}
