//go:build proofs

package proofs

import (
	"fmt"
	"math/rand"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-hv/bulkhead/hyp/ledger"
)

const (
	base    = 0x4000_0000
	pageSz  = ledger.PageSize
	ipaBits = 40
	// ipaTop is the last page of the IPA space.
	ipaTop = 1<<ipaBits - pageSz
	// ipaBase is where the exhaustive search's IPA window starts: one
	// page below 1 GiB, so the window's first page is under one level 1
	// entry (and one level 2 and level 3 table) and the rest under the
	// next.
	ipaBase = 1<<30 - pageSz
)

// config is a small machine for the exhaustive search.
type config struct {
	name     string
	npages   int
	accessK  int // access bits printed for compartments 0..accessK-1
	writes   bool
	stage2   bool  // DonateMap, GRead, GWrite, and the maps after every call
	ipaPages int   // the IPA window the stage 2 calls use
	perms    []int // the permissions DonateMap asks for
	// few: instead of every ledger call, only those that set up what the
	// stage 2 calls work on (see operations).
	few      bool
	maxDepth int // 0: no bound (search to the fixpoint)
}

// guests are the model guests of the exhaustive search; each has a VM.
var guests = []ledger.Owner{3, 4}

// machine: with stage 2 calls, guests 3 and 4 are VMs (Reclaim is
// Hyp.DestroyVM); without, no guest has a VM and Reclaim is the ledger's
// own, which can be retried after a zeroing failure.
func (c config) machine() machine {
	if !c.stage2 {
		return machine{}
	}
	return machine{guests: guests, walk: walkIPAs(ipaBase, c.ipaPages)}
}

// walkIPAs are the IPAs walked in every VM after every call: a window of n
// pages at lo, the page either side of it, and the last page of the IPA
// space. The generated calls map nothing elsewhere.
func walkIPAs(lo uint64, n int) []uint64 {
	w := []uint64{lo - pageSz}
	for i := 0; i <= n; i++ {
		w = append(w, lo+uint64(i)*pageSz)
	}
	return append(w, ipaTop)
}

// ranges are every valid range of an n-page RAM and one of each way a
// range can be wrong.
func ranges(n int) [][2]uint64 {
	return append(validRanges(n), invalidRanges(n)...)
}

func validRanges(n int) [][2]uint64 {
	var r [][2]uint64
	for i := 0; i < n; i++ {
		for k := 1; i+k <= n; k++ {
			r = append(r, [2]uint64{base + uint64(i)*pageSz, uint64(k) * pageSz})
		}
	}
	return r
}

func invalidRanges(n int) [][2]uint64 {
	end := uint64(base + n*pageSz)
	return [][2]uint64{
		{base - pageSz, pageSz},               // starts below RAM
		{0, pageSz},                           // far below RAM
		{end - pageSz, 2 * pageSz},            // runs past the end
		{end, pageSz},                         // starts at the end
		{base + pageSz/2, pageSz},             // unaligned address
		{base, pageSz / 2},                    // unaligned size
		{base, 0},                             // empty
		{^uint64(0) - pageSz + 1, 2 * pageSz}, // wraps around 2^64
	}
}

// opSpec is one call; vm is the model guest whose VM a DonateMap gives
// memory to, 0 for the other calls (Reclaim included: retrying a failed
// DestroyVM is compared like any other).
type opSpec struct {
	line string
	vm   ledger.Owner
}

