package hyp

import (
	"encoding/binary"
	"errors"
	"strings"

	"github.com/bulkhead-hv/bulkhead/abi"
	"github.com/bulkhead-hv/bulkhead/gic"
	"github.com/bulkhead-hv/bulkhead/hyp/ledger"
	"github.com/bulkhead-hv/bulkhead/hyp/vgic"
	"github.com/bulkhead-hv/bulkhead/hyp/vuart"
	"github.com/bulkhead-hv/bulkhead/mmu"
	"github.com/bulkhead-hv/bulkhead/virtio/mmioreg"
)

// Created is a VM being built by the control partition: it has memory and
// vCPUs but does not run until VM_START.
const Created State = 2

// manage dispatches the control partition's management calls. Every
// argument is checked before anything changes; a refused call returns an
// error code and changes nothing.
func (h *Hyp) manage(v *VCPU, fid uint32) Action {
	c := &v.Ctx
	ret := func(code int64, vals ...uint64) Action {
		c.X[0] = abi.Word(code)
		copy(c.X[1:4], vals)
		return Resume
	}
	if v.VM.ID != ledger.Control {
		return ret(abi.DENIED)
	}
	target := func() *VM {
		for _, vm := range h.VMs() {
			if uint64(vm.ID) == c.X[1] && vm != h.control {
				return vm
			}
		}
		return nil
	}
	switch fid {
	case abi.VM_CREATE:
		var b [16]byte
		binary.LittleEndian.PutUint64(b[:], c.X[1])
		binary.LittleEndian.PutUint64(b[8:], c.X[2])
		name := strings.TrimRight(string(b[:]), "\x00")
		if name == "" || strings.ContainsRune(name, 0) {
			return ret(abi.INVALID_PARAMETER)
		}
		for _, o := range h.VMs() {
			if o.Name == name && o.State != Stopped {
				return ret(abi.BUSY)
			}
		}
		vm, err := h.CreateVM(name)
		if err != nil {
			return ret(abi.NO_MEMORY)
		}
		vm.State = Created
		return ret(abi.SUCCESS, uint64(vm.ID))
	case abi.VM_DONATE:
		vm := target()
		if vm == nil || c.X[5]&^7 != 0 {
			return ret(abi.INVALID_PARAMETER)
		}
		if vm.State != Created {
			return ret(abi.BUSY)
		}
		err := h.Donate(vm, c.X[2], c.X[3], c.X[4], mmu.Perm(c.X[5]))
		switch {
		case err == nil:
			return ret(abi.SUCCESS)
		case errors.Is(err, ledger.ErrNotOwner), errors.Is(err, ledger.ErrShared):
			return ret(abi.DENIED)
		case errors.Is(err, mmu.ErrNoTables):
			return ret(abi.NO_MEMORY)
		}
		return ret(abi.INVALID_PARAMETER)
	case abi.VCPU_CREATE:
		vm := target()
		if vm == nil || !vm.contains(c.X[2], 4) || c.X[2]%4 != 0 {
			return ret(abi.INVALID_PARAMETER)
		}
		if c.X[4]&^abi.VCPUOff != 0 || c.X[5] > uint64(len(h.pcpus)) {
			return ret(abi.INVALID_PARAMETER)
		}
		if vm.State != Created || len(vm.VCPUs) >= MaxVCPUs {
			return ret(abi.BUSY)
		}
		nv := h.AddVCPU(vm, c.X[2], c.X[3])
		nv.On = c.X[4]&abi.VCPUOff == 0
		if c.X[5] != 0 {
			nv.home = int(c.X[5] - 1)
		}
		return ret(abi.SUCCESS, uint64(nv.Index))
	case abi.VM_START:
		vm := target()
		if vm == nil {
			return ret(abi.INVALID_PARAMETER)
		}
		if vm.State != Created || len(vm.VCPUs) == 0 || !vm.VCPUs[0].On {
			return ret(abi.BUSY)
		}
		if err := h.StartDevices(vm); err != nil {
			return ret(abi.NO_MEMORY)
		}
		vm.State = Running
		for _, nv := range vm.VCPUs {
			if nv.On {
				h.enqueue(nv)
			}
		}
		h.announce(vm)
		return ret(abi.SUCCESS)
	case abi.VM_STATUS:
		vm := target()
		if vm == nil {
			return ret(abi.INVALID_PARAMETER)
		}
		return ret(abi.SUCCESS, vm.State.word(), uint64(vm.Status), vm.Why)
	case abi.VM_WAIT:
		for _, vm := range h.VMs() {
			if vm != h.control && vm.State == Stopped {
				return ret(abi.SUCCESS, uint64(vm.ID))
			}
		}
		h.waiter = v
		return Block
	case abi.VM_STOP:
		vm := target()
		if vm == nil {
			return ret(abi.INVALID_PARAMETER)
		}
		if vm.State == Stopped {
			return ret(abi.BUSY)
		}
		h.stop(vm, abi.StopByControl, int64(int32(c.X[2])), "stopped by the control partition with status %d", int32(c.X[2]))
		return ret(abi.SUCCESS)
	case abi.VM_CONSOLE_READ, abi.VM_CONSOLE_WRITE:
		vm := target()
		if vm == nil || !h.callerBuffer(c.X[2], c.X[3]) {
			return ret(abi.INVALID_PARAMETER)
		}
		if vm.uart == nil || vm.Echo {
			return ret(abi.SUCCESS, 0) // nothing comes or goes this way
		}
		b := h.scratch[:c.X[3]]
		if fid == abi.VM_CONSOLE_READ {
			n := vm.uart.Drain(b)
			h.phys.Write(c.X[2], b[:n])
			return ret(abi.SUCCESS, uint64(n))
		}
		h.phys.Read(c.X[2], b)
		return ret(abi.SUCCESS, uint64(vm.uart.Input(b)))
	case abi.VM_STATS:
		if !h.callerBuffer(c.X[2], abi.StatsWords*8) {
			return ret(abi.INVALID_PARAMETER)
		}
		var w [abi.StatsWords]uint64
		if c.X[1] == 0 {
			h.machineStats(&w)
		} else if vm := target(); vm != nil {
			h.vmStats(vm, &w)
		} else {
			return ret(abi.INVALID_PARAMETER)
		}
		h.writeWords(c.X[2], w[:])
		return ret(abi.SUCCESS, abi.StatsWords)
	case abi.CPU_STATS:
		if c.X[1] >= uint64(len(h.pcpus)) || !h.callerBuffer(c.X[2], abi.StatsWords*8) {
			return ret(abi.INVALID_PARAMETER)
		}
		var w [abi.StatsWords]uint64
		h.cpuStats(h.pcpus[c.X[1]], &w)
		h.writeWords(c.X[2], w[:])
		return ret(abi.SUCCESS, abi.NumCPUStats)
	case abi.VM_MMIO_MAP:
		vm := target()
		if vm == nil || vm.torn || c.X[4]&^abi.MapVirtio != 0 || h.ForwardMMIO(vm, c.X[2], c.X[3], c.X[4] == abi.MapVirtio) != nil {
			return ret(abi.INVALID_PARAMETER)
		}
		return ret(abi.SUCCESS)
	case abi.VM_MMIO_NEXT:
		if c.X[2] < abi.MMIOWords*8 || !h.callerBuffer(c.X[1], abi.MMIOWords*8) {
			return ret(abi.INVALID_PARAMETER)
		}
		for _, vm := range h.VMs() {
			if vm.State != Running {
				continue
			}
			for _, gv := range vm.VCPUs {
				p := gv.mmio
				if p == nil || p.delivered {
					continue
				}
				p.delivered = true
				w := [abi.MMIOWords]uint64{uint64(vm.ID), uint64(gv.Index), p.ipa, uint64(p.size), 0, p.value}
				if p.write {
					w[abi.MMIOWrite] = 1
				}
				h.writeWords(c.X[1], w[:])
				return ret(abi.SUCCESS, 1)
			}
		}
		// Then the queue notifications, which no vCPU waits on.
		for _, vm := range h.VMs() {
			if vm.State != Running {
				continue
			}
			for _, m := range vm.mmio {
				if m.virtio == nil {
					continue
				}
				if q, ok := m.virtio.TakeNotified(); ok {
					w := [abi.MMIOWords]uint64{uint64(vm.ID), abi.MMIONoVCPU, m.ipa + mmioreg.QueueNotify, 4, abi.MMIONotify, uint64(q)}
					h.writeWords(c.X[1], w[:])
					return ret(abi.SUCCESS, 1)
				}
			}
		}
		return ret(abi.SUCCESS, 0)
	case abi.VM_MMIO_REPLY:
		vm := target()
		if vm == nil || c.X[2] >= uint64(len(vm.VCPUs)) {
			return ret(abi.INVALID_PARAMETER)
		}
		gv := vm.VCPUs[c.X[2]]
		if gv.mmio == nil || !gv.mmio.delivered {
			return ret(abi.BUSY) // no access of its waits for an answer
		}
		gv.mmio.value = c.X[3]
		complete(&gv.Ctx, gv.mmio)
		gv.mmio = nil
		h.wake(gv)
		return ret(abi.SUCCESS)
	case abi.VCPU_MOVE:
		vm := target()
		if vm == nil || c.X[2] >= uint64(len(vm.VCPUs)) || c.X[3] >= uint64(len(h.pcpus)) {
			return ret(abi.INVALID_PARAMETER)
		}
		h.move(vm.VCPUs[c.X[2]], int(c.X[3]))
		return ret(abi.SUCCESS)
	case abi.VM_IRQ_LINE:
		vm, intid, level := target(), c.X[2], c.X[3]
		switch {
		case vm == nil || intid < vgic.FirstSPI || intid >= vgic.FirstSPI+NumSPIs || level > 1:
			return ret(abi.INVALID_PARAMETER)
		case !h.emulatedSPI(vm, uint32(intid)):
			return ret(abi.DENIED)
		case vm.State != Running || vm.vgic == nil:
			return ret(abi.BUSY)
		}
		if gc := vm.vgic.SetLevel(0, uint32(intid), level == 1); gc != nil {
			h.notify(vm.VCPUs[gc.Index])
		}
		return ret(abi.SUCCESS)
	case abi.VM_LIST:
		if !h.callerBuffer(c.X[2], c.X[3]) || c.X[3] < abi.ListWords*8 {
			return ret(abi.INVALID_PARAMETER)
		}
		n, total := h.listVMs(c.X[1], c.X[2], c.X[3])
		return ret(abi.SUCCESS, n, total)
	case abi.VM_VIRTQ_POP, abi.VM_VIRTQ_READ, abi.VM_VIRTQ_WRITE, abi.VM_VIRTQ_PUSH:
		vm := target()
		if vm == nil {
			return ret(abi.INVALID_PARAMETER)
		}
		return ret(h.virtq(vm, fid, c))
	case abi.VM_DESTROY:
		vm := target()
		if vm == nil {
			return ret(abi.INVALID_PARAMETER)
		}
		// x1 = 0 with BUSY: nothing was reclaimed, which the caller tells
		// from a reclaim that stopped part way by x1 (the handle would
		// stay there otherwise).
		if vm.State == Running {
			return ret(abi.BUSY, 0)
		}
		for _, v := range vm.VCPUs {
			if v.running {
				// Stopped, but still leaving the guest on another CPU.
				return ret(abi.BUSY, 0)
			}
		}
		vm.State = Stopped
		n, err := h.DestroyVM(vm)
		h.CheckInvariants()
		if err != nil {
			return ret(abi.BUSY, uint64(n))
		}
		return ret(abi.SUCCESS, uint64(n))
	}
	return ret(abi.NOT_SUPPORTED)
}

