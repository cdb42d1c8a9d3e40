package main

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-hv/bulkhead/client"
	"github.com/bulkhead-hv/bulkhead/internal/qemutest"
	"github.com/bulkhead-hv/bulkhead/mtls"
)

// remoteWorld is an instance up with --listen, and what a test needs to
// play its clients, good and bad.
type remoteWorld struct {
	in      *client.Instance
	addr    string
	dir     string // the instance's credentials
	ctx     remoteContext
	good    tls.Certificate
	console func() string
}

func upListening(t *testing.T, name string, args ...string) *remoteWorld {
	t.Helper()
	port := freePort(t)
	in := upInstance(t, name, append([]string{"--listen", fmt.Sprint(port)}, args...)...)
	w := &remoteWorld{in: in, addr: fmt.Sprintf("127.0.0.1:%d", port)}
	var err error
	w.dir, err = configDir(name)
	require.NoError(t, err)
	c, err := readContext(w.dir)
	require.NoError(t, err, "up --listen writes the context")
	w.ctx = *c
	require.Equal(t, w.addr, c.Addr)
	w.good, err = tls.LoadX509KeyPair(c.Cert, c.Key)
	require.NoError(t, err)
	w.console = func() string { b, _ := os.ReadFile(in.Log); return string(b) }
	return w
}

// issue signs a client certificate with the instance's CA, valid from
// notBefore for validity.
func (w *remoteWorld) issue(t *testing.T, notBefore time.Time, validity time.Duration) tls.Certificate {
	cp, err1 := os.ReadFile(filepath.Join(w.dir, "ca.pem"))
	kp, err2 := os.ReadFile(filepath.Join(w.dir, "ca.key"))
	require.NoError(t, err1)
	require.NoError(t, err2)
	c, k, _, err := mtls.Issue(cp, kp, "tester", notBefore, validity)
	require.NoError(t, err)
	cert, err := tls.X509KeyPair(c, k)
	require.NoError(t, err)
	return cert
}

// dial is a client with cert; it returns the connection and the first
// line the instance sent, or the error that ended it.
func (w *remoteWorld) dial(t *testing.T, cfg *tls.Config) (*tls.Conn, string, error) {
	raw, err := net.DialTimeout("tcp", w.addr, 10*time.Second)
	require.NoError(t, err)
	raw.SetDeadline(time.Now().Add(30 * time.Second))
	c := tls.Client(raw, cfg)
	if err := c.Handshake(); err != nil {
		c.Close()
		return nil, "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		c.Close()
		return nil, "", err
	}
	return c, line, nil
}

// logged checks that the instance's console has, within a minute, a
// line that matches why: the reason it gave for a refusal or a cut.
func (w *remoteWorld) logged(t *testing.T, why string) {
	t.Helper()
	re := regexp.MustCompile(why)
	if !assert.Eventually(t, func() bool { return re.MatchString(w.console()) }, time.Minute, 100*time.Millisecond,
		"the instance logs %q", why) {
		var net []string
		for _, l := range strings.Split(w.console(), "\n") {
			if strings.Contains(l, "control: net:") || strings.Contains(l, "upload") {
				net = append(net, l)
			}
		}
		_, stats, errb := bh("stats", "--name", w.in.Name, "--json")
		t.Fatalf("what it logged of the network:\n%s\nits stats: %s%s", strings.Join(net, "\n"), stats, errb)
	}
}

func remoteBH(w *remoteWorld, args ...string) (int, string, string) {
	return bh(append([]string{"--remote", w.addr}, args...)...)
}

