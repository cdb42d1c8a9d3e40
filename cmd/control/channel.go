//go:build tamago

package main

import (
	"fmt"

	"github.com/bulkhead-hv/bulkhead/abi"
	vm "github.com/bulkhead-hv/bulkhead/board/bulkheadvm"
	"github.com/bulkhead-hv/bulkhead/cpu"
	"github.com/bulkhead-hv/bulkhead/hyp"
	"github.com/bulkhead-hv/bulkhead/virtio"
	"github.com/bulkhead-hv/bulkhead/virtio/mmioreg"
)

// The host channel: a virtio console, a transport of the line protocol
// (docs/protocol.md) to the host's broker.
type hostChannel struct {
	rx, tx *virtio.Queue
}

func (h *hostChannel) receive() []byte { return h.rx.Receive() }

func (h *hostChannel) write(line []byte) bool {
	h.tx.Send(line, func() { vm.Hypercall(abi.YIELD) })
	return true
}

func (h *hostChannel) close(string) {}

func (h *hostChannel) ended() bool { return false }

func (h *hostChannel) String() string { return "the host channel" }

// virtio-mmio transports on QEMU virt, which the hypervisor passes through.
func transports() []uint64 {
	var out []uint64
	for i := uint64(0); i < 32; i++ {
		out = append(out, 0x0a000000+0x200*i)
	}
	return out
}

var dma vm.DMA

func openChannel() *session {
	devs := hostDevices(mmioreg.DeviceConsole)
	if len(devs) == 0 {
		fmt.Printf("control: no host channel: no virtio console (QEMU: -device virtconsole on a virtio-serial-device, or virtio-serial-pci with -machine virt,iommu=smmuv3)\n")
		return nil
	}
	d, err := devs[0].init(0)
	if err != nil {
		fmt.Printf("control: host channel: %v\n", err)
		return nil
	}
	// virtio console port 0: receiveq 0, transmitq 1 (VIRTIO 1.2, 5.3.2).
	rx, err1 := d.Queue(0, 16, 4096)
	tx, err2 := d.Queue(1, 16, 4096)
	if err1 != nil || err2 != nil {
		fmt.Printf("control: host channel queues: %v %v\n", err1, err2)
		return nil
	}
	d.Ready()
	rx.Fill()
	fmt.Printf("control: host channel on the virtio console at %v\n", devs[0])
	return &session{t: &hostChannel{rx: rx, tx: tx}}
}

type request struct {
	ID int    `json:"id"`
	Op string `json:"op"`
	// The VM a request is about.
	Name string `json:"name,omitempty"`
	// run: the image and initrd sizes (their bytes follow the line), the
	// VM's memory, vCPUs, argument and kernel command line.
	Size       uint64 `json:"size,omitempty"`
	InitrdSize uint64 `json:"initrd_size,omitempty"`
	Mem        uint64 `json:"mem,omitempty"`
	CPUs       int    `json:"cpus,omitempty"`
	PCPUs      []int  `json:"pcpus,omitempty"` // vCPU i runs on PCPUs[i % len]
	// Disks are the instance's drives the VM gets, /dev/vda first.
	Disks []diskSpec `json:"disks,omitempty"`
	// Net gives it a network device on the instance's uplink, a peer of
	// the guests whose Peers is the same.
	Net     bool   `json:"net,omitempty"`
	Peers   string `json:"peers,omitempty"`
	Arg     uint64 `json:"arg,omitempty"`
	Cmdline string `json:"cmdline,omitempty"`
	// Time is the host's clock, in seconds since 1970, for the guests'
	// real-time clocks.
	Time uint64 `json:"time,omitempty"`
	// input: bytes for the VM's console.
	Data []byte `json:"data,omitempty"`
	// move: which vCPU, and the physical CPU it moves to.
	VCPU int `json:"vcpu,omitempty"`
	PCPU int `json:"pcpu,omitempty"`
	// revoke: a client certificate's serial, in hex.
	Serial string `json:"serial,omitempty"`

	// An upload lands in pool memory (staging, at got bytes so far), not
	// in the heap: a 30 MB kernel does not fit there. refused says why it
	// is being read only to be thrown away.
	staging []byte
	stagePA uint64
	got     uint64
	refused string
}

// testOps are requests that test builds add (crash.go).
var testOps map[string]func(c *control, ch *session, r request)

