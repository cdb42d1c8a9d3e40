//go:build proofs

package proofs

import (
	"strings"
	"testing"

	"github.com/bulkhead-hv/bulkhead/hyp/ledger"
)

// Seeded bugs: each wraps the real ledger (or its memory) to behave the
// way a plausible mistake in ledger.go would. The harness must tell every
// one of them from the model.

// skipZero is a Memory whose Zero does nothing (and never fails): Reclaim
// hands out pages with the dead guest's data in them.
type skipZero struct{}

func (skipZero) Zero(uint64) error { return nil }

// ignoreZeroFailure zeroes when it can and hides the failure otherwise: a
// dirty page is handed out when zeroing fails.
type ignoreZeroFailure struct{ m ledger.Memory }

func (z ignoreZeroFailure) Zero(pa uint64) error { _ = z.m.Zero(pa); return nil }

// wrapped forwards everything to the real ledger; mutants override one
// method each.
type wrapped struct{ *ledger.Ledger }

func (w wrapped) raw() *ledger.Ledger { return w.Ledger }

// donateKeepsControl: Donate leaves the pages borrowed by the control
// partition, so it can still reach them.
type donateKeepsControl struct{ wrapped }

func (m donateKeepsControl) Donate(pa, size uint64, to ledger.Owner) error {
	if err := m.Ledger.Donate(pa, size, to); err != nil {
		return err
	}
	_ = m.Ledger.Share(pa, size, to)
	return nil
}

// unshareKeepsBorrower: Unshare reports success but the borrower keeps the
// pages.
type unshareKeepsBorrower struct{ wrapped }

func (m unshareKeepsBorrower) Unshare(pa, size uint64, owner ledger.Owner) error {
	if err := m.Ledger.Unshare(pa, size, owner); err != nil {
		return err
	}
	_ = m.Ledger.Share(pa, size, owner)
	return nil
}

// partialAssign: a refused Assign has already assigned the free pages in
// front of the one that made it fail.
type partialAssign struct{ wrapped }

func (m partialAssign) Assign(pa, size uint64, to ledger.Owner) error {
	err := m.Ledger.Assign(pa, size, to)
	if err != nil && pa%ledger.PageSize == 0 && size%ledger.PageSize == 0 && size < 1<<32 {
		for p := pa; p < pa+size; p += ledger.PageSize {
			if m.Ledger.Assign(p, ledger.PageSize, to) != nil {
				break
			}
		}
	}
	return err
}

// partialShare: a refused Share has already shared the pages in front of
// the one that made it fail.
type partialShare struct{ wrapped }

func (m partialShare) Share(pa, size uint64, owner ledger.Owner) error {
	err := m.Ledger.Share(pa, size, owner)
	if err != nil && pa%ledger.PageSize == 0 && size%ledger.PageSize == 0 && size < 1<<32 {
		for p := pa; p < pa+size; p += ledger.PageSize {
			if m.Ledger.Share(p, ledger.PageSize, owner) != nil {
				break
			}
		}
	}
	return err
}

// hypervisorAccess: CanAccess forgets to exclude the hypervisor.
type hypervisorAccess struct{ wrapped }

func (m hypervisorAccess) CanAccess(c ledger.Owner, pa uint64) bool {
	o, b, ok := m.Ledger.Owner(pa)
	return ok && c != ledger.None && (o == c || b == c)
}

// shareWithGuest: Share lends the pages to another guest instead of the
// control partition. The ledger cannot record that borrower, so this
// variant keeps the wrong borrowers beside it and reports them.
type shareWithGuest struct {
	*ledger.Ledger
	lent map[uint64]ledger.Owner
}

func (m *shareWithGuest) raw() *ledger.Ledger { return m.Ledger }

func (m *shareWithGuest) other(o ledger.Owner) ledger.Owner {
	if o == ledger.FirstGuest {
		return o + 1
	}
	return ledger.FirstGuest
}

func (m *shareWithGuest) Share(pa, size uint64, owner ledger.Owner) error {
	if err := m.Ledger.Share(pa, size, owner); err != nil {
		return err
	}
	for p := pa; p < pa+size; p += ledger.PageSize {
		m.lent[p] = m.other(owner)
	}
	return nil
}

func (m *shareWithGuest) sync() {
	for p := range m.lent {
		if _, b, _ := m.Ledger.Owner(p); b == ledger.None {
			delete(m.lent, p)
		}
	}
}

func (m *shareWithGuest) Unshare(pa, size uint64, owner ledger.Owner) error {
	err := m.Ledger.Unshare(pa, size, owner)
	m.sync()
	return err
}

func (m *shareWithGuest) Reclaim(g ledger.Owner) (int, error) {
	n, err := m.Ledger.Reclaim(g)
	m.sync()
	return n, err
}

func (m *shareWithGuest) Owner(pa uint64) (ledger.Owner, ledger.Owner, bool) {
	o, b, ok := m.Ledger.Owner(pa)
	if x, lent := m.lent[pa&^(ledger.PageSize-1)]; lent {
		b = x
	}
	return o, b, ok
}

