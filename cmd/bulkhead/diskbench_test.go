package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/bulkhead-hv/bulkhead/client"
	"github.com/bulkhead-hv/bulkhead/cpio"
)

// benchPreamble starts a bench guest's first process: the file systems
// and the initramfs's modules, as its /init has them.
const benchPreamble = `#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m || echo "bench: insmod $m failed"; done
`

// benchScript runs diskbench on the disk whose serial is "bench" and
// powers off.
const benchScript = benchPreamble + `for i in 1 2 3 4 5 6 7 8 9 10; do [ -e /sys/block/vda ] && break; sleep 0.2; done
/diskbench -serial bench -mb 32 -ops 2000
poweroff -f
`

// benchInitrd is the test initramfs with the bench script and the files
// given appended as a second archive, which the kernel unpacks over the
// first.
func benchInitrd(b *testing.B, dir, script string, files ...cpio.Entry) string {
	base, err := os.ReadFile(filepath.Join(dir, "linux", "rootfs.cpio.gz"))
	if err != nil {
		b.Fatal(err, " (make linux)")
	}
	var z bytes.Buffer
	w := gzip.NewWriter(&z)
	if err := cpio.Write(w, append([]cpio.Entry{cpio.File("bench.sh", 0o755, []byte(script))}, files...)); err != nil {
		b.Fatal(err)
	}
	w.Close()
	path := filepath.Join(b.TempDir(), "bench.cpio.gz")
	if err := os.WriteFile(path, append(base, z.Bytes()...), 0o644); err != nil {
		b.Fatal(err)
	}
	return path
}

var benchLine = regexp.MustCompile(`diskbench: (begin|end|done) ?(\w*)(?: (\d+) bytes \(guest clock ([0-9.]+) s\))?`)

// timeDiskbench reads a console and times diskbench's measurements by the
// host's clock: bytes per second for each, the median of its rounds.
func timeDiskbench(b *testing.B, r io.Reader) map[string]float64 {
	rates := map[string]float64{}
	rounds := map[string][]float64{}
	begun := map[string]time.Time{}
	sc := bufio.NewScanner(r)
	var log []string
	for sc.Scan() {
		line := sc.Text()
		log = append(log, line)
		m := benchLine.FindStringSubmatch(line)
		if m == nil {
			if bytes.Contains([]byte(line), []byte("diskbench: ")) {
				b.Fatalf("the bench guest failed: %s", line)
			}
			continue
		}
		switch m[1] {
		case "begin":
			begun[m[2]] = time.Now()
			continue
		case "done":
			// A measurement made several times (the random reads, the
			// noisiest under emulation) counts by its median.
			for k, v := range rounds {
				slices.Sort(v)
				rates[k] = v[len(v)/2]
			}
			if len(rates) != 6 {
				b.Fatalf("diskbench measured %d of the 6 figures", len(rates))
			}
			return rates
		}
		n, _ := strconv.ParseFloat(m[3], 64)
		guest, _ := strconv.ParseFloat(m[4], 64)
		rounds[m[2]] = append(rounds[m[2]], n/time.Since(begun[m[2]]).Seconds())
		rounds[m[2]+"-guest"] = append(rounds[m[2]+"-guest"], n/guest)
	}
	b.Fatalf("the console ended before diskbench did; its last lines:\n%s", tailLines(log, 20))
	return nil
}

func tailLines(l []string, n int) string {
	if len(l) > n {
		l = l[len(l)-n:]
	}
	var s string
	for _, x := range l {
		s += x + "\n"
	}
	return s
}

// BenchmarkLinuxDisk runs the same kernel and disk bench under Bulkhead
// (a guest disk the control partition backs with the instance's drive,
// through mediated virtqueues) and directly in QEMU at EL1 with the same
// drive as its virtio-blk device: sequential write and read MB/s and
// 4 KiB random-read IOPS, each with its ratio to the direct run.
func BenchmarkLinuxDisk(b *testing.B) {
	dir := imagesDir(b)
	tool, err := os.ReadFile(filepath.Join(dir, "diskbench"))
	if err != nil {
		b.Fatal(err, " (make bench builds it)")
	}
	initrd := benchInitrd(b, dir, benchScript, cpio.File("diskbench", 0o755, tool))
	kernel := filepath.Join(dir, "linux", "vmlinuz")
	disk := filepath.Join(b.TempDir(), "bench.img")
	if err := os.WriteFile(disk, make([]byte, 64<<20), 0o644); err != nil {
		b.Fatal(err)
	}
	cmdline := "console=ttyAMA0 rdinit=/bench.sh panic=-1"

	// Directly in QEMU.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	q, out := directQEMU(b, ctx, kernel, initrd, cmdline, drive{name: "bench", file: disk}.qemuArgs(&machineConfig{})...)
	direct := timeDiskbench(b, out)
	q.stop()

	// Under Bulkhead.
	b.Setenv("XDG_RUNTIME_DIR", b.TempDir())
	code, _, errs := bh("up", "--name", "db", "--disk", "bench="+disk)
	if code != 0 {
		b.Fatal(errs)
	}
	in, _ := client.LoadInstance("db")
	defer func() {
		bh("down", "--name", "db")
		if in != nil {
			killPID(in.PID)
			killPID(in.BrokerPID)
		}
	}()
	exe, _ := os.Executable()
	run := exec.CommandContext(ctx, exe, "run", "--instance", "db", "--name", "bench", "--mem", "256M",
		"--initrd", initrd, "--cmdline", cmdline, "--disk", "bench", kernel)
	run.Env = append(os.Environ(), "BULKHEAD_TEST_CLI=1")
	rout, err := run.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := run.Start(); err != nil {
		b.Fatal(err)
	}
	under := timeDiskbench(b, rout)
	run.Wait()

	for _, m := range []struct{ key, unit string }{{"seqwrite", "MB/s"}, {"seqread", "MB/s"}, {"randread", "IOPS"}} {
		scale := 1e-6 // MB/s
		if m.unit == "IOPS" {
			scale = 1.0 / 4096
		}
		b.ReportMetric(under[m.key]*scale, m.key+"-bulkhead-"+m.unit)
		b.ReportMetric(direct[m.key]*scale, m.key+"-direct-"+m.unit)
		b.ReportMetric(under[m.key]/direct[m.key], m.key+"-ratio")
		b.ReportMetric(under[m.key+"-guest"]/direct[m.key+"-guest"], m.key+"-guest-clock-ratio")
	}
}

// directRun is the bench's kernel run directly in QEMU.
type directRun struct{ cmd *exec.Cmd }

// directQEMU boots kernel and initrd in QEMU at EL1 with the devices
// given, as the instance's QEMU would run them but with no hypervisor, and
// returns its console.
func directQEMU(b *testing.B, ctx context.Context, kernel, initrd, cmdline string, devices ...string) (directRun, io.Reader) {
	q := exec.CommandContext(ctx, "qemu-system-aarch64", "-machine", "virt,gic-version=3", "-cpu", "max",
		"-smp", "1", "-m", "1G", "-nographic", "-monitor", "none", "-kernel", kernel, "-initrd", initrd,
		"-append", cmdline, "-global", "virtio-mmio.force-legacy=false")
	q.Args = append(q.Args, devices...)
	q.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	q.Cancel = func() error { return syscall.Kill(-q.Process.Pid, syscall.SIGKILL) }
	out, err := q.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := q.Start(); err != nil {
		b.Fatal(err)
	}
	r := directRun{q}
	b.Cleanup(r.stop)
	return r, out
}

// stop kills QEMU.
func (r directRun) stop() {
	syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
	r.cmd.Wait()
}