// serve answers one request from session ch.
func (c *control) serve(ch *session, r request) {
	fail := func(format string, args ...any) {
		ch.send(map[string]any{"id": r.ID, "ok": false, "error": fmt.Sprintf(format, args...)})
	}
	switch r.Op {
	case "run":
		// The upload stays with the guest, to start it again from when
		// it asks to be reset; it goes with the guest, or now on failure.
		kept := false
		if r.staging != nil {
			defer func() {
				if !kept {
					placer.Free(r.stagePA)
				}
			}()
		}
		if r.refused != "" {
			fail("%s", r.refused)
			return
		}
		if r.Time != 0 {
			setHostTime(r.Time)
		}
		s := bootSpec{GuestSpec: hyp.GuestSpec{Name: r.Name, Arg: r.Arg, Mem: r.Mem, CPUs: r.CPUs}, Cmdline: r.Cmdline, PCPUs: r.PCPUs, Disks: r.Disks, Net: r.Net, Peers: r.Peers}
		if s.Mem == 0 {
			s.Mem = hyp.DefaultGuestMem
		}
		if s.CPUs == 0 {
			s.CPUs = 1
		}
		if s.Name == "" || len(s.Name) > 16 || s.Mem%(2<<20) != 0 || s.CPUs < 1 || s.CPUs > hyp.MaxVCPUs {
			fail("bad name (1-16 bytes), memory (a multiple of 2M) or vCPUs (1-%d)", hyp.MaxVCPUs)
			return
		}
		if len(s.Peers) > 32 || s.Peers != "" && !s.Net {
			fail("peers: a name of at most 32 bytes, for a VM with a network device")
			return
		}
		for _, n := range s.PCPUs {
			if n < 0 {
				fail("physical CPU %d: CPUs are numbered from 0", n)
				return
			}
		}
		if c.find(s.Name) != nil {
			fail("a VM named %q exists: pick another --name, or stop it first", s.Name)
			return
		}
		s.Initrd = r.staging[r.Size:]
		g, err := start(s, r.staging[:r.Size])
		if err != nil {
			fail("%v", err)
			return
		}
		g.stagePA, kept = r.stagePA, true
		c.guests = append(c.guests, g)
		ch.attach(s.Name)
		ch.send(map[string]any{"id": r.ID, "ok": true, "vm": g.handle})
	case "ping":
		ch.send(map[string]any{"id": r.ID, "ok": true, "abi": fmt.Sprintf("%d.%d", abi.VersionMajor, abi.VersionMinor),
			"protocol": protocolVersion, "identity": identityPin()})
	case "attach", "detach":
		// A network client's console follows the VMs it attaches to; the
		// host's broker does this for its own clients.
		if r.Name == "" {
			fail("%s: no VM name", r.Op)
			return
		}
		if r.Op == "attach" {
			ch.attach(r.Name)
			if g := c.find(r.Name); g != nil && len(g.tail) > 0 && ch.vms != nil {
				ch.send(map[string]any{"event": "console", "vm": r.Name, "data": g.tail, "replay": true})
			}
		} else if ch.vms != nil {
			delete(ch.vms, r.Name)
		}
		ch.send(map[string]any{"id": r.ID, "ok": true})
	case "revoke":
		if err := c.revoke(r.Serial); err != nil {
			fail("revoke: %v", err)
			return
		}
		ch.send(map[string]any{"id": r.ID, "ok": true})
	case "ps":
		list := []map[string]any{}
		for _, g := range c.guests {
			state := "running"
			if g.stopped {
				state = "stopped"
			}
			list = append(list, map[string]any{"name": g.boot.Name, "vm": g.handle, "state": state, "status": g.status,
				"mem": g.boot.Mem, "cpus": g.boot.CPUs, "disks": g.diskInfo(), "net": g.netInfo()})
		}
		ch.send(map[string]any{"id": r.ID, "ok": true, "vms": list})
	case "stop":
		g := c.find(r.Name)
		if g == nil {
			fail("no VM named %q", r.Name)
			return
		}
		if code, _ := call(abi.VM_STOP, g.handle, abi.StatusStopped); code != abi.SUCCESS {
			fail("%s is not running", r.Name)
			return
		}
		ch.send(map[string]any{"id": r.ID, "ok": true})
	case "move":
		g := c.find(r.Name)
		if g == nil {
			fail("no VM named %q", r.Name)
			return
		}
		if r.VCPU < 0 || r.VCPU >= g.boot.CPUs || r.PCPU < 0 {
			fail("%s has vCPUs 0 to %d; physical CPUs are numbered from 0", r.Name, g.boot.CPUs-1)
			return
		}
		if code, _ := call(abi.VCPU_MOVE, g.handle, uint64(r.VCPU), uint64(r.PCPU)); code != abi.SUCCESS {
			fail("physical CPU %d: the machine has fewer CPUs", r.PCPU)
			return
		}
		ch.send(map[string]any{"id": r.ID, "ok": true})
	case "input":
		g := c.find(r.Name)
		if g == nil {
			fail("no VM named %q", r.Name)
			return
		}
		if len(g.input)+len(r.Data) > 1<<20 {
			fail("%s is not reading its console: input refused", r.Name)
			return
		}
		g.input = append(g.input, r.Data...)
		g.feed()
		ch.send(map[string]any{"id": r.ID, "ok": true})
	case "stats":
		c.sendStats(ch, r.ID)
	case "time":
		if r.Time == 0 {
			fail("time: no time given")
			return
		}
		setHostTime(r.Time)
		ch.send(map[string]any{"id": r.ID, "ok": true})
	case "shutdown":
		ch.send(map[string]any{"id": r.ID, "ok": true})
		c.shutdown = true
		c.broadcast("shutdown", "", map[string]any{"event": "shutdown"})
	default:
		if op := testOps[r.Op]; op != nil {
			op(c, ch, r)
			return
		}
		fail("unknown op %q (known: ping, ps, run, stop, move, input, attach, detach, stats, time, revoke, shutdown)", r.Op)
	}
}