func (m *shareWithGuest) CanAccess(c ledger.Owner, pa uint64) bool {
	o, b, ok := m.Owner(pa)
	return ok && c != ledger.None && c != ledger.Hypervisor && (o == c || b == c)
}

func (m *shareWithGuest) Check() error {
	if len(m.lent) > 0 {
		return ledger.ErrShared
	}
	return m.Ledger.Check()
}

// mutant is a seeded bug: the code under test with one mistake in it.
type mutant struct {
	name string
	v    Variant
}

// ledgerMutant is a seeded bug in the ledger, with the real stage 2 code.
func ledgerMutant(name string, mk Factory) mutant { return mutant{name, Variant{mk, realStage2}} }

var ledgerMutants = []mutant{
	ledgerMutant("Reclaim skips zeroing", func(b uint64, n int, mem ledger.Memory) Ledger {
		return ledger.New(b, n, skipZero{})
	}),
	ledgerMutant("Reclaim hands out a page whose zeroing failed", func(b uint64, n int, mem ledger.Memory) Ledger {
		return ledger.New(b, n, ignoreZeroFailure{mem})
	}),
	ledgerMutant("Donate leaves the control partition as borrower", func(b uint64, n int, mem ledger.Memory) Ledger {
		return donateKeepsControl{wrapped{ledger.New(b, n, mem)}}
	}),
	ledgerMutant("Share lends to a guest instead of the control partition", func(b uint64, n int, mem ledger.Memory) Ledger {
		return &shareWithGuest{Ledger: ledger.New(b, n, mem), lent: map[uint64]ledger.Owner{}}
	}),
	ledgerMutant("Unshare keeps the borrower", func(b uint64, n int, mem ledger.Memory) Ledger {
		return unshareKeepsBorrower{wrapped{ledger.New(b, n, mem)}}
	}),
	ledgerMutant("refused Assign changes state", func(b uint64, n int, mem ledger.Memory) Ledger {
		return partialAssign{wrapped{ledger.New(b, n, mem)}}
	}),
	ledgerMutant("refused Share changes state", func(b uint64, n int, mem ledger.Memory) Ledger {
		return partialShare{wrapped{ledger.New(b, n, mem)}}
	}),
	ledgerMutant("CanAccess lets the hypervisor in", func(b uint64, n int, mem ledger.Memory) Ledger {
		return hypervisorAccess{wrapped{ledger.New(b, n, mem)}}
	}),
}

// mutantConfigs are the small searches every mutant goes through (with a
// random trace of 5,000 calls, seed 1).
var mutantConfigs = []config{
	{name: "3 pages, ledger calls, depth 4", npages: 3, accessK: 6, maxDepth: 4},
	{name: "2 pages, every ledger operation, depth 4", npages: 2, accessK: 6, writes: true, maxDepth: 4},
	{name: "2 pages, every operation with stage 2, depth 3", npages: 2, accessK: 6, writes: true,
		stage2: true, ipaPages: 2, perms: []int{1, 3}, maxDepth: 3},
	{name: "2 pages, stage 2 calls with the ledger calls that set them up, depth 5", npages: 2, accessK: 6,
		stage2: true, few: true, ipaPages: 2, perms: []int{1, 3}, maxDepth: 5},
}

// TestMutantsCaught runs the exhaustive search and a random trace against
// every seeded bug and requires each to be reported as a mismatch.
func TestMutantsCaught(t *testing.T) {
	// The same harness must find nothing wrong with the real code, so a
	// mutant is caught for its own bug.
	for _, c := range mutantConfigs {
		r, _ := explore(t, realCode, c)
		if m := check(t, r); m != "" {
			t.Fatalf("the real code differs from the model (%s):\n%s", c.name, m)
		}
	}
	if r, _ := randomTrace(t, realCode, 1, 5000); true {
		if m := check(t, r); m != "" {
			t.Fatalf("the real code differs from the model (random trace):\n%s", m)
		}
	}
	all := append(append([]mutant(nil), ledgerMutants...), stage2Mutants...)
	caught := 0
	for _, mu := range all {
		var by []string
		for _, c := range mutantConfigs {
			r, _ := explore(t, mu.v, c)
			if m := check(t, r); m != "" {
				by = append(by, "exhaustive search ("+c.name+")")
				if len(by) == 1 {
					lines := strings.SplitN(m, "\n", 4)
					t.Logf("%s: first difference: %s", mu.name, strings.Join(lines[:len(lines)-1], "\n"))
				}
			}
		}
		if r, _ := randomTrace(t, mu.v, 1, 5000); check(t, r) != "" {
			by = append(by, "random trace (seed 1)")
		}
		if len(by) == 0 {
			t.Errorf("mutant NOT caught: %s", mu.name)
			continue
		}
		caught++
		t.Logf("caught: %s, by %v", mu.name, by)
	}
	t.Logf("%d of %d mutants caught", caught, len(all))
}
