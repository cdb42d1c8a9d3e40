package hyp

import (
	"fmt"

	"github.com/bulkhead-hv/bulkhead/hyp/ledger"
	"github.com/bulkhead-hv/bulkhead/mmu"
)

// CheckInvariants checks, on the live state, what the proofs show every
// reachable state satisfies (proofs/README.md, inv): (a) a borrowed page
// is a guest's, lent to the control partition (ledger.Check); (c) every
// page of a guest's RAM is mapped in its stage 2 to a page it owns; and
// what follows for the control partition: it maps a guest's page only
// while the guest lends it. It returns the first violation found.
//
// It costs a stage 2 walk per guest page, so it runs when asked: on the
// machine's VM_STATS and after each VM_DESTROY.
func (h *Hyp) CheckInvariants() error {
	h.checks++
	err := h.checkInvariants()
	if err != nil {
		h.violations++
		fmt.Fprintf(h.Out, "bulkhead: invariant violated: %v\n", err)
	}
	return err
}

func (h *Hyp) checkInvariants() error {
	if err := h.Ledger.Check(); err != nil {
		return err
	}
	for _, vm := range h.VMs() {
		if vm == h.control || vm.torn {
			continue
		}
		for _, r := range vm.RAM {
			for off := uint64(0); off < r.Size; off += mmu.PageSize {
				pa, _, ok := vm.Translate(r.IPA + off)
				if !ok || pa != r.PA+off {
					return fmt.Errorf("VM %d: IPA %#x is not mapped to its page %#x", vm.ID, r.IPA+off, r.PA+off)
				}
				if o, _, _ := h.Ledger.Owner(pa); o != vm.ID {
					return fmt.Errorf("VM %d: IPA %#x maps page %#x, which the ledger gives to %s", vm.ID, r.IPA+off, pa, o)
				}
			}
		}
		if h.control == nil {
			continue
		}
		for _, r := range h.Ledger.Ranges(vm.ID) {
			for pa := r.PA; pa < r.PA+r.Size; pa += mmu.PageSize {
				_, b, _ := h.Ledger.Owner(pa)
				if _, _, mapped := h.control.Translate(pa); mapped != (b == ledger.Control) {
					return fmt.Errorf("VM %d's page %#x: lent to the control partition %v, mapped in its stage 2 %v", vm.ID, pa, b == ledger.Control, mapped)
				}
			}
		}
	}
	return nil
}
