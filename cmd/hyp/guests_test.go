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

// guestMachine boots the hypervisor with guest images loaded by QEMU.
// Time is counted in instructions (-icount shift=0,sleep=off), so how
// guests interleave does not depend on how busy the host is.
func guestMachine(t *testing.T, guests ...[3]string) qemutest.Machine {
	m := qemutest.Machine{Image: hypImage(t), Extra: []string{"-icount", "shift=0,sleep=off"}}
	addr := uint64(0x50000000)
	for i, g := range guests { // name, image, arg
		img := filepath.Join(qemutest.ImageDir(t), "guest-"+g[1]+".elf")
		fi, err := os.Stat(img)
		if err != nil {
			t.Fatal(err)
		}
		m.Extra = append(m.Extra, "-device", fmt.Sprintf("loader,file=%s,addr=%#x,force-raw=on", img, addr))
		m.Append += fmt.Sprintf(" guest%d=%s:%#x:%d:%s", i, g[0], addr, fi.Size(), g[2])
		addr += (uint64(fi.Size()) + 0x1fffff) &^ 0x1fffff
	}
	return m
}

// Two guests run side by side; the adversary's every attempt to reach
// memory that is not its own is contained by stage 2; both exit with their
// own status; teardown returns every page, zeroed, to its owner.
func TestTwoGuestsSideBySide(t *testing.T) {
	// The first guest's RAM is placed right above the hypervisor's 64 MiB.
	const helloPA = "0x44000000"
	r := qemutest.Boot(t, guestMachine(t, [3]string{"hello", "hello", "3"}, [3]string{"adversary", "adversary", helloPA}))
	r.Contains(t,
		"bulkhead: vm hello: 16 MiB at IPA 0x40000000, PA "+helloPA+"; ",
		"hello| hello from a TamaGo guest at EL1",
		"hello| sum of squares below 1000: 332833500",
		"hello| tick 5",
		"hello| slept at least 50ms",
		"bulkhead: vm hello stopped: exited with status 3",
		"adversary| probe own-ram 0x",
		"adversary| contained 18 of 18 attempts",
		"bulkhead: vm adversary stopped: exited with status 0",
		"bulkhead: vm hello: 4096 pages zeroed (checked) and returned to the control partition",
		"bulkhead: vm adversary: 4096 pages zeroed (checked) and returned to the control partition",
		"back at its boot figures",
		"bulkhead: exit status 0",
	)
	for _, target := range []string{"hypervisor-ram", "hypervisor-heap", "other-guest-ram", "control-ram", "gic-its", "rtc", "virtio-mmio", "null", "high-ipa"} {
		for _, op := range []string{"read", "write"} {
			line := regexp.MustCompile(`(?m)^adversary\| probe ` + target + ` ` + op + ` (0x[0-9a-f]+): (.*)$`).FindStringSubmatch(r.Console)
			if line == nil {
				t.Errorf("no report of the %s %s probe", target, op)
				continue
			}
			if line[2] != "blocked by stage 2 (Synchronous External abort)" {
				t.Errorf("probe %s %s: %s", target, op, line[2])
			}
			// The hypervisor saw the same access and contained it.
			ipa := line[1]
			if !strings.Contains(r.Console, "bulkhead: vm adversary: stage 2 fault: "+op+" at IPA "+ipa+" ") {
				t.Errorf("hypervisor did not report the %s at %s", op, ipa)
			}
		}
	}
	if !strings.Contains(r.Console, "probe other-guest-ram read "+helloPA) {
		t.Errorf("the adversary did not aim at the other guest's physical address")
	}
	// Side by side: the adversary got to run while hello was still alive.
	first := strings.Index(r.Console, "adversary| ")
	helloEnd := strings.Index(r.Console, "bulkhead: vm hello stopped")
	if first < 0 || helloEnd < 0 || first > helloEnd {
		t.Errorf("the adversary only ran after hello had stopped")
	}
	if r.ExitCode != 0 {
		t.Errorf("QEMU exit status %d, want 0", r.ExitCode)
	}
}

// Bad guest specs and images stop the boot with a clear error.
func TestGuestSpecErrors(t *testing.T) {
	for _, tc := range []struct{ append, want string }{
		{"guest0=x:0x50000000", "want NAME:IMAGE_ADDR:IMAGE_SIZE"},
		{"guest0=x:0x50000000:zz", `field 3 "zz" is not a number`},
		{"guest0=x:0x40000000:4096", "is not in the control partition's RAM"},
		{"guest0=x:0x50000000:4096", "guest0: guest x: not an ELF image"},
		{"guest0=x:0x50000000:4096:0:0x100000", "not a positive multiple of 2 MiB"},
	} {
		r := qemutest.Boot(t, qemutest.Machine{Image: hypImage(t), Append: tc.append})
		r.Contains(t, tc.want, "bulkhead: exit status 1")
	}
}

// A boot guest's PCPU field pins its vCPUs to that physical CPU, and one
// the machine does not have is refused.
func TestGuestPinnedToPCPU(t *testing.T) {
	m := guestMachine(t, [3]string{"hello", "hello", "3:0x1000000:2:1"})
	m.SMP = 2
	r := qemutest.Boot(t, m)
	r.Contains(t, "bulkhead: vm hello started: vCPUs on physical CPUs [1 1]",
		"hello| hello from a TamaGo guest at EL1", "bulkhead: vm hello stopped: exited with status 3",
		"bulkhead: exit status 0")

	m = guestMachine(t, [3]string{"hello", "hello", "3:0x1000000:1:2"})
	m.SMP = 2
	r = qemutest.Boot(t, m)
	r.Contains(t, "guest0: guest hello: physical CPU 2: the hypervisor runs guests on 2", "bulkhead: exit status 1")
}
