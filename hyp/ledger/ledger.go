// Package ledger records who owns every physical page of RAM. It is the
// single source of truth for isolation: stage 2 mappings are derived from
// it, never written around it.
//
// Every page is in exactly one state: free, owned by the hypervisor, owned
// by the control partition, or owned by guest N, and in the last case
// possibly shared with one borrower (the control partition, for I/O). Only
// the transitions below exist, each validated in full before any page
// changes, so a refused call changes nothing.
package ledger

import (
	"errors"
	"fmt"
	"sync"
)

// PageSize is the granule of ownership.
const PageSize = 4096

// Owner identifies a compartment. Guests are FirstGuest and up.
type Owner uint16

const (
	None       Owner = 0 // free page, or no borrower
	Hypervisor Owner = 1
	Control    Owner = 2
	FirstGuest Owner = 3
)

func (o Owner) String() string {
	switch o {
	case None:
		return "none"
	case Hypervisor:
		return "hypervisor"
	case Control:
		return "control"
	}
	return fmt.Sprintf("guest %d", o-FirstGuest)
}

// IsGuest reports a guest owner.
func (o Owner) IsGuest() bool { return o >= FirstGuest }

var (
	ErrRange       = errors.New("ledger: range is not page aligned, empty, or outside RAM")
	ErrNotOwner    = errors.New("ledger: a page in the range is not owned by the caller")
	ErrShared      = errors.New("ledger: a page in the range is shared")
	ErrNotShared   = errors.New("ledger: a page in the range is not shared")
	ErrBadOwner    = errors.New("ledger: this transition is not allowed for that owner")
	ErrNotFree     = errors.New("ledger: a page in the range is not free")
	ErrDirtyReturn = errors.New("ledger: zeroing a reclaimed page failed")
)

// Memory is the seam to page contents: reclaimed pages are zeroed through it
// before they change hands.
type Memory interface {
	Zero(pa uint64) error
}

type page struct {
	owner    Owner
	borrower Owner
}

// Ledger tracks the pages of one contiguous RAM range.
type Ledger struct {
	mu    sync.Mutex
	base  uint64
	pages []page
	mem   Memory
}

// New makes a ledger for npages starting at base, all free.
func New(base uint64, npages int, mem Memory) *Ledger {
	return &Ledger{base: base, pages: make([]page, npages), mem: mem}
}

// Base and End bound the RAM the ledger covers.
func (l *Ledger) Base() uint64 { return l.base }
func (l *Ledger) End() uint64  { return l.base + uint64(len(l.pages))*PageSize }

func (l *Ledger) index(pa, size uint64) (first, n int, err error) {
	if pa%PageSize != 0 || size%PageSize != 0 || size == 0 || pa < l.base || pa+size < pa || pa+size > l.End() {
		return 0, 0, ErrRange
	}
	return int((pa - l.base) / PageSize), int(size / PageSize), nil
}

// check validates every page of [pa, pa+size) with ok before anything changes.
func (l *Ledger) check(pa, size uint64, ok func(p page) error) (int, int, error) {
	first, n, err := l.index(pa, size)
	if err != nil {
		return 0, 0, err
	}
	for i := first; i < first+n; i++ {
		if err := ok(l.pages[i]); err != nil {
			return 0, 0, fmt.Errorf("%w (page %#x, owner %s, borrower %s)", err, l.base+uint64(i)*PageSize, l.pages[i].owner, l.pages[i].borrower)
		}
	}
	return first, n, nil
}

// transition validates every page of [pa, pa+size) with ok and, only if
// all pass, applies set to each: the shape of every range transition.
func (l *Ledger) transition(pa, size uint64, ok func(page) error, set func(*page)) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	first, n, err := l.check(pa, size, ok)
	if err != nil {
		return err
	}
	for i := first; i < first+n; i++ {
		set(&l.pages[i])
	}
	return nil
}

// Assign gives free pages to the hypervisor or the control partition: the
// boot-time split of RAM.
func (l *Ledger) Assign(pa, size uint64, to Owner) error {
	if to != Hypervisor && to != Control {
		return ErrBadOwner
	}
	return l.transition(pa, size, func(p page) error {
		if p.owner != None {
			return ErrNotFree
		}
		return nil
	}, func(p *page) { p.owner = to })
}

// Donate moves pages from the control partition to a guest. The caller
// unmaps them from the control partition's stage 2 and maps them into the
// guest's, under its own lock (hyp.Hyp.Donate).
func (l *Ledger) Donate(pa, size uint64, to Owner) error {
	if !to.IsGuest() {
		return ErrBadOwner
	}
	return l.transition(pa, size, donatable, func(p *page) { p.owner = to })
}

