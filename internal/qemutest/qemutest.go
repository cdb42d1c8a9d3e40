// Package qemutest boots Bulkhead images in QEMU for integration tests: one
// machine per test, a deadline on every boot, the console captured, and QEMU
// killed when the test ends however it ends.
package qemutest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Machine describes one QEMU boot.
type Machine struct {
	Image  string // path of the ELF to boot
	Mem    string // -m, default 1G
	SMP    int    // -smp, default 1
	CPU    string // -cpu, default max
	Append string // kernel command line; "exit=semihosting" is always added
	NoEL2  bool   // boot without virtualization=on (EL1 only)
	// Firmware, if set, is the UEFI firmware QEMU runs (-bios), which
	// starts Image as an EFI application; NoACPI has it hand over a
	// device tree instead of ACPI tables (acpi=off).
	Firmware string
	NoACPI   bool
	Extra    []string      // more QEMU arguments
	Timeout  time.Duration // default 60s
}

// Result is what a boot printed and how QEMU ended.
type Result struct {
	Console  string // serial output, CR LF folded to LF
	ExitCode int    // QEMU's exit status (the kernel's, through semihosting)
	TimedOut bool
}

// Lines splits the console output.
func (r *Result) Lines() []string { return strings.Split(r.Console, "\n") }

// ImageDir is where `make images` put the kernels: $BULKHEAD_IMAGES, or
// the repository's build/ after building them once per test binary.
func ImageDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("BULKHEAD_IMAGES"); d != "" {
		return d
	}
	buildOnce.Do(func() {
		root, err := repoRoot()
		if err != nil {
			buildErr = err
			return
		}
		cmd := exec.Command("make", "--no-print-directory", "-C", root, "images")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("make images: %v\n%s", err, out)
		}
		buildDir = filepath.Join(root, "build")
	})
	if buildErr != nil {
		t.Fatalf("building the images: %v", buildErr)
	}
	return buildDir
}

var (
	buildOnce sync.Once
	buildErr  error
	buildDir  string
)

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// Args returns QEMU's command line for m.
func (m Machine) Args() []string {
	machine := "virt,virtualization=on,gic-version=3"
	if m.NoEL2 {
		machine = "virt,gic-version=3"
	}
	if m.NoACPI {
		machine += ",acpi=off"
	}
	mem, cpu, smp := m.Mem, m.CPU, m.SMP
	if mem == "" {
		mem = "1G"
	}
	if cpu == "" {
		cpu = "max"
	}
	if smp == 0 {
		smp = 1
	}
	args := []string{
		"-machine", machine, "-cpu", cpu, "-m", mem, "-smp", fmt.Sprint(smp),
		"-nographic", "-monitor", "none",
		"-semihosting-config", "enable=on,target=native",
		"-kernel", m.Image,
		"-append", strings.TrimSpace("exit=semihosting " + m.Append),
	}
	if m.Firmware != "" {
		args = append(args, "-bios", m.Firmware)
	}
	return append(args, m.Extra...)
}

// UEFIFirmware is Debian's AAVMF build of EDK2 for QEMU virt
// (qemu-efi-aarch64).
const UEFIFirmware = "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd"

// Boot runs the machine until QEMU exits or the deadline passes. QEMU is
// killed with its process group when Boot returns, and again (harmlessly)
// at cleanup, so no test leaves one behind; if the test fails, the last 50
// console lines are logged.
func Boot(t testing.TB, m Machine) *Result {
	t.Helper()
	return Start(t, m).Wait()
}

// Instance is a machine running in the background.
type Instance struct {
	t      testing.TB
	m      Machine
	cmd    *exec.Cmd
	ctx    context.Context
	cancel context.CancelFunc
	out    *LockedBuffer
	done   chan error
}

