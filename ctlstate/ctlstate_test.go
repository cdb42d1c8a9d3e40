package ctlstate

import (
	"math/big"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	s := &State{Version: Version, CA: "-----BEGIN CERTIFICATE-----", Addr: "10.0.2.10/24", Gateway: "10.0.2.2", Port: 4433, Time: 1796000000}
	if err := s.Revoke("0A:bc"); err != nil {
		t.Fatal(err)
	}
	s.Revoke("abc") // the same serial, once
	b, err := s.Encode()
	if err != nil || len(b) != Size {
		t.Fatalf("Encode: %d bytes, %v", len(b), err)
	}
	d, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if d.Port != 4433 || d.Addr != s.Addr || len(d.Revoked) != 1 {
		t.Fatalf("decoded %+v", d)
	}
	if !d.IsRevoked(big.NewInt(0xabc)) || d.IsRevoked(big.NewInt(0xabd)) {
		t.Fatal("IsRevoked is wrong")
	}
}

func TestDecodeRefuses(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", "empty"},
		{"{", "state drive"},
		{`{"version":2,"ca":"x","port":1}`, "version 2"},
		{`{"version":1,"port":1}`, "no CA"},
		{`{"version":1,"ca":"x","port":1,"revoked":["zz"]}`, "not hex"},
	} {
		_, err := Decode(append([]byte(c.in), 0, 0))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Decode(%q): %v, want %q", c.in, err, c.want)
		}
	}
	big := &State{Version: Version, CA: strings.Repeat("x", Size)}
	if _, err := big.Encode(); err == nil {
		t.Error("Encode took more than the drive holds")
	}
	if err := (&State{}).Revoke("xyz"); err == nil {
		t.Error("Revoke took a serial that is not hex")
	}
}
