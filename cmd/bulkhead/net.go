package main

import (
	"fmt"
	"regexp"
	"strings"
)

// An uplink is the network an instance's control partition switches its
// guests' network devices onto: under QEMU a virtio-net device on a user
// (slirp) or tap netdev.
type uplink struct {
	kind     string   // user or tap
	hostfwd  []string // user: tcp:[ADDR]:HOSTPORT-:GUESTPORT, as QEMU spells them
	ifname   string   // tap: the host's interface
	original string
}

var (
	// The tcp:HOSTPORT-:GUESTPORT, or QEMU's tcp:[ADDR]:HOSTPORT-:GUESTPORT.
	hostfwd   = regexp.MustCompile(`^(tcp|udp):(?:(127\.0\.0\.1|0\.0\.0\.0)?:)?(\d{1,5})-:(\d{1,5})$`)
	tapIfname = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)
)

// parseUplink reads --net user[,hostfwd=tcp:HOSTPORT-:GUESTPORT]... or
// --net tap,ifname=NAME.
func parseUplink(v string) (*uplink, error) {
	parts := strings.Split(v, ",")
	u := &uplink{kind: parts[0], original: v}
	for _, p := range parts[1:] {
		k, val, _ := strings.Cut(p, "=")
		switch {
		case u.kind == "user" && k == "hostfwd":
			m := hostfwd.FindStringSubmatch(val)
			if m == nil {
				return nil, fmt.Errorf("--net %s: hostfwd=%s: want tcp:HOSTPORT-:GUESTPORT (or udp:, or tcp:0.0.0.0:HOSTPORT-:GUESTPORT to listen beyond the loopback)", v, val)
			}
			addr := m[2]
			if addr == "" {
				addr = "127.0.0.1" // the loopback unless an address is given
			}
			u.hostfwd = append(u.hostfwd, m[1]+":"+addr+":"+m[3]+"-:"+m[4])
		case u.kind == "tap" && k == "ifname":
			if !tapIfname.MatchString(val) {
				return nil, fmt.Errorf("--net %s: ifname %q is not an interface name", v, val)
			}
			u.ifname = val
		default:
			return nil, fmt.Errorf("--net %s: unknown option %q (user takes hostfwd=, tap takes ifname=)", v, p)
		}
	}
	switch {
	case u.kind != "user" && u.kind != "tap":
		return nil, fmt.Errorf("--net %s: want user[,hostfwd=tcp:HOSTPORT-:GUESTPORT] or tap,ifname=NAME", v)
	case u.kind == "tap" && u.ifname == "":
		return nil, fmt.Errorf("--net %s: a tap uplink needs ifname=NAME", v)
	}
	return u, nil
}

// qemuArgs attach the uplink to the instance as a virtio-net device. A
// user network's forwards reach the first address its DHCP server gives,
// 10.0.2.15: the first guest to ask.
func (u *uplink) qemuArgs(m *machineConfig) []string {
	nd := "user,id=uplink"
	for _, f := range u.hostfwd {
		nd += ",hostfwd=" + f
	}
	if u.kind == "tap" {
		nd = "tap,id=uplink,ifname=" + u.ifname + ",script=no,downscript=no"
	}
	return []string{"-netdev", nd, "-device", m.virtioDevice("net", ",netdev=uplink")}
}

// uplinkFlag is up's --net.
type uplinkFlag struct{ v **uplink }

func (f uplinkFlag) String() string { return "" }

func (f uplinkFlag) Set(s string) error {
	if *f.v != nil {
		return fmt.Errorf("--net %s: an instance has one uplink; give its forwards as hostfwd= options of one --net", s)
	}
	u, err := parseUplink(s)
	if err == nil {
		*f.v = u
	}
	return err
}

var peersName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// cutPeers takes run's peers=NAME option out of a --net value: the
// guests given the same name reach each other on the uplink.
func cutPeers(v string) (rest, peers string, err error) {
	var kept []string
	for _, p := range strings.Split(v, ",") {
		if name, ok := strings.CutPrefix(p, "peers="); ok {
			if !peersName.MatchString(name) {
				return "", "", fmt.Errorf("--net %s: peers=%s: name the group with 1 to 32 letters, digits, '_' or '-'", v, name)
			}
			peers = name
			continue
		}
		kept = append(kept, p)
	}
	return strings.Join(kept, ","), peers, nil
}
