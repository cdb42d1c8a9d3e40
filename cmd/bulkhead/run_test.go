package main

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-hv/bulkhead/client"
	"github.com/bulkhead-hv/bulkhead/hyp"
	"github.com/bulkhead-hv/bulkhead/internal/qemutest"
)

// imagesDir points the CLI at the built images, and at a private state
// directory so that no instance the user has up is involved.
func imagesDir(t testing.TB) string {
	dir := qemutest.ImageDir(t)
	t.Setenv("BULKHEAD_IMAGES", dir)
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	return dir
}

func killPID(pid int) {
	if pid > 0 {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// bh runs the CLI in this process.
func bh(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = cli(args, &out, &errb)
	return code, out.String(), errb.String()
}

// upInstance boots an instance for the test. QEMU and the broker are
// killed at cleanup whatever the test did; down first is the test's job.
func upInstance(t *testing.T, name string, args ...string) *client.Instance {
	t.Helper()
	code, out, errb := bh(append([]string{"up", "--name", name}, args...)...)
	require.Equal(t, 0, code, errb)
	require.Contains(t, out, fmt.Sprintf("instance %q is up", name))
	in, err := client.LoadInstance(name)
	require.NoError(t, err)
	t.Cleanup(func() {
		killPID(in.PID)
		killPID(in.BrokerPID)
		if t.Failed() {
			t.Logf("%s's console:\n%s\nbroker:\n%s", name, tail(in.Log, 40), tail(in.BrokerLog, 40))
			// A goroutine dump pushes the reason out of the tail.
			b, _ := os.ReadFile(in.Log)
			if i := regexp.MustCompile(`(?m)^(fatal error|panic|bulkhead: exception)`).FindIndex(b); i != nil {
				end := min(len(b), i[0]+2000)
				t.Logf("%s's console, where it failed:\n%s", name, b[max(0, i[0]-1000):end])
			}
		}
	})
	return in
}

// proc is the CLI in a process of its own (this test binary; see
// TestMain), to be killed or interrupted.
type proc struct {
	cmd            *exec.Cmd
	stdout, stderr *qemutest.LockedBuffer
	done           chan struct{}
	code           int
}

func startCLI(t *testing.T, args ...string) *proc {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	p := &proc{cmd: exec.Command(exe, args...), stdout: &qemutest.LockedBuffer{}, stderr: &qemutest.LockedBuffer{}, done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), "BULKHEAD_TEST_CLI=1")
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	require.NoError(t, p.cmd.Start())
	go func() {
		p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("bulkhead %s:\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), p.stdout, p.stderr)
		}
	})
	return p
}

func (p *proc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(timeout):
		t.Fatalf("bulkhead %s did not end within %v", strings.Join(p.cmd.Args[1:], " "), timeout)
		return -1
	}
}

func lines(s string) int { return strings.Count(s, "\n") }

// ps lists an instance's VMs by name.
func ps(t *testing.T, inst string) map[string]client.VMInfo {
	t.Helper()
	code, out, errb := bh("ps", "--name", inst, "--json")
	require.Equal(t, 0, code, errb)
	var v struct {
		Instance string          `json:"instance"`
		VMs      []client.VMInfo `json:"vms"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &v), out)
	require.Equal(t, inst, v.Instance)
	m := map[string]client.VMInfo{}
	for _, vm := range v.VMs {
		m[vm.Name] = vm
	}
	return m
}

func stats(t *testing.T, inst string) (vms []vmStats, m machineStats) {
	t.Helper()
	code, out, errb := bh("stats", "--name", inst, "--json")
	require.Equal(t, 0, code, errb)
	var v struct {
		VMs     []vmStats    `json:"vms"`
		Machine machineStats `json:"machine"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &v), out)
	return v.VMs, v.Machine
}

// ledgerOnly is m without the count of invariant checks, which every
// report moves on.
func ledgerOnly(m machineStats) machineStats {
	m.Checks = 0
	return m
}

func running(t *testing.T, inst, vm string) func() bool {
	return func() bool { return ps(t, inst)[vm].State == "running" }
}