func (c *control) sendStats(ch *session, id int) {
	freq := cpu.ReadCNTFRQ()
	list := []map[string]any{}
	for _, g := range c.guests {
		w, ok := stats(g.handle)
		if !ok {
			continue
		}
		exits := map[string]uint64{}
		for i, name := range abi.ExitReasons {
			if n := w[abi.StatExits+i]; n > 0 {
				exits[name] = n
			}
		}
		state := map[uint64]string{abi.StateCreated: "created", abi.StateRunning: "running", abi.StateStopped: "stopped"}[w[abi.StatState]]
		list = append(list, map[string]any{"name": g.boot.Name, "vm": g.handle, "state": state,
			"status": int32(w[abi.StatStatus]), "run_ms": w[abi.StatRunTicks] * 1000 / freq,
			"pages": w[abi.StatPages], "faults": w[abi.StatFaults], "vcpus": w[abi.StatVCPUs],
			"console_pending": w[abi.StatConsoleOut], "exits": exits, "disks": g.diskInfo(), "net": g.netInfo()})
	}
	m, _ := stats(0)
	var ds []map[string]any
	for _, d := range drives {
		var users []string
		for _, a := range d.attached {
			users = append(users, a.g.boot.Name)
		}
		e := map[string]any{"name": d.name, "bytes": d.blk.Size(), "ro": d.blk.ReadOnly(), "attached": users}
		ds = append(ds, e)
	}
	var cpus []map[string]uint64
	for i := uint64(0); i < m[abi.MachineCPUs]; i++ {
		if w, ok := cpuStats(i); ok {
			cpus = append(cpus, map[string]uint64{"cpu": i, "exits": w[abi.CPUStatExits],
				"vcpus": w[abi.CPUStatVCPUs], "run_ms": w[abi.CPUStatRunTicks] * 1000 / freq})
		}
	}
	ch.send(map[string]any{"id": id, "ok": true, "vms": list, "cpus": cpus, "net": c.netStats(), "machine": map[string]uint64{
		"pages": m[abi.MachinePages], "free": m[abi.MachineFree], "hypervisor": m[abi.MachineHypervisor],
		"control": m[abi.MachineControl], "guests": m[abi.MachineGuests], "shared": m[abi.MachineShared],
		"vms": m[abi.MachineVMs], "table_pages": m[abi.MachineTablePages],
		"invariant_checks": m[abi.MachineChecks], "invariant_violations": m[abi.MachineViolations],
		"control_restarts": m[abi.MachineRestarts], "dma_confined": m[abi.MachineDMAConfined],
		"dma_faults": m[abi.MachineDMAFaults]}, "drives": ds})
}
