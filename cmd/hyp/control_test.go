//go:build !tamago

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-hv/bulkhead/abi"
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
	m.Extra = append(m.Extra, "-device", fmt.Sprintf("loader,file=%s,addr=0x60000000,force-raw=on", ctl))
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
		started := regexp.MustCompile(`control\| control: started ` + g.name + ` \(AArch64 ELF executable\) as VM (\d+): 16 MiB at PA (0x[0-9a-f]+)`).FindStringSubmatch(r.Console)
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

// The control partition drives a virtio console, the host's channel to it:
// it announces itself, answers requests by id, reports a guest's exit and
// shuts down when asked.
func TestHostChannel(t *testing.T) { hostChannel(t, false) }

// The same behind an SMMUv3: the console is a PCI function whose DMA the
// hypervisor confines to the control partition's RAM, and the
// virtio-mmio transports are not the control partition's.
func TestHostChannelBehindSMMU(t *testing.T) { hostChannel(t, true) }

func hostChannel(t *testing.T, smmu bool) {
	dir := qemutest.ImageDir(t)
	m := guestMachine(t, [3]string{"hello", "hello", "3"})
	ctl := filepath.Join(dir, "bulkhead-control.elf")
	fi, err := os.Stat(ctl)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "ctl.sock")
	m.Extra = append(m.Extra, "-device", fmt.Sprintf("loader,file=%s,addr=0x60000000,force-raw=on", ctl))
	if smmu {
		m.Extra = append(m.Extra, "-machine", "iommu=smmuv3", "-nic", "none", "-device", "virtio-serial-pci,"+qemutest.BehindIOMMU)
	} else {
		m.Extra = append(m.Extra, "-global", "virtio-mmio.force-legacy=false", "-device", "virtio-serial-device")
	}
	m.Extra = append(m.Extra,
		"-chardev", "socket,id=ctl,path="+sock+",server=on,wait=on",
		"-device", "virtconsole,chardev=ctl")
	m.Append += fmt.Sprintf(" control=0x60000000:%d", fi.Size())
	in := qemutest.Start(t, m)
	var conn net.Conn
	for i := 0; i < 100 && conn == nil; i++ {
		if conn, err = net.Dial("unix", sock); err != nil {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if conn == nil {
		t.Fatalf("no channel socket: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	rd := bufio.NewReader(conn)
	next := func() map[string]any {
		t.Helper()
		line, err := rd.ReadBytes('\n')
		if err != nil {
			t.Fatalf("reading the channel: %v (console so far:\n%s)", err, in.Console())
		}
		var v map[string]any
		if err := json.Unmarshal(line, &v); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		return v
	}
	send := func(s string) {
		if _, err := conn.Write([]byte(s + "\n")); err != nil {
			t.Fatal(err)
		}
	}
	if v := next(); v["event"] != "ready" || v["guests"] != float64(1) {
		t.Fatalf("first message %v, want the ready event", v)
	}
	// Events (the guest's console, its exit) come whenever they happen, so
	// an answer is awaited among them and the events are kept.
	var events []map[string]any
	answer := func(id float64) map[string]any {
		t.Helper()
		for {
			v := next()
			if v["id"] == id {
				return v
			}
			if v["event"] == nil {
				t.Fatalf("awaiting the answer to %v, got %v", id, v)
			}
			events = append(events, v)
		}
	}
	send(`{"id":7,"op":"ping"}`)
	if v := answer(7); v["ok"] != true || v["abi"] != fmt.Sprintf("%d.%d", abi.VersionMajor, abi.VersionMinor) {
		t.Errorf("ping answer %v", v)
	}
	send(`{"id":8,"op":"frobnicate"}`)
	if v := answer(8); v["ok"] != false || !strings.Contains(fmt.Sprint(v["error"]), "unknown op") {
		t.Errorf("unknown op answered %v", v)
	}
	exited := func() bool {
		for _, v := range events {
			if v["event"] == "exit" {
				if v["vm"] != "hello" || v["status"] != float64(3) {
					t.Fatalf("exit event %v, want hello with status 3", v)
				}
				return true
			}
		}
		return false
	}
	for !exited() {
		events = append(events, next())
	}
	send(`{"id":9,"op":"shutdown"}`)
	if v := answer(9); v["ok"] != true {
		t.Errorf("shutdown answer %v", v)
	}
	r := in.Wait()
	r.Contains(t, "control| control: host channel on the virtio console",
		"bulkhead: vm control stopped: exited with status 0", "back at its boot figures", "bulkhead: exit status 0")
	if smmu {
		r.Contains(t, "bulkhead: DMA: SMMUv3 at 0x9050000 confines PCIe streams 0-255 to the control partition's RAM",
			"virtio-mmio transports withheld", "control| control: host channel on the virtio console at PCI 00:01.0 [1af4:1043]")
		if strings.Contains(r.Console, "SMMU: DMA stopped") {
			t.Errorf("the SMMU stopped a well-behaved device's DMA")
		}
	} else {
		r.Contains(t, "bulkhead: DMA: not confined")
	}
}

// A control partition that makes 20,000 management calls at random, with
// hostile arguments (handles of no VM and of its victim, the hypervisor's
// and other guests' addresses, 0, ~0, sizes that overflow), beside a
// victim guest that checks its memory: the hypervisor stays up, its check
// of the proofs' invariants after every 1,000 calls finds nothing broken,
// the victim's memory never changes, and the ledger ends at its boot
// figures.
func TestManagementCallFuzzer(t *testing.T) {
	dir := qemutest.ImageDir(t)
	// The victim's argument: bit 63, seed 7, and the control partition's
	// number of calls.
	m := guestMachine(t, [3]string{"victim", "fuzz", fmt.Sprintf("%#x", uint64(1)<<63|7<<32|20000)})
	ctl := filepath.Join(dir, "bulkhead-control-fuzz.elf")
	fi, err := os.Stat(ctl)
	if err != nil {
		t.Fatal(err)
	}
	m.Extra = append(m.Extra, "-device", fmt.Sprintf("loader,file=%s,addr=0x60000000,force-raw=on", ctl))
	m.Append += fmt.Sprintf(" control=0x60000000:%d", fi.Size())
	m.Extra = m.Extra[2:] // in real time: nothing here is timed, and it runs faster
	m.Timeout = 120 * time.Second
	r := qemutest.Boot(t, m)
	// The fuzzer's own VM_CONSOLE_READ calls take some of the victim's
	// output: any check that reaches the console will do.
	if !regexp.MustCompile(`victim: check \d+: unchanged`).MatchString(r.Console) {
		t.Errorf("no check from the victim")
	}
	r.Contains(t,
		"control| control-fuzz: seed 7: 20000 management calls, 20 invariant checks, 0 violations",
		"control| control: victim (VM 3) stopped with status 143",
		"bulkhead: vm control stopped: exited with status 0",
		"back at its boot figures",
		"bulkhead: exit status 0",
	)
	for _, bad := range []string{"memory changed", "invariant violated", "panic", "crash"} {
		if strings.Contains(r.Console, bad) {
			t.Errorf("the console says %q", bad)
		}
	}
	if m := regexp.MustCompile(`control-fuzz: .*results:(.*)`).FindStringSubmatch(r.Console); m != nil {
		t.Logf("results:%s", m[1])
	}

}

// A hostile control partition (bulkhead-control-dma.elf) points four
// virtio-blk PCI functions' DMA at a victim guest's donated memory (as
// the source of a write to the drive, and as the destination of a read),
// at the hypervisor's text and beyond RAM. The SMMU stops each transfer
// and the hypervisor reports its stream and address; no byte reaches a
// drive's file, the victim's checks find its memory unchanged, and the
// run ends with the ledger at its boot figures.
func TestSMMUStopsHostileDMA(t *testing.T) {
	dir := qemutest.ImageDir(t)
	m := guestMachine(t, [3]string{"victim", "fuzz", fmt.Sprintf("%#x", uint64(1)<<63|7<<32)})
	ctl := filepath.Join(dir, "bulkhead-control-dma.elf")
	fi, err := os.Stat(ctl)
	if err != nil {
		t.Fatal(err)
	}
	m.Extra = append(m.Extra, "-device", fmt.Sprintf("loader,file=%s,addr=0x60000000,force-raw=on", ctl),
		"-machine", "iommu=smmuv3", "-nic", "none")
	m.Append += fmt.Sprintf(" control=0x60000000:%d", fi.Size())
	tmp := t.TempDir()
	var files []string
	for i := 0; i < 4; i++ {
		f := filepath.Join(tmp, fmt.Sprintf("d%d.img", i))
		content := make([]byte, 1<<20)
		if i == 3 {
			// What a read into the victim's memory would put there.
			for j := range content {
				content[j] = 0xa5
			}
		}
		if err := os.WriteFile(f, content, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
		m.Extra = append(m.Extra, "-drive", fmt.Sprintf("file=%s,if=none,format=raw,id=d%d", f, i),
			"-device", fmt.Sprintf("virtio-blk-pci,drive=d%d,addr=%#x,%s", i, 3+i, qemutest.BehindIOMMU))
	}
	m.Timeout = 120 * time.Second
	r := qemutest.Boot(t, m)
	r.Contains(t, "bulkhead: DMA: SMMUv3 at 0x9050000 confines PCIe streams 0-255",
		"control| control-dma: done", "bulkhead: vm control stopped: exited with status 0",
		"back at its boot figures", "bulkhead: exit status 0")
	victimPA := regexp.MustCompile(`started victim \(AArch64 ELF executable\) as VM \d+: \d+ MiB at PA (0x[0-9a-f]+)`).FindStringSubmatch(r.Console)
	filled := regexp.MustCompile(`victim: 4 MiB filled at (0x[0-9a-f]+)`).FindStringSubmatch(r.Console)
	if victimPA == nil || filled == nil {
		t.Fatalf("the victim's placement or its checked memory is not on the console")
	}
	pa, _ := strconv.ParseUint(victimPA[1], 0, 64)
	ipa, _ := strconv.ParseUint(filled[1], 0, 64)
	for i, want := range []struct {
		access string
		addr   uint64
	}{{"read", pa + 0x10000}, {"read", 0x40200000}, {"read", 0x100_0000_0000}, {"write", pa + ipa - 0x40000000 + 0x1000}} {
		// The first fault of each transfer is reported (QEMU's device
		// faults once per word it moves, and the queue holds 128).
		re := regexp.MustCompile(fmt.Sprintf(`bulkhead: SMMU: DMA stopped: F_TRANSLATION, stream %#x, %s at (0x[0-9a-f]+) \(PCI 00:%02x.0\)`,
			(3+i)<<3, want.access, 3+i))
		found := false
		for _, m := range re.FindAllStringSubmatch(r.Console, -1) {
			a, _ := strconv.ParseUint(m[1], 0, 64)
			found = found || a >= want.addr && a < want.addr+4096
		}
		if !found {
			t.Errorf("drive %d: no report of its %s at %#x", i, want.access, want.addr)
		}
	}
	for i, f := range files[:3] {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if n := bytes.Count(b, []byte{0}); n != len(b) {
			t.Errorf("drive %d: %d bytes of its file changed: DMA read memory out to it", i, len(b)-n)
		}
	}
	checks := regexp.MustCompile(`victim: check (\d+): unchanged`).FindAllStringSubmatch(r.Console, -1)
	if len(checks) < 3 {
		t.Errorf("%d victim checks, want the victim checking on after the attacks", len(checks))
	}
	if strings.Contains(r.Console, "victim: memory changed") {
		t.Errorf("the victim's memory changed")
	}
}
