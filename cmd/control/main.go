//go:build tamago

// Command control is Bulkhead's control partition: a TamaGo program at EL1
// in its own stage 2 compartment, holding every page of RAM the hypervisor
// does not keep (at IPA = PA). It reaches the hypervisor only through the
// management hypercalls (docs/abi.md). It starts the guests the boot
// loader left in its memory and those the host sends over its channel,
// carries their consoles, and destroys each once it has stopped and its
// console is drained, taking its memory back for the next.
//
// The hypervisor starts it with x0 = the address of a page holding the
// guestN= boot arguments, NUL-terminated.
package main

import (
	"bytes"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"unsafe"

	"github.com/bulkhead-hv/bulkhead/abi"
	vm "github.com/bulkhead-hv/bulkhead/board/bulkheadvm"
	"github.com/bulkhead-hv/bulkhead/cpu"
	"github.com/bulkhead-hv/bulkhead/hyp"
)

func mem(pa, n uint64) []byte { return unsafe.Slice((*byte)(unsafe.Pointer(uintptr(pa))), n) }

func call(fid uint32, args ...uint64) (int64, uint64) {
	r0, r1 := vm.Hypercall(fid, args...)
	return int64(r0), r1
}

func main() {
	// The heap is fixed (the runtime's 128 MiB less the image): the
	// collector may let it grow four times what is live, the network's
	// per-segment garbage being the most of it, but not past the limit.
	debug.SetGCPercent(400)
	debug.SetMemoryLimit(48 << 20)
	info := vm.Arg()
	fmt.Printf("control partition at EL1: runtime %d MiB at %#x, pool [%#x, %#x)\n",
		vm.RAMSize>>20, vm.RAMBase, vm.PoolBase, vm.PoolEnd)
	args := map[string]string{}
	if info != 0 {
		text := mem(info, 4096)
		if i := bytes.IndexByte(text, 0); i >= 0 {
			text = text[:i]
		}
		for _, f := range strings.Fields(string(text)) {
			k, v, _ := strings.Cut(f, "=")
			args[k] = v
		}
	}
	specs, err := hyp.ParseGuestSpecs(args)
	if err != nil {
		fmt.Printf("control: %v\n", err)
		os.Exit(1)
	}

	// The hypervisor's memory was never the control partition's.
	probe("hypervisor-text", 0x40200000)

	avoid := []hyp.Region{{PA: vm.RAMBase, Size: vm.RAMSize}, {PA: info &^ 0xfff, Size: 4096}}
	for _, s := range specs {
		avoid = append(avoid, hyp.Region{PA: s.Image, Size: s.ImageSize})
	}
	placer = hyp.NewPlacer(vm.PoolBase, vm.PoolEnd, avoid)
	if a, ok := args["pci"]; ok {
		if err := setupPCI(a); err != nil {
			fmt.Printf("control: %v\n", err)
			os.Exit(1)
		}
	}
	openDrives()
	openUplink()
	c := &control{}
	openNetControl()
	restart := args["restart"]
	if restart != "" {
		// The hypervisor restarted this partition after its predecessor
		// crashed: the guests it left run on, and are taken back.
		fmt.Printf("control: restart %s: taking back the VMs that run\n", restart)
		c.guests = adopt()
		for _, g := range c.guests {
			if g.pa != 0 {
				probe("adopted-"+g.boot.Name, g.pa)
			}
		}
		specs = nil // started by the first partition already
	}
	for _, s := range specs {
		b := bootSpec{GuestSpec: s}
		if s.PCPU > 0 {
			b.PCPUs = []int{s.PCPU - 1}
		}
		g, err := start(b, mem(s.Image, s.ImageSize))
		if err != nil {
			fmt.Printf("control: %s: %v\n", s.Name, err)
			os.Exit(1)
		}
		c.guests = append(c.guests, g)
		// Given away: its first page is out of reach now.
		probe("donated-to-"+s.Name, g.pa)
	}
	if afterStart != nil {
		afterStart(c)
	}
	c.host = openChannel()
	if c.host != nil {
		c.sessions = append(c.sessions, c.host)
		ready := map[string]any{"event": "ready", "version": abi.VersionMajor*1000 + abi.VersionMinor, "guests": len(c.guests),
			"protocol": protocolVersion, "identity": identityPin()}
		if restart != "" {
			ready["restart"] = restart
		}
		c.host.send(ready)
	}
	os.Exit(c.loop())
}

// afterStart, when a test build sets it (fuzz.go), runs once the boot
// arguments' guests are started.
var afterStart func(c *control)

// control is the control partition's state: its guests, and the
// sessions that manage it: the host channel and network clients.
type control struct {
	guests   []*guest
	host     *session // the host channel, if there is one
	sessions []*session
	shutdown bool
	status   int
	// active is the counter when the loop last had something to do: a
	// request's bytes, console output, a forwarded access. For a while
	// after it the loop polls; then it naps between rounds.
	active uint64
	// now is the counter at the start of this round.
	now uint64
}

// pollFor is how long the loop keeps polling after it last had work, as
// a fraction of a second; napMicros is how long it naps after that, at
// most, if nothing else wants its CPU (an interrupt ends the nap sooner).
const (
	pollFor   = 500 // 2 ms
	napMicros = 1000
	// talking is how long after a network client's last bytes the loop
	// polls, as a fraction of a second: the NIC raises no interrupt that
	// would end a nap, and a nap's timer is late when the emulator's
	// main thread is busy with the traffic.
	talking = 10 // 100 ms
)