// operations is every call of the configuration, valid and invalid:
// owners 0 none, 1 hypervisor, 2 control, 3 and 4 guests.
func operations(c config) []opSpec {
	var ops []opSpec
	add := func(vm ledger.Owner, f string, a ...any) { ops = append(ops, opSpec{fmt.Sprintf(f, a...), vm}) }
	if c.few {
		// Control gets RAM (or the hypervisor page 0); ledger donations to
		// guest 3 (pages it owns unmapped); Share and Unshare by each
		// guest; Reclaim; zeroing failures; the control partition's
		// writes and reads.
		for _, r := range validRanges(c.npages) {
			add(0, "assign %d %d 2", r[0], r[1])
			add(0, "donate %d %d 3", r[0], r[1])
			for _, g := range guests {
				add(0, "share %d %d %d", r[0], r[1], g)
				add(0, "unshare %d %d %d", r[0], r[1], g)
			}
		}
		add(0, "assign %d %d 1", base, pageSz)
		for _, g := range guests {
			add(0, "reclaim %d", g)
		}
		for i := 0; i < c.npages; i++ {
			pa := base + i*pageSz
			add(0, "setfail %d 1", pa)
			add(0, "setfail %d 0", pa+8)
			add(0, "write 2 %d", pa+16)
			add(0, "read 2 %d", pa+16)
		}
	} else {
		ops = append(ops, ledgerOperations(c)...)
	}
	if c.stage2 {
		// Every valid range at every place in the IPA window, for each
		// guest and permission.
		for _, r := range validRanges(c.npages) {
			k := int(r[1] / pageSz)
			for i := 0; i+k <= c.ipaPages; i++ {
				for _, g := range guests {
					for _, p := range c.perms {
						add(g, "donatemap %d %d %d %d %d", r[0], ipaBase+i*pageSz, r[1], g, p)
					}
				}
			}
		}
		// Each way the IPA range can be wrong, with a valid physical
		// range; the last page of the IPA space, which is valid.
		add(3, "donatemap %d %d %d 3 3", base, ipaBase+8, pageSz)                  // unaligned IPA
		add(3, "donatemap %d %d %d 3 3", base, ipaTop, 2*pageSz)                   // runs past the IPA space
		add(3, "donatemap %d %d %d 3 3", base, uint64(1)<<ipaBits, pageSz)         // starts at its end
		add(3, "donatemap %d %d %d 3 3", base, ^uint64(0)-pageSz+1, 2*pageSz)      // wraps around 2^64
		add(4, "donatemap %d %d %d 4 1", base+(c.npages-1)*pageSz, ipaTop, pageSz) // the last IPA page
		// Each way the physical range can be wrong, at a valid IPA.
		for _, r := range invalidRanges(c.npages) {
			add(3, "donatemap %d %d %d 3 3", r[0], ipaBase, r[1])
		}
		// Guest accesses: below the window, every page of it (at some
		// offset), above it, the last IPA page, and beyond the IPA space.
		ipas := []uint64{ipaBase - pageSz + 8}
		for i := 0; i <= c.ipaPages; i++ {
			ipas = append(ipas, ipaBase+uint64(i)*pageSz+uint64(i)*24)
		}
		ipas = append(ipas, ipaTop+100, uint64(1)<<ipaBits+8)
		for _, g := range guests {
			for _, ipa := range ipas {
				add(0, "gwrite %d %d", g, ipa)
				add(0, "gread %d %d", g, ipa)
			}
		}
	}
	return ops
}

// ledgerOperations is every ledger call of the configuration, valid and
// invalid, and the compartments' writes and reads when c.writes.
func ledgerOperations(c config) []opSpec {
	var ops []opSpec
	add := func(vm ledger.Owner, f string, a ...any) { ops = append(ops, opSpec{fmt.Sprintf(f, a...), vm}) }
	for _, r := range ranges(c.npages) {
		for _, to := range []int{1, 2, 3} {
			add(0, "assign %d %d %d", r[0], r[1], to)
		}
		for _, g := range []int{2, 3, 4} {
			add(0, "donate %d %d %d", r[0], r[1], g)
			add(0, "share %d %d %d", r[0], r[1], g)
			add(0, "unshare %d %d %d", r[0], r[1], g)
		}
	}
	add(0, "reclaim 1")
	for _, g := range guests {
		add(0, "reclaim %d", g)
	}
	for i := 0; i < c.npages; i++ {
		pa := base + i*pageSz
		add(0, "setfail %d 1", pa)
		add(0, "setfail %d 0", pa+8)
	}
	add(0, "setfail %d 1", base+c.npages*pageSz)
	if c.writes {
		pas := []int{base + c.npages*pageSz, base - 1}
		for i := 0; i < c.npages; i++ {
			pas = append(pas, base+i*pageSz+i*100)
		}
		for who := 0; who <= 4; who++ {
			for _, pa := range pas {
				add(0, "write %d %d", who, pa)
				add(0, "read %d %d", who, pa)
			}
		}
	}
	return ops
}

