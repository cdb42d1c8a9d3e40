package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// length is a test's length: the environment variable's value (make soak
// sets the long ones), or def.
func length(t *testing.T, env string, def int) int {
	if s := os.Getenv(env); s != "" {
		n, err := strconv.Atoi(s)
		require.NoError(t, err, env)
		return n
	}
	return def
}

// A guest makes hypercalls at random, with hostile arguments, in batches
// of 10,000 (one VM each, seeds 1, 2, ...), beside a victim guest that
// checks its memory: after each batch the hypervisor's check of the
// proofs' invariants (run for bulkhead stats) finds nothing broken, and
// at the end the victim's memory is as it wrote it and the machine's
// ledger is back at its boot figures.
func TestHypercallFuzzer(t *testing.T) {
	dir := imagesDir(t)
	image := filepath.Join(dir, "guest-fuzz.elf")
	upInstance(t, "fz", "--smp", "2")
	_, boot := stats(t, "fz")
	victim := startCLI(t, "run", "--instance", "fz", "--name", "victim", "--arg", "0x8000000700000000", image)
	require.Eventually(t, func() bool { return strings.Contains(victim.stdout.String(), "victim: check 1: unchanged") },
		60*time.Second, 100*time.Millisecond, "the victim runs")

	const batch = 10000
	want := length(t, "BULKHEAD_FUZZ_CALLS", 50000) // make soak: 1,000,000
	report := regexp.MustCompile(`fuzz: seed (\d+): (\d+) calls in [^;]*; results:(.*)`)
	made, checks := 0, boot.Checks
	for seed := 1; made < want; seed++ {
		code, stdout, stderr := bh("run", "--instance", "fz", "--name", fmt.Sprintf("fuzz%d", seed),
			"--arg", fmt.Sprintf("%#x", uint64(seed)<<32|batch), image)
		require.Equal(t, 0, code, "seed %d: %s", seed, stderr)
		m := report.FindStringSubmatch(stdout)
		require.NotNil(t, m, "seed %d: no report", seed)
		n, _ := strconv.Atoi(m[2])
		assert.Greater(t, n, batch*9/10, "the calls the fuzzer leaves out are few")
		made += n
		assert.Regexp(t, `fuzz: system registers: [1-9]\d* reads \(\d+ faulted\), [1-9]\d* writes`, stdout, "seed %d", seed)
		_, after := stats(t, "fz")
		require.Zero(t, after.Violations, "seed %d broke an invariant: the instance's console log says which", seed)
		require.Greater(t, after.Checks, checks)
		checks = after.Checks
		if seed == 1 {
			t.Logf("seed 1: %d calls; results:%s", n, m[3])
		}
	}
	assert.True(t, running(t, "fz", "victim")(), "the victim still runs")

	code, out, errb := bh("stop", "--name", "fz", "victim")
	require.Equal(t, 0, code, errb+out)
	assert.Equal(t, 143, victim.wait(t, 30*time.Second))
	vout := victim.stdout.String()
	assert.NotContains(t, vout, "memory changed")
	assert.Regexp(t, `victim: check \d+: unchanged\n$`, vout, "its last check found its memory unchanged")

	require.Eventually(t, func() bool { vms, _ := stats(t, "fz"); return len(vms) == 0 }, 10*time.Second, 100*time.Millisecond)
	_, after := stats(t, "fz")
	assert.Zero(t, after.Violations)
	assert.Equal(t, boot.Free, after.Free, "free pages back at their boot figure")
	assert.Equal(t, boot.Control, after.Control)
	assert.Zero(t, after.Guests)
	assert.Zero(t, after.Shared)
	assert.Equal(t, boot.TablePages, after.TablePages, "free stage 2 table pages")
	t.Logf("%d calls in %d VMs; %d invariant checks, 0 violations", made, (made+batch-1)/batch, after.Checks)
	code, out, errb = bh("down", "--name", "fz")
	require.Equal(t, 0, code, errb+out)
}