// The first-time user's command: a private instance runs the guest, its
// console comes out, bulkhead exits with its status, and nothing of the
// instance is left.
func TestRunGuest(t *testing.T) {
	dir := imagesDir(t)
	code, stdout, stderr := bh("run", "--arg", "3", filepath.Join(dir, "guest-hello.elf"))
	assert.Equal(t, 3, code, "the guest's exit status; stderr: %s", stderr)
	assert.Contains(t, stdout, "hello from a TamaGo guest at EL1\n")
	assert.Contains(t, stdout, "exiting with status 3\n")
	assert.NotContains(t, stdout, "bulkhead:", "only the guest's console on stdout")
	assert.Contains(t, stderr, "booting guest-hello in a private instance")
	assert.Contains(t, stderr, "uploading guest-hello")
	left, _ := os.ReadDir(filepath.Join(os.Getenv("XDG_RUNTIME_DIR"), "bulkhead"))
	assert.Empty(t, left, "the private instance is gone")
}

func TestRunJSON(t *testing.T) {
	dir := imagesDir(t)
	code, stdout, stderr := bh("run", "--json", "--name", "t1", "--smp", "2", "--qemu-opt=-icount", "--qemu-opt=shift=0,sleep=off", filepath.Join(dir, "guest-timer.elf"))
	require.Equal(t, 0, code, stderr)
	assert.NotContains(t, stderr, "uploading", "--json: no progress")
	out := strings.Split(strings.TrimSpace(stdout), "\n")
	var last map[string]any
	require.NoError(t, json.Unmarshal([]byte(out[len(out)-1]), &last))
	assert.Equal(t, map[string]any{"event": "exit", "vm": "t1", "status": float64(0)}, last)
	var first map[string]string
	require.NoError(t, json.Unmarshal([]byte(out[0]), &first))
	assert.Equal(t, "console", first["event"])
	assert.Equal(t, "t1", first["vm"])
	assert.Contains(t, stdout, `"text":"timer: rate ok"`)
}

// When the private instance cannot boot, bulkhead says so, shows its log,
// and leaves nothing running.
func TestRunInstanceFailure(t *testing.T) {
	dir := imagesDir(t)
	// A guest image given as the control partition: linked for a guest's
	// RAM, the hypervisor refuses it.
	code, _, stderr := bh("run", "--control", filepath.Join(dir, "guest-spin.elf"), filepath.Join(dir, "guest-hello.elf"))
	assert.Equal(t, exitInternal, code)
	assert.Contains(t, stderr, "bulkhead run: the private instance failed to boot: QEMU exited before the control partition was ready; its last lines:")
	assert.Contains(t, stderr, "\n  bulkhead: exit status 1\n", "the hypervisor's console")
	left, _ := os.ReadDir(filepath.Join(os.Getenv("XDG_RUNTIME_DIR"), "bulkhead"))
	assert.Empty(t, left)
}

// An instance boots in the background, answers through its broker, and
// goes down when asked; neither QEMU nor the broker outlives it.
func TestUpPsDown(t *testing.T) {
	imagesDir(t)
	code, _, errb := bh("ps", "--name", "t")
	require.Equal(t, exitUsage, code)
	assert.Contains(t, errb, `no instance named "t" is up`)

	in := upInstance(t, "t", "--smp", "2", "--mem", "768M")
	assert.True(t, client.Alive(in.PID))
	assert.True(t, client.Alive(in.BrokerPID))
	assert.FileExists(t, in.API)
	code, _, errb = bh("up", "--name", "t")
	assert.Equal(t, exitUsage, code, "already up")
	assert.Contains(t, errb, `instance "t" is already up`)

	assert.Empty(t, ps(t, "t"))
	code, out, errb := bh("ps", "--instance", "t")
	require.Equal(t, 0, code, errb)
	assert.Equal(t, "NAME  VM  STATE  STATUS  MEM  CPUS  DISKS  NET\n", out)
	code, out, errb = bh("stats", "--name", "t")
	require.Equal(t, 0, code, errb)
	assert.Contains(t, out, "no VMs\n")
	assert.Regexp(t, `machine: 196608 pages \(768 MiB\), 0 VM\(s\), \d+ free stage 2 table pages`, out)

	code, out, errb = bh("down", "--name", "t")
	require.Equal(t, 0, code, errb+out)
	assert.Equal(t, "instance \"t\" is down\n", out)
	assert.False(t, client.Alive(in.PID), "QEMU is gone")
	assert.False(t, client.Alive(in.BrokerPID), "the broker is gone")
	_, err := client.LoadInstance("t")
	assert.Error(t, err)
	assert.NoDirExists(t, client.StateDir("t"))
}

