package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// conformChecks are the rules the conform guest checks (cmd/guests/conform):
// each must be reported as passed, so a check that silently stops running
// fails here too.
var conformChecks = []string{
	"sgi-self", "sgi-active-self", "sgi-target-list", "sgi-target-list-active",
	"sgi-all-others", "sgi-all-others-active",
	"timer-not-pending-before", "timer-pending-while-asserted", "timer-control-is-the-guests",
	"timer-no-longer-pending-masked", "timer-pending-again-unmasked", "timer-not-pending-rearmed",
	"timer-interrupt-received", "timer-not-pending-after-handler", "timer-follows-cval", "timer-rearmed-by-cval",
	"pl031-ids", "pl031-alarm-status", "pl031-alarm-pending", "pl031-alarm-cleared", "pl031-alarm-interrupt",
	"debug-id", "debug-registers", "debug-os-lock", "debug-breakpoint", "debug-watchpoint",
	"debug-step", "debug-step-trapped", "debug-step-hvc", "debug-per-vcpu", "fp-own-registers",
	"gic-no-lpis", "id-no-pmu", "id-no-spe", "id-no-trace", "id-no-mte", "id-no-sme", "id-no-sve", "id-no-amu",
}

// A guest written from the Arm specifications, as a peer conformance suite
// tries a hypervisor: SGIs, the virtual timer's line and the PL031's alarm
// behave as on bare QEMU, with its vCPUs sharing one physical CPU and
// spread over four.
func TestConformance(t *testing.T) {
	dir := imagesDir(t)
	for _, tc := range []struct {
		name string
		args []string
		cpus int
	}{
		{"two vCPUs on one CPU", []string{"--cpus", "2"}, 2},
		{"four vCPUs on four CPUs", []string{"--cpus", "4", "--smp", "4"}, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string{"run"}, tc.args...), filepath.Join(dir, "guest-conform.elf"))
			code, stdout, stderr := bh(args...)
			assert.Equal(t, 0, code, "the exit status is the number of failures; stderr: %s", stderr)
			assert.Contains(t, stdout, fmt.Sprintf("conform: %d vCPUs\n", tc.cpus))
			for _, c := range conformChecks {
				assert.Contains(t, stdout, "conform: ok "+c+"\n")
			}
			for _, l := range strings.Split(stdout, "\n") {
				if strings.Contains(l, "FAIL") {
					t.Error(l)
				}
			}
		})
	}
}
