package main

import (
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// freePort returns a TCP port on the loopback nobody listens on now.
func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Guests on the instance's uplink (QEMU's user network): one gets an
// address by DHCP, fetches a file from the host and is reached through
// the instance's host forward; a second on the same uplink gets its own
// address and cannot reach the first; a third, its peer, can.
func TestGuestNetwork(t *testing.T) {
	dir := imagesDir(t)
	kernel := filepath.Join(dir, "linux", "vmlinuz")
	initrd := filepath.Join(dir, "linux", "rootfs.cpio.gz")

	payload := make([]byte, 256<<10)
	rand.Read(payload)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(payload) })}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	httpPort := l.Addr().(*net.TCPAddr).Port
	fwd := freePort(t)

	upInstance(t, "nt", "--net", fmt.Sprintf("user,hostfwd=tcp:%d-:8080", fwd))
	boot := func(name, net string) *proc {
		run := startCLI(t, "run", "--instance", "nt", "--name", name, "--mem", "128M", "--net", net,
			"--initrd", initrd, "--cmdline", "console=ttyAMA0", kernel)
		require.Eventually(t, func() bool { return strings.Contains(run.stdout.String(), "bulkhead-init: up") },
			3*time.Minute, 100*time.Millisecond, "%s reaches init", name)
		require.Eventually(t, func() bool { return strings.Contains(run.stdout.String(), "# ") },
			time.Minute, 100*time.Millisecond, "%s's shell prompts", name)
		return run
	}
	wait := func(run *proc, what, s string) {
		t.Helper()
		require.Eventually(t, func() bool { return strings.Contains(run.stdout.String(), s) },
			time.Minute, 100*time.Millisecond, "%s: %q", what, s)
	}

	a := boot("a", "user,peers=lab")
	typeInto(t, "nt", "a", fmt.Sprintf("udhcpc -i eth0 -n -q -t 5 && echo dhcp-done\n"+
		"wget -q -O - http://10.0.2.2:%d/f | sha256sum\n"+
		"echo served-by-the-guest | nc -l -p 8080 & sleep 1; echo listening\n", httpPort))
	wait(a, "a's lease", "udhcpc: eth0 is 10.0.2.15/24")
	wait(a, "a's DHCP", "dhcp-done")
	wait(a, "the fetch's checksum", fmt.Sprintf("%x", sha256.Sum256(payload)))
	wait(a, "the guest's server", "listening")

	// QEMU's user network accepts on the host at once and connects to the
	// guest after: a connection made before the guest listens ends with
	// nothing, and is tried again.
	var got []byte
	for end := time.Now().Add(30 * time.Second); len(got) == 0 && time.Now().Before(end); {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(fwd), 10*time.Second)
		require.NoError(t, err)
		c.SetDeadline(time.Now().Add(30 * time.Second))
		got, _ = io.ReadAll(c)
		c.Close()
		if len(got) == 0 {
			time.Sleep(500 * time.Millisecond)
		}
	}
	assert.Equal(t, "served-by-the-guest\n", string(got), "the host reaches the guest through the forward")

	b := boot("b", "user")
	typeInto(t, "nt", "b", "udhcpc -i eth0 -n -q -t 5 && echo dhcp-done\n"+
		"ping -c 3 -W 1 10.0.2.15 >/dev/null 2>&1; echo ping-a=$?\n")
	wait(b, "b's lease", "udhcpc: eth0 is 10.0.2.16/24")
	result := regexp.MustCompile(`ping-a=(\d+)`)
	require.Eventually(t, func() bool { return result.MatchString(b.stdout.String()) }, time.Minute, 100*time.Millisecond,
		"b's ping of a ends")
	assert.Equal(t, "1", result.FindStringSubmatch(b.stdout.String())[1], "b cannot reach a on the same uplink")

	c := boot("c", "user,peers=lab")
	typeInto(t, "nt", "c", "udhcpc -i eth0 -n -q -t 5 && echo dhcp-done\n"+
		"ping -c 3 -W 2 10.0.2.15 >/dev/null 2>&1; echo ping-a=$?\n")
	wait(c, "c's lease", "udhcpc: eth0 is 10.0.2.17/24")
	require.Eventually(t, func() bool { return result.MatchString(c.stdout.String()) }, time.Minute, 100*time.Millisecond,
		"c's ping of a ends")
	assert.Equal(t, "0", result.FindStringSubmatch(c.stdout.String())[1], "c, a's peer, reaches it")

	code, out, errs := bh("ps", "--name", "nt")
	require.Equal(t, 0, code, errs)
	assert.Regexp(t, `a .*eth0=02:b1:4b:`, out, "ps shows each VM's network device")
	code, _, errs = bh("down", "--name", "nt")
	assert.Equal(t, 0, code, errs)
	for _, p := range []*proc{a, b, c} {
		p.wait(t, time.Minute)
	}
}
