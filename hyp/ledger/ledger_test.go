package ledger

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

const base = 0x4000_0000

// fakeMem records page contents as "dirty" flags.
type fakeMem struct {
	dirty map[uint64]bool
	fail  map[uint64]bool
}

func newMem() *fakeMem { return &fakeMem{dirty: map[uint64]bool{}, fail: map[uint64]bool{}} }

func (m *fakeMem) Zero(pa uint64) error {
	if m.fail[pa] {
		return errors.New("zeroing failed")
	}
	delete(m.dirty, pa)
	return nil
}

func boot(t testing.TB, mem Memory) *Ledger {
	l := New(base, 64, mem)
	require.NoError(t, l.Assign(base, 16*PageSize, Hypervisor))
	require.NoError(t, l.Assign(base+16*PageSize, 48*PageSize, Control))
	return l
}

func pg(i int) uint64 { return base + uint64(i)*PageSize }

func TestBootSplit(t *testing.T) {
	l := boot(t, newMem())
	c := l.Count()
	assert.Equal(t, 16, c.Hypervisor)
	assert.Equal(t, 48, c.Control)
	assert.Equal(t, 0, c.Free)
	assert.ErrorIs(t, l.Assign(pg(20), PageSize, Control), ErrNotFree)
	assert.ErrorIs(t, New(base, 4, nil).Assign(base, PageSize, FirstGuest), ErrBadOwner)
}

func TestDonateShareReclaim(t *testing.T) {
	mem := newMem()
	l := boot(t, mem)
	g := FirstGuest + 1
	require.NoError(t, l.Donate(pg(20), 4*PageSize, g))
	o, b, ok := l.Owner(pg(21) + 123)
	assert.True(t, ok)
	assert.Equal(t, g, o)
	assert.Equal(t, None, b)
	assert.True(t, l.CanAccess(g, pg(20)))
	assert.False(t, l.CanAccess(Control, pg(20)), "donated pages leave the control partition")

	require.NoError(t, l.Share(pg(21), PageSize, g))
	assert.True(t, l.CanAccess(Control, pg(21)))
	assert.False(t, l.CanAccess(FirstGuest, pg(21)), "only the borrower gets access")
	assert.ErrorIs(t, l.Share(pg(21), PageSize, g), ErrShared)
	require.NoError(t, l.Unshare(pg(21), PageSize, g))
	assert.ErrorIs(t, l.Unshare(pg(21), PageSize, g), ErrNotShared)
	require.NoError(t, l.Share(pg(22), PageSize, g))

	for i := 20; i < 24; i++ {
		mem.dirty[pg(i)] = true
	}
	n, err := l.Reclaim(g)
	require.NoError(t, err)
	assert.Equal(t, 4, n)
	assert.Empty(t, mem.dirty, "every reclaimed page was zeroed")
	c := l.Count()
	assert.Equal(t, 48, c.Control)
	assert.Equal(t, 0, c.Shared)
	assert.Empty(t, c.Guests)
}

func TestRefusedCallsChangeNothing(t *testing.T) {
	l := boot(t, newMem())
	g := FirstGuest
	before := l.Count()
	for _, tc := range []struct {
		err  error
		call func() error
	}{
		{ErrNotOwner, func() error { return l.Donate(pg(15), 2*PageSize, g) }}, // straddles hypervisor RAM
		{ErrRange, func() error { return l.Donate(pg(60), 8*PageSize, g) }},    // runs past RAM
		{ErrRange, func() error { return l.Donate(pg(20)+1, PageSize, g) }},
		{ErrRange, func() error { return l.Donate(pg(20), 0, g) }},
		{ErrRange, func() error { return l.Donate(base-PageSize, PageSize, g) }},
		{ErrBadOwner, func() error { return l.Donate(pg(20), PageSize, Control) }},
		{ErrBadOwner, func() error { return l.Donate(pg(20), PageSize, Hypervisor) }},
		{ErrNotOwner, func() error { return l.Share(pg(20), PageSize, g) }},
		{ErrBadOwner, func() error { return l.Share(pg(20), PageSize, Control) }},
		{ErrNotOwner, func() error { return l.Unshare(pg(20), PageSize, g) }},
		{ErrBadOwner, func() error { _, err := l.Reclaim(Control); return err }},
	} {
		assert.ErrorIs(t, tc.call(), tc.err)
		assert.Equal(t, before, l.Count())
	}
	// A range whose last page is not the guest's fails as a whole.
	require.NoError(t, l.Donate(pg(30), 2*PageSize, g))
	assert.ErrorIs(t, l.Share(pg(30), 3*PageSize, g), ErrNotOwner)
	_, b, _ := l.Owner(pg(30))
	assert.Equal(t, None, b, "nothing shared by a refused call")
}

