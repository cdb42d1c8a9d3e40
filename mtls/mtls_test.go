package mtls

import (
	"crypto/tls"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

type world struct {
	caCert, caKey []byte
	id            tls.Certificate
	pin           string
	now           time.Time
}

func newWorld(t *testing.T) *world {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	cc, ck, err := NewCA("operator", now)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := NewKey()
	id, err := Identity(key, "instance", now)
	if err != nil {
		t.Fatal(err)
	}
	pin, _ := Pin(key.Public())
	return &world{cc, ck, id, pin, now}
}

func (w *world) client(t *testing.T, notBefore time.Time, validity time.Duration) tls.Certificate {
	cp, kp, _, err := Issue(w.caCert, w.caKey, "alice", notBefore, validity)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(cp, kp)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// handshake runs both ends over a loopback connection and returns the server's and the
// client's errors.
func handshake(t *testing.T, server, client *tls.Config) (error, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	b, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	a.SetDeadline(time.Now().Add(10 * time.Second))
	b.SetDeadline(time.Now().Add(10 * time.Second))
	defer a.Close()
	defer b.Close()
	done := make(chan error, 1)
	go func() {
		s := tls.Server(a, server)
		err := s.Handshake()
		if err == nil {
			// TLS 1.3 checks the client's certificate after the client
			// thinks it is done: read so that a refusal reaches it.
			_, err = s.Read(make([]byte, 1))
		}
		a.Close()
		done <- err
	}()
	c := tls.Client(b, client)
	cerr := c.Handshake()
	if cerr == nil {
		_, cerr = c.Write([]byte{1})
		if cerr == nil {
			_, cerr = c.Read(make([]byte, 1))
		}
	}
	b.Close()
	return <-done, cerr
}

func (w *world) server(t *testing.T, revoked Revoked) *tls.Config {
	cfg, err := ServerConfig(w.id, w.caCert, revoked, func() time.Time { return w.now })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestGoodClientIsServed(t *testing.T) {
	w := newWorld(t)
	serr, _ := handshake(t, w.server(t, nil), ClientConfig(w.client(t, w.now, ClientValidity), w.pin))
	// The server read the client's byte; the client's close ends it.
	if serr != nil && !strings.Contains(serr.Error(), "closed") && !strings.Contains(serr.Error(), "EOF") {
		t.Fatalf("a client the CA signed was refused: %v", serr)
	}
}

func TestRefusals(t *testing.T) {
	w := newWorld(t)
	other := newWorld(t)
	good := w.client(t, w.now, ClientValidity)
	tls12 := ClientConfig(good, w.pin)
	tls12.MinVersion, tls12.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	revokedCert := w.client(t, w.now, ClientValidity)
	cases := []struct {
		name     string
		server   *tls.Config
		client   *tls.Config
		want     string // in the server's error, or the client's for the pin
		atServer bool
	}{
		{"no certificate", w.server(t, nil), ClientConfig(tls.Certificate{}, w.pin), "certificate", true},
		{"another CA", w.server(t, nil), ClientConfig(other.client(t, w.now, ClientValidity), w.pin), "unknown authority", true},
		{"expired", w.server(t, nil), ClientConfig(w.client(t, w.now.Add(-48*time.Hour), 24*time.Hour), w.pin), "expired", true},
		{"not yet valid", w.server(t, nil), ClientConfig(w.client(t, w.now.Add(48*time.Hour), 24*time.Hour), w.pin), "expired or is not yet valid", true},
		{"a second ahead", w.server(t, nil), ClientConfig(w.client(t, w.now.Add(time.Second), time.Hour), w.pin), "", true},
		{"TLS 1.2", w.server(t, nil), tls12, "unsupported versions", true},
		{"revoked", w.server(t, func(sn *big.Int) bool { return sn.Cmp(revokedCert.Leaf.SerialNumber) == 0 }),
			ClientConfig(revokedCert, w.pin), "revoked", true},
		{"wrong pin", w.server(t, nil), ClientConfig(good, other.pin), "not the pinned", false},
	}
	for _, c := range cases {
		serr, cerr := handshake(t, c.server, c.client)
		err := serr
		if !c.atServer {
			err = cerr
		}
		if c.want == "" {
			if err != nil && !strings.Contains(err.Error(), "EOF") {
				t.Errorf("%s: refused: %v", c.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got server %v, client %v; want %q", c.name, serr, cerr, c.want)
		}
	}
}

func TestIssueRefusesANonCA(t *testing.T) {
	w := newWorld(t)
	cp, kp, _, err := Issue(w.caCert, w.caKey, "bob", w.now, ClientValidity)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := Issue(cp, kp, "mallory", w.now, ClientValidity); err == nil {
		t.Fatal("a client certificate issued another")
	}
}

func TestKeyRoundTrip(t *testing.T) {
	k, _ := NewKey()
	p, err := KeyPEM(k)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := ParseKey(p)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := Pin(k.Public())
	b, _ := Pin(k2.Public())
	if a != b || !strings.HasPrefix(a, "sha256:") || len(a) != 7+64 {
		t.Fatalf("pins %s and %s", a, b)
	}
	if _, err := ParseKey([]byte("garbage")); err == nil {
		t.Fatal("ParseKey took garbage")
	}
}
