//go:build !tamago

package main

import (
	"regexp"
	"strconv"
	"testing"

	"github.com/bulkhead-hv/bulkhead/internal/qemutest"
)

// specs is a machine with guests given as name, image, argument and vCPUs.
// guestMachine counts time in instructions (-icount shift=0,sleep=off: one
// per virtual ns, and an idle CPU jumps to its next timer), so the timing
// checks hold whatever else the host is doing.
func specs(t *testing.T, gs ...[4]string) qemutest.Machine {
	var three [][3]string
	for _, g := range gs {
		three = append(three, [3]string{g[0], g[1], g[2] + ":0x1000000:" + g[3]})
	}
	return guestMachine(t, three...)
}

// timerOK checks the timer guest's report: the rate within 5% as the
// guest measured it, and every interrupt on time to within maxLateUS.
func timerOK(t *testing.T, r *qemutest.Result, maxLateUS int) {
	t.Helper()
	m := regexp.MustCompile(`timer\| timer: 100 interrupts, mean interval ([0-9.]+) ms \(want 10.000 ms, ([-+][0-9.]+)%\), max lateness (\d+) us`).FindStringSubmatch(r.Console)
	if m == nil {
		t.Fatalf("no report from the timer guest")
	}
	dev, _ := strconv.ParseFloat(m[2], 64)
	if dev > 5 || dev < -5 {
		t.Errorf("timer rate off by %s%%", m[2])
	}
	late, _ := strconv.Atoi(m[3])
	if late > maxLateUS {
		t.Errorf("a timer interrupt arrived %d us late, more than %d us", late, maxLateUS)
	}
	r.Contains(t, "timer| timer: rate ok", "bulkhead: vm timer stopped: exited with status 0")
}

func TestVirtualTimerRate(t *testing.T) {
	r := qemutest.Boot(t, specs(t, [4]string{"timer", "timer", "0", "1"}))
	timerOK(t, r, 1000)
	r.Contains(t, "bulkhead: exit status 0")
}

func TestIPIsBetweenVCPUs(t *testing.T) {
	r := qemutest.Boot(t, specs(t, [4]string{"ipi", "ipi", "0", "2"}))
	r.Contains(t, "ipi| ipi: 100 round trips vCPU 0 -> 1 -> 0",
		"bulkhead: vm ipi stopped: exited with status 0", "bulkhead: exit status 0",
		// 200 SGI writes, and the ID register reads of its boot, which
		// HCR_EL2.TID3 traps.
		"sysreg 202")
}

// A guest that spins with interrupts masked cannot keep an interactive
// guest from its timer.
func TestSpinnerDoesNotStarveOthers(t *testing.T) {
	r := qemutest.Boot(t, specs(t, [4]string{"timer", "timer", "0", "1"}, [4]string{"spin", "spin", "500", "1"}))
	r.Contains(t, "spin| spin: spun 500 ms of virtual time", "bulkhead: vm spin stopped: exited with status 0")
	timerOK(t, r, 1000)
	// The spinner only stopped because the EL2 timer preempted it.
	if m := regexp.MustCompile(`vm spin: status 0 \(exited with status 0\); exits: .*irq (\d+)`).FindStringSubmatch(r.Console); m == nil {
		t.Errorf("the spinner was never preempted")
	} else if n, _ := strconv.Atoi(m[1]); n < 10 {
		t.Errorf("the spinner was preempted only %d times", n)
	}
}

// A guest raising interrupts as fast as it can does not stop the others.
func TestInterruptStormDoesNotStopOthers(t *testing.T) {
	r := qemutest.Boot(t, specs(t, [4]string{"timer", "timer", "0", "1"}, [4]string{"storm", "storm", "500", "1"}))
	r.Contains(t, "storm| storm: took ", "bulkhead: vm storm stopped: exited with status 0")
	timerOK(t, r, 1000)
	if m := regexp.MustCompile(`storm\| storm: took (\d+) self-sent`).FindStringSubmatch(r.Console); m != nil {
		if n, _ := strconv.Atoi(m[1]); n < 1000 {
			t.Errorf("the storm raised only %d interrupts: not a storm", n)
		}
	}
}

// The same guests with the vCPUs on secondary CPUs, which enter guests for
// CPU 0 (vcpu.Remote): IPIs between vCPUs on CPUs 0 and 1, and the timer
// guest's ticks on CPU 2, on time.
func TestGuestsOnSecondaryCPUs(t *testing.T) {
	m := specs(t, [4]string{"ipi", "ipi", "0", "2"}, [4]string{"timer", "timer", "0", "1"})
	m.SMP = 3
	r := qemutest.Boot(t, m)
	r.Contains(t, "bulkhead: guests run on 3 CPUs",
		"bulkhead: vm ipi started: vCPUs on physical CPUs [0 1]", "bulkhead: vm timer started: vCPUs on physical CPUs [2]",
		"ipi| ipi: 100 round trips vCPU 0 -> 1 -> 0", "bulkhead: vm ipi stopped: exited with status 0",
		"bulkhead: exit status 0")
	timerOK(t, r, 1000)
}