// CheckDonate validates a donation without making it, so a caller can
// prepare the mappings that go with it first.
func (l *Ledger) CheckDonate(pa, size uint64, to Owner) error {
	if !to.IsGuest() {
		return ErrBadOwner
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _, err := l.check(pa, size, donatable)
	return err
}

func donatable(p page) error {
	if p.owner != Control {
		return ErrNotOwner
	}
	return nil
}

// Share lends a guest's pages to the control partition.
func (l *Ledger) Share(pa, size uint64, owner Owner) error {
	if !owner.IsGuest() {
		return ErrBadOwner
	}
	return l.transition(pa, size, func(p page) error {
		if p.owner != owner {
			return ErrNotOwner
		}
		if p.borrower != None {
			return ErrShared
		}
		return nil
	}, func(p *page) { p.borrower = Control })
}

// Unshare takes lent pages back; the caller unmaps them from the borrower.
func (l *Ledger) Unshare(pa, size uint64, owner Owner) error {
	if !owner.IsGuest() {
		return ErrBadOwner
	}
	return l.transition(pa, size, func(p page) error {
		if p.owner != owner {
			return ErrNotOwner
		}
		if p.borrower == None {
			return ErrNotShared
		}
		return nil
	}, func(p *page) { p.borrower = None })
}

// Reclaim zeroes every page a destroyed guest owns and returns it to the
// control partition, ending any sharing. It returns the number of pages.
// The caller must already have removed the guest's and the borrower's
// mappings, so nobody can observe a page between zeroing and hand-over.
func (l *Ledger) Reclaim(guest Owner) (int, error) {
	if !guest.IsGuest() {
		return 0, ErrBadOwner
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for i := range l.pages {
		if l.pages[i].owner != guest {
			continue
		}
		if err := l.mem.Zero(l.base + uint64(i)*PageSize); err != nil {
			// The page stays with the dead guest: never hand out a dirty page.
			return n, fmt.Errorf("%w: page %#x: %v", ErrDirtyReturn, l.base+uint64(i)*PageSize, err)
		}
		l.pages[i] = page{owner: Control}
		n++
	}
	return n, nil
}

// Owner returns a page's owner and borrower.
func (l *Ledger) Owner(pa uint64) (owner, borrower Owner, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i, _, err := l.index(pa&^(PageSize-1), PageSize)
	if err != nil {
		return None, None, false
	}
	return l.pages[i].owner, l.pages[i].borrower, true
}

// CanAccess reports whether compartment c may map page pa: its owner, or
// its one borrower.
func (l *Ledger) CanAccess(c Owner, pa uint64) bool {
	owner, borrower, ok := l.Owner(pa)
	return ok && c != None && c != Hypervisor && (owner == c || borrower == c)
}

// Range is a run of pages.
type Range struct{ PA, Size uint64 }

// Ranges lists the maximal runs of pages o owns, in address order.
func (l *Ledger) Ranges(o Owner) []Range {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Range
	for i, p := range l.pages {
		if p.owner != o {
			continue
		}
		pa := l.base + uint64(i)*PageSize
		if n := len(out); n > 0 && out[n-1].PA+out[n-1].Size == pa {
			out[n-1].Size += PageSize
			continue
		}
		out = append(out, Range{pa, PageSize})
	}
	return out
}

// Counts is the number of pages per owner, and of shared pages.
type Counts struct {
	Free, Hypervisor, Control, Shared int
	Guests                            map[Owner]int
}

// Count tallies the ledger.
func (l *Ledger) Count() Counts {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := Counts{Guests: map[Owner]int{}}
	for _, p := range l.pages {
		switch {
		case p.owner == None:
			c.Free++
		case p.owner == Hypervisor:
			c.Hypervisor++
		case p.owner == Control:
			c.Control++
		default:
			c.Guests[p.owner]++
		}
		if p.borrower != None {
			c.Shared++
		}
	}
	return c
}

// Check verifies the invariants: hypervisor and free pages are never
// borrowed, only guest pages are shared, and only with the control
// partition.
func (l *Ledger) Check() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, p := range l.pages {
		pa := l.base + uint64(i)*PageSize
		if p.borrower != None && (!p.owner.IsGuest() || p.borrower != Control) {
			return fmt.Errorf("ledger: page %#x owned by %s is lent to %s", pa, p.owner, p.borrower)
		}
	}
	return nil
}
