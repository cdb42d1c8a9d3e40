package hyp

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-hv/bulkhead/hyp/ledger"
	"github.com/bulkhead-hv/bulkhead/mmu"
)

// pageView plays an IOMMU's translation: the set of pages a device may
// reach.
type pageView struct {
	pages     map[uint64]bool
	failUnmap bool
}

func (v *pageView) Map(pa, size uint64) error {
	for p := pa; p < pa+size; p += mmu.PageSize {
		v.pages[p] = true
	}
	return nil
}

func (v *pageView) Faults() uint64 { return 0 }

func (v *pageView) Unmap(pa, size uint64) error {
	if v.failUnmap {
		return errors.New("invalidation not confirmed")
	}
	for p := pa; p < pa+size; p += mmu.PageSize {
		delete(v.pages, p)
	}
	return nil
}

// The control partition's devices reach exactly what its CPU does in RAM,
// through every change: donation, a guest's loan and its return, the
// guest's destruction; and a donation whose DMA unmap fails is refused
// with the ledger unchanged.
func TestDMAViewFollowsControl(t *testing.T) {
	r := newRig(t)
	view := &pageView{pages: map[uint64]bool{}}
	r.h.SetDMAView(view)
	ctl, err := r.h.CreateControl("control")
	require.NoError(t, err)
	same := func(step string) {
		t.Helper()
		for p := uint64(ramBase); p < ramBase+ramPages*mmu.PageSize; p += mmu.PageSize {
			_, _, cpu := ctl.Translate(p)
			if cpu != view.pages[p] {
				t.Fatalf("%s: page %#x: CPU mapping %v, DMA view %v", step, p, cpu, view.pages[p])
			}
		}
	}
	same("at creation")
	assert.False(t, view.pages[ramBase], "the hypervisor's pages are outside the view")

	pa := uint64(ramBase + 0x20_0000)
	vm, _ := r.guest(t, "g", pa)
	assert.False(t, view.pages[pa], "a donated page leaves the view")
	same("after the donation")

	lent, err := r.h.Share(vm, guestIPA+3*mmu.PageSize, mmu.PageSize)
	require.NoError(t, err)
	assert.True(t, view.pages[lent], "a page the guest lends is reachable")
	same("after the loan")
	require.NoError(t, r.h.Unshare(vm, guestIPA+3*mmu.PageSize, mmu.PageSize))
	same("after the return")

	view.failUnmap = true
	vm2, err := r.h.CreateVM("g2")
	require.NoError(t, err)
	before := r.h.Ledger.Count()
	assert.Error(t, r.h.Donate(vm2, pa+2<<20, guestIPA, 1<<20, mmu.Read|mmu.Write))
	assert.Equal(t, before, r.h.Ledger.Count(), "a refused donation leaves the ledger")
	o, _, _ := r.h.Ledger.Owner(pa + 2<<20)
	assert.Equal(t, ledger.Control, o)
	view.failUnmap = false
	same("after the refused donation")

	vm.State = Stopped
	_, err = r.h.DestroyVM(vm)
	require.NoError(t, err)
	assert.True(t, view.pages[pa], "reclaimed pages come back to the view")
	same("after the destruction")
}
