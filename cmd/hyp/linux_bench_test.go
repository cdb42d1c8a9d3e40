package main

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/bulkhead-hv/bulkhead/internal/qemutest"
)

// Linux's boot, from its first console byte to the initramfs's first
// line, measured on the host's clock the same way under Bulkhead (2 vCPUs
// time-sliced on one physical CPU, console through the control partition)
// and booted directly by QEMU at EL1 with 2 CPUs. Both run -cpu max; the
// direct boot turns off pointer authentication and SVE, which Bulkhead
// hides from guests: a kernel that uses pointer authentication runs about
// 3 times slower under QEMU's emulation, and comparing against that would
// flatter Bulkhead.
func BenchmarkLinuxBoot(b *testing.B) {
	kernel, initrd := linuxArtifacts(b)
	marker := regexp.MustCompile(`bulkhead-init: up [0-9.]+`)
	var under, direct time.Duration
	for i := 0; i < b.N; i++ {
		c := startControl(b, "1G", 1)
		c.runLinux("bench", 2, kernel, initrd)
		end := c.waitConsole("bench", 0, marker.String(), 3*time.Minute)
		c.mu.Lock()
		under += time.Since(c.first["bench"])
		_ = end
		c.mu.Unlock()
		direct += directBoot(b, marker)
	}
	n := time.Duration(b.N)
	b.ReportMetric(float64((under / n).Milliseconds()), "bulkhead-ms")
	b.ReportMetric(float64((direct / n).Milliseconds()), "direct-ms")
	b.ReportMetric(float64(under)/float64(direct), "ratio")
}

// Four CPU-bound jobs in a 4-vCPU Linux guest, timed on the host's clock
// from the command to the shell's next prompt: with the vCPUs spread over
// four physical CPUs, and with all four pinned to one, in the same
// machine (QEMU with a host thread per CPU). ratio is spread over one:
// below 1 when the physical CPUs run the vCPUs in parallel. How far below
// depends on the host's cores as well (QEMU's four threads share them).
func BenchmarkLinuxParallel(b *testing.B) {
	kernel, initrd := linuxArtifacts(b)
	c := startControl(b, "1G", 4, "-accel", "tcg,thread=multi")
	timeJobs := func(name string, pcpus ...int) time.Duration {
		c.runLinux(name, 4, kernel, initrd, pcpus...)
		c.waitConsole(name, 0, `(?m)^[^\n]*# `, 3*time.Minute)
		if n := c.shell(name, "nproc"); n != "4" {
			b.Fatalf("%s: nproc says %q", name, n)
		}
		start := time.Now()
		c.shell(name, parallelJobs)
		d := time.Since(start)
		c.call(map[string]any{"op": "input", "name": name, "data": []byte("poweroff -f\n")})
		c.waitFor(name+"'s exit", time.Minute, func() bool { _, ok := c.exits[name]; return ok })
		return d
	}
	var spread, one time.Duration
	for i := 0; i < b.N; i++ {
		spread += timeJobs(fmt.Sprintf("spread%d", i))
		one += timeJobs(fmt.Sprintf("one%d", i), 1)
	}
	n := time.Duration(b.N)
	b.ReportMetric(float64((spread / n).Milliseconds()), "spread-ms")
	b.ReportMetric(float64((one / n).Milliseconds()), "one-cpu-ms")
	b.ReportMetric(float64(spread)/float64(one), "ratio")
}

// directBoot boots the kernel in QEMU at EL1 and returns the time from its
// first console byte to the marker.
func directBoot(b testing.TB, marker *regexp.Regexp) time.Duration {
	dir := filepath.Join(qemutest.ImageDir(b), "linux")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-system-aarch64", "-machine", "virt,gic-version=3",
		"-cpu", "max,pauth=off,sve=off", "-smp", "2", "-m", "256M", "-nographic", "-monitor", "none",
		"-kernel", filepath.Join(dir, "vmlinuz"), "-initrd", filepath.Join(dir, "rootfs.cpio.gz"),
		"-append", "console=ttyAMA0 earlycon panic=-1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() }()
	rd := bufio.NewReader(out)
	var first time.Time
	var line []byte
	for {
		c, err := rd.ReadByte()
		if err != nil {
			b.Fatalf("direct boot: console ended before the marker: %v", err)
		}
		if first.IsZero() {
			first = time.Now()
		}
		line = append(line, c)
		if c == '\n' {
			if marker.Match(line) {
				return time.Since(first)
			}
			line = line[:0]
		}
	}
}
