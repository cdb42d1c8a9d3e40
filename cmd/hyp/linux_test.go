package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-hv/bulkhead/internal/qemutest"
)

// controlChannel is the host's side of the control partition's channel,
// as the CLI uses it: requests by id, console and exit events by VM.
type controlChannel struct {
	t    testing.TB
	in   *qemutest.Instance
	conn net.Conn
	mu   sync.Mutex
	cond *sync.Cond
	next int
	// what arrived: answers by id, console output and exit status by VM.
	answers  map[int]map[string]any
	consoles map[string]*strings.Builder
	first    map[string]time.Time // when each VM's console first spoke
	exits    map[string]int
	resets   map[string]int
	closed   error
}

// startControl boots the hypervisor and control partition with the host
// channel on a unix socket, in real time (Linux is not run under -icount),
// on smp CPUs; extra are more QEMU arguments.
func startControl(t testing.TB, mem string, smp int, extra ...string) *controlChannel {
	dir := qemutest.ImageDir(t)
	ctl := filepath.Join(dir, "bulkhead-control.elf")
	fi, err := os.Stat(ctl)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "ctl.sock")
	m := qemutest.Machine{Image: hypImage(t), Mem: mem, SMP: smp, Timeout: 5 * time.Minute,
		Append: fmt.Sprintf("control=0x60000000:%d", fi.Size()),
		Extra: []string{
			"-device", fmt.Sprintf("loader,file=%s,addr=0x60000000,force-raw=on", ctl),
			"-global", "virtio-mmio.force-legacy=false",
			"-device", "virtio-serial-device",
			"-chardev", "socket,id=ctl,path=" + sock + ",server=on,wait=on",
			"-device", "virtconsole,chardev=ctl"}}
	m.Extra = append(m.Extra, extra...)
	in := qemutest.Start(t, m)
	t.Cleanup(func() {
		if t.Failed() {
			f := filepath.Join(os.TempDir(), "bulkhead-"+filepath.Base(t.Name())+".log")
			os.WriteFile(f, []byte(in.Console()), 0o644)
			t.Logf("the hypervisor's console: %s", f)
		}
	})
	var conn net.Conn
	for i := 0; i < 200 && conn == nil; i++ {
		if conn, err = net.Dial("unix", sock); err != nil {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if conn == nil {
		t.Fatalf("no channel socket: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &controlChannel{t: t, in: in, conn: conn, next: 1, answers: map[int]map[string]any{},
		consoles: map[string]*strings.Builder{}, first: map[string]time.Time{}, exits: map[string]int{}, resets: map[string]int{}}
	c.cond = sync.NewCond(&c.mu)
	go c.read()
	t.Cleanup(func() {
		if t.Failed() {
			c.mu.Lock()
			defer c.mu.Unlock()
			for name, b := range c.consoles {
				f := filepath.Join(os.TempDir(), "bulkhead-"+filepath.Base(t.Name())+"-"+name+".log")
				os.WriteFile(f, []byte(b.String()), 0o644)
				t.Logf("%s's console: %s", name, f)
			}
		}
	})
	return c
}

func (c *controlChannel) read() {
	rd := bufio.NewReader(c.conn)
	for {
		line, err := rd.ReadBytes('\n')
		c.mu.Lock()
		if err != nil {
			c.closed = err
			c.cond.Broadcast()
			c.mu.Unlock()
			return
		}
		var all map[string]any
		if json.Unmarshal(line, &all) == nil {
			vm, _ := all["vm"].(string)
			switch {
			case all["id"] != nil:
				c.answers[int(all["id"].(float64))] = all
			case all["event"] == "console":
				var v struct{ Data []byte }
				json.Unmarshal(line, &v)
				if c.consoles[vm] == nil {
					c.consoles[vm] = &strings.Builder{}
					c.first[vm] = time.Now()
				}
				c.consoles[vm].Write(v.Data)
			case all["event"] == "reset":
				c.resets[vm]++
			case all["event"] == "exit":
				c.exits[vm] = int(all["status"].(float64))
			}
		}
		c.cond.Broadcast()
		c.mu.Unlock()
	}
}

// waitFor waits until cond holds (checked under the lock) or the deadline.
func (c *controlChannel) waitFor(what string, d time.Duration, cond func() bool) {
	c.t.Helper()
	timer := time.AfterFunc(d, func() { c.mu.Lock(); c.cond.Broadcast(); c.mu.Unlock() })
	defer timer.Stop()
	deadline := time.Now().Add(d)
	c.mu.Lock()
	defer c.mu.Unlock()
	for !cond() {
		if c.closed != nil || time.Now().After(deadline) {
			var cons []string
			for name, b := range c.consoles {
				cons = append(cons, fmt.Sprintf("--- %s:\n%s", name, tail(b.String(), 4000)))
			}
			c.t.Fatalf("waiting for %s: %v (channel: %v)\n%s\n--- hypervisor:\n%s", what, d, c.closed, strings.Join(cons, "\n"), tail(c.in.Console(), 3000))
		}
		c.cond.Wait()
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// call sends a request, with payload bytes after its line, and returns
// the answer.
func (c *controlChannel) call(req map[string]any, payload ...[]byte) map[string]any {
	c.t.Helper()
	c.mu.Lock()
	id := c.next
	c.next++
	c.mu.Unlock()
	req["id"] = id
	b, _ := json.Marshal(req)
	if _, err := c.conn.Write(append(b, '\n')); err != nil {
		c.t.Fatal(err)
	}
	for _, p := range payload {
		if _, err := c.conn.Write(p); err != nil {
			c.t.Fatal(err)
		}
	}
	var ans map[string]any
	c.waitFor(fmt.Sprintf("the answer to %v", req["op"]), 2*time.Minute, func() bool { ans = c.answers[id]; return ans != nil })
	return ans
}

func (c *controlChannel) console(vm string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b := c.consoles[vm]; b != nil {
		return b.String()
	}
	return ""
}

// waitConsole waits until the VM's console matches re after offset from.
func (c *controlChannel) waitConsole(vm string, from int, re string, d time.Duration) int {
	c.t.Helper()
	rx := regexp.MustCompile(re)
	end := -1
	c.waitFor(fmt.Sprintf("%q on %s's console", re, vm), d, func() bool {
		b := c.consoles[vm]
		if b == nil || b.Len() < from {
			return false
		}
		if loc := rx.FindStringIndex(b.String()[from:]); loc != nil {
			end = from + loc[1]
			return true
		}
		return false
	})
	return end
}

func linuxArtifacts(t testing.TB) (kernel, initrd []byte) {
	dir := filepath.Join(qemutest.ImageDir(t), "linux")
	k, err := os.ReadFile(filepath.Join(dir, "vmlinuz"))
	if err != nil {
		t.Fatalf("the Linux kernel (make linux builds it): %v", err)
	}
	i, err := os.ReadFile(filepath.Join(dir, "rootfs.cpio.gz"))
	if err != nil {
		t.Fatalf("the initramfs (make linux builds it): %v", err)
	}
	return k, i
}

// runLinux starts a Linux VM, its vCPUs pinned to pcpus if any are given.
func (c *controlChannel) runLinux(name string, cpus int, kernel, initrd []byte, pcpus ...int) {
	c.t.Helper()
	ans := c.call(map[string]any{"op": "run", "name": name, "size": len(kernel), "initrd_size": len(initrd),
		"mem": 256 << 20, "cpus": cpus, "cmdline": "console=ttyAMA0 earlycon panic=-1",
		"time": time.Now().Unix(), "pcpus": pcpus}, kernel, initrd)
	if ans["ok"] != true {
		c.t.Fatalf("run %s: %v", name, ans["error"])
	}
}

// shell types a command and returns what it printed before the next
// prompt.
func (c *controlChannel) shell(vm, cmd string) string {
	c.t.Helper()
	from := len(c.console(vm))
	c.call(map[string]any{"op": "input", "name": vm, "data": []byte(cmd + "\n")})
	end := c.waitConsole(vm, from, `(?m)\n[^\n]*# `, time.Minute)
	out := c.console(vm)[from:end]
	// Drop the echoed command line and the prompt.
	if i := strings.IndexByte(out, '\n'); i >= 0 {
		out = out[i+1:]
	}
	if i := strings.LastIndexByte(out, '\n'); i >= 0 {
		out = out[:i]
	}
	return strings.ReplaceAll(out, "\r", "")
}

// Debian's kernel and a busybox initramfs boot with 2 vCPUs to a shell,
// which runs commands; dmesg shows nothing wrong; reboot starts it again;
// poweroff stops the VM and the control partition reports its exit.
func TestLinuxBootsToAShell(t *testing.T) {
	kernel, initrd := linuxArtifacts(t)
	c := startControl(t, "1G", 1)
	c.waitFor("the ready event", time.Minute, func() bool { return true })
	c.runLinux("linux", 2, kernel, initrd)
	t.Cleanup(func() {
		os.WriteFile(filepath.Join(os.TempDir(), "bulkhead-linux-console.log"), []byte(c.console("linux")), 0o644)
		os.WriteFile(filepath.Join(os.TempDir(), "bulkhead-linux-hyp.log"), []byte(c.in.Console()), 0o644)
	})
	c.waitConsole("linux", 0, `bulkhead-init: up [0-9.]+`, 3*time.Minute)
	c.waitConsole("linux", 0, `(?m)^[^\n]*# `, time.Minute)

	uname := c.shell("linux", "uname -a")
	if !strings.Contains(uname, "Linux") || !strings.Contains(uname, "aarch64") {
		t.Errorf("uname -a: %q", uname)
	}
	// The real-time clock the control partition emulates over forwarded
	// MMIO: Linux's rtc-pl031 drives it and takes the host's time from it.
	if name := c.shell("linux", "cat /sys/class/rtc/rtc0/name"); !strings.Contains(name, "pl031") {
		t.Errorf("rtc0 is %q, want the PL031", name)
	}
	var guestNow int64
	fmt.Sscan(c.shell("linux", "date +%s"), &guestNow)
	if d := time.Now().Unix() - guestNow; d < -5 || d > 60 {
		t.Errorf("the guest's clock is %d s off the host's", d)
	}
	c.checkCPUs("linux", 2)

	// PSCI SYSTEM_RESET: the control partition starts it again.
	from := len(c.console("linux"))
	c.call(map[string]any{"op": "input", "name": "linux", "data": []byte("reboot -f\n")})
	c.waitFor("linux's reset event", time.Minute, func() bool { return c.resets["linux"] == 1 })
	c.waitConsole("linux", from, `bulkhead-init: up [0-9.]+`, 3*time.Minute)
	c.waitConsole("linux", from, `(?m)^[^\n]*# `, time.Minute)
	if _, gone := c.exits["linux"]; gone {
		t.Errorf("a reset was reported as an exit")
	}
	if cpus := c.shell("linux", "nproc"); strings.TrimSpace(cpus) != "2" {
		t.Errorf("after the reset nproc says %q, want 2", cpus)
	}

	c.call(map[string]any{"op": "input", "name": "linux", "data": []byte("poweroff -f\n")})
	c.waitFor("linux's exit event", time.Minute, func() bool { _, ok := c.exits["linux"]; return ok })
	if st := c.exits["linux"]; st != 0 {
		t.Errorf("linux exited with status %d, want 0 (PSCI SYSTEM_OFF)", st)
	}
	for _, want := range []string{"bulkhead: vm linux stopped: PSCI SYSTEM_RESET", "control: linux reset",
		"bulkhead: vm linux stopped: PSCI SYSTEM_OFF"} {
		if !strings.Contains(c.in.Console(), want) {
			t.Errorf("the hypervisor's console lacks %q", want)
		}
	}
}

// Two Linux VMs run at once, each with its own console; one powers off
// while the other keeps answering; then the other does too.
func TestTwoLinuxVMs(t *testing.T) {
	kernel, initrd := linuxArtifacts(t)
	c := startControl(t, "1G", 1)
	c.runLinux("left", 1, kernel, initrd)
	c.runLinux("right", 1, kernel, initrd)
	for _, vm := range []string{"left", "right"} {
		c.waitConsole(vm, 0, `bulkhead-init: up [0-9.]+`, 3*time.Minute)
		c.waitConsole(vm, 0, `(?m)^[^\n]*# `, time.Minute)
	}
	// Each shell sees its own machine: write a file in one, look in both.
	c.shell("left", "echo left-was-here > /tmp/mark")
	if out := c.shell("left", "cat /tmp/mark"); !strings.Contains(out, "left-was-here") {
		t.Errorf("left: cat /tmp/mark: %q", out)
	}
	if out := c.shell("right", "cat /tmp/mark"); strings.Contains(out, "left-was-here") || !strings.Contains(out, "No such file") {
		t.Errorf("right sees left's file: %q", out)
	}
	c.call(map[string]any{"op": "input", "name": "left", "data": []byte("poweroff -f\n")})
	c.waitFor("left's exit event", time.Minute, func() bool { _, ok := c.exits["left"]; return ok })
	if out := c.shell("right", "echo still here; uname -r"); !strings.Contains(out, "still here") {
		t.Errorf("right after left stopped: %q", out)
	}
	c.call(map[string]any{"op": "input", "name": "right", "data": []byte("poweroff -f\n")})
	c.waitFor("right's exit event", time.Minute, func() bool { _, ok := c.exits["right"]; return ok })
	st := c.call(map[string]any{"op": "stats"})
	m := st["machine"].(map[string]any)
	if m["guests"] != float64(0) || m["vms"] != float64(0) || m["shared"] != float64(0) {
		t.Errorf("after both stopped, the ledger still has guest pages: %v", m)
	}
	if m["free"].(float64)+m["hypervisor"].(float64)+m["control"].(float64) != m["pages"].(float64) {
		t.Errorf("ledger pages do not add up: %v", m)
	}
}

// checkCPUs checks that Linux in vm brought up its cpus CPUs and that its
// kernel log reports nothing wrong.
func (c *controlChannel) checkCPUs(vm string, cpus int) {
	c.t.Helper()
	// The count is the answer's own line: the kernel's console messages
	// may come between the command and its answer.
	out := c.shell(vm, "grep -c ^processor /proc/cpuinfo")
	n := ""
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" && strings.Trim(l, "0123456789") == "" {
			n = l
		}
	}
	if n != fmt.Sprint(cpus) {
		c.t.Errorf("/proc/cpuinfo lists %q processors, want %d (the answer: %q)", n, cpus, out)
	}
	dmesg := c.shell(vm, "dmesg")
	for _, bad := range []string{"BUG:", "WARNING:", "Oops", "Call trace", "self-detected stall"} {
		if strings.Contains(dmesg, bad) {
			c.t.Errorf("dmesg has %q:\n%s", bad, tail(dmesg, 3000))
		}
	}
	if up := fmt.Sprintf("smp: Brought up 1 node, %d CPUs", cpus); !strings.Contains(dmesg, up) {
		c.t.Errorf("dmesg lacks %q:\n%s", up, tail(dmesg, 3000))
	}
}

// runMS reads a VM's run time, the sum over its vCPUs of the time each
// spent entered on its physical CPU, from the control partition's stats.
func (c *controlChannel) runMS(vm string) float64 {
	c.t.Helper()
	st := c.call(map[string]any{"op": "stats"})
	for _, v := range st["vms"].([]any) {
		if m := v.(map[string]any); m["name"] == vm {
			return m["run_ms"].(float64)
		}
	}
	c.t.Fatalf("stats lists no VM %q: %v", vm, st)
	return 0
}

// cpuExits returns the guest exits each physical CPU has handled, from the
// control partition's stats (CPU_STATS).
func (c *controlChannel) cpuExits() []float64 {
	c.t.Helper()
	st := c.call(map[string]any{"op": "stats"})
	cpus, _ := st["cpus"].([]any)
	var out []float64
	for i, v := range cpus {
		m := v.(map[string]any)
		if m["cpu"] != float64(i) {
			c.t.Fatalf("stats lists CPU %v at %d: %v", m["cpu"], i, st["cpus"])
		}
		out = append(out, m["exits"].(float64))
	}
	return out
}

// parallelJobs is a shell command that runs four CPU-bound jobs at once
// and waits for them.
const parallelJobs = `for j in 1 2 3 4; do (i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done) & done; wait; echo jobs done`

// A 4-vCPU Linux guest on four physical CPUs, with QEMU running them on a
// host thread each: all four come up, and while four jobs run the
// vCPUs are in the guest at once (run time well over wall time, which one
// physical CPU could not give them). Then the jobs run again while every
// vCPU moves from CPU to CPU, and Linux notices nothing wrong.
func TestLinuxOnFourCPUs(t *testing.T) {
	kernel, initrd := linuxArtifacts(t)
	c := startControl(t, "1G", 4, "-accel", "tcg,thread=multi")
	c.runLinux("linux", 4, kernel, initrd)
	c.waitConsole("linux", 0, `bulkhead-init: up [0-9.]+`, 3*time.Minute)
	c.waitConsole("linux", 0, `(?m)^[^\n]*# `, time.Minute)

	for _, want := range []string{"bulkhead: 4 of 4 CPU(s) up at EL2", "bulkhead: guests run on 4 CPUs",
		"bulkhead: vm linux started: vCPUs on physical CPUs [1 2 3 0]"} {
		if !strings.Contains(c.in.Console(), want) {
			t.Errorf("the hypervisor's console lacks %q", want)
		}
	}
	c.checkCPUs("linux", 4)

	exits0 := c.cpuExits()
	before, start := c.runMS("linux"), time.Now()
	if out := c.shell("linux", parallelJobs); !strings.Contains(out, "jobs done") {
		t.Errorf("the jobs printed %q", out)
	}
	wall := float64(time.Since(start).Milliseconds())
	busy := c.runMS("linux") - before
	t.Logf("four jobs: %.0f ms of vCPU time in %.0f ms", busy, wall)
	if busy < 2*wall {
		t.Errorf("four jobs took %.0f ms of vCPU time in %.0f ms: the vCPUs did not run in parallel", busy, wall)
	}
	// Each vCPU's timer ticks, IPIs and console output exit on its own
	// CPU, and that CPU handles them: every CPU's count grows.
	exits1 := c.cpuExits()
	if len(exits0) != 4 || len(exits1) != 4 {
		t.Fatalf("stats lists %d and %d CPUs, want 4", len(exits0), len(exits1))
	}
	for i := range exits1 {
		t.Logf("CPU %d handled %.0f exits during the jobs", i, exits1[i]-exits0[i])
		if exits1[i]-exits0[i] < 100 {
			t.Errorf("CPU %d handled %.0f exits during the jobs, want at least 100", i, exits1[i]-exits0[i])
		}
	}

	// The same jobs while the vCPUs move round the CPUs, from CPU 0 to
	// the others and back, in and out of the guest.
	from := len(c.console("linux"))
	c.call(map[string]any{"op": "input", "name": "linux", "data": []byte(parallelJobs + "\n")})
	homes := []int{1, 2, 3, 0}
	for round := 0; round < 8; round++ {
		for vcpu := range homes {
			homes[vcpu] = (homes[vcpu] + 1) % 4
			if ans := c.call(map[string]any{"op": "move", "name": "linux", "vcpu": vcpu, "pcpu": homes[vcpu]}); ans["ok"] != true {
				t.Fatalf("move vCPU %d to CPU %d: %v", vcpu, homes[vcpu], ans["error"])
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.waitConsole("linux", from, `jobs done`, 2*time.Minute)
	c.waitConsole("linux", from, `(?m)\n[^\n]*# `, time.Minute)
	if n := strings.Count(c.in.Console(), "bulkhead: vm linux: vCPU "); n < 32 {
		t.Errorf("the hypervisor reported %d moves of linux's vCPUs, want 32", n)
	}
	c.checkCPUs("linux", 4)

	c.call(map[string]any{"op": "input", "name": "linux", "data": []byte("poweroff -f\n")})
	c.waitFor("linux's exit event", time.Minute, func() bool { _, ok := c.exits["linux"]; return ok })
	if st := c.exits["linux"]; st != 0 {
		t.Errorf("linux exited with status %d, want 0", st)
	}
}