type exploration struct {
	states, cases, depth int
	fixpoint             bool
}

// deadKey names the guests whose VM a failed DestroyVM left behind, torn
// down: Go state the model has no counterpart for (see the known
// divergence in divergence_test.go), so it is part of a state's identity
// in the search, and no DonateMap is tried on those guests (Reclaim is).
func deadKey(in *interp) string {
	var d []string
	for g := range in.dead {
		d = append(d, fmt.Sprint(g))
	}
	sort.Strings(d)
	return strings.Join(d, ",")
}

// explore searches the states the Go code reaches breadth first, trying
// every operation in every state, and records the whole search as one
// trace: "load S", the operation, "dump" (and "maps" when the
// configuration has stage 2 calls), and "save" for each new state.
func explore(t testing.TB, v Variant, c config) (*recorder, exploration) {
	r := newRecorder(t, v, c.machine())
	ops := operations(c)
	dump := fmt.Sprintf("dump %d", c.accessK)
	observe := func() string {
		k := r.do(dump)
		if c.stage2 {
			k += "|" + r.do("maps")
		}
		return k + "|dead=" + deadKey(r.in)
	}
	r.do(fmt.Sprintf("init %d %d %d", base, c.npages, ipaBits))
	cur := observe()
	seen := map[string]int{cur: 0}
	keys := []string{cur}
	dead := map[int]map[ledger.Owner]bool{0: {}}
	r.do("save 0")
	frontier := []int{0}
	var e exploration
	for len(frontier) > 0 && (c.maxDepth == 0 || e.depth < c.maxDepth) && !r.failed() {
		var next []int
		for _, s := range frontier {
			if r.failed() {
				break
			}
			for _, op := range ops {
				if op.vm != 0 && dead[s][op.vm] {
					continue
				}
				// Most calls are refused and change nothing: the next one
				// then starts from where the last left off, a state the
				// model cannot tell from s (both sides see the same trace).
				if cur != keys[s] {
					r.do(fmt.Sprintf("load %d", s))
				}
				h := len(r.in.history)
				r.do(op.line)
				k := observe()
				if k == cur {
					// Nothing the model sees changed: the path to any later
					// state need not replay this call.
					r.in.history = r.in.history[:h]
				}
				cur = k
				e.cases++
				if _, ok := seen[k]; !ok {
					id := len(seen)
					seen[k] = id
					keys = append(keys, k)
					dead[id] = map[ledger.Owner]bool{}
					for g := range r.in.dead {
						dead[id][g] = true
					}
					r.do(fmt.Sprintf("save %d", id))
					next = append(next, id)
				}
			}
		}
		frontier = next
		e.depth++
	}
	e.states, e.fixpoint = len(seen), len(frontier) == 0
	return r, e
}

var exhaustive = []config{
	{name: "3 pages, ledger calls and zeroing failures", npages: 3, accessK: 6},
	{name: "2 pages, every ledger operation with writes and reads", npages: 2, accessK: 6, writes: true},
	{name: "3 pages, every ledger operation, depth 5", npages: 3, accessK: 6, writes: true, maxDepth: 5},
	{name: "2 pages, stage 2 calls with the ledger calls that set them up, 2-page IPA window", npages: 2, accessK: 6,
		stage2: true, few: true, ipaPages: 2, perms: []int{1, 3}},
	{name: "2 pages, every operation with stage 2, depth 6", npages: 2, accessK: 6, writes: true,
		stage2: true, ipaPages: 2, perms: []int{1, 3}, maxDepth: 6},
	{name: "3 pages, stage 2 calls with the ledger calls that set them up, 3-page IPA window, depth 5", npages: 3, accessK: 6,
		stage2: true, few: true, ipaPages: 3, perms: []int{1, 3}, maxDepth: 5},
}