// With an instance up, run uploads the image through the broker and the
// guest runs there; the instance stays up for the next one.
func TestRunInInstance(t *testing.T) {
	dir := imagesDir(t)
	upInstance(t, "u")
	for _, arg := range []string{"4", "6"} {
		code, out, errb := bh("run", "--instance", "u", "--name", "h"+arg, "--arg", arg, filepath.Join(dir, "guest-hello.elf"))
		assert.Equal(t, int(arg[0]-'0'), code, errb)
		assert.Contains(t, out, "hello from a TamaGo guest at EL1\n")
		assert.Contains(t, out, "exiting with status "+arg+"\n")
		assert.Regexp(t, `\rbulkhead: uploading h`+arg+`: (\d+) of (\d+) KiB \(\d+\.\d MB/s\)\n`, errb)
		assert.NotContains(t, errb, "booting", "no private instance")
	}
	code, out, errb := bh("run", "--json", "--instance", "u", filepath.Join(dir, "guest-hello.elf"))
	assert.Equal(t, 0, code, errb)
	assert.True(t, strings.HasSuffix(out, `{"event":"exit","status":0,"vm":"guest-hello"}`+"\n"), out)
	assert.Empty(t, ps(t, "u"), "stopped VMs are destroyed")
	code, _, errb = bh("run", "--instance", "u", "--smp", "2", filepath.Join(dir, "guest-hello.elf"))
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errb, `--smp shape a private instance, but instance "u" is up: drop them, or add --private`)
	code, out, errb = bh("down", "--name", "u")
	require.Equal(t, 0, code, errb+out)
}