// VMs of mixed sizes (RAM and vCPUs, pinned or placed) are created, run
// and destroyed over and over on four CPUs, two at a time, one in four
// stopped while it runs: each ends as it should, the hypervisor's checks
// of the invariants after every destruction find nothing broken, and
// at the end the ledger and the stage 2 table pool are back at their
// boot figures.
func TestChurn(t *testing.T) {
	dir := imagesDir(t)
	upInstance(t, "churn", "--smp", "4", "--mem", "1536M")
	_, boot := stats(t, "churn")
	cycles := length(t, "BULKHEAD_CHURN_CYCLES", 100) // make soak: 1,000
	mems := []string{"16M", "24M", "48M", "64M"}
	errs := make(chan error, cycles)
	work := make(chan int)
	const workers = 2
	for w := 0; w < workers; w++ {
		go func() {
			for i := range work {
				errs <- churnCycle(t, dir, i, mems[i%len(mems)], 1+i/4%4)
			}
		}()
	}
	start := time.Now()
	for i := 0; i < cycles; i++ {
		work <- i
	}
	close(work)
	failed := 0
	for i := 0; i < cycles; i++ {
		if err := <-errs; err != nil {
			failed++
			t.Error(err)
		}
	}
	require.Zero(t, failed)

	require.Eventually(t, func() bool { vms, _ := stats(t, "churn"); return len(vms) == 0 }, 30*time.Second, 100*time.Millisecond)
	_, after := stats(t, "churn")
	assert.Zero(t, after.Violations)
	assert.GreaterOrEqual(t, after.Checks-boot.Checks, int64(cycles), "a check after every destruction")
	assert.Equal(t, boot.Free, after.Free, "free pages back at their boot figure")
	assert.Equal(t, boot.Control, after.Control)
	assert.Zero(t, after.Guests)
	assert.Zero(t, after.Shared)
	assert.Zero(t, after.VMs)
	assert.Equal(t, boot.TablePages, after.TablePages, "free stage 2 table pages")
	t.Logf("%d cycles in %v; %d invariant checks, 0 violations", cycles, time.Since(start).Round(time.Second), after.Checks)
	code, out, errb := bh("down", "--name", "churn")
	require.Equal(t, 0, code, errb+out)
}

