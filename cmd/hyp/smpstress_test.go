//go:build !tamago

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-hv/bulkhead/internal/qemutest"
)

// guestImage reads build/guest-NAME.elf.
func guestImage(t *testing.T, name string) []byte {
	b, err := os.ReadFile(filepath.Join(qemutest.ImageDir(t), "guest-"+name+".elf"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The control partition creates and destroys 210 VMs on four CPUs with
// QEMU running them on a thread each: per round two 2-vCPU guests that
// send each other's vCPUs IPIs across physical CPUs and exit, and every
// tenth round a 4-vCPU guest stopped from outside while it runs. Every VM
// ends as it should, their vCPUs cover every CPU, and the ledger and the
// stage 2 table pool end at their boot figures.
func TestSMPCreateDestroy(t *testing.T) {
	const rounds = 100
	ipi, ticker := guestImage(t, "ipi"), guestImage(t, "ticker")
	c := startControl(t, "1G", 4, "-accel", "tcg,thread=multi")
	machine := func() map[string]any {
		return c.call(map[string]any{"op": "stats"})["machine"].(map[string]any)
	}
	boot := machine()
	run := func(name string, image []byte, cpus int) {
		t.Helper()
		ans := c.call(map[string]any{"op": "run", "name": name, "size": len(image), "mem": 16 << 20, "cpus": cpus}, image)
		if ans["ok"] != true {
			t.Fatalf("run %s: %v", name, ans["error"])
		}
	}
	exited := func(name string, want int) {
		t.Helper()
		c.waitFor(name+"'s exit event", time.Minute, func() bool { _, ok := c.exits[name]; return ok })
		if st := c.exits[name]; st != want {
			t.Fatalf("%s exited with status %d, want %d; its console:\n%s", name, st, want, c.console(name))
		}
	}
	start := time.Now()
	for i := 0; i < rounds; i++ {
		a, b := fmt.Sprintf("a%d", i), fmt.Sprintf("b%d", i)
		run(a, ipi, 2)
		run(b, ipi, 2)
		if i%10 == 9 {
			tk := fmt.Sprintf("t%d", i)
			run(tk, ticker, 4)
			c.waitConsole(tk, 0, `tick`, time.Minute)
			if ans := c.call(map[string]any{"op": "stop", "name": tk}); ans["ok"] != true {
				t.Fatalf("stop %s: %v", tk, ans["error"])
			}
			exited(tk, 143)
		}
		exited(a, 0)
		exited(b, 0)
		for _, vm := range []string{a, b} {
			if !strings.Contains(c.console(vm), "ipi: 100 round trips") {
				t.Fatalf("%s's console: %q", vm, c.console(vm))
			}
		}
	}
	t.Logf("%d VMs created, run and destroyed in %v", rounds*2+rounds/10, time.Since(start).Round(time.Millisecond))

	// Which CPUs the vCPUs were pinned to, as the hypervisor said.
	used := map[string]bool{}
	for _, m := range regexp.MustCompile(`vm [abt]\d+ started: vCPUs on physical CPUs \[([0-9 ]+)\]`).FindAllStringSubmatch(c.in.Console(), -1) {
		for _, cpu := range strings.Fields(m[1]) {
			used[cpu] = true
		}
	}
	var cpus []string
	for k := range used {
		cpus = append(cpus, k)
	}
	sort.Strings(cpus)
	if strings.Join(cpus, " ") != "0 1 2 3" {
		t.Errorf("the VMs' vCPUs ran on CPUs %v, want all of 0-3", cpus)
	}

	end := machine()
	for _, k := range []string{"free", "hypervisor", "control", "guests", "shared", "vms", "table_pages"} {
		if end[k] != boot[k] {
			t.Errorf("ledger %s: %v at boot, %v after the stress", k, boot[k], end[k])
		}
	}
	if end["guests"] != float64(0) || end["vms"] != float64(0) {
		t.Errorf("guest pages or VMs left: %v", end)
	}
}

// Two VMs pinned to disjoint CPUs: a hostile one that traps to the
// hypervisor as fast as it can (SGIs to itself) on CPU 1, and a timer
// guest on CPU 3 that checks its 10 ms ticks. The timer keeps its rate
// while the storm runs, and the storm is not slowed to the timer's pace.
func TestDisjointCPUs(t *testing.T) {
	storm, timer := guestImage(t, "storm"), guestImage(t, "timer")
	c := startControl(t, "1G", 4, "-accel", "tcg,thread=multi")
	run := func(name string, image []byte, arg uint64, pcpus []int) {
		t.Helper()
		ans := c.call(map[string]any{"op": "run", "name": name, "size": len(image), "mem": 16 << 20, "arg": arg, "pcpus": pcpus}, image)
		if ans["ok"] != true {
			t.Fatalf("run %s: %v", name, ans["error"])
		}
	}
	run("storm", storm, 3000, []int{1})
	c.waitConsole("storm", 0, `storm`, time.Minute)
	run("timer", timer, 0, []int{3})
	for _, vm := range []string{"timer", "storm"} {
		c.waitFor(vm+"'s exit event", 2*time.Minute, func() bool { _, ok := c.exits[vm]; return ok })
	}
	t.Logf("storm: %s", strings.TrimSpace(c.console("storm")))
	t.Logf("timer: %s", strings.TrimSpace(c.console("timer")))
	for _, want := range []string{"vm storm started: vCPUs on physical CPUs [1]", "vm timer started: vCPUs on physical CPUs [3]"} {
		if !strings.Contains(c.in.Console(), want) {
			t.Errorf("the hypervisor's console lacks %q", want)
		}
	}
	if !strings.Contains(c.console("timer"), "timer: rate ok") || c.exits["timer"] != 0 {
		t.Errorf("the timer guest beside the storm: status %d, console:\n%s", c.exits["timer"], c.console("timer"))
	}
	if c.exits["storm"] != 0 {
		t.Errorf("the storm exited with status %d:\n%s", c.exits["storm"], c.console("storm"))
	}
}
