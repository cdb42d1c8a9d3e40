package hyp

import (
	"fmt"

	"github.com/bulkhead-hv/bulkhead/cpu"
)

// Device is an emulated MMIO device. Offsets are from the region's start;
// size is 1, 2, 4 or 8 bytes.
type Device interface {
	Read(off uint64, size int) uint64
	Write(off uint64, size int, value uint64)
}

type mmioRegion struct {
	ipa, size uint64
	dev       Device
}

// AddMMIO emulates dev at [ipa, ipa+size) in vm: guest accesses there, which
// stage 2 leaves unmapped, exit to the hypervisor and are handled by dev.
func (h *Hyp) AddMMIO(vm *VM, ipa, size uint64, dev Device) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if size == 0 || ipa+size < ipa {
		return ErrIPARange
	}
	for _, r := range vm.RAM {
		if ipa < r.IPA+r.Size && r.IPA < ipa+size {
			return fmt.Errorf("hyp: MMIO range [%#x, +%#x) overlaps the VM's RAM", ipa, size)
		}
	}
	for _, m := range vm.mmio {
		if ipa < m.ipa+m.size && m.ipa < ipa+size {
			return fmt.Errorf("hyp: MMIO range [%#x, +%#x) overlaps another device", ipa, size)
		}
	}
	vm.mmio = append(vm.mmio, mmioRegion{ipa, size, dev})
	return nil
}

// emulateMMIO handles a data abort on an emulated device. It needs the
// instruction syndrome (ISV): accesses without one (load/store pair,
// writeback forms) are not emulated and fault like any other.
func (h *Hyp) emulateMMIO(v *VCPU, esr cpu.ESR, ipa uint64) bool {
	vm, c := v.VM, &v.Ctx
	size, reg, ok := esr.Access()
	if !ok || esr.EC() != cpu.EC_DABT_LOW {
		return false
	}
	for _, m := range vm.mmio {
		if ipa < m.ipa || ipa+uint64(size) > m.ipa+m.size {
			continue
		}
		off := ipa - m.ipa
		if esr.Write() {
			var val uint64
			if reg != 31 { // x31 is XZR here
				val = c.X[reg]
			}
			if size < 8 {
				val &= 1<<(8*size) - 1
			}
			m.dev.Write(off, size, val)
		} else {
			val := m.dev.Read(off, size)
			if size < 8 {
				val &= 1<<(8*size) - 1
				// ISS.SSE: the load sign-extends to the register width.
				if esr.ISS()&cpu.ISS_DA_SSE != 0 && val&(1<<(8*size-1)) != 0 {
					val |= ^uint64(0) << (8 * size)
				}
				// ISS.SF clear: a W register, whose upper half is zero.
				if esr.ISS()&cpu.ISS_DA_SF == 0 {
					val &= 0xffffffff
				}
			}
			if reg != 31 {
				c.X[reg] = val
			}
		}
		vm.Exits[ExitMMIO]++
		c.SkipInstruction()
		return true
	}
	return false
}
