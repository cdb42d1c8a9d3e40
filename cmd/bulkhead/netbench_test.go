package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-hv/bulkhead/client"
)

// netScript sends 32 MiB to the host over TCP from a guest that got its
// address by DHCP, then powers off.
const netScript = benchPreamble + `udhcpc -i eth0 -n -q -t 5 >/dev/null || echo "netbench: no DHCP lease"
dd if=/dev/zero bs=64k count=512 2>/dev/null | nc 10.0.2.2 PORT
echo "netbench: sent"
poweroff -f
`

// receive accepts one connection and returns the bytes per second it
// carried, from its first byte to its end, by the host's clock.
func receive(b *testing.B, l net.Listener, console io.Reader) float64 {
	go func() { // the console, for a guest that fails before it connects
		sc := bufio.NewScanner(console)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "netbench: no DHCP") {
				l.Close()
			}
		}
	}()
	l.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Minute))
	c, err := l.Accept()
	if err != nil {
		b.Fatalf("the guest did not connect: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	var first [1]byte
	if _, err := io.ReadFull(c, first[:]); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	n, err := io.Copy(io.Discard, c)
	if err != nil {
		b.Fatal(err)
	}
	if n+1 != 32<<20 {
		b.Fatalf("the guest sent %d bytes, not 32 MiB", n+1)
	}
	return float64(n) / time.Since(start).Seconds()
}

// BenchmarkLinuxNet measures guest-to-host TCP throughput: the same
// kernel under Bulkhead (its eth0 a port of the control partition's switch
// on the instance's user-network uplink) and directly in QEMU with the
// same netdev as its virtio-net device.
func BenchmarkLinuxNet(b *testing.B) {
	dir := imagesDir(b)
	kernel := filepath.Join(dir, "linux", "vmlinuz")
	cmdline := "console=ttyAMA0 rdinit=/bench.sh panic=-1"
	listen := func() (net.Listener, string) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		port := fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
		return l, benchInitrd(b, dir, strings.Replace(netScript, "PORT", port, 1))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	l, initrd := listen()
	q, out := directQEMU(b, ctx, kernel, initrd, cmdline, (&uplink{kind: "user"}).qemuArgs(&machineConfig{})...)
	direct := receive(b, l, out)
	q.stop()
	l.Close()

	b.Setenv("XDG_RUNTIME_DIR", b.TempDir())
	if code, _, errs := bh("up", "--name", "nb", "--net", "user"); code != 0 {
		b.Fatal(errs)
	}
	in, _ := client.LoadInstance("nb")
	defer func() {
		bh("down", "--name", "nb")
		if in != nil {
			killPID(in.PID)
			killPID(in.BrokerPID)
		}
	}()
	l, initrd = listen()
	defer l.Close()
	exe, _ := os.Executable()
	run := exec.CommandContext(ctx, exe, "run", "--instance", "nb", "--name", "bench", "--mem", "256M",
		"--initrd", initrd, "--cmdline", cmdline, "--net", "user", kernel)
	run.Env = append(os.Environ(), "BULKHEAD_TEST_CLI=1")
	rout, _ := run.StdoutPipe()
	if err := run.Start(); err != nil {
		b.Fatal(err)
	}
	under := receive(b, l, rout)
	run.Wait()

	b.ReportMetric(under/1e6, "tcp-bulkhead-MB/s")
	b.ReportMetric(direct/1e6, "tcp-direct-MB/s")
	b.ReportMetric(under/direct, "tcp-ratio")
}
