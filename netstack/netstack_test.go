package netstack

import (
	"bytes"
	"io"
	"net/netip"
	"testing"
	"time"
)

// wire moves frames between two stacks until stop closes, as the
// control partition's loop moves them between a stack and its NIC.
func wire(a, b *Stack, stop chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		n := a.Transmit(64, b.Send) + b.Transmit(64, a.Send)
		if n == 0 {
			time.Sleep(100 * time.Microsecond)
		}
	}
}

func pair(t *testing.T) (*Stack, *Stack) {
	ca, err := ParseConfig([6]byte{2, 0, 0, 0, 0, 1}, "10.0.2.10/24", "10.0.2.2")
	if err != nil {
		t.Fatal(err)
	}
	cb, _ := ParseConfig([6]byte{2, 0, 0, 0, 0, 2}, "10.0.2.2/24", "10.0.2.10")
	a, err := New(ca)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(cb)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	go wire(a, b, stop)
	t.Cleanup(func() { close(stop) })
	return a, b
}

func TestTCPAcrossTwoStacks(t *testing.T) {
	a, b := pair(t)
	ln, err := a.Listen(4433)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	want := bytes.Repeat([]byte("bulkhead"), 256<<10) // 2 MiB: many windows
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		got <- b
	}()
	c, err := b.Dial(netip.MustParseAddrPort("10.0.2.10:4433"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(want); err != nil {
		t.Fatal(err)
	}
	c.Close()
	select {
	case g := <-got:
		if !bytes.Equal(g, want) {
			t.Fatalf("received %d bytes, not the %d sent", len(g), len(want))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no transfer within 30s")
	}
}

func TestParseConfigRefuses(t *testing.T) {
	mac := [6]byte{2}
	for _, c := range [][2]string{
		{"10.0.2.10", "10.0.2.2"},       // no prefix
		{"10.0.2.10/24", "10.0.3.2"},    // gateway off the subnet
		{"10.0.2.10/24", "10.0.2.10"},   // gateway is the stack
		{"fe80::1/64", "fe80::2"},       // not IPv4
		{"10.0.2.10/32", "10.0.2.10"},   // no room for a gateway
		{"10.0.2.10/24", "not-an-addr"}, // garbage
	} {
		if _, err := ParseConfig(mac, c[0], c[1]); err == nil {
			t.Errorf("ParseConfig(%q, %q) took it", c[0], c[1])
		}
	}
	if _, err := ParseConfig(mac, "10.0.2.10/24", "10.0.2.2"); err != nil {
		t.Errorf("QEMU's user network refused: %v", err)
	}
}