func check(t testing.TB, r *recorder) string {
	t.Helper()
	return r.finish(t)
}

func TestOracleExhaustive(t *testing.T) {
	for _, c := range exhaustive {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			r, e := explore(t, realCode, c)
			if m := check(t, r); m != "" {
				t.Fatalf("the Go code and the Coq model differ:\n%s", m)
			}
			t.Logf("%d states, %d (state, call) cases, depth %d, fixpoint reached: %v, %d trace lines, %v",
				e.states, e.cases, e.depth, e.fixpoint, r.lines, time.Since(start).Round(time.Millisecond))
			if c.maxDepth == 0 && !e.fixpoint {
				t.Fatalf("search stopped before the fixpoint")
			}
		})
	}
}

// The random traces' machine: 16 pages; guests 3 to 15, of which 6 and 7
// are only ledger owners (Reclaim is Ledger.Reclaim, retried after zeroing
// failures) and the others VMs (Reclaim is Hyp.DestroyVM). Three VMs are
// in play at a time, 3, 4 and 5 first; when a failed DestroyVM leaves one
// behind, the next of 8 to 15 takes its place (and it becomes a spare
// again once a retried DestroyVM destroys it). An IPA window of 24 pages
// across the 1 GiB boundary.
const (
	rndPages    = 16
	rndIPABase  = 1<<30 - 8*pageSz
	rndIPAPages = 24
)

var rndMachine = machine{guests: []ledger.Owner{3, 4, 5, 8, 9, 10, 11, 12, 13, 14, 15},
	walk: walkIPAs(rndIPABase, rndIPAPages)}

// traceStats counts what a random trace did, to show its coverage.
type traceStats struct {
	mapped, destroyed, dirty, gok int
}

