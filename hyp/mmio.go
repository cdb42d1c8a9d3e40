package hyp

import (
	"fmt"

	"github.com/bulkhead-hv/bulkhead/cpu"
	"github.com/bulkhead-hv/bulkhead/hyp/virtq"
	"github.com/bulkhead-hv/bulkhead/mmu"
	"github.com/bulkhead-hv/bulkhead/vcpu"
)

// Device is an emulated MMIO device. Offsets are from the region's start;
// size is 1, 2, 4 or 8 bytes.
type Device interface {
	Read(off uint64, size int) uint64
	Write(off uint64, size int, value uint64)
}

type mmioRegion struct {
	ipa, size uint64
	dev       Device // nil: forwarded to the control partition
	// virtio, for a forwarded virtio-mmio transport, follows the guest's
	// queues for the control partition's mediated access (VM_VIRTQ_*).
	virtio *virtq.Transport
}

// pendingMMIO is an access a vCPU waits on the control partition for.
type pendingMMIO struct {
	ipa       uint64
	size      int
	reg       int // the register a read loads, 31 for XZR
	write     bool
	value     uint64
	sse, sf   bool // sign-extend, 64-bit register (ESR ISS)
	delivered bool // VM_MMIO_NEXT handed it out
}

// MaxMMIORegions is how many emulated or forwarded MMIO regions a VM may
// have: its vGIC and UART, and the control partition's devices.
const MaxMMIORegions = 64

// AddMMIO emulates dev at [ipa, ipa+size) in vm: guest accesses there, which
// stage 2 leaves unmapped, exit to the hypervisor and are handled by dev.
func (h *Hyp) AddMMIO(vm *VM, ipa, size uint64, dev Device) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if size == 0 || ipa+size < ipa || ipa+size > 1<<h.cfg.IPABits {
		return ErrIPARange
	}
	// Each region costs the hypervisor's heap, and every exit of the VM
	// looks through them: the control partition gets a bounded number.
	if len(vm.mmio) >= MaxMMIORegions {
		return fmt.Errorf("hyp: VM %q has %d MMIO regions already", vm.Name, MaxMMIORegions)
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
	vm.mmio = append(vm.mmio, mmioRegion{ipa: ipa, size: size, dev: dev})
	return nil
}

// ForwardMMIO sends vm's accesses to [ipa, ipa+size) to the control
// partition (VM_MMIO_MAP); with virtio set the range is a virtio-mmio
// transport whose queues the hypervisor follows.
func (h *Hyp) ForwardMMIO(vm *VM, ipa, size uint64, virtio bool) error {
	if ipa%mmu.PageSize != 0 || size%mmu.PageSize != 0 {
		return ErrIPARange
	}
	if err := h.AddMMIO(vm, ipa, size, nil); err != nil {
		return err
	}
	if virtio {
		vm.mmio[len(vm.mmio)-1].virtio = &virtq.Transport{}
	}
	return nil
}

// transport returns vm's virtio-mmio transport at ipa, if it has one.
func (vm *VM) transport(ipa uint64) *virtq.Transport {
	for _, m := range vm.mmio {
		if m.ipa == ipa && m.virtio != nil {
			return m.virtio
		}
	}
	return nil
}

// emulateMMIO handles a data abort on an emulated device. It needs the
// instruction syndrome (ISV): accesses without one (load/store pair,
// writeback forms) are not emulated and fault like any other. An access
// to a forwarded range leaves the vCPU waiting (Block) for the control
// partition's VM_MMIO_REPLY.
func (h *Hyp) emulateMMIO(v *VCPU, esr cpu.ESR, ipa uint64) (bool, Action) {
	vm, c := v.VM, &v.Ctx
	size, reg, ok := esr.Access()
	if !ok || esr.EC() != cpu.EC_DABT_LOW {
		return false, Resume
	}
	for _, m := range vm.mmio {
		if ipa < m.ipa || ipa+uint64(size) > m.ipa+m.size {
			continue
		}
		vm.Exits[ExitMMIO]++
		p := pendingMMIO{ipa: ipa, size: size, reg: reg, write: esr.Write(),
			sse: esr.ISS()&cpu.ISS_DA_SSE != 0, sf: esr.ISS()&cpu.ISS_DA_SF != 0}
		if p.write && reg != 31 { // x31 is XZR here
			p.value = c.X[reg]
			if size < 8 {
				p.value &= 1<<(8*size) - 1
			}
		}
		if m.virtio != nil && p.write && size == 4 && m.virtio.Observe(ipa-m.ipa, uint32(p.value)) {
			// A queue notification needs no answer: the vCPU runs on
			// and the control partition learns of it from
			// VM_MMIO_NEXT.
			complete(c, &p)
			h.wakeControl()
			return true, Resume
		}
		if m.dev == nil {
			pm := p // only this copy goes to the heap
			v.mmio = &pm
			h.wakeControl() // it waits on the control partition
			return true, Block
		}
		off := ipa - m.ipa
		if p.write {
			m.dev.Write(off, size, p.value)
		} else {
			p.value = m.dev.Read(off, size)
		}
		complete(c, &p)
		return true, Resume
	}
	return false, Resume
}

// complete finishes an access: a read's value goes to its register,
// narrowed and extended as the load would, and the vCPU moves past it.
func complete(c *vcpu.Context, p *pendingMMIO) {
	if !p.write {
		val := p.value
		if p.size < 8 {
			val &= 1<<(8*p.size) - 1
			// ISS.SSE: the load sign-extends to the register width.
			if p.sse && val&(1<<(8*p.size-1)) != 0 {
				val |= ^uint64(0) << (8 * p.size)
			}
			// ISS.SF clear: a W register, whose upper half is zero.
			if !p.sf {
				val &= 0xffffffff
			}
		}
		if p.reg != 31 {
			c.X[p.reg] = val
		}
	}
	c.SkipInstruction()
}
