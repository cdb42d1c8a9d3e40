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

// fuzzCalls is how many hypercalls TestHypercallFuzzer makes in all:
// BULKHEAD_FUZZ_CALLS, or 50,000 (make soak asks for 1,000,000).
func fuzzCalls(t *testing.T) int {
	if s := os.Getenv("BULKHEAD_FUZZ_CALLS"); s != "" {
		n, err := strconv.Atoi(s)
		require.NoError(t, err, "BULKHEAD_FUZZ_CALLS")
		return n
	}
	return 50000
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
	want := fuzzCalls(t)
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