// Start boots the machine and returns at once; Wait collects the result.
func Start(t testing.TB, m Machine) *Instance {
	t.Helper()
	if m.Timeout == 0 {
		m.Timeout = 60 * time.Second
	}
	if _, err := os.Stat(m.Image); err != nil {
		t.Fatalf("image: %v", err)
	}
	qemu, err := exec.LookPath("qemu-system-aarch64")
	if err != nil {
		t.Fatalf("qemu-system-aarch64 is not installed (make test installs it): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.Timeout)
	cmd := exec.CommandContext(ctx, qemu, m.Args()...)
	// Own process group, killed whole; and SIGKILL if this test binary dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out := &LockedBuffer{}
	cmd.Stdout = out
	cmd.Stderr = out
	in := &Instance{t: t, m: m, cmd: cmd, ctx: ctx, cancel: cancel, out: out, done: make(chan error, 1)}
	// Pdeathsig follows the thread that forks: keep it alive while QEMU runs.
	started := make(chan error)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		err := cmd.Start()
		started <- err
		if err == nil {
			in.done <- cmd.Wait()
		}
	}()
	if err := <-started; err != nil {
		cancel()
		t.Fatalf("starting QEMU: %v", err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		cancel()
	})
	return in
}

// Console is what the machine has printed so far.
func (in *Instance) Console() string { return strings.ReplaceAll(in.out.String(), "\r\n", "\n") }

// WaitFor waits until the console shows text, QEMU exits or the deadline
// passes, and reports whether the console showed it.
func (in *Instance) WaitFor(text string) bool {
	for {
		if strings.Contains(in.Console(), text) {
			return true
		}
		select {
		case err := <-in.done:
			in.done <- err // for Wait
			return strings.Contains(in.Console(), text)
		case <-in.ctx.Done():
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Wait waits for QEMU to exit (or the deadline) and returns the result.
func (in *Instance) Wait() *Result {
	t := in.t
	t.Helper()
	defer in.cancel()
	err := <-in.done
	res := &Result{Console: in.Console()}
	if in.ctx.Err() == context.DeadlineExceeded {
		res.TimedOut = true
		res.ExitCode = -1
	} else if ee, ok := err.(*exec.ExitError); ok {
		res.ExitCode = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("QEMU: %v", err)
	}
	m := in.m
	t.Cleanup(func() {
		if t.Failed() {
			lines := res.Lines()
			// A Go runtime's fatal error or panic heads a trace longer
			// than the window: its first line names the cause.
			var cause []string
			for _, l := range lines[:max(0, len(lines)-50)] {
				if strings.HasPrefix(l, "fatal error: ") || strings.HasPrefix(l, "panic: ") || strings.HasPrefix(l, "runtime: ") {
					cause = append(cause, l)
				}
			}
			if len(lines) > 50 {
				lines = lines[len(lines)-50:]
			}
			if len(cause) > 0 {
				t.Logf("runtime errors before the last 50 lines:\n%s", strings.Join(cause, "\n"))
			}
			t.Logf("qemu-system-aarch64 %s\nlast %d console lines:\n%s", strings.Join(m.Args(), " "), len(lines), strings.Join(lines, "\n"))
		}
	})
	if res.TimedOut {
		t.Errorf("QEMU still running after %v: killed", m.Timeout)
	}
	return res
}

// Contains asserts that the console shows every string.
func (r *Result) Contains(t testing.TB, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(r.Console, w) {
			t.Errorf("console lacks %q", w)
		}
	}
}

// Line returns the first console line that starts with prefix.
func (r *Result) Line(prefix string) (string, bool) {
	sc := bufio.NewScanner(strings.NewReader(r.Console))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), prefix) {
			return sc.Text(), true
		}
	}
	return "", false
}

// LockedBuffer is a bytes.Buffer that several goroutines may write and
// read, as a process's output is collected while a test looks at it.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// BehindIOMMU are the properties a virtio-pci device needs for its DMA to
// go through QEMU's SMMU (without iommu_platform it bypasses it).
const BehindIOMMU = "iommu_platform=on,disable-legacy=on"

// DumpDTB asks QEMU's virt machine (EL2, GICv3, -cpu max) for the device
// tree it would pass a kernel, with mem of RAM, smp CPUs, bootargs "a=b"
// and any further -machine options (iommu=smmuv3).
func DumpDTB(t testing.TB, mem string, smp int, machineOpts ...string) []byte {
	t.Helper()
	qemu, err := exec.LookPath("qemu-system-aarch64")
	if err != nil {
		t.Fatalf("qemu-system-aarch64 is not installed (it is needed to dump a real device tree; `make test` installs it): %v", err)
	}
	dir := t.TempDir()
	kernel := filepath.Join(dir, "kernel.bin")
	if err := os.WriteFile(kernel, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	dtb := filepath.Join(dir, "virt.dtb")
	out, err := exec.Command(qemu,
		"-machine", strings.Join(append([]string{"virt,virtualization=on,gic-version=3"}, machineOpts...), ",")+",dumpdtb="+dtb,
		"-cpu", "max", "-m", mem, "-smp", fmt.Sprint(smp),
		"-nographic", "-monitor", "none",
		"-kernel", kernel, "-append", "a=b").CombinedOutput()
	if err != nil {
		t.Fatalf("qemu: %v: %s", err, out)
	}
	blob, err := os.ReadFile(dtb)
	if err != nil {
		t.Fatalf("qemu: %v: %s", err, out)
	}
	return blob
}
