//go:build !tamago

package main

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/bulkhead-hv/bulkhead/internal/qemutest"
)

// Go's scheduler runs Ms on the secondary CPUs (boot argument smptest):
// four goroutines locked to their Ms run at once on the four CPUs and
// compute what one CPU computes in turn, and goroutines that allocate in
// parallel go through garbage collections without a wrong value. QEMU
// runs each vCPU on its own host thread (thread=multi), so every CPU
// makes progress however the host schedules them; the speedup is printed,
// not checked, since it depends on the host's free cores.
func TestGoOnEveryCPU(t *testing.T) {
	r := qemutest.Boot(t, qemutest.Machine{Image: crashImage(t), SMP: 4, Append: "smptest",
		Extra: []string{"-accel", "tcg,thread=multi"}})
	r.Contains(t, "bulkhead: 4 of 4 CPU(s) up at EL2", "smptest: Go on 4 CPUs, GOMAXPROCS 5",
		"smptest: 4 goroutines on CPUs [0 1 2 3], parallel ", "bulkhead: exit status 0")
	if line, ok := r.Line("smptest: 4 goroutines"); ok {
		t.Log(line)
	}
	gc := regexp.MustCompile(`smptest: GC stress: 4 goroutines for 2 s on CPUs \[([0-9 ]+)\], (\d+) rounds, (\d+) MiB allocated, (\d+) GC cycles: ok`).
		FindStringSubmatch(r.Console)
	if gc == nil {
		t.Fatalf("no GC stress result")
	}
	t.Log(gc[0])
	if cpus := strings.Fields(gc[1]); len(cpus) < 2 {
		t.Errorf("GC stress ran on CPUs %v only", cpus)
	}
	if n, _ := strconv.Atoi(gc[4]); n < 1 {
		t.Errorf("no garbage collection ran during the GC stress")
	}
	// Each CPU has its idle thread and at least the M that a goroutine
	// locked and moved there.
	if m := regexp.MustCompile(`smptest: (\d+) threads on 4 CPUs`).FindStringSubmatch(r.Console); m == nil {
		t.Errorf("no thread count")
	} else if n, _ := strconv.Atoi(m[1]); n < 8 {
		t.Errorf("%d threads on 4 CPUs, want at least 8: an idle thread and an M on each", n)
	}
	if strings.Contains(r.Console, "FAIL") {
		t.Errorf("smptest failed")
	}
	if r.ExitCode != 0 {
		t.Errorf("QEMU exit status %d, want 0", r.ExitCode)
	}
}

// A fault in Go code on a secondary CPU is reported from that CPU's own
// exception stack, as on the boot CPU.
func TestCrashOnSecondaryCPU(t *testing.T) {
	r := qemutest.Boot(t, qemutest.Machine{Image: crashImage(t), SMP: 4, Append: "crashtest=secondary-null-read",
		Extra: []string{"-accel", "tcg,thread=multi"}})
	r.Contains(t, "bulkhead: crashtest faulting on CPU 3", "*** BULKHEAD EL2 EXCEPTION ***",
		"cpu: 3 (MPIDR 0x3)",
		"EC 0x25 (Data Abort taken without a change in Exception level): Translation fault",
		"main.crashNullRead at", "main.crashOnSecondary.func1 at", "*** END OF EXCEPTION REPORT ***",
		"bulkhead: exit status 70")
	if r.ExitCode != 70 {
		t.Errorf("QEMU exit status %d, want 70", r.ExitCode)
	}
}

// A fault on a secondary CPU that runs no goroutine, as a remote loop does,
// is reported by the boot CPU with that CPU's registers, and the machine
// stops.
func TestCrashOnSecondaryWithoutGoroutine(t *testing.T) {
	r := qemutest.Boot(t, qemutest.Machine{Image: crashImage(t), SMP: 4, Append: "crashtest=remote-null-read"})
	r.Contains(t, "bulkhead: crashtest faulting on CPU 3 with no goroutine", "*** BULKHEAD EL2 EXCEPTION ***",
		"cpu: 3 (MPIDR 0x3)",
		"EC 0x25 (Data Abort taken without a change in Exception level): Translation fault",
		"FAR  0x0000000000000000 (valid)", "main.crashNoG at", "x28 0x0000000000000000",
		"*** END OF EXCEPTION REPORT ***", "bulkhead: exit status 70")
	if strings.Contains(r.Console, "no report of the crashed CPU") {
		t.Error("the boot CPU did not report the crash")
	}
	if r.ExitCode != 70 {
		t.Errorf("QEMU exit status %d, want 70", r.ExitCode)
	}
}
