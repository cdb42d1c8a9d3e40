//go:build proofs

package proofs

import (
	"sort"

	"github.com/bulkhead-hv/bulkhead/hyp"
	"github.com/bulkhead-hv/bulkhead/hyp/ledger"
	"github.com/bulkhead-hv/bulkhead/mmu"
)

// Seeded bugs in the stage 2 half: each wraps the real Hyp (through its
// exported API and fields only) to behave the way a plausible mistake in
// hyp/vm.go would. The harness must tell every one of them from the model.

func ramCopy(vm *hyp.VM) []hyp.Region { return append([]hyp.Region(nil), vm.RAM...) }

func sortRAM(vm *hyp.VM) {
	sort.Slice(vm.RAM, func(i, j int) bool { return vm.RAM[i].IPA < vm.RAM[j].IPA })
}

// destroySkipsUnmap is DestroyVM without its unmapping loop: the tables
// are freed and the pages reclaimed, but no entry is broken and nothing
// invalidated, so the translations survive in the TLBs.
type destroySkipsUnmap struct{ realS2 }

func (m destroySkipsUnmap) DestroyVM(vm *hyp.VM) (int, error) {
	ram := ramCopy(vm)
	vm.RAM = nil
	n, err := m.realS2.DestroyVM(vm)
	if err != nil {
		vm.RAM = ram
	}
	return n, err
}

// destroyFirstRegionOnly unmaps only the VM's first region: the others'
// translations survive in the TLBs.
type destroyFirstRegionOnly struct{ realS2 }

func (m destroyFirstRegionOnly) DestroyVM(vm *hyp.VM) (int, error) {
	ram := ramCopy(vm)
	if len(vm.RAM) > 1 {
		vm.RAM = vm.RAM[:1]
	}
	n, err := m.realS2.DestroyVM(vm)
	if err != nil {
		vm.RAM = ram
	}
	return n, err
}

// destroyKeepsMap reclaims the pages in the ledger but leaves the VM and
// its stage 2 map in place: its translations survive in the tables, to
// pages now the control partition's.
type destroyKeepsMap struct{ realS2 }

func (m destroyKeepsMap) DestroyVM(vm *hyp.VM) (int, error) {
	vm.State = hyp.Stopped
	return m.h.Ledger.Reclaim(vm.ID)
}

// nopMem zeroes nothing.
type nopMem struct{}

func (nopMem) Zero(uint64) error { return nil }

// mapBeforeCheck maps first and asks the ledger after, and does not undo
// the mapping when the ledger refuses. (The real Hyp.Donate runs against a
// ledger that accepts every donation, then the real ledger decides.)
type mapBeforeCheck struct{ realS2 }

func (m mapBeforeCheck) Donate(vm *hyp.VM, pa, ipa, size uint64, perm mmu.Perm) error {
	real := m.h.Ledger
	n := int((real.End() - real.Base()) / ledger.PageSize)
	yes := ledger.New(real.Base(), n, nopMem{})
	if err := yes.Assign(real.Base(), uint64(n)*ledger.PageSize, ledger.Control); err != nil {
		panic(err)
	}
	ram := ramCopy(vm)
	m.h.Ledger = yes
	err := m.h.Donate(vm, pa, ipa, size, perm) // the IPA checks, then the map
	m.h.Ledger = real
	if err != nil {
		return err
	}
	if err := real.Donate(pa, size, vm.ID); err != nil {
		vm.RAM = ram // refused: not recorded, and not unmapped
		return err
	}
	return nil
}

// donateWritable maps every donation writable, whatever was asked.
type donateWritable struct{ realS2 }

func (m donateWritable) Donate(vm *hyp.VM, pa, ipa, size uint64, perm mmu.Perm) error {
	return m.h.Donate(vm, pa, ipa, size, perm|mmu.Write)
}

// donateNoOverlapCheck forgets that the IPA range may overlap the VM's
// memory: the map fails, and its clean-up unmaps what was there.
type donateNoOverlapCheck struct{ realS2 }

func (m donateNoOverlapCheck) Donate(vm *hyp.VM, pa, ipa, size uint64, perm mmu.Perm) error {
	ram := ramCopy(vm)
	vm.RAM = nil
	err := m.h.Donate(vm, pa, ipa, size, perm)
	vm.RAM = append(ram, vm.RAM...)
	sortRAM(vm)
	return err
}

// translateOther is a VM's walk that, where the VM maps nothing, returns
// another VM's translation of the same IPA (tables shared by mistake).
type translateOther struct{ realS2 }

func (m translateOther) Translate(vm *hyp.VM, ipa uint64) (uint64, mmu.Perm, bool) {
	if pa, p, ok := vm.Translate(ipa); ok {
		return pa, p, ok
	}
	for _, o := range m.h.VMs() {
		if o != vm {
			if pa, p, ok := o.Translate(ipa); ok {
				return pa, p, ok
			}
		}
	}
	return 0, 0, false
}

// translateIgnoresPerm reports every translation readable, writable and
// executable.
type translateIgnoresPerm struct{ realS2 }

func (m translateIgnoresPerm) Translate(vm *hyp.VM, ipa uint64) (uint64, mmu.Perm, bool) {
	pa, _, ok := vm.Translate(ipa)
	return pa, mmu.Read | mmu.Write | mmu.Exec, ok
}

func stage2Mutant(name string, mk Stage2Factory) mutant { return mutant{name, Variant{realLedger, mk}} }

var stage2Mutants = []mutant{
	stage2Mutant("DestroyVM skips unmapping (stale TLB entries survive)", func(h *hyp.Hyp) Stage2 {
		return destroySkipsUnmap{realS2{h}}
	}),
	stage2Mutant("DestroyVM unmaps only the first region", func(h *hyp.Hyp) Stage2 {
		return destroyFirstRegionOnly{realS2{h}}
	}),
	stage2Mutant("DestroyVM leaves the VM's stage 2 map in place", func(h *hyp.Hyp) Stage2 {
		return destroyKeepsMap{realS2{h}}
	}),
	stage2Mutant("Donate maps before checking the ledger, no roll back on refusal", func(h *hyp.Hyp) Stage2 {
		return mapBeforeCheck{realS2{h}}
	}),
	stage2Mutant("Donate maps with the wrong permissions (always writable)", func(h *hyp.Hyp) Stage2 {
		return donateWritable{realS2{h}}
	}),
	stage2Mutant("Donate skips the IPA overlap check", func(h *hyp.Hyp) Stage2 {
		return donateNoOverlapCheck{realS2{h}}
	}),
	stage2Mutant("VM translate returns another VM's mapping", func(h *hyp.Hyp) Stage2 {
		return translateOther{realS2{h}}
	}),
	stage2Mutant("VM translate ignores the permissions", func(h *hyp.Hyp) Stage2 {
		return translateIgnoresPerm{realS2{h}}
	}),
}
