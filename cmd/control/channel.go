//go:build tamago

package main

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/bulkhead-hv/bulkhead/abi"
	vm "github.com/bulkhead-hv/bulkhead/board/bulkheadvm"
	"github.com/bulkhead-hv/bulkhead/cpu"
	"github.com/bulkhead-hv/bulkhead/hyp"
	"github.com/bulkhead-hv/bulkhead/virtio"
	"github.com/bulkhead-hv/bulkhead/virtio/mmioreg"
)

// The host channel: a virtio console, carrying one JSON object per line.
// Requests carry an "id" the answer repeats, so several can share it.
type channel struct {
	rx, tx  *virtio.Queue
	pending []byte
	// upload is a run request whose image and initrd are still arriving.
	upload *request
	// active says the last requests call received bytes, or an upload
	// is under way.
	active bool
}

// virtio-mmio transports on QEMU virt, which the hypervisor passes through.
func transports() []uint64 {
	var out []uint64
	for i := uint64(0); i < 32; i++ {
		out = append(out, 0x0a000000+0x200*i)
	}
	return out
}

var dma vm.DMA

func openChannel() *channel {
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
	return &channel{rx: rx, tx: tx}
}

func (c *channel) send(v any) {
	b, _ := json.Marshal(v)
	c.tx.Send(append(b, '\n'), func() { vm.Hypercall(abi.YIELD) })
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

	// An upload lands in pool memory (staging, at got bytes so far), not
	// in the heap: a 30 MB kernel does not fit there. refused says why it
	// is being read only to be thrown away.
	staging []byte
	stagePA uint64
	got     uint64
	refused string
}

// requests returns the complete requests received so far.
func (c *channel) requests() []request {
	got := c.rx.Receive()
	c.active = len(got) > 0 || c.upload != nil
	c.pending = append(c.pending, got...)
	var out []request
	for {
		if u := c.upload; u != nil {
			n := min(uint64(len(c.pending)), u.Size+u.InitrdSize-u.got)
			if u.staging != nil {
				copy(u.staging[u.got:], c.pending[:n])
			}
			u.got += n
			c.pending = c.pending[n:]
			if u.got < u.Size+u.InitrdSize {
				return out
			}
			out = append(out, *u)
			c.upload = nil
		}
		i := bytes.IndexByte(c.pending, '\n')
		if i < 0 {
			return out
		}
		line := c.pending[:i]
		c.pending = c.pending[i+1:]
		var r request
		if err := json.Unmarshal(line, &r); err != nil {
			c.send(map[string]any{"ok": false, "error": "not a JSON request: " + err.Error()})
			continue
		}
		if r.Op == "run" {
			total := r.Size + r.InitrdSize
			if r.Size == 0 || total > abi.MaxUpload || total < r.Size {
				c.send(map[string]any{"id": r.ID, "ok": false, "error": fmt.Sprintf("image size %d, initrd size %d: want an image of 1 byte to %d MiB in all", r.Size, r.InitrdSize, abi.MaxUpload>>20)})
				// The bytes that follow cannot be told from requests.
				c.pending = nil
				continue
			}
			pa, err := placer.Place((total + 2<<20 - 1) &^ (2<<20 - 1))
			if err != nil {
				r.refused = fmt.Sprintf("no room to receive %d MiB: %v", total>>20, err)
			} else {
				r.stagePA, r.staging = pa, mem(pa, total)
			}
			c.upload = &r
			continue
		}
		out = append(out, r)
	}
}

// testOps are requests that test builds add (crash.go).
var testOps map[string]func(c *control, r request)

// serve answers one request.
func (c *control) serve(r request) {
	ch := c.ch
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
		ch.send(map[string]any{"id": r.ID, "ok": true, "vm": g.handle})
	case "ping":
		ch.send(map[string]any{"id": r.ID, "ok": true, "abi": fmt.Sprintf("%d.%d", abi.VersionMajor, abi.VersionMinor)})
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
		c.sendStats(r.ID)
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
	default:
		if op := testOps[r.Op]; op != nil {
			op(c, r)
			return
		}
		fail("unknown op %q (known: ping, ps, run, stop, move, input, stats, time, shutdown)", r.Op)
	}
}

func (c *control) sendStats(id int) {
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
	c.ch.send(map[string]any{"id": id, "ok": true, "vms": list, "cpus": cpus, "machine": map[string]uint64{
		"pages": m[abi.MachinePages], "free": m[abi.MachineFree], "hypervisor": m[abi.MachineHypervisor],
		"control": m[abi.MachineControl], "guests": m[abi.MachineGuests], "shared": m[abi.MachineShared],
		"vms": m[abi.MachineVMs], "table_pages": m[abi.MachineTablePages],
		"invariant_checks": m[abi.MachineChecks], "invariant_violations": m[abi.MachineViolations],
		"control_restarts": m[abi.MachineRestarts], "dma_confined": m[abi.MachineDMAConfined],
		"dma_faults": m[abi.MachineDMAFaults]}, "drives": ds})
}