// The "done when": two VMs at once, both consoles read, one
// stopped while the other goes on, and the ledger back at its boot
// figures after.
func TestTwoVMsConsolesStopStats(t *testing.T) {
	dir := imagesDir(t)
	ticker := filepath.Join(dir, "guest-ticker.elf")
	if _, err := os.Stat(ticker); err != nil {
		t.Fatalf("the ticker guest (make images builds it): %v", err)
	}
	upInstance(t, "two")
	_, boot := stats(t, "two")
	require.NotZero(t, boot.Pages)
	assert.Zero(t, boot.Guests)

	a := startCLI(t, "run", "--instance", "two", "--name", "a", ticker)
	b := startCLI(t, "run", "--instance", "two", "--name", "b", ticker)
	require.Eventually(t, func() bool { return lines(a.stdout.String()) >= 3 && lines(b.stdout.String()) >= 3 }, 60*time.Second, 100*time.Millisecond,
		"both consoles print")
	// A third reader: console attaches to b, with its recent output.
	con := startCLI(t, "console", "--name", "two", "b")
	require.Eventually(t, func() bool { return lines(con.stdout.String()) >= 3 }, 30*time.Second, 100*time.Millisecond)
	assert.Contains(t, con.stderr.String(), `bulkhead: attached to b in instance "two"; Ctrl-C detaches`)
	vms, _ := stats(t, "two")
	require.Len(t, vms, 2)
	for _, v := range vms {
		assert.Equal(t, "running", v.State, v.Name)
		assert.NotZero(t, v.Pages, v.Name)
		assert.NotEmpty(t, v.Exits, v.Name)
	}

	code, out, errb := bh("stop", "--name", "two", "a")
	require.Equal(t, 0, code, errb)
	assert.Equal(t, "a stopped (status 143)\n", out)
	assert.Equal(t, 143, a.wait(t, 10*time.Second), "run exits with the stopped VM's status")
	aOut := a.stdout.String()
	n, nc := lines(b.stdout.String()), lines(con.stdout.String())
	require.Eventually(t, func() bool { return lines(b.stdout.String()) >= n+3 && lines(con.stdout.String()) >= nc+3 }, 30*time.Second, 100*time.Millisecond,
		"b prints on after a stopped")
	assert.Equal(t, aOut, a.stdout.String())
	assert.NotContains(t, ps(t, "two"), "a")
	assert.Equal(t, "running", ps(t, "two")["b"].State)

	code, out, errb = bh("stop", "--name", "two", "--json", "b")
	require.Equal(t, 0, code, errb)
	assert.JSONEq(t, `{"event":"exit","vm":"b","status":143,"already":false}`, out)
	assert.Equal(t, 143, b.wait(t, 10*time.Second))
	assert.Equal(t, 143, con.wait(t, 10*time.Second), "console exits with the VM's status")

	require.Eventually(t, func() bool { vms, _ := stats(t, "two"); return len(vms) == 0 }, 10*time.Second, 100*time.Millisecond)
	_, after := stats(t, "two")
	assert.Zero(t, after.Guests, "no page is a guest's")
	assert.Zero(t, after.Shared)
	assert.Equal(t, boot.Free, after.Free)
	assert.Equal(t, boot.Hypervisor, after.Hypervisor)
	assert.Equal(t, boot.Control, after.Control)
	assert.Equal(t, boot.TablePages, after.TablePages, "free stage 2 table pages")
	assert.Greater(t, after.Checks, boot.Checks, "the hypervisor checked the invariants")
	assert.Zero(t, after.Violations)
	code, out, errb = bh("down", "--name", "two")
	require.Equal(t, 0, code, errb+out)
}

