//go:build proofs

package proofs

import (
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/bulkhead-hv/bulkhead/hyp/ledger"
)

const (
	base    = 0x4000_0000
	pageSz  = ledger.PageSize
	ipaBits = 40
)

// config is a small machine for the exhaustive search.
type config struct {
	name     string
	npages   int
	accessK  int // access bits printed for compartments 0..accessK-1
	writes   bool
	maxDepth int // 0: no bound (search to the fixpoint)
}

// ranges are every valid range of an n-page RAM and one of each way a
// range can be wrong.
func ranges(n int) [][2]uint64 {
	var r [][2]uint64
	for i := 0; i < n; i++ {
		for k := 1; i+k <= n; k++ {
			r = append(r, [2]uint64{base + uint64(i)*pageSz, uint64(k) * pageSz})
		}
	}
	end := uint64(base + n*pageSz)
	return append(r,
		[2]uint64{base - pageSz, pageSz},               // starts below RAM
		[2]uint64{0, pageSz},                           // far below RAM
		[2]uint64{end - pageSz, 2 * pageSz},            // runs past the end
		[2]uint64{end, pageSz},                         // starts at the end
		[2]uint64{base + pageSz/2, pageSz},             // unaligned address
		[2]uint64{base, pageSz / 2},                    // unaligned size
		[2]uint64{base, 0},                             // empty
		[2]uint64{^uint64(0) - pageSz + 1, 2 * pageSz}, // wraps around 2^64
	)
}

// operations is every call of the configuration, valid and invalid:
// owners 0 none, 1 hypervisor, 2 control, 3 and 4 guests.
func operations(c config) []string {
	var ops []string
	for _, r := range ranges(c.npages) {
		for _, to := range []int{1, 2, 3} {
			ops = append(ops, fmt.Sprintf("assign %d %d %d", r[0], r[1], to))
		}
		for _, g := range []int{2, 3, 4} {
			ops = append(ops, fmt.Sprintf("donate %d %d %d", r[0], r[1], g))
			ops = append(ops, fmt.Sprintf("share %d %d %d", r[0], r[1], g))
			ops = append(ops, fmt.Sprintf("unshare %d %d %d", r[0], r[1], g))
		}
	}
	for _, g := range []int{1, 3, 4} {
		ops = append(ops, fmt.Sprintf("reclaim %d", g))
	}
	for i := 0; i < c.npages; i++ {
		pa := base + i*pageSz
		ops = append(ops, fmt.Sprintf("setfail %d 1", pa), fmt.Sprintf("setfail %d 0", pa+8))
	}
	ops = append(ops, fmt.Sprintf("setfail %d 1", base+c.npages*pageSz))
	if c.writes {
		pas := []int{base + c.npages*pageSz, base - 1}
		for i := 0; i < c.npages; i++ {
			pas = append(pas, base+i*pageSz+i*100)
		}
		for who := 0; who <= 4; who++ {
			for _, pa := range pas {
				ops = append(ops, fmt.Sprintf("write %d %d", who, pa), fmt.Sprintf("read %d %d", who, pa))
			}
		}
	}
	return ops
}

// recorder runs lines through the Go interpreter and keeps the trace and
// the Go side's output for the oracle to be compared with.
type recorder struct {
	in           *interp
	trace, goOut []string
}

func (r *recorder) do(line string) string {
	out := r.in.exec(line)
	r.trace = append(r.trace, line)
	r.goOut = append(r.goOut, out)
	return out
}

type exploration struct {
	states, cases, depth int
	fixpoint             bool
}

