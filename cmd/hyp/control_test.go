//go:build !tamago

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/bulkhead-hv/bulkhead/internal/qemutest"
)

// The control partition, at EL1 in its own stage 2 compartment, starts two
// guests through the management calls, cannot touch the hypervisor's
// memory or what it donated, waits for both, destroys them and gets their
// pages back zeroed; the ledger ends at its boot figures.
func TestControlPartitionRunsGuests(t *testing.T) {
	dir := qemutest.ImageDir(t)
	m := guestMachine(t, [3]string{"hello", "hello", "3"}, [3]string{"timer", "timer", "0"})
	ctl := filepath.Join(dir, "bulkhead-control.elf")
	fi, err := os.Stat(ctl)
	if err != nil {
		t.Fatal(err)
	}
	m.Extra = append(m.Extra, "-icount", "shift=0", "-device", fmt.Sprintf("loader,file=%s,addr=0x60000000,force-raw=on", ctl))
	m.Append += fmt.Sprintf(" control=0x60000000:%d", fi.Size())
	r := qemutest.Boot(t, m)
	r.Contains(t,
		"control| control partition at EL1",
		"control| control: probe hypervisor-text read 0x40200000: blocked by stage 2",
		"control| control: probe hypervisor-text write 0x40200000: blocked by stage 2",
		"hello| exiting with status 3",
		"timer| timer: rate ok",
		"control| control: all guests done",
		"bulkhead: vm control stopped: exited with status 0",
		"back at its boot figures",
		"bulkhead: exit status 0",
	)
	for _, g := range []struct{ name, status string }{{"hello", "3"}, {"timer", "0"}} {
		started := regexp.MustCompile(`control\| control: started ` + g.name + ` as VM (\d+): 16 MiB at PA (0x[0-9a-f]+)`).FindStringSubmatch(r.Console)
		if started == nil {
			t.Errorf("the control partition did not start %s", g.name)
			continue
		}
		pa := started[2]
		for _, op := range []string{"read", "write"} {
			r.Contains(t, "control| control: probe donated-to-"+g.name+" "+op+" "+pa+": blocked by stage 2")
		}
		r.Contains(t, "control| control: "+g.name+" (VM "+started[1]+") stopped with status "+g.status+"; destroyed, 4096 pages back zeroed")
	}
	if strings.Contains(r.Console, "NOT BLOCKED") {
		t.Errorf("an access the control partition gave up was not blocked")
	}
	if r.ExitCode != 0 {
		t.Errorf("QEMU exit status %d, want 0", r.ExitCode)
	}
}
