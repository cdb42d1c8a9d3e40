//go:build tamago

package main

import (
	"fmt"
	"unsafe"

	"github.com/bulkhead-hv/bulkhead/board/qemuvirt"
	"github.com/bulkhead-hv/bulkhead/cpu"
	"github.com/bulkhead-hv/bulkhead/hyp"
	"github.com/bulkhead-hv/bulkhead/mmu"
	"github.com/bulkhead-hv/bulkhead/smmu"
)

// pciStreamBits covers the root bus's requester IDs (device and function,
// 8 bits), which are the stream IDs under QEMU virt's identity iommu-map:
// the control partition drives the functions there, and a stream from
// any other bus finds no entry and aborts.
const pciStreamBits = 8

// The control partition's devices' address space in the SMMU.
const controlASID = 1

// pciConfig is what the control partition gets of the PCIe host bridge:
// the root bus's ECAM and the start of the 32-bit BAR window.
const (
	pciECAMSize = 1 << 20
	pciMemSize  = 16 << 20
)

// iommu is the SMMU confining the control partition's devices, if any.
type iommu struct {
	s    *smmu.SMMU
	d    *smmu.Domain
	lost uint64 // overflows reported
}

func (v *iommu) Map(pa, size uint64) error   { return v.d.Map(pa, size) }
func (v *iommu) Unmap(pa, size uint64) error { return v.d.Unmap(pa, size) }
func (v *iommu) Faults() uint64              { return v.s.Faults() }

// pollReports bounds the events printed per poll: a device that keeps
// faulting must not keep CPU 0's scheduler on the console.
const pollReports = 4

// poll reports the transactions the SMMU stopped since the last call.
func (v *iommu) poll() {
	ev := v.s.Poll()
	if l := v.s.Lost(); l != v.lost {
		v.lost = l
		fmt.Printf("bulkhead: SMMU: the event queue overflowed: stopped transactions went unreported (%d times so far)\n", l)
	}
	for i, e := range ev {
		if i == pollReports {
			fmt.Printf("bulkhead: SMMU: and %d more stopped transactions\n", len(ev)-i)
			break
		}
		fmt.Printf("bulkhead: SMMU: DMA stopped: %v (PCI %02x:%02x.%d)\n", e, e.Stream>>8, e.Stream>>3&31, e.Stream&7)
	}
}

// confineDMA brings up the SMMU in front of the PCIe host bridge with
// every root bus stream in one domain, empty until the control partition
// exists and then equal to its RAM. It returns nil when the machine has
// no SMMU there: the control partition's devices are then unconfined.
func confineDMA(m *qemuvirt.Machine) (*iommu, error) {
	if len(m.SMMU) == 0 || len(m.ECAM) == 0 || !m.PCIBehindSMMU {
		fmt.Printf("bulkhead: DMA: not confined: no SMMUv3 in front of a PCIe host bridge (QEMU: -machine virt,iommu=smmuv3); the control partition's devices can reach all of RAM\n")
		return nil, nil
	}
	mem := &smmuMem{}
	s, err := smmu.New(qemuvirt.MMIO{}, m.SMMU[0].Addr, mem, pciStreamBits)
	if err != nil {
		return nil, err
	}
	// The domain's tables come from the heap, not the stage 2 pool, whose
	// pages must all be back when the machine stops.
	d, err := s.NewDomain(mem, 48, controlASID)
	if err != nil {
		return nil, err
	}
	for sid := uint32(0); sid < uint32(s.Streams()); sid++ {
		if err := d.Attach(sid); err != nil {
			return nil, err
		}
	}
	fmt.Printf("bulkhead: DMA: SMMUv3 at %#x confines PCIe streams 0-%d to the control partition's RAM (stage 1, ASID %d); other streams abort\n",
		m.SMMU[0].Addr, s.Streams()-1, controlASID)
	return &iommu{s: s, d: d}, nil
}

// smmuMem is the SMMU's memory, from the hypervisor's heap: EL2's map is
// the identity, so an address is its physical address, and no other
// compartment maps the hypervisor's pages. It is kept for good.
type smmuMem struct{ keep [][]uint64 }

func (m *smmuMem) Alloc(n, align int) ([]uint64, uint64) {
	w := make([]uint64, (n+align)/8)
	off := (uintptr(align) - uintptr(unsafe.Pointer(&w[0]))%uintptr(align)) % uintptr(align) / 8
	w = w[off : off+uintptr(n/8)]
	m.keep = append(m.keep, w)
	return w, uint64(uintptr(unsafe.Pointer(&w[0])))
}

func (*smmuMem) Barrier() { cpu.DSB() }

// AllocTable and Table serve the domain's translation tables (mmu.Memory).
func (m *smmuMem) AllocTable() (uint64, bool) {
	_, pa := m.Alloc(mmu.PageSize, mmu.PageSize)
	return pa, true
}

func (m *smmuMem) Table(pa uint64) *[mmu.Entries]uint64 {
	return (*[mmu.Entries]uint64)(unsafe.Pointer(uintptr(pa)))
}

// passPCI gives the control partition the host bridge's root bus ECAM and
// the start of its BAR window, and returns the boot information line that
// tells it where they are.
func passPCI(h *hyp.Hyp, ctl *hyp.VM, m *qemuvirt.Machine) (string, error) {
	mem := min(m.PCIMem.Size, pciMemSize)
	if mem == 0 {
		return "", fmt.Errorf("the PCIe host bridge has no 32-bit memory window")
	}
	if err := h.PassThrough(ctl, m.ECAM[0].Addr, pciECAMSize); err != nil {
		return "", err
	}
	if err := h.PassThrough(ctl, m.PCIMem.Addr, mem); err != nil {
		return "", err
	}
	return fmt.Sprintf("pci=%#x:%#x:%#x:%#x ", m.ECAM[0].Addr, pciECAMSize, m.PCIMem.Addr, mem), nil
}

// stopPCIDMA turns off Bus Master and decoding in every function on the
// root bus (PCI Local Bus 3.0, 6.2.2, the Command register), so that none
// keeps writing, by DMA a crashed control partition set up, into memory
// the next one is loaded over: the SMMU confines that DMA to the control
// partition's RAM, but not to its old buffers.
func stopPCIDMA(m *qemuvirt.Machine) {
	const vendorID, command = 0x00, 0x04
	var bus qemuvirt.MMIO
	for fn := uint64(0); fn < 256; fn++ {
		cfg := m.ECAM[0].Addr + fn<<12
		if bus.Read32(cfg+vendorID)&0xffff == 0xffff {
			continue
		}
		// The upper half is Status, whose bits clear when written with 1.
		bus.Write32(cfg+command, 0)
	}
}
