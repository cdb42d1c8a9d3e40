// Package bulkheadvm runs a TamaGo program as a Bulkhead guest: at EL1, in
// the virtual machine the hypervisor gives it (RAM at 0x40000000 as on
// QEMU virt), with its console and exit through hypercalls.
//
// It implements TamaGo's runtime hooks with the project's own CPU layer:
// cpuinit at EL1, an EL1 stage 1 map (W^X for the image, every other
// address mapped so that only stage 2 decides what the guest may reach),
// the counter for time, RNDR for randomness and an EL1 vector table that
// turns unexpected exceptions into a reported exit.
package bulkheadvm

import "github.com/bulkhead-hv/bulkhead/mmu"

// The memory layout (RAMBase, RAMSize, TextBase, PoolBase, PoolEnd) is in
// layout_guest.go, or layout_control.go for the control partition.
const (
	// StackOffset leaves the top 64 KiB for the exception stack.
	StackOffset = 64 << 10
	// VABits covers the first 512 GiB of IPA space with one level 1 table.
	VABits = 39
)

// Image is where the linker put the guest's sections (see qemuvirt.Image).
type Image struct {
	Text, ROData, NoPtrData, End uint64
}

func pageUp(v uint64) uint64   { return (v + mmu.PageSize - 1) &^ (mmu.PageSize - 1) }
func pageDown(v uint64) uint64 { return v &^ (mmu.PageSize - 1) }

// Map builds the guest's EL1 stage 1 map: the image W^X, the rest of its
// RAM and of its memory pool read/write, and every other address below
// 2^VABits as device memory,
// so that a stray access reaches stage 2 and the hypervisor's verdict
// rather than stopping at the guest's own tables. Nothing allocates.
func Map(t *mmu.Tables, img Image) error {
	ramEnd := uint64(RAMBase + RAMSize)
	dataLo := pageDown(img.NoPtrData)
	regions := [...]struct {
		lo, hi uint64
		attrs  uint64
	}{
		{0, PoolBase, mmu.S1EL1Device()},
		{PoolBase, RAMBase, mmu.S1EL1Normal(mmu.Read | mmu.Write)},
		{RAMBase, img.Text, mmu.S1EL1Normal(mmu.Read | mmu.Write)},
		{img.Text, pageDown(img.ROData), mmu.S1EL1Normal(mmu.Read | mmu.Exec)},
		{pageDown(img.ROData), dataLo, mmu.S1EL1Normal(mmu.Read)},
		{dataLo, ramEnd, mmu.S1EL1Normal(mmu.Read | mmu.Write)},
		{ramEnd, PoolEnd, mmu.S1EL1Normal(mmu.Read | mmu.Write)},
		{PoolEnd, 1 << VABits, mmu.S1EL1Device()},
	}
	for _, r := range regions {
		if r.hi <= r.lo {
			continue
		}
		if err := t.Map(r.lo, r.lo, r.hi-r.lo, r.attrs); err != nil {
			return err
		}
	}
	return nil
}