// The network control plane end to end: a Linux guest run, watched and
// stopped through --remote while every kind of bad client is refused or
// cut beside it; then the instance is brought down over the network and
// comes up again with the same identity.
func TestRemoteControlPlane(t *testing.T) {
	dir := imagesDir(t)
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	kernel := filepath.Join(dir, "linux", "vmlinuz")
	initrd := filepath.Join(dir, "linux", "rootfs.cpio.gz")
	w := upListening(t, "rc")

	// The pin up --listen learnt through the host channel is the key the
	// instance's console announces.
	assert.Contains(t, w.console(), "identity "+w.ctx.Pin)
	code, out, errb := remoteBH(w, "ps", "--json")
	require.Equal(t, 0, code, errb)
	assert.JSONEq(t, fmt.Sprintf(`{"instance":%q,"vms":[]}`, w.addr), out)
	_, m0 := stats(t, "rc")

	run := startCLI(t, "--remote", w.addr, "run", "--name", "lx", "--mem", "128M",
		"--initrd", initrd, "--cmdline", "console=ttyAMA0", kernel)
	require.Eventually(t, func() bool { return strings.Contains(run.stdout.String(), "bulkhead-init: up") },
		3*time.Minute, 100*time.Millisecond, "Linux reaches init through --remote")
	assert.Regexp(t, `uploading lx's initrd: \d+ of \d+ KiB \([0-9.]+ MB/s\)`, run.stderr.String(), "the upload shows its progress")

	mustRefuse := func(what string, cfg *tls.Config, why string) {
		t.Helper()
		c, line, err := w.dial(t, cfg)
		if c != nil {
			c.Close()
		}
		assert.Error(t, err, "%s: served %q", what, line)
		w.logged(t, why)
	}
	other := newOtherCA(t)
	noCert := mtls.ClientConfig(tls.Certificate{}, w.ctx.Pin)
	mustRefuse("no certificate", noCert, `refused: tls: client didn't provide a certificate`)
	// Sent although the instance asked for its CA's: a client that
	// tries its luck.
	foreign := mtls.ClientConfig(tls.Certificate{}, w.ctx.Pin)
	foreign.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &other, nil }
	mustRefuse("another CA", foreign, `refused: tls: .*certificate signed by unknown authority`)
	mustRefuse("expired", mtls.ClientConfig(w.issue(t, time.Now().Add(-48*time.Hour), 24*time.Hour), w.ctx.Pin),
		`refused: tls: .*certificate has expired or is not yet valid`)
	tls12 := mtls.ClientConfig(w.good, w.ctx.Pin)
	tls12.MinVersion, tls12.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	mustRefuse("TLS 1.2", tls12, `refused: tls: client offered only unsupported versions`)

	// Plain TCP and garbage get no answer, only a hang-up.
	for _, probe := range []string{`{"op":"ps","id":1}` + "\n", "\x00\x01garbage\xff\xfe" + strings.Repeat("x", 4096)} {
		c, err := net.DialTimeout("tcp", w.addr, 10*time.Second)
		require.NoError(t, err)
		c.SetDeadline(time.Now().Add(30 * time.Second))
		c.Write([]byte(probe))
		b, _ := io.ReadAll(c)
		c.Close()
		assert.NotContains(t, string(b), `"ok"`, "no answer to plain TCP")
	}
	w.logged(t, `refused: tls: first record does not look like a TLS handshake`)

	// Authenticated but malformed: a run of 4 GiB, and a line with no end.
	good := mtls.ClientConfig(w.good, w.ctx.Pin)
	c, hello, err := w.dial(t, good)
	require.NoError(t, err)
	assert.Contains(t, hello, `"event":"hello"`)
	assert.Contains(t, hello, `"protocol":1`)
	fmt.Fprintf(c, `{"id":7,"op":"run","name":"huge","size":%d}`+"\n", uint64(4)<<30)
	b, _ := io.ReadAll(c)
	c.Close()
	assert.Contains(t, string(b), `"id":7,"ok":false`)
	assert.Contains(t, string(b), "want an image of 1 byte to 512 MiB")
	c, _, err = w.dial(t, good)
	require.NoError(t, err)
	c.Write([]byte(strings.Repeat("A", 100<<10)))
	b, _ = io.ReadAll(c)
	c.Close()
	assert.Contains(t, string(b), "a request line of more than 65536 bytes")
	w.logged(t, `a request line of more than 65536 bytes`)

	// A client that stops mid-upload is cut, and one that hangs up
	// mid-upload is forgotten: nothing of either stays.
	for _, hangUp := range []bool{false, true} {
		c, _, err = w.dial(t, good)
		require.NoError(t, err)
		fmt.Fprintf(c, `{"id":8,"op":"run","name":"half","size":%d}`+"\n", 8<<20)
		c.Write(make([]byte, 1<<20))
		if hangUp {
			// (Its unread upload events make the close a reset: what
			// was in flight is lost, so the count may be short.)
			c.Close()
			w.logged(t, `its upload of half ends \d+ of 8388608 bytes in: dropped\r?\ncontrol\| control: net: [^\n]*: hung up`)
			continue
		}
		c.SetDeadline(time.Now().Add(90 * time.Second))
		io.ReadAll(c) // until the instance cuts it
		c.Close()
		w.logged(t, `its upload of half ends 1048576 of 8388608 bytes in: dropped`)
		w.logged(t, `stopped for 15s in the middle of a request`)
	}

	// 200 connections at once: those past the limit are closed as they
	// come, the rest when their handshake times out.
	var flood []net.Conn
	for i := 0; i < 200; i++ {
		c, err := net.DialTimeout("tcp", w.addr, 10*time.Second)
		if err == nil {
			flood = append(flood, c)
		}
	}
	w.logged(t, `refused: 16 connections are open already`)
	for _, c := range flood {
		c.Close()
	}
	// Their slots come back: only the run's own session is left.
	require.Eventually(t, func() bool {
		code, out, _ := bh("stats", "--name", "rc", "--json")
		var v struct{ Net netStats }
		return code == 0 && json.Unmarshal([]byte(out), &v) == nil && v.Net.Open == 1 && v.Net.Refused >= len(flood)-16
	}, time.Minute, 500*time.Millisecond, "the flood's connections are all closed")

	// The run went on beside all of that: its guest answers, ps lists it.
	con := typeIntoRemote(t, w, "lx", "echo remote-$((6*7))\n")
	require.Eventually(t, func() bool { return strings.Contains(run.stdout.String(), "remote-42") },
		time.Minute, 100*time.Millisecond, "the guest's shell answers through the remote console (%s)", con)
	require.Eventually(t, func() bool {
		code, out, _ := remoteBH(w, "ps", "--json")
		return code == 0 && strings.Contains(out, `"name":"lx"`) && strings.Contains(out, `"state":"running"`)
	}, time.Minute, time.Second, "ps --json through --remote lists the guest, running")

	// A certificate issued now works until it is revoked, over the
	// network; then it is refused.
	cdir := t.TempDir()
	code, out, errb = bh("credentials", "--name", "rc", "--out", cdir, "--cn", "bob")
	require.Equal(t, 0, code, errb)
	serial := regexp.MustCompile(`serial ([0-9a-f]+)`).FindStringSubmatch(out)
	require.NotNil(t, serial, out)
	code, _, errb = bh("--remote", w.addr, "--credentials", cdir, "ps")
	require.Equal(t, 0, code, "bob's certificate works: %s", errb)
	code, _, errb = remoteBH(w, "credentials", "--revoke", serial[1])
	require.Equal(t, 0, code, errb)
	code, _, errb = bh("--remote", w.addr, "--credentials", cdir, "ps")
	assert.NotEqual(t, 0, code, "a revoked certificate is refused")
	w.logged(t, `refused: .*is revoked`)

	// First contact with no pin pins what it sees; a wrong pin is refused.
	code, _, errb = bh("--remote", w.addr, "--cert", w.ctx.Cert, "--key", w.ctx.Key, "ps")
	require.Equal(t, 0, code, errb)
	assert.Contains(t, errb, "pinned its key "+w.ctx.Pin)
	kf, _ := knownFile()
	known, _ := os.ReadFile(kf)
	assert.Contains(t, string(known), w.ctx.Pin)
	code, _, errb = bh("--remote", w.addr, "--cert", w.ctx.Cert, "--key", w.ctx.Key, "--pin", "sha256:"+strings.Repeat("0", 64), "ps")
	assert.NotEqual(t, 0, code)
	assert.Contains(t, errb, "not the pinned")

	code, _, errb = remoteBH(w, "stop", "lx")
	require.Equal(t, 0, code, errb)
	run.wait(t, time.Minute)
	_, m1 := stats(t, "rc")
	assert.Equal(t, ledgerOnly(m0), ledgerOnly(m1), "the ledger is back at its figures")

	code, out, errb = remoteBH(w, "down")
	require.Equal(t, 0, code, errb)
	assert.Contains(t, out, "is down")
	require.True(t, waitGone(w.in.PID, 30*time.Second), "QEMU ends")

	// The same instance up again keeps its identity: the state drive has
	// it, and the revoked serial. This time its NIC and drives are PCI
	// functions behind the SMMU.
	w2 := upListening(t, "rc", "--iommu")
	assert.Regexp(t, `DMA: SMMUv3 at 0x[0-9a-f]+ confines PCIe streams`, w2.console())
	assert.Regexp(t, `control: uplink [0-9a-f:]+ at PCI `, w2.console(), "the NIC is a PCI function")
	assert.Equal(t, w.ctx.Pin, w2.ctx.Pin, "the instance's key outlives it")
	code, _, errb = bh("--remote", w2.addr, "--credentials", cdir, "ps")
	assert.NotEqual(t, 0, code, "bob stays revoked")
	code, _, errb = remoteBH(w2, "ps")
	assert.Equal(t, 0, code, errb)
	code, _, errb = remoteBH(w2, "down")
	assert.Equal(t, 0, code, errb)
}

func newOtherCA(t *testing.T) tls.Certificate {
	cp, kp, err := mtls.NewCA("someone else", time.Now())
	require.NoError(t, err)
	c, k, _, err := mtls.Issue(cp, kp, "mallory", time.Now(), time.Hour)
	require.NoError(t, err)
	cert, err := tls.X509KeyPair(c, k)
	require.NoError(t, err)
	return cert
}

// typeIntoRemote types script into a VM's console through --remote; it
// returns what the console printed on its stderr, as it goes.
func typeIntoRemote(t *testing.T, w *remoteWorld, vm, script string) fmt.Stringer {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, "--remote", w.addr, "console", vm)
	cmd.Env = append(os.Environ(), "BULKHEAD_TEST_CLI=1")
	cmd.Stdin = strings.NewReader(script)
	errb := &qemutest.LockedBuffer{}
	cmd.Stderr = errb
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return errb
}