func TestReclaimNeverHandsOutDirtyPages(t *testing.T) {
	mem := newMem()
	l := boot(t, mem)
	g := FirstGuest
	require.NoError(t, l.Donate(pg(40), 3*PageSize, g))
	mem.fail[pg(41)] = true
	_, err := l.Reclaim(g)
	assert.ErrorIs(t, err, ErrDirtyReturn)
	o, _, _ := l.Owner(pg(41))
	assert.Equal(t, g, o, "a page that could not be zeroed stays with the dead guest")
}

// Property test: random operation sequences against a map model; after
// every operation the ledger equals the model and its invariants hold.
func TestLedgerModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		mem := newMem()
		l := New(base, 32, mem)
		type st struct{ owner, borrower Owner }
		model := make([]st, 32)
		owners := []Owner{None, Hypervisor, Control, FirstGuest, FirstGuest + 1}
		for step := 0; step < 60; step++ {
			op := rapid.IntRange(0, 4).Draw(t, "op")
			first := rapid.IntRange(-1, 33).Draw(t, "first")
			n := rapid.IntRange(0, 4).Draw(t, "n")
			who := rapid.SampledFrom(owners).Draw(t, "who")
			pa, size := base+uint64(int64(first)*PageSize), uint64(n)*PageSize
			inRange := first >= 0 && n > 0 && first+n <= 32
			all := func(ok func(s st) bool) bool {
				if !inRange {
					return false
				}
				for i := first; i < first+n; i++ {
					if !ok(model[i]) {
						return false
					}
				}
				return true
			}
			var err error
			var want bool
			switch op {
			case 0:
				err = l.Assign(pa, size, who)
				want = (who == Hypervisor || who == Control) && all(func(s st) bool { return s.owner == None })
				if want {
					for i := first; i < first+n; i++ {
						model[i].owner = who
					}
				}
			case 1:
				err = l.Donate(pa, size, who)
				want = who.IsGuest() && all(func(s st) bool { return s.owner == Control })
				if want {
					for i := first; i < first+n; i++ {
						model[i].owner = who
					}
				}
			case 2:
				err = l.Share(pa, size, who)
				want = who.IsGuest() && all(func(s st) bool { return s.owner == who && s.borrower == None })
				if want {
					for i := first; i < first+n; i++ {
						model[i].borrower = Control
					}
				}
			case 3:
				err = l.Unshare(pa, size, who)
				want = who.IsGuest() && all(func(s st) bool { return s.owner == who && s.borrower != None })
				if want {
					for i := first; i < first+n; i++ {
						model[i].borrower = None
					}
				}
			case 4:
				for i := range model {
					if model[i].owner == who {
						mem.dirty[pg(i)] = true
					}
				}
				var got int
				got, err = l.Reclaim(who)
				want = who.IsGuest()
				count := 0
				if want {
					for i := range model {
						if model[i].owner == who {
							model[i] = st{owner: Control}
							count++
							if mem.dirty[pg(i)] {
								t.Fatalf("page %d reclaimed without zeroing", i)
							}
						}
					}
				}
				if want && got != count {
					t.Fatalf("reclaimed %d pages, model says %d", got, count)
				}
			}
			if (err == nil) != want {
				t.Fatalf("step %d op %d first %d n %d who %s: err %v, model expected success=%v", step, op, first, n, who, err, want)
			}
			for i := range model {
				o, b, _ := l.Owner(pg(i))
				if o != model[i].owner || b != model[i].borrower {
					t.Fatalf("page %d: ledger %s/%s, model %s/%s", i, o, b, model[i].owner, model[i].borrower)
				}
				// Exclusive access: nobody but the owner and its borrower.
				for _, c := range owners {
					want := c != None && c != Hypervisor && (c == o || c == b)
					if l.CanAccess(c, pg(i)) != want {
						t.Fatalf("page %d: CanAccess(%s) wrong", i, c)
					}
				}
			}
			if err := l.Check(); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func ExampleOwner() {
	fmt.Println(Hypervisor, Control, FirstGuest, FirstGuest+2)
	// Output: hypervisor control guest 0 guest 2
}