// emulatedSPI reports whether the control partition may drive SPI intid
// of vm: not the line of a device the hypervisor models (the UART), nor a
// physical interrupt assigned to the VM, which only its device raises.
func (h *Hyp) emulatedSPI(vm *VM, intid uint32) bool {
	if intid == vuart.IntID {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	o, assigned := h.irqs.Owner(intid)
	return !assigned || o != gic.Owner(vm.ID)
}

// notifyStopped completes a VM_WAIT when a VM stops.
func (h *Hyp) notifyStopped(vm *VM) {
	w := h.waiter
	if w == nil || vm == h.control {
		return
	}
	h.waiter = nil
	w.Ctx.X[0] = abi.SUCCESS
	w.Ctx.X[1] = uint64(vm.ID)
	w.blocked = true // VM_WAIT blocked it like a WFI
	h.wake(w)
}

// callerBuffer checks that [pa, pa+n) is a non-empty buffer within one
// page that the control partition owns: the hypervisor copies to and from
// nothing else on its behalf.
func (h *Hyp) callerBuffer(pa, n uint64) bool {
	if n == 0 || n > ledger.PageSize || pa/ledger.PageSize != (pa+n-1)/ledger.PageSize {
		return false
	}
	owner, borrower, ok := h.Ledger.Owner(pa)
	return ok && owner == ledger.Control && borrower == ledger.None
}

// word is how the ABI numbers a VM's state (VM_STATUS, VM_STATS).
func (s State) word() uint64 {
	switch s {
	case Created:
		return abi.StateCreated
	case Running:
		return abi.StateRunning
	}
	return abi.StateStopped
}

// writeWords stores words, little-endian, in the control partition's
// buffer at pa (checked by callerBuffer).
func (h *Hyp) writeWords(pa uint64, words []uint64) {
	var b [abi.StatsWords * 8]byte // the longest answer
	for i, x := range words {
		binary.LittleEndian.PutUint64(b[8*i:], x)
	}
	h.phys.Write(pa, b[:8*len(words)])
}

func (h *Hyp) vmStats(vm *VM, w *[abi.StatsWords]uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	w[abi.StatState] = vm.State.word()
	w[abi.StatStatus] = uint64(vm.Status)
	w[abi.StatRunTicks] = vm.RunTicks
	for _, r := range vm.RAM {
		w[abi.StatPages] += r.Size / ledger.PageSize
	}
	w[abi.StatFaults] = uint64(vm.Faults)
	if vm.uart != nil {
		w[abi.StatConsoleOut] = uint64(vm.uart.Pending())
	}
	w[abi.StatVCPUs] = uint64(len(vm.VCPUs))
	for i, n := range vm.exits() {
		w[abi.StatExits+i] = uint64(n)
	}
}

func (h *Hyp) cpuStats(p *pcpu, w *[abi.StatsWords]uint64) {
	w[abi.CPUStatExits], w[abi.CPUStatRunTicks] = p.exits+p.fastExits.Load(), p.runTicks
	for _, vm := range h.VMs() {
		for _, v := range vm.VCPUs {
			if v.home == p.id {
				w[abi.CPUStatVCPUs]++
			}
		}
	}
}

func (h *Hyp) machineStats(w *[abi.StatsWords]uint64) {
	c := h.Ledger.Count()
	w[abi.MachinePages] = uint64(c.Free + c.Hypervisor + c.Control)
	for _, n := range c.Guests {
		w[abi.MachinePages] += uint64(n)
		w[abi.MachineGuests] += uint64(n)
	}
	w[abi.MachineFree] = uint64(c.Free)
	w[abi.MachineHypervisor] = uint64(c.Hypervisor)
	w[abi.MachineControl] = uint64(c.Control)
	w[abi.MachineShared] = uint64(c.Shared)
	for _, vm := range h.VMs() {
		if vm != h.control {
			w[abi.MachineVMs]++
		}
	}
	w[abi.MachineTablePages] = uint64(h.pool.Free())
	h.CheckInvariants()
	w[abi.MachineChecks], w[abi.MachineViolations] = h.checks, h.violations
	w[abi.MachineRestarts] = h.restarts
	w[abi.MachineCPUs] = uint64(len(h.pcpus))
	if h.dma != nil {
		w[abi.MachineDMAFaults], w[abi.MachineDMAConfined] = h.dma.Faults(), 1
	}
}

// listVMs writes VM_LIST's entries from the first'th on into the caller's
// buffer at pa, n bytes (checked by callerBuffer), and returns how many it
// wrote and how many there are.
func (h *Hyp) listVMs(first, pa, n uint64) (written, total uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, vm := range h.vms {
		if vm == h.control {
			continue
		}
		var name [16]byte
		copy(name[:], vm.Name)
		regions := vm.RAM
		if len(regions) == 0 {
			regions = []Region{{}}
		}
		for _, r := range regions {
			if total >= first && (written+1)*abi.ListWords*8 <= n {
				w := [abi.ListWords]uint64{abi.ListVM: uint64(vm.ID), abi.ListState: vm.State.word(),
					abi.ListStatus: uint64(vm.Status), abi.ListWhy: vm.Why, abi.ListVCPUs: uint64(len(vm.VCPUs)),
					abi.ListName: binary.LittleEndian.Uint64(name[:]), abi.ListName + 1: binary.LittleEndian.Uint64(name[8:]),
					abi.ListPA: r.PA, abi.ListIPA: r.IPA, abi.ListSize: r.Size}
				h.writeWords(pa+written*abi.ListWords*8, w[:])
				written++
			}
			total++
		}
	}
	return written, total
}