// churnCycle runs one VM: hello, which exits with its argument, or (one
// in four) the fuzz guest as a victim, stopped once it has checked its
// memory once.
func churnCycle(t *testing.T, dir string, i int, mem string, cpus int) error {
	name := fmt.Sprintf("c%d", i)
	args := []string{"run", "--instance", "churn", "--name", name, "--mem", mem, "--cpus", strconv.Itoa(cpus)}
	if i%3 == 0 {
		args = append(args, "--pcpus", fmt.Sprintf("%d-3", i%4))
	}
	if i%4 == 3 {
		p := startCLI(t, append(args, "--arg", "0x8000000100000000", filepath.Join(dir, "guest-fuzz.elf"))...)
		deadline := time.Now().Add(60 * time.Second)
		for !strings.Contains(p.stdout.String(), "victim: check 1: unchanged") {
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: no check from the victim in 60 s; stderr: %s", name, p.stderr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
		s := startCLI(t, "stop", "--name", "churn", name)
		if code := exitCode(s, 30*time.Second); code != 0 {
			return fmt.Errorf("%s: bulkhead stop: status %d: %s", name, code, s.stderr.String())
		}
		if code := exitCode(p, 30*time.Second); code != 143 {
			return fmt.Errorf("%s: stopped, it exits %d, want 143; stderr: %s", name, code, p.stderr.String())
		}
		return nil
	}
	status := i % 7
	p := startCLI(t, append(args, "--arg", strconv.Itoa(status), filepath.Join(dir, "guest-hello.elf"))...)
	if code := exitCode(p, 60*time.Second); code != status {
		return fmt.Errorf("%s (%s, %d vCPUs): exit status %d, want %d; stderr: %s", name, mem, cpus, code, status, p.stderr.String())
	}
	return nil
}

// exitCode is p's exit status, or -1 if it has not ended within timeout.
// (proc.wait stops the test, which only the test's goroutine may do.)
func exitCode(p *proc, timeout time.Duration) int {
	select {
	case <-p.done:
		return p.code
	case <-time.After(timeout):
		return -1
	}
}

// The control partition crashes on purpose, twice, while two guests run:
// a victim that checks its memory every 200 ms and a ticker that prints
// every 100 ms. First a Go panic; then a store into the victim's page,
// which stage 2 stops, so that it dies of the abort. Each time the
// hypervisor reports it and restarts the partition from its image; the
// guests never stop; the new partition takes them back (VM_LIST), finds
// their pages out of its reach, and serves them: bulkhead ps lists them,
// their consoles go on with nothing lost (every tick, in order, over both
// outages), bulkhead stop ends them, and the ledger is back at its boot
// figures with the invariants holding.
func TestControlCrash(t *testing.T) {
	dir := imagesDir(t)
	in := upInstance(t, "cc", "--smp", "2", "--control", filepath.Join(dir, "bulkhead-control-crashtest.elf"))
	_, boot := stats(t, "cc")
	// The ticker on CPU 1 and the victim beside the control partition on
	// CPU 0: the restart runs in either CPU's loop.
	victim := startCLI(t, "run", "--instance", "cc", "--name", "victim", "--pcpus", "0", "--arg", "0x8000000700000000", filepath.Join(dir, "guest-fuzz.elf"))
	ticker := startCLI(t, "run", "--instance", "cc", "--name", "ticker", "--pcpus", "1", filepath.Join(dir, "guest-ticker.elf"))
	require.Eventually(t, func() bool {
		return strings.Contains(victim.stdout.String(), "victim: check 1: unchanged") && strings.Contains(ticker.stdout.String(), "tick 3\n")
	}, 60*time.Second, 100*time.Millisecond, "both guests run")

	ticks := regexp.MustCompile(`(?m)^tick (\d+)$`)
	lastTick := func() int {
		m := ticks.FindAllStringSubmatch(ticker.stdout.String(), -1)
		if len(m) == 0 {
			return 0
		}
		n, _ := strconv.Atoi(m[len(m)-1][1])
		return n
	}
	consoleLog := func() string { b, _ := os.ReadFile(in.Log); return string(b) }
	crash := func(restart int, vm, why string) {
		t.Helper()
		_, cl, _, err := instanceClient(&[]string{"cc"}[0])
		require.NoError(t, err)
		defer cl.Close()
		req := map[string]any{"op": "crash"}
		if vm != "" {
			req["name"] = vm
		}
		_, err = cl.Call(req, 30*time.Second)
		require.NoError(t, err, "the crash request is answered before the crash")
		before := lastTick()
		require.Eventually(t, func() bool {
			return strings.Contains(consoleLog(), fmt.Sprintf("control partition restarted from its image (restart %d); 2 guest(s) kept running", restart))
		}, 60*time.Second, 100*time.Millisecond, "restart %d", restart)
		assert.Contains(t, consoleLog(), "bulkhead: the control partition crashed ("+why+"): restarting it from its image")
		require.Eventually(t, func() bool { return lastTick() >= before+10 }, 60*time.Second, 100*time.Millisecond,
			"the ticker's console goes on after restart %d", restart)
		vms := ps(t, "cc")
		assert.Equal(t, "running", vms["victim"].State, "bulkhead ps after restart %d", restart)
		assert.Equal(t, "running", vms["ticker"].State, "bulkhead ps after restart %d", restart)
		for _, name := range []string{"victim", "ticker"} {
			assert.Contains(t, consoleLog(), "control: probe adopted-"+name+" write", "restart %d probes %s's pages", restart, name)
		}
	}
	crash(1, "", "exited with status 2")
	// A data abort taken at EL1 (EC 0x25) ends the partition with 128 + EC.
	crash(2, "victim", "exited with status 165")
	log := consoleLog()
	assert.NotContains(t, log, "NOT BLOCKED", "no guest page is in a restarted partition's reach")
	assert.Contains(t, log, "bulkhead: vm control: stage 2 fault: write at IPA", "the wild store was stopped by stage 2")

	for _, p := range []*proc{victim, ticker} {
		name := map[*proc]string{victim: "victim", ticker: "ticker"}[p]
		code, out, errb := bh("stop", "--name", "cc", name)
		require.Equal(t, 0, code, errb+out)
		assert.Equal(t, 143, p.wait(t, 30*time.Second), name)
	}
	vout := victim.stdout.String()
	assert.NotContains(t, vout, "memory changed")
	assert.Regexp(t, `victim: check \d+: unchanged\n$`, vout, "its last check found its memory unchanged")
	m := ticks.FindAllStringSubmatch(ticker.stdout.String(), -1)
	for i, tick := range m {
		require.Equal(t, strconv.Itoa(i+1), tick[1], "tick %d: every tick, once, in order, across both restarts", i+1)
	}
	t.Logf("%d ticks over two restarts", len(m))

	require.Eventually(t, func() bool { vms, _ := stats(t, "cc"); return len(vms) == 0 }, 10*time.Second, 100*time.Millisecond)
	_, after := stats(t, "cc")
	assert.Equal(t, int64(2), after.Restarts)
	assert.Zero(t, after.Violations)
	assert.Greater(t, after.Checks, boot.Checks)
	assert.Equal(t, boot.Free, after.Free, "free pages back at their boot figure")
	assert.Equal(t, boot.Control, after.Control)
	assert.Zero(t, after.Guests)
	assert.Equal(t, boot.TablePages, after.TablePages, "free stage 2 table pages")
	code, out, errb := bh("down", "--name", "cc")
	require.Equal(t, 0, code, errb+out)
}