// loop serves the host and the guests until the host asks to shut down,
// or, without a host channel, until every guest has stopped.
func (c *control) loop() int {
	for len(c.guests) > 0 || ((c.host != nil || netctl != nil) && !c.shutdown) {
		// One read of the counter a round: under emulation each read can
		// wait on the device model's lock, which network traffic holds.
		// The physical count: the virtual one stops while guests use the
		// CPU, and a client's time-outs are the world's time.
		c.now = cpu.ReadCNTPCT()
		if c.pollNet() {
			c.busy()
		}
		for _, s := range c.sessions {
			for _, req := range s.requests(c.now) {
				c.serve(s, req)
			}
			// A client in conversation is answered at once: no nap while
			// its next segment may be on the way.
			if s.active || s.network && c.now-s.lastRecv < cpu.ReadCNTFRQ()/talking {
				c.busy()
			}
			if s.stalled(c.now) {
				s.shut(fmt.Sprintf("stopped for %ds in the middle of a request", stallSeconds))
			}
		}
		c.reap()
		if c.serveMMIO() {
			c.busy()
		}
		if c.pollUplink() {
			c.busy()
		}
		for _, g := range append([]*guest(nil), c.guests...) {
			empty := g.drain(c.console)
			g.feed()
			g.driveRTC()
			if !g.stopped {
				_, state, exit, why := vm.Hypercall4(abi.VM_STATUS, g.handle)
				if state == abi.StateStopped {
					g.stopped, g.status, g.why = true, int32(exit), why
					empty = g.drain(c.console) && empty
				}
			}
			if g.stopped && empty {
				c.destroy(g)
			}
		}
		if c.now-c.active < cpu.ReadCNTFRQ()/pollFor {
			// Busy: give way to guests, if there are any to give way to
			// (every VM is one of ours); a lone partition spares the call.
			if len(c.guests) > 0 {
				call(abi.YIELD)
			}
		} else {
			call(abi.YIELD, napMicros)
		}
	}
	c.closeNet()
	fmt.Printf("control: all guests done\n")
	return c.status
}

// busy notes that the loop had work this round.
func (c *control) busy() { c.active = c.now }

// console passes a guest's output on: to the host, or line by line to
// the control partition's own console when there is no host channel.
func (c *control) console(g *guest, b []byte) {
	c.busy()
	t := append(g.tail, b...)
	g.tail = t[max(0, len(t)-tailSize):]
	if len(c.sessions) > 0 {
		c.broadcast("console", g.boot.Name, map[string]any{"event": "console", "vm": g.boot.Name, "data": b})
		return
	}
	for _, ch := range b {
		if ch == '\n' {
			fmt.Printf("%s| %s\n", g.boot.Name, g.line)
			g.line = g.line[:0]
			continue
		}
		g.line = append(g.line, ch)
	}
}

// destroy tears a stopped, drained guest down and takes its memory back.
func (c *control) destroy(g *guest) {
	if len(g.line) > 0 {
		c.console(g, []byte{'\n'})
	}
	code, pages := call(abi.VM_DESTROY, g.handle)
	if code == abi.BUSY && pages == 0 {
		return // a vCPU of it is still leaving the guest: next time
	}
	if code != abi.SUCCESS {
		// Its pages could not all be zeroed: it stays, and is retried.
		fmt.Printf("control: VM_DESTROY %d: %d\n", g.handle, code)
		c.status = 1
		return
	}
	g.releaseDisks()
	g.releaseNet()
	// The pages are back, zeroed.
	if b := mem(g.pa, 4096); !bytes.Equal(b, make([]byte, 4096)) {
		fmt.Printf("control: %s: a returned page is not zero\n", g.boot.Name)
		c.status = 1
	}
	for _, pa := range g.ram {
		placer.Free(pa)
	}
	i := 0
	for i < len(c.guests) && c.guests[i] != g {
		i++
	}
	fmt.Printf("control: %s (VM %d) stopped with status %d; destroyed, %d pages back zeroed\n", g.boot.Name, g.handle, g.status, pages)
	if g.why == abi.StopReset && g.image == nil {
		fmt.Printf("control: %s asked to be reset, but its image went with the control partition that crashed: it ends\n", g.boot.Name)
	} else if g.why == abi.StopReset {
		// It asked to be reset: the same image, initrd and command line
		// in a new VM of the same name.
		n, err := start(g.boot, g.image)
		if err == nil {
			n.stagePA = g.stagePA
			c.guests[i] = n
			fmt.Printf("control: %s reset\n", g.boot.Name)
			c.broadcast("reset", g.boot.Name, map[string]any{"event": "reset", "vm": g.boot.Name})
			return
		}
		fmt.Printf("control: %s: reset failed: %v\n", g.boot.Name, err)
	}
	if g.stagePA != 0 {
		placer.Free(g.stagePA)
	}
	c.guests = append(c.guests[:i], c.guests[i+1:]...)
	c.broadcast("exit", g.boot.Name, map[string]any{"event": "exit", "vm": g.boot.Name, "status": g.status})
}

func (c *control) find(name string) *guest {
	for _, g := range c.guests {
		if g.boot.Name == name {
			return g
		}
	}
	return nil
}

// probe reads and writes addr and reports whether stage 2 stopped both.
func probe(name string, addr uint64) {
	for _, write := range []bool{false, true} {
		op := map[bool]string{false: "read", true: "write"}[write]
		_, esr := vm.Probe(addr, write)
		e := cpu.ESR(esr)
		fs, _ := e.FaultStatus()
		if esr != 0 && e.IsDataAbort() && fs == "Synchronous External abort" {
			fmt.Printf("control: probe %s %s %#x: blocked by stage 2\n", name, op, addr)
		} else {
			fmt.Printf("control: probe %s %s %#x: NOT BLOCKED (ESR %#x)\n", name, op, addr, esr)
		}
	}
}
