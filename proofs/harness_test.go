//go:build proofs

package proofs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/bulkhead-hv/bulkhead/hyp/ledger"
)

// oraclePath is where `make -C proofs` puts the extracted oracle.
const oraclePath = "build/oracle/oracle"

// Ledger is the API of hyp/ledger the harness drives; *ledger.Ledger has
// it, and so have the seeded-bug variants in mutants_test.go.
type Ledger interface {
	Assign(pa, size uint64, to ledger.Owner) error
	Donate(pa, size uint64, to ledger.Owner) error
	Share(pa, size uint64, owner ledger.Owner) error
	Unshare(pa, size uint64, owner ledger.Owner) error
	Reclaim(guest ledger.Owner) (int, error)
	Owner(pa uint64) (owner, borrower ledger.Owner, ok bool)
	CanAccess(c ledger.Owner, pa uint64) bool
	Check() error
}

// Factory makes a ledger of npages at base over mem.
type Factory func(base uint64, npages int, mem ledger.Memory) Ledger

func realLedger(base uint64, npages int, mem ledger.Memory) Ledger {
	return ledger.New(base, npages, mem)
}

// fakeMem is physical memory abstracted as the model abstracts it: for
// every page, the set of compartments whose writes it holds since it was
// last zeroed, and whether zeroing it fails.
type fakeMem struct {
	writers map[uint64]map[ledger.Owner]bool
	fail    map[uint64]bool
}

func newFakeMem() *fakeMem {
	return &fakeMem{writers: map[uint64]map[ledger.Owner]bool{}, fail: map[uint64]bool{}}
}

var errZero = errors.New("fake memory: zeroing failed")

func (m *fakeMem) Zero(pa uint64) error {
	if m.fail[pa] {
		return errZero
	}
	delete(m.writers, pa)
	return nil
}

func (m *fakeMem) write(c ledger.Owner, pa uint64) {
	if m.writers[pa] == nil {
		m.writers[pa] = map[ledger.Owner]bool{}
	}
	m.writers[pa][c] = true
}

func (m *fakeMem) list(pa uint64) string {
	var w []int
	for c := range m.writers[pa] {
		w = append(w, int(c))
	}
	if len(w) == 0 {
		return "-"
	}
	sort.Ints(w)
	s := make([]string, len(w))
	for i, c := range w {
		s[i] = strconv.Itoa(c)
	}
	return strings.Join(s, "+")
}

// interp runs the oracle's trace language against a Go ledger and prints
// what the oracle prints for the same line.
type interp struct {
	mk      Factory
	l       Ledger
	mem     *fakeMem
	base    uint64
	npages  int
	init    string
	history []string
	saved   map[string][]string
}

func newInterp(mk Factory) *interp { return &interp{mk: mk, saved: map[string][]string{}} }

var errNames = []struct {
	err  error
	name string
}{
	{ledger.ErrRange, "range"},
	{ledger.ErrNotOwner, "notowner"},
	{ledger.ErrShared, "shared"},
	{ledger.ErrNotShared, "notshared"},
	{ledger.ErrBadOwner, "badowner"},
	{ledger.ErrNotFree, "notfree"},
	{ledger.ErrDirtyReturn, "dirty"},
}

func errName(err error) string {
	for _, e := range errNames {
		if errors.Is(err, e.err) {
			return e.name
		}
	}
	return "unknown(" + err.Error() + ")"
}

func result(err error) string {
	if err == nil {
		return "ok"
	}
	return "err " + errName(err)
}

func num(s string) uint64 {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		panic(fmt.Sprintf("harness: bad number %q", s))
	}
	return v
}

func own(s string) ledger.Owner {
	v, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		panic(fmt.Sprintf("harness: bad owner %q", s))
	}
	return ledger.Owner(v)
}

func (in *interp) reset(line string) {
	w := strings.Fields(line)
	in.base, in.npages = num(w[1]), int(num(w[2]))
	in.mem = newFakeMem()
	in.l = in.mk(in.base, in.npages, in.mem)
	in.init = line
	in.history = in.history[:0]
}