// Bad input is refused with a clear message, before anything is uploaded
// when the CLI can tell, and leaves the instance as it was; Ctrl-C stops
// the guest a run is attached to.
func TestBadInput(t *testing.T) {
	dir := imagesDir(t)
	upInstance(t, "bad")
	// spin runs for ARG ms of its own time: long enough here.
	spinner := startCLI(t, "run", "--instance", "bad", "--name", "spinner", "--arg", "600000", filepath.Join(dir, "guest-spin.elf"))
	require.Eventually(t, running(t, "bad", "spinner"), 30*time.Second, 100*time.Millisecond)

	code, _, errb := bh("run", "--instance", "bad", "--name", "spinner", filepath.Join(dir, "guest-hello.elf"))
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errb, `bulkhead run: instance "bad" refused spinner: a VM named "spinner" exists`)
	assert.Equal(t, "running", ps(t, "bad")["spinner"].State, "the first one runs on")

	for _, cmd := range []string{"stop", "console"} {
		code, _, errb = bh(cmd, "--name", "bad", "nope")
		assert.Equal(t, exitUsage, code, cmd)
		assert.Equal(t, "bulkhead "+cmd+": no VM named nope in instance bad; bulkhead ps --name bad lists them\n", errb, cmd)
	}

	hello, err := os.ReadFile(filepath.Join(dir, "guest-hello.elf"))
	require.NoError(t, err)
	truncated := filepath.Join(t.TempDir(), "truncated.elf")
	require.NoError(t, os.WriteFile(truncated, hello[:len(hello)/2], 0o644))
	x86 := filepath.Join(t.TempDir(), "x86.elf")
	require.NoError(t, os.WriteFile(x86, elfImage(elf.EM_X86_64, elf.ET_EXEC, hyp.GuestIPA, 4096, 0), 0o644))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(bytes.Repeat([]byte("not a kernel "), 1000))
	zw.Close()
	junk := filepath.Join(t.TempDir(), "junk.gz")
	require.NoError(t, os.WriteFile(junk, gz.Bytes(), 0o644))
	for img, want := range map[string]string{
		truncated: "run past the end of the",
		x86:       "is EM_X86_64",
		junk:      "gzip-compressed data is not a Linux arm64 Image",
	} {
		code, _, errb = bh("run", "--instance", "bad", img)
		assert.Equal(t, exitUsage, code, img)
		assert.Contains(t, errb, want, img)
		assert.NotContains(t, errb, "uploading", "refused before upload")
	}
	assert.Len(t, ps(t, "bad"), 1, "only the spinner")

	// What only the control partition can tell: more memory than the
	// machine has free. Refused after the upload; the ledger does not move.
	_, before := stats(t, "bad")
	code, _, errb = bh("run", "--instance", "bad", "--name", "huge", "--mem", "2G", filepath.Join(dir, "guest-hello.elf"))
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errb, "no 2048 MiB of free RAM left for a guest")
	_, after := stats(t, "bad")
	assert.Equal(t, ledgerOnly(before), ledgerOnly(after), "the ledger as it was")
	assert.Equal(t, "running", ps(t, "bad")["spinner"].State, "the spinner runs on")

	// Moves: to the CPU it is on; to one the machine lacks; of a vCPU
	// the VM lacks.
	code, out, errb := bh("move", "--name", "bad", "spinner", "0", "0")
	assert.Equal(t, 0, code, errb)
	assert.Equal(t, "spinner: vCPU 0 now runs on physical CPU 0\n", out)
	code, _, errb = bh("move", "--name", "bad", "spinner", "0", "1")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errb, "bulkhead move: spinner: physical CPU 1: the machine has fewer CPUs")
	code, _, errb = bh("move", "--name", "bad", "spinner", "1", "0")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errb, "spinner has vCPUs 0 to 0")

	// A physical CPU the machine does not have (it has one, CPU 0).
	code, _, errb = bh("run", "--instance", "bad", "--name", "pinned", "--pcpus", "5", filepath.Join(dir, "guest-hello.elf"))
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errb, "vCPU 0: physical CPU 5: the machine has fewer CPUs")
	_, after = stats(t, "bad")
	assert.Equal(t, ledgerOnly(before), ledgerOnly(after), "the ledger as it was")

	// Ctrl-C: the guest is stopped, run exits 130.
	require.NoError(t, spinner.cmd.Process.Signal(os.Interrupt))
	assert.Equal(t, 130, spinner.wait(t, 15*time.Second))
	assert.Contains(t, spinner.stderr.String(), "bulkhead: interrupted (interrupt): stopping spinner")
	require.Eventually(t, func() bool { return len(ps(t, "bad")) == 0 }, 10*time.Second, 100*time.Millisecond)
	code, out, errb = bh("down", "--name", "bad")
	require.Equal(t, 0, code, errb+out)
}

// A CLI killed in the middle of an upload leaves the instance usable.
func TestRunKilledMidUpload(t *testing.T) {
	dir := imagesDir(t)
	upInstance(t, "k")
	hello, err := os.ReadFile(filepath.Join(dir, "guest-hello.elf"))
	require.NoError(t, err)
	// Still a valid image: what follows the ELF's contents is not read.
	big := filepath.Join(t.TempDir(), "big.elf")
	require.NoError(t, os.WriteFile(big, append(hello, make([]byte, 32<<20)...), 0o644))

	p := startCLI(t, "run", "--instance", "k", "--name", "big", big)
	progress := regexp.MustCompile(`uploading big: (\d+) of (\d+) KiB`)
	var sent, total int
	require.Eventually(t, func() bool {
		m := progress.FindAllStringSubmatch(p.stderr.String(), -1)
		if len(m) == 0 {
			return false
		}
		sent, _ = strconv.Atoi(m[len(m)-1][1])
		total, _ = strconv.Atoi(m[len(m)-1][2])
		return sent > 0
	}, 60*time.Second, 5*time.Millisecond)
	require.NoError(t, p.cmd.Process.Kill())
	p.wait(t, 5*time.Second)
	if sent >= total {
		t.Logf("the upload had ended (%d of %d KiB) when the CLI was killed", sent, total)
	} else {
		t.Logf("killed at %d of %d KiB", sent, total)
	}

	code, out, errb := bh("run", "--instance", "k", "--name", "after", "--arg", "5", filepath.Join(dir, "guest-hello.elf"))
	assert.Equal(t, 5, code, errb)
	assert.Contains(t, out, "exiting with status 5\n")
	// The orphan was stopped (or ran to its end): nothing is left running.
	require.Eventually(t, func() bool { return len(ps(t, "k")) == 0 }, 30*time.Second, 100*time.Millisecond)
	code, out, errb = bh("down", "--name", "k")
	require.Equal(t, 0, code, errb+out)
}