// explore searches the states the Go ledger reaches breadth first, trying
// every operation in every state, and records the whole search as one
// trace: "load S", the operation, "dump", and "save" for each new state.
func explore(mk Factory, c config) (*recorder, exploration) {
	r := &recorder{in: newInterp(mk)}
	ops := operations(c)
	dump := fmt.Sprintf("dump %d", c.accessK)
	r.do(fmt.Sprintf("init %d %d %d", base, c.npages, ipaBits))
	seen := map[string]int{r.do(dump): 0}
	r.do("save 0")
	frontier := []int{0}
	var e exploration
	for len(frontier) > 0 && (c.maxDepth == 0 || e.depth < c.maxDepth) {
		var next []int
		for _, s := range frontier {
			for _, op := range ops {
				r.do(fmt.Sprintf("load %d", s))
				r.do(op)
				d := r.do(dump)
				e.cases++
				if _, ok := seen[d]; !ok {
					id := len(seen)
					seen[d] = id
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
	{name: "2 pages, every operation with writes and reads", npages: 2, accessK: 6, writes: true},
	{name: "3 pages, every operation, depth 5", npages: 3, accessK: 6, writes: true, maxDepth: 5},
}

func check(t testing.TB, mk Factory, r *recorder) string {
	t.Helper()
	return mismatch(r.trace, r.goOut, runOracle(t, r.trace))
}

func TestOracleExhaustive(t *testing.T) {
	for _, c := range exhaustive {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			r, e := explore(realLedger, c)
			if m := check(t, realLedger, r); m != "" {
				t.Fatalf("the Go ledger and the Coq model differ:\n%s", m)
			}
			t.Logf("%d states, %d (state, call) cases, depth %d, fixpoint reached: %v, %d trace lines, %v",
				e.states, e.cases, e.depth, e.fixpoint, len(r.trace), time.Since(start).Round(time.Millisecond))
			if c.maxDepth == 0 && !e.fixpoint {
				t.Fatalf("search stopped before the fixpoint")
			}
		})
	}
}

// randomTrace is n random calls on a 16-page machine with guests 3..7,
// each followed by a dump: mostly valid ranges, some invalid.
func randomTrace(mk Factory, seed int64, n int) *recorder {
	const npages, k = 16, 8
	rng := rand.New(rand.NewSource(seed))
	r := &recorder{in: newInterp(mk)}
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
	page := func() uint64 { return uint64(base + (rng.Intn(npages+2)-1)*pageSz + rng.Intn(pageSz)) }
	// Boot: most of RAM to the hypervisor and the control partition.
	r.do(fmt.Sprintf("assign %d %d 1", base, 2*pageSz))
	r.do(fmt.Sprintf("dump %d", k))
	r.do(fmt.Sprintf("assign %d %d 2", base+2*pageSz, (npages-4)*pageSz))
	r.do(fmt.Sprintf("dump %d", k))
	for i := 0; i < n; i++ {
		var op string
		switch x := rng.Intn(100); {
		case x < 4:
			pa, sz := rng2()
			op = fmt.Sprintf("assign %d %d %d", pa, sz, who())
		case x < 24:
			pa, sz := rng2()
			op = fmt.Sprintf("donate %d %d %d", pa, sz, who())
		case x < 38:
			pa, sz := rng2()
			op = fmt.Sprintf("share %d %d %d", pa, sz, who())
		case x < 48:
			pa, sz := rng2()
			op = fmt.Sprintf("unshare %d %d %d", pa, sz, who())
		case x < 56:
			op = fmt.Sprintf("reclaim %d", who())
		case x < 60:
			op = fmt.Sprintf("setfail %d %d", page(), rng.Intn(3)/2)
		case x < 82:
			op = fmt.Sprintf("write %d %d", who(), page())
		default:
			op = fmt.Sprintf("read %d %d", who(), page())
		}
		r.do(op)
		r.do(fmt.Sprintf("dump %d", k))
	}
	return r
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
		r := randomTrace(realLedger, seed, randomLen)
		if m := check(t, realLedger, r); m != "" {
			t.Fatalf("seed %d: the Go ledger and the Coq model differ:\n%s", seed, m)
		}
		t.Logf("seed %d: %d calls agree", seed, randomLen)
	}
}