func (in *interp) dump(k int) string {
	var b strings.Builder
	b.WriteString("state ")
	for i := 0; i < in.npages; i++ {
		pa := in.base + uint64(i)*ledger.PageSize
		o, br, _ := in.l.Owner(pa)
		z := 0
		if in.mem.fail[pa] {
			z = 1
		}
		fmt.Fprintf(&b, "%d,%d,%d,%s,", o, br, z, in.mem.list(pa))
		for c := 0; c < k; c++ {
			if in.l.CanAccess(ledger.Owner(c), pa) {
				b.WriteByte('1')
			} else {
				b.WriteByte('0')
			}
		}
		b.WriteByte(';')
	}
	if in.l.Check() == nil {
		b.WriteString("check=1")
	} else {
		b.WriteString("check=0")
	}
	return b.String()
}

// exec runs one line and returns the output line.
func (in *interp) exec(line string) string {
	w := strings.Fields(line)
	switch w[0] {
	case "init":
		in.reset(line)
		return "-"
	case "save":
		in.saved[w[1]] = append([]string(nil), in.history...)
		return "-"
	case "load":
		h, ok := in.saved[w[1]]
		if !ok {
			panic("harness: no snapshot " + w[1])
		}
		in.reset(in.init)
		for _, op := range h {
			in.exec(op)
		}
		in.history = append(in.history[:0], h...)
		return "-"
	case "dump":
		return in.dump(int(num(w[1])))
	}
	out := in.op(w)
	if w[0] != "read" {
		in.history = append(in.history, line)
	}
	return out
}

func (in *interp) op(w []string) string {
	switch w[0] {
	case "assign":
		return result(in.l.Assign(num(w[1]), num(w[2]), own(w[3])))
	case "donate":
		return result(in.l.Donate(num(w[1]), num(w[2]), own(w[3])))
	case "share":
		return result(in.l.Share(num(w[1]), num(w[2]), own(w[3])))
	case "unshare":
		return result(in.l.Unshare(num(w[1]), num(w[2]), own(w[3])))
	case "reclaim":
		n, err := in.l.Reclaim(own(w[1]))
		switch {
		case err == nil:
			return fmt.Sprintf("reclaim %d", n)
		case n == 0 && errors.Is(err, ledger.ErrBadOwner):
			return "err badowner"
		default:
			return fmt.Sprintf("reclaim %d err %s", n, errName(err))
		}
	case "setfail":
		pa := num(w[1])
		if _, _, ok := in.l.Owner(pa); !ok {
			return "err range"
		}
		in.mem.fail[pa&^(ledger.PageSize-1)] = w[2] == "1"
		return "ok"
	case "write":
		c, pa := own(w[1]), num(w[2])
		if !in.l.CanAccess(c, pa) {
			return "err denied"
		}
		in.mem.write(c, pa&^(ledger.PageSize-1))
		return "ok"
	case "read":
		c, pa := own(w[1]), num(w[2])
		if !in.l.CanAccess(c, pa) {
			return "err denied"
		}
		return "data " + in.mem.list(pa&^(ledger.PageSize-1))
	}
	panic("harness: unknown operation " + w[0])
}

// runOracle feeds the trace to the extracted oracle and returns its lines.
func runOracle(t testing.TB, trace []string) []string {
	t.Helper()
	if _, err := os.Stat(oraclePath); err != nil {
		t.Fatalf("the oracle %s is missing: run `make -C proofs` (it extracts and builds it from the Coq model)", oraclePath)
	}
	cmd := exec.Command(oraclePath)
	cmd.Stdin = strings.NewReader(strings.Join(trace, "\n") + "\n")
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("oracle: %v: %s", err, stderr.String())
	}
	return strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
}

// mismatch compares the Go lines with the oracle's for the same trace and
// describes the first difference, with the operations leading to it.
func mismatch(trace, goOut, model []string) string {
	if len(goOut) != len(trace) {
		panic("harness: one output line per trace line")
	}
	for i := range trace {
		if i >= len(model) {
			return fmt.Sprintf("oracle stopped after %d lines of %d", len(model), len(trace))
		}
		if goOut[i] != model[i] {
			from := i - 8
			if from < 0 {
				from = 0
			}
			return fmt.Sprintf("line %d: %q\n  go:    %s\n  model: %s\n  trace before it:\n    %s",
				i+1, trace[i], goOut[i], model[i], strings.Join(trace[from:i], "\n    "))
		}
	}
	if len(model) != len(trace) {
		return fmt.Sprintf("oracle printed %d lines for %d", len(model), len(trace))
	}
	return ""
}