// A private instance goes when its run does: on Ctrl-C (the guest
// stopped first) and when the CLI is killed outright.
func TestPrivateRunEnds(t *testing.T) {
	dir := imagesDir(t)
	root := filepath.Join(os.Getenv("XDG_RUNTIME_DIR"), "bulkhead")
	for _, sig := range []os.Signal{os.Interrupt, os.Kill} {
		p := startCLI(t, "run", "--name", "s", "--arg", "600000", filepath.Join(dir, "guest-spin.elf"))
		name := fmt.Sprintf("run-%d", p.cmd.Process.Pid)
		require.Eventually(t, func() bool {
			_, err := client.LoadInstance(name)
			return err == nil && strings.Contains(p.stderr.String(), "MB/s")
		}, 60*time.Second, 100*time.Millisecond, "the private instance %s", name)
		in, err := client.LoadInstance(name)
		require.NoError(t, err)
		t.Cleanup(func() { killPID(in.PID); killPID(in.BrokerPID) })
		require.Eventually(t, running(t, name, "s"), 30*time.Second, 100*time.Millisecond)

		require.NoError(t, p.cmd.Process.Signal(sig))
		code := p.wait(t, 30*time.Second)
		if sig == os.Interrupt {
			assert.Equal(t, 130, code)
		}
		assert.Eventually(t, func() bool { return !client.Alive(in.PID) && !client.Alive(in.BrokerPID) }, 15*time.Second, 100*time.Millisecond, "%v: QEMU and the broker are gone", sig)
		if !assert.Eventually(t, func() bool { left, _ := os.ReadDir(root); return len(left) == 0 }, 5*time.Second, 100*time.Millisecond, "%v: its state is gone", sig) {
			var names []string
			filepath.Walk(root, func(path string, _ os.FileInfo, _ error) error { names = append(names, path); return nil })
			t.Logf("left: %v; broker log:\n%s", names, tail(in.BrokerLog, 20))
		}
	}
}

// An instance with --iommu: the host channel and a drive are PCI
// functions behind the SMMU, a guest runs as without, and stats says the
// devices' DMA is confined and nothing was stopped.
func TestInstanceBehindSMMU(t *testing.T) {
	dir := imagesDir(t)
	disk := filepath.Join(t.TempDir(), "d.img")
	require.NoError(t, os.WriteFile(disk, make([]byte, 1<<20), 0o644))
	upInstance(t, "iommu", "--iommu", "--disk", "d="+disk)
	code, out, errb := bh("run", "--instance", "iommu", "--arg", "3", filepath.Join(dir, "guest-hello.elf"))
	assert.Equal(t, 3, code, errb)
	assert.Contains(t, out, "hello from a TamaGo guest at EL1\n")
	code, out, errb = bh("stats", "--instance", "iommu")
	require.Equal(t, 0, code, errb)
	assert.Contains(t, out, "DMA: the control partition's devices are confined by the SMMU; 0 transaction(s) stopped")
	in, err := client.LoadInstance("iommu")
	require.NoError(t, err)
	log, err := os.ReadFile(in.Log)
	require.NoError(t, err)
	assert.Contains(t, string(log), "control| control: disk d: 1 MiB at PCI 00:", "the drive is a PCI function")
	assert.Contains(t, string(log), "control| control: host channel on the virtio console at PCI 00:")
	code, out, errb = bh("down", "--name", "iommu")
	require.Equal(t, 0, code, errb+out)
}
