// Package ctlstate is the control partition's state drive: what the
// instance keeps across boots for its network control plane. The
// operator writes the CA that signs clients, the revoked serials, the
// address to serve on and a lower bound of the time; the instance writes
// the identity key it makes at its first boot. Under QEMU the drive is a
// small raw image in the operator's configuration directory (bulkhead up
// --listen), attached as a virtio-blk device whose serial is DriveName.
//
// The format is one JSON object from the drive's first byte, padded with
// NUL bytes to the drive's end.
package ctlstate

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

const (
	// DriveName is the state drive's virtio-blk serial; no guest disk
	// may be named so.
	DriveName = "bulkhead-state"
	// Size is the drive's size: room for a few CAs and many serials.
	Size = 64 << 10
	// Version is this format's.
	Version = 1
)

// State is the drive's content.
type State struct {
	Version int `json:"version"`
	// CA is the PEM of the operator's CA certificates: a client whose
	// certificate one of them signed may manage the instance.
	CA string `json:"ca"`
	// Revoked are serials, in hex, of client certificates refused even
	// though a CA signed them.
	Revoked []string `json:"revoked,omitempty"`
	// Addr (IPv4/PREFIX), Gateway and Port are where the control plane
	// is served.
	Addr    string `json:"addr"`
	Gateway string `json:"gateway"`
	Port    uint16 `json:"port"`
	// Time is when the operator wrote the drive, in seconds since 1970:
	// the instance's clock is at least that until the host sets it.
	Time int64 `json:"time"`
	// IdentityKey is the PEM of the instance's own key, made at its
	// first boot; empty until then.
	IdentityKey string `json:"identity_key,omitempty"`
}

// Decode reads a drive's content.
func Decode(b []byte) (*State, error) {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	if len(b) == 0 {
		return nil, errors.New("the state drive is empty")
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("the state drive: %v", err)
	}
	if s.Version != Version {
		return nil, fmt.Errorf("the state drive is of version %d, not %d", s.Version, Version)
	}
	if s.CA == "" || s.Port == 0 {
		return nil, errors.New("the state drive names no CA or no port")
	}
	for _, r := range s.Revoked {
		if _, err := hex.DecodeString(r); err != nil || r == "" {
			return nil, fmt.Errorf("the state drive: revoked serial %q is not hex", r)
		}
	}
	return &s, nil
}

// Encode is the drive's content for s: Size bytes.
func (s *State) Encode() ([]byte, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	if len(b) >= Size {
		return nil, fmt.Errorf("the state is %d bytes: more than the %d-byte drive holds", len(b), Size)
	}
	return append(b, make([]byte, Size-len(b))...), nil
}

// IsRevoked reports whether serial sn is among the revoked.
func (s *State) IsRevoked(sn *big.Int) bool {
	h := hex.EncodeToString(sn.Bytes())
	for _, r := range s.Revoked {
		if normal(r) == h {
			return true
		}
	}
	return false
}

// Revoke adds sn (hex) to the revoked, once.
func (s *State) Revoke(sn string) error {
	b, err := hex.DecodeString(normal(sn))
	if err != nil || len(b) == 0 {
		return fmt.Errorf("serial %q: want the certificate's serial number in hex", sn)
	}
	h := hex.EncodeToString(new(big.Int).SetBytes(b).Bytes())
	for _, r := range s.Revoked {
		if normal(r) == h {
			return nil
		}
	}
	s.Revoked = append(s.Revoked, h)
	return nil
}

// normal is a hex serial in lower case, with no colons and no leading
// zero bytes, as hex.EncodeToString(big.Int.Bytes()) gives it.
func normal(s string) string {
	s = strings.ToLower(strings.ReplaceAll(s, ":", ""))
	if len(s)%2 == 1 {
		s = "0" + s
	}
	for len(s) > 2 && s[:2] == "00" {
		s = s[2:]
	}
	return s
}