// randomTrace is n random calls on the random traces' machine, each
// followed by a dump and the maps: a mix of calls aimed at the state (a
// page the control partition owns, an IPA a VM maps) and of random ones,
// valid or not.
func randomTrace(t testing.TB, v Variant, seed int64, n int) (*recorder, traceStats) {
	const npages, k = rndPages, 16
	rng := rand.New(rand.NewSource(seed))
	live, spare := []ledger.Owner{3, 4, 5}, []ledger.Owner{8, 9, 10, 11, 12, 13, 14, 15}
	r := newRecorder(t, v, rndMachine)
	in := r.in
	var st traceStats
	r.do(fmt.Sprintf("init %d %d %d", base, npages, ipaBits))
	rng2 := func() (uint64, uint64) {
		switch rng.Intn(20) {
		case 0:
			return base + uint64(rng.Intn(npages*pageSz)), pageSz
		case 1:
			return base + uint64(rng.Intn(npages))*pageSz, uint64(rng.Intn(3 * pageSz))
		case 2:
			return ^uint64(0) - uint64(rng.Intn(4))*pageSz + 1, uint64(1+rng.Intn(4)) * pageSz
		}
		first := rng.Intn(npages+2) - 1
		return uint64(base + first*pageSz), uint64(1+rng.Intn(4)) * pageSz
	}
	who := func() int { return rng.Intn(8) }
	vmGuest := func() ledger.Owner { return live[rng.Intn(len(live))] }
	page := func() uint64 { return uint64(base + (rng.Intn(npages+2)-1)*pageSz + rng.Intn(pageSz)) }
	// pageWhere is a random page satisfying ok (owner and borrower in
	// model numbers).
	pageWhere := func(ok func(o, b ledger.Owner) bool) (uint64, ledger.Owner, bool) {
		var pas []uint64
		var os []ledger.Owner
		for i := 0; i < npages; i++ {
			pa := uint64(base + i*pageSz)
			o, b, _ := in.l.Owner(pa)
			mo, err1 := strconv.ParseUint(in.name(o), 10, 16)
			mb, err2 := strconv.ParseUint(in.name(b), 10, 16)
			if err1 == nil && err2 == nil && ok(ledger.Owner(mo), ledger.Owner(mb)) {
				pas, os = append(pas, pa), append(os, ledger.Owner(mo))
			}
		}
		if len(pas) == 0 {
			return 0, 0, false
		}
		i := rng.Intn(len(pas))
		return pas[i], os[i], true
	}
	gipa := func() uint64 {
		switch rng.Intn(20) {
		case 0:
			return ipaTop + uint64(rng.Intn(pageSz))
		case 1:
			return 1<<ipaBits + uint64(rng.Intn(pageSz))
		}
		return rndIPABase - pageSz + uint64(rng.Intn((rndIPAPages+2)*pageSz))
	}
	access := func() string {
		g, ipa := vmGuest(), gipa()
		if ram := in.vms[g].RAM; len(ram) > 0 && rng.Intn(3) != 0 {
			// Somewhere the VM maps.
			reg := ram[rng.Intn(len(ram))]
			ipa = reg.IPA + uint64(rng.Int63n(int64(reg.Size)))
		}
		if rng.Intn(2) == 0 {
			return fmt.Sprintf("gwrite %d %d", g, ipa)
		}
		return fmt.Sprintf("gread %d %d", g, ipa)
	}
	// pages is the number of pages guest g owns.
	pages := func(g int) int {
		n := 0
		for i := 0; i < npages; i++ {
			if o, _, _ := in.l.Owner(uint64(base + i*pageSz)); o == in.goID(ledger.Owner(g)) {
				n++
			}
		}
		return n
	}
	// failing is a page of guest g whose zeroing fails.
	failing := func(g int) (uint64, bool) {
		for i := 0; i < npages; i++ {
			pa := uint64(base + i*pageSz)
			if o, _, _ := in.l.Owner(pa); o == in.goID(ledger.Owner(g)) && in.mem.fail[pa] {
				return pa, true
			}
		}
		return 0, false
	}
	dump := func() {
		r.do(fmt.Sprintf("dump %d", k))
		r.do("maps")
	}
	// Boot: most of RAM to the hypervisor and the control partition.
	r.do(fmt.Sprintf("assign %d %d 1", base, 2*pageSz))
	dump()
	r.do(fmt.Sprintf("assign %d %d 2", base+2*pageSz, (npages-4)*pageSz))
	dump()
	for i := 0; i < n && !r.failed(); i++ {
		var op string
		switch x := rng.Intn(100); {
		case x < 3:
			pa, sz := rng2()
			op = fmt.Sprintf("assign %d %d %d", pa, sz, who())
		case x < 11:
			pa, sz := rng2()
			op = fmt.Sprintf("donate %d %d %d", pa, sz, who())
		case x < 21:
			pa, sz := rng2()
			op = fmt.Sprintf("share %d %d %d", pa, sz, who())
			if pa, o, ok := pageWhere(func(o, _ ledger.Owner) bool { return o.IsGuest() }); ok && rng.Intn(2) == 0 {
				op = fmt.Sprintf("share %d %d %d", pa, pageSz, o)
			}
		case x < 28:
			pa, sz := rng2()
			op = fmt.Sprintf("unshare %d %d %d", pa, sz, who())
			if pa, o, ok := pageWhere(func(_, b ledger.Owner) bool { return b != 0 }); ok && rng.Intn(2) == 0 {
				op = fmt.Sprintf("unshare %d %d %d", pa, pageSz, o)
			}
		case x < 33:
			g := who()
			if g >= 3 && rng.Intn(2) == 0 {
				g = int(vmGuest())
			}
			op = fmt.Sprintf("reclaim %d", g)
			if _, vm := in.vms[ledger.Owner(g)]; vm {
				// A DestroyVM may fail only a few times a trace, for a VM
				// with at most two pages (a VM it leaves behind is given
				// no memory: divergence_test.go); otherwise a failing page
				// is mended first, and the retry can succeed.
				if pa, ok := failing(g); ok {
					if len(in.dead) >= 3 || pages(g) > 2 || rng.Intn(4) != 0 {
						op = fmt.Sprintf("setfail %d 0", pa)
					}
				}
			}
		case x < 36:
			op = fmt.Sprintf("setfail %d %d", page(), rng.Intn(3)/2)
		case x < 48:
			op = fmt.Sprintf("write %d %d", who(), page())
		case x < 56:
			op = fmt.Sprintf("read %d %d", who(), page())
		case x < 78:
			pa, sz := rng2()
			if p, _, ok := pageWhere(func(o, _ ledger.Owner) bool { return o == ledger.Control }); ok && rng.Intn(3) != 0 {
				pa, sz = p, uint64(1+rng.Intn(2))*pageSz // from a page the control partition owns
			}
			g := vmGuest()
			var ipa uint64
			switch rng.Intn(16) {
			case 0:
				ipa = rndIPABase + uint64(rng.Intn(rndIPAPages))*pageSz + 8 // unaligned
			case 1:
				ipa = ipaTop // valid for one page, past the end for more
			case 2:
				ipa = ^uint64(0) - pageSz + 1 // wraps
			default:
				ipa = rndIPABase
				if k := int(sz / pageSz); sz%pageSz == 0 && k > 0 && k <= rndIPAPages {
					ipa += uint64(rng.Intn(rndIPAPages-k+1)) * pageSz
				}
			}
			op = fmt.Sprintf("donatemap %d %d %d %d %d", pa, ipa, sz, g, rng.Intn(8))
			if in.dead[g] {
				op = access()
			}
		default:
			op = access()
		}
		out := r.do(op)
		switch w := strings.Fields(op); {
		case w[0] == "donatemap" && out == "ok":
			st.mapped++
		case w[0] == "reclaim" && in.vms[own(w[1])] != nil && !strings.Contains(out, "err"):
			st.destroyed++
			// A guest a failed DestroyVM took out of live, destroyed on a
			// retry, has a new VM: it can serve again.
			if g := own(w[1]); !slices.Contains(live, g) {
				spare = append(spare, g)
			}
		case w[0] == "reclaim" && in.vms[own(w[1])] != nil && strings.Contains(out, "dirty"):
			st.dirty++
			for i, g := range live {
				if g == own(w[1]) && len(spare) > 0 {
					live[i], spare = spare[0], spare[1:]
				}
			}
		case w[0][0] == 'g' && out != "err denied":
			st.gok++
		}
		dump()
	}
	return r, st
}

const randomLen = 20000

func TestOracleRandom(t *testing.T) {
	seeds := []int64{1, 2, 3, 4, 5}
	now := time.Now().UnixNano()
	t.Logf("time-based seed: %d (rerun one with PROOFS_SEED=%d)", now, now)
	seeds = append(seeds, now)
	if s := seedFromEnv(); s != 0 {
		seeds = []int64{s}
	}
	for _, seed := range seeds {
		r, st := randomTrace(t, realCode, seed, randomLen)
		if m := check(t, r); m != "" {
			t.Fatalf("seed %d: the Go code and the Coq model differ:\n%s", seed, m)
		}
		t.Logf("seed %d: %d calls agree (%d successful Hyp.Donate, %d complete and %d failed Hyp.DestroyVM, %d guest accesses allowed)",
			seed, randomLen, st.mapped, st.destroyed, st.dirty, st.gok)
	}
}
