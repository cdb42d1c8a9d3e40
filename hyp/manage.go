package hyp

import (
	"encoding/binary"
	"errors"
	"strings"

	"github.com/bulkhead-hv/bulkhead/abi"
	"github.com/bulkhead-hv/bulkhead/hyp/ledger"
	"github.com/bulkhead-hv/bulkhead/mmu"
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
		if vm.State != Created || len(vm.VCPUs) >= MaxVCPUs {
			return ret(abi.BUSY)
		}
		nv := h.AddVCPU(vm, c.X[2], c.X[3])
		return ret(abi.SUCCESS, uint64(nv.Index))
	case abi.VM_START:
		vm := target()
		if vm == nil {
			return ret(abi.INVALID_PARAMETER)
		}
		if vm.State != Created || len(vm.VCPUs) == 0 {
			return ret(abi.BUSY)
		}
		if err := h.StartVGIC(vm); err != nil {
			return ret(abi.NO_MEMORY)
		}
		vm.State = Running
		for _, nv := range vm.VCPUs {
			h.runq = append(h.runq, nv)
		}
		return ret(abi.SUCCESS)
	case abi.VM_STATUS:
		vm := target()
		if vm == nil {
			return ret(abi.INVALID_PARAMETER)
		}
		state := map[State]uint64{Created: abi.StateCreated, Running: abi.StateRunning, Stopped: abi.StateStopped}[vm.State]
		return ret(abi.SUCCESS, state, uint64(vm.Status))
	case abi.VM_WAIT:
		for _, vm := range h.VMs() {
			if vm != h.control && vm.State == Stopped {
				return ret(abi.SUCCESS, uint64(vm.ID))
			}
		}
		h.waiter = v
		return Block
	case abi.VM_DESTROY:
		vm := target()
		if vm == nil {
			return ret(abi.INVALID_PARAMETER)
		}
		if vm.State == Running {
			return ret(abi.BUSY)
		}
		vm.State = Stopped
		n, err := h.DestroyVM(vm)
		if err != nil {
			return ret(abi.BUSY, uint64(n))
		}
		return ret(abi.SUCCESS, uint64(n))
	}
	return ret(abi.NOT_SUPPORTED)
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
