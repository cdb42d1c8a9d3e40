package client

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/bulkhead-hv/bulkhead/mtls"
)

// ProtocolVersion is the line protocol's version this client speaks
// (docs/protocol.md): an instance that greets with another is refused.
const ProtocolVersion = 1

// Remote is an instance's network control plane and the credentials to
// reach it: a client certificate the operator's CA signed, and the pin of
// the instance's key ("" to learn it on this first contact).
type Remote struct {
	Addr string
	Cert tls.Certificate
	Pin  string
}

// DialTimeout bounds the connection and the TLS handshake.
const DialTimeout = 20 * time.Second

// DialRemote connects to a remote instance and waits for its greeting.
// It returns the pin of the key the instance showed, which is r.Pin
// unless r.Pin is "" (first contact).
func DialRemote(r Remote) (*Client, string, error) {
	cfg := mtls.ClientConfig(r.Cert, r.Pin)
	var seen string
	if r.Pin == "" {
		// First contact: whatever key the instance shows is recorded,
		// for the caller to pin.
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the instance sent no certificate")
			}
			var err error
			seen, err = mtls.Pin(cs.PeerCertificates[0].PublicKey)
			return err
		}
	}
	d := &net.Dialer{Timeout: DialTimeout}
	conn, err := tls.DialWithDialer(d, "tcp", r.Addr, cfg)
	if err != nil {
		return nil, "", fmt.Errorf("cannot reach the instance at %s: %v", r.Addr, err)
	}
	if r.Pin != "" {
		seen = r.Pin
	}
	c := New(conn)
	// TLS 1.3 tells a client of its refusal on its first read: the
	// greeting is that read.
	select {
	case m, ok := <-c.msgs:
		if !ok {
			conn.Close()
			return nil, "", fmt.Errorf("the instance at %s hung up before it greeted: %v (is this client's certificate one its operator's CA signed, valid and not revoked?)", r.Addr, c.err)
		}
		var h struct {
			Event    string `json:"event"`
			Protocol int    `json:"protocol"`
		}
		json.Unmarshal(m.raw, &h)
		if h.Event != "hello" || h.Protocol != ProtocolVersion {
			conn.Close()
			return nil, "", fmt.Errorf("the instance at %s greeted with %q: not protocol %d", r.Addr, m.raw, ProtocolVersion)
		}
	case <-time.After(DialTimeout):
		conn.Close()
		return nil, "", fmt.Errorf("the instance at %s did not greet within %v", r.Addr, DialTimeout)
	}
	return c, seen, nil
}
