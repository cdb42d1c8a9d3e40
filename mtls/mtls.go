// Package mtls is the network control plane's mutual TLS: the operator's
// certificate authority and the client certificates it issues, the
// instance's identity (a key it generates itself, whose certificate it
// signs itself) and the pin by which clients know it, and the TLS 1.3
// configurations of both ends. docs/architecture.md, "The network control
// plane", says why it is built so.
package mtls

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// Validity of what this package makes.
const (
	CAValidity       = 10 * 365 * 24 * time.Hour
	ClientValidity   = 365 * 24 * time.Hour
	IdentityValidity = 10 * 365 * 24 * time.Hour
	// skew is how far before its making a certificate is valid, for
	// clocks a little behind the issuer's.
	skew = time.Hour
)

// NewKey makes an ECDSA P-256 key.
func NewKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// NewCA makes an operator's certificate authority, named name.
func NewCA(name string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := NewKey()
	if err != nil {
		return nil, nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, err
	}
	t := &x509.Certificate{SerialNumber: sn, Subject: pkix.Name{CommonName: name},
		NotBefore: now.Add(-skew), NotAfter: now.Add(CAValidity),
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, t, t, key.Public(), key)
	if err != nil {
		return nil, nil, err
	}
	kp, err := KeyPEM(key)
	return CertPEM(der), kp, err
}

// Issue makes a client certificate for name, signed by the CA, valid
// from notBefore for validity (and for an hour before notBefore, for an
// instance whose clock is a little behind the issuer's).
func Issue(caCertPEM, caKeyPEM []byte, name string, notBefore time.Time, validity time.Duration) (certPEM, keyPEM []byte, sn *big.Int, err error) {
	ca, err := tls.X509KeyPair(caCertPEM, caKeyPEM)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("the CA: %v", err)
	}
	if ca.Leaf == nil || !ca.Leaf.IsCA {
		return nil, nil, nil, errors.New("the CA's certificate is not a CA's")
	}
	key, err := NewKey()
	if err != nil {
		return nil, nil, nil, err
	}
	if sn, err = serial(); err != nil {
		return nil, nil, nil, err
	}
	t := &x509.Certificate{SerialNumber: sn, Subject: pkix.Name{CommonName: name},
		NotBefore: notBefore.Add(-skew), NotAfter: notBefore.Add(validity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, t, ca.Leaf, key.Public(), ca.PrivateKey)
	if err != nil {
		return nil, nil, nil, err
	}
	kp, err := KeyPEM(key)
	return CertPEM(der), kp, sn, err
}

// CertPEM encodes a certificate.
func CertPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// KeyPEM encodes a private key (PKCS #8).
func KeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseKey decodes KeyPEM's encoding.
func ParseKey(keyPEM []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(keyPEM)
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, errors.New("not a PEM private key")
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("not a signing key")
	}
	return s, nil
}

// Identity is the instance's TLS certificate: its own key, self-signed.
// Clients trust it by its pin, not by a signature.
func Identity(key crypto.Signer, name string, now time.Time) (tls.Certificate, error) {
	sn, err := serial()
	if err != nil {
		return tls.Certificate{}, err
	}
	t := &x509.Certificate{SerialNumber: sn, Subject: pkix.Name{CommonName: name},
		NotBefore: now.Add(-skew), NotAfter: now.Add(IdentityValidity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, t, t, key.Public(), key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// Pin names a public key: "sha256:" and the hex SHA-256 of its
// SubjectPublicKeyInfo, which stays as long as the key does, whatever
// certificate carries it.
func Pin(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(h[:]), nil
}

// Revoked tells whether a client certificate's serial is revoked.
type Revoked func(serial *big.Int) bool

// ServerConfig is the instance's side: TLS 1.3 only, and a client
// certificate that the CAs signed, valid at now() and not revoked, or no
// connection.
func ServerConfig(id tls.Certificate, caPEM []byte, revoked Revoked, now func() time.Time) (*tls.Config, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("no CA certificate in the instance's configuration")
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{id},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		Time:         now,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("no client certificate")
			}
			c := cs.PeerCertificates[0]
			if revoked != nil && revoked(c.SerialNumber) {
				return fmt.Errorf("client certificate %q (serial %x) is revoked", c.Subject.CommonName, c.SerialNumber)
			}
			return nil
		},
	}, nil
}

// ClientConfig is a client's side: TLS 1.3 only, its certificate, and the
// instance known by pin alone.
func ClientConfig(cert tls.Certificate, pin string) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		// The instance's certificate is self-signed: what makes it the
		// instance is its key, checked against the pin below.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the instance sent no certificate")
			}
			got, err := Pin(cs.PeerCertificates[0].PublicKey)
			if err != nil {
				return err
			}
			if got != pin {
				return &PinError{Want: pin, Got: got}
			}
			return nil
		},
	}
}

// PinError is an instance whose key is not the one pinned.
type PinError struct{ Want, Got string }

func (e *PinError) Error() string {
	return fmt.Sprintf("the instance's key is %s, not the pinned %s: it is another machine, or its identity was made anew", e.Got, e.Want)
}
