//go:build proofs

package proofs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/bulkhead-hv/bulkhead/hyp"
	"github.com/bulkhead-hv/bulkhead/hyp/ledger"
	"github.com/bulkhead-hv/bulkhead/mmu"
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

// rawLedger is the *ledger.Ledger under a Ledger: hyp.New needs the
// concrete type, so the Hyp's own calls (CheckDonate, Donate and Reclaim
// from Hyp.Donate and Hyp.DestroyVM) always reach the real ledger, and a
// ledger mutant is seen through the harness's direct ledger calls.
func rawLedger(l Ledger) *ledger.Ledger {
	switch x := l.(type) {
	case *ledger.Ledger:
		return x
	case interface{ raw() *ledger.Ledger }:
		return x.raw()
	}
	panic(fmt.Sprintf("harness: %T has no *ledger.Ledger under it", l))
}

// Stage2 is the part of hyp the harness drives for the stage 2 half of the
// model: Hyp.Donate (DonateMap), Hyp.DestroyVM (Reclaim of a guest) and
// VM.Translate (the walk of the real mmu tables). realS2 calls them; the
// seeded bugs in mutants_s2_test.go wrap them.
type Stage2 interface {
	Donate(vm *hyp.VM, pa, ipa, size uint64, perm mmu.Perm) error
	DestroyVM(vm *hyp.VM) (int, error)
	Translate(vm *hyp.VM, ipa uint64) (pa uint64, perm mmu.Perm, ok bool)
}

// Stage2Factory wraps a Hyp built by the harness.
type Stage2Factory func(h *hyp.Hyp) Stage2

type realS2 struct{ h *hyp.Hyp }

func realStage2(h *hyp.Hyp) Stage2 { return realS2{h} }

func (r realS2) Donate(vm *hyp.VM, pa, ipa, size uint64, perm mmu.Perm) error {
	return r.h.Donate(vm, pa, ipa, size, perm)
}

// DestroyVM needs a stopped VM. The harness's VMs never run (a guest's
// accesses are GRead/GWrite through its tables), so it stops it here.
func (r realS2) DestroyVM(vm *hyp.VM) (int, error) {
	vm.State = hyp.Stopped
	return r.h.DestroyVM(vm)
}

func (r realS2) Translate(vm *hyp.VM, ipa uint64) (uint64, mmu.Perm, bool) {
	return vm.Translate(ipa)
}

// Variant is the code under test: a ledger and the stage 2 operations,
// each the real one or a seeded bug.
type Variant struct {
	Ledger Factory
	Stage2 Stage2Factory
}

var realCode = Variant{realLedger, realStage2}

// machine is what a trace's init line does not say: the model guests that
// have a VM, and the IPAs walked in every VM's tables after each call.
type machine struct {
	guests []ledger.Owner
	walk   []uint64
}

// The Hyp's configuration (as hyp's own tests build it), and where its
// table pool lives: outside the ledger's RAM, which the model describes.
const (
	poolBase  = 0x1_0000_0000
	poolPages = 512
)

var hypConfig = hyp.Config{IPABits: ipaBits, VMID16: true, NumLRs: 4, Slice: 10000,
	PPIs: hyp.PPIs{Maintenance: 25, HypTimer: 26, VTimer: 27}}

// fakeMem is physical memory abstracted as the model abstracts it: for
// every page, the set of compartments whose writes it holds since it was
// last zeroed, and whether zeroing it fails. It is also the Hyp's Phys:
// stage 2 table pages are real arrays the mmu package writes and walks.
type fakeMem struct {
	writers map[uint64]map[ledger.Owner]bool
	fail    map[uint64]bool
	tables  map[uint64]*[mmu.Entries]uint64
}

func newFakeMem(tables map[uint64]*[mmu.Entries]uint64) *fakeMem {
	return &fakeMem{writers: map[uint64]map[ledger.Owner]bool{}, fail: map[uint64]bool{}, tables: tables}
}

var errZero = errors.New("fake memory: zeroing failed")

func (m *fakeMem) Zero(pa uint64) error {
	if m.fail[pa] {
		return errZero
	}
	delete(m.writers, pa)
	return nil
}

// Table is hyp.Phys.Table: the pool zeroes a table page when it hands it
// out, so the arrays are kept from one run of a trace to the next.
func (m *fakeMem) Table(pa uint64) *[mmu.Entries]uint64 {
	t := m.tables[pa]
	if t == nil {
		t = new([mmu.Entries]uint64)
		m.tables[pa] = t
	}
	return t
}

// Write is hyp.Phys.Write, used only by the loader.
func (m *fakeMem) Write(pa uint64, b []byte) {
	panic("harness: Phys.Write is not used by the calls the harness makes")
}

// Read is hyp.Phys.Read, used only by the console calls.
func (m *fakeMem) Read(pa uint64, b []byte) {
	panic("harness: Phys.Read is not used by the calls the harness makes")
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

// recTLB is the Hyp's StageTLB: it records the invalidations of one call.
type recTLB struct {
	calls []inval
	all   int
}

type inval struct {
	ipa   uint64
	level int
}

func (t *recTLB) InvalidateIPA(vmid uint16, ipa uint64, level int) {
	t.calls = append(t.calls, inval{ipa, level})
}
func (t *recTLB) InvalidateAll() { t.all++ }

// xl is one stage 2 translation of one page, as walked from a VM's tables
// (or as a TLB may still hold it).
type xl struct {
	vm   ledger.Owner // the VM's ID, its owner in the ledger
	ipn  uint64       // IPA page number
	pa   uint64
	perm mmu.Perm
}

// interp runs the oracle's trace language against the Go code and prints
// what the oracle prints for the same line.
//
// Guests. A model guest g is a VM made by Hyp.CreateVM. Hyp hands out a
// fresh ID to every VM and never reuses one, while the model's guest g
// lives on after Reclaim g (with nothing left, when the reclaim completed).
// So each model guest has a current VM, replaced by a new one when
// DestroyVM completes, and the harness renames: every ID a VM of g ever
// had prints as g, and g in a call means its current VM's ID. A guest
// number with no VM stands for an ID no VM has (unknownGuest + g).
//
// TLBs. Before a call that may change tables, every translation walked is
// taken as possibly cached in a TLB; the StageTLB invalidations the call
// makes remove the cached ones they cover (of the VM operated on); the
// ones left are still usable by the guest, so they are printed with the
// walked ones. Correct code never leaves one that is not also walked.
type interp struct {
	v       Variant
	m       machine
	l       Ledger
	mem     *fakeMem
	tables  map[uint64]*[mmu.Entries]uint64
	h       *hyp.Hyp
	s2      Stage2
	tlb     *recTLB
	vms     map[ledger.Owner]*hyp.VM      // model guest -> its current VM
	label   map[ledger.Owner]ledger.Owner // VM ID -> model guest, every VM made
	dead    map[ledger.Owner]bool         // model guests whose VM a failed DestroyVM tore down
	cached  map[xl]bool
	base    uint64
	npages  int
	init    string
	history []string
	saved   map[string][]string
}

const unknownGuest = 0xff00

func newInterp(v Variant, m machine) *interp {
	return &interp{v: v, m: m, saved: map[string][]string{}, tables: map[uint64]*[mmu.Entries]uint64{}}
}

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
	{hyp.ErrIPARange, "iparange"},
	{hyp.ErrVMTornDown, "torndown"},
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

func reclaimResult(n int, err error) string {
	switch {
	case err == nil:
		return fmt.Sprintf("reclaim %d", n)
	case n == 0 && errors.Is(err, ledger.ErrBadOwner):
		return "err badowner"
	default:
		return fmt.Sprintf("reclaim %d err %s", n, errName(err))
	}
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
	if int(num(w[3])) != hypConfig.IPABits {
		panic("harness: the Hyp is configured for a different IPA size")
	}
	in.mem = newFakeMem(in.tables)
	in.l = in.v.Ledger(in.base, in.npages, in.mem)
	in.tlb = &recTLB{}
	pool := hyp.NewTablePool(in.mem, poolBase, poolPages)
	in.h = hyp.New(rawLedger(in.l), pool, in.mem, in.tlb, hypConfig, io.Discard)
	in.s2 = in.v.Stage2(in.h)
	in.vms = map[ledger.Owner]*hyp.VM{}
	in.label = map[ledger.Owner]ledger.Owner{}
	in.dead = map[ledger.Owner]bool{}
	in.cached = map[xl]bool{}
	for _, g := range in.m.guests {
		in.incarnate(g)
	}
	in.init = line
	in.history = in.history[:0]
}

// incarnate gives model guest g a new VM.
func (in *interp) incarnate(g ledger.Owner) {
	vm, err := in.h.CreateVM(fmt.Sprintf("guest%d", g))
	if err != nil {
		panic(fmt.Sprintf("harness: CreateVM: %v", err))
	}
	in.vms[g] = vm
	in.label[vm.ID] = g
}

// goID is the ledger owner standing for model compartment c.
func (in *interp) goID(c ledger.Owner) ledger.Owner {
	if !c.IsGuest() {
		return c
	}
	if vm, ok := in.vms[c]; ok {
		return vm.ID
	}
	return unknownGuest + c
}

// name is the model compartment a ledger owner stands for.
func (in *interp) name(o ledger.Owner) string {
	if g, ok := in.label[o]; ok {
		return strconv.Itoa(int(g))
	}
	if !o.IsGuest() {
		return strconv.Itoa(int(o))
	}
	if o >= unknownGuest {
		return strconv.Itoa(int(o - unknownGuest))
	}
	return fmt.Sprintf("?%d", o)
}

// vm is model guest g's current VM, for the stage 2 calls.
func (in *interp) vm(g ledger.Owner) *hyp.VM {
	vm, ok := in.vms[g]
	if !ok {
		panic(fmt.Sprintf("harness: guest %d has no VM: stage 2 calls name a configured guest "+
			"(Hyp.Donate takes a VM, and a VM's ID is always a guest)", g))
	}
	return vm
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
		fmt.Fprintf(&b, "%s,%s,%d,%s,", in.name(o), in.name(br), z, in.mem.list(pa))
		for c := 0; c < k; c++ {
			if in.l.CanAccess(in.goID(ledger.Owner(c)), pa) {
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

// walk is every translation of every VM the Hyp has, walked from the real
// tables at the machine's IPAs.
func (in *interp) walk() []xl {
	var xs []xl
	for _, vm := range in.h.VMs() {
		for _, ipa := range in.m.walk {
			if pa, p, ok := in.s2.Translate(vm, ipa); ok {
				xs = append(xs, xl{vm.ID, ipa / pageSz, pa, p})
			}
		}
	}
	return xs
}

// maps prints the walked translations and the ones a TLB may still hold
// as the oracle prints the model's: "vm:ipn>page/perm", sorted.
func (in *interp) maps() string {
	set := map[string]bool{}
	for _, x := range in.walk() {
		set[in.fmtXL(x)] = true
	}
	for x := range in.cached {
		set[in.fmtXL(x)] = true
	}
	l := make([]string, 0, len(set))
	for s := range set {
		l = append(l, s)
	}
	sort.Strings(l)
	return "maps " + strings.Join(l, " ")
}

func (in *interp) fmtXL(x xl) string {
	page := fmt.Sprintf("?%#x", x.pa)
	if x.pa%pageSz == 0 && x.pa >= in.base && x.pa < in.base+uint64(in.npages)*pageSz {
		page = strconv.FormatUint((x.pa-in.base)/pageSz, 10)
	}
	return fmt.Sprintf("%s:%d>%s/%d", in.name(x.vm), x.ipn, page, x.perm)
}

// s2call runs f, a call on vm that may change stage 2 tables, and keeps
// the TLB picture: what was walkable before may be cached; what f
// invalidated (for vm) is not any more.
func (in *interp) s2call(vm *hyp.VM, f func()) {
	for _, x := range in.walk() {
		in.cached[x] = true
	}
	in.tlb.calls, in.tlb.all = in.tlb.calls[:0], 0
	f()
	if in.tlb.all > 0 {
		clear(in.cached)
	}
	for _, c := range in.tlb.calls {
		size := mmu.LevelSize(c.level)
		lo := c.ipa &^ (size - 1)
		for x := range in.cached {
			if x.vm == vm.ID && x.ipn*pageSz >= lo && x.ipn*pageSz-lo < size {
				delete(in.cached, x)
			}
		}
	}
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
	case "maps":
		return in.maps()
	}
	out := in.op(w)
	if w[0] != "read" && w[0] != "gread" {
		in.history = append(in.history, line)
	}
	return out
}

func (in *interp) op(w []string) string {
	switch w[0] {
	case "assign":
		return result(in.l.Assign(num(w[1]), num(w[2]), in.goID(own(w[3]))))
	case "donate":
		return result(in.l.Donate(num(w[1]), num(w[2]), in.goID(own(w[3]))))
	case "share":
		return result(in.l.Share(num(w[1]), num(w[2]), in.goID(own(w[3]))))
	case "unshare":
		return result(in.l.Unshare(num(w[1]), num(w[2]), in.goID(own(w[3]))))
	case "donatemap":
		pa, ipa, size, g, perm := num(w[1]), num(w[2]), num(w[3]), own(w[4]), num(w[5])
		if perm > 7 {
			panic("harness: permissions are mmu.Perm bits, 0 to 7")
		}
		vm := in.vm(g)
		var err error
		in.s2call(vm, func() { err = in.s2.Donate(vm, pa, ipa, size, mmu.Perm(perm)) })
		return result(err)
	case "reclaim":
		g := own(w[1])
		vm, ok := in.vms[g]
		if !ok {
			// Not a VM (the hypervisor, the control partition, a guest
			// number with no VM): only the ledger can be asked.
			return reclaimResult(in.l.Reclaim(in.goID(g)))
		}
		var n int
		var err error
		in.s2call(vm, func() { n, err = in.s2.DestroyVM(vm) })
		switch {
		case err == nil:
			delete(in.dead, g)
			in.incarnate(g)
		case errors.Is(err, ledger.ErrDirtyReturn):
			in.dead[g] = true
		}
		return reclaimResult(n, err)
	case "setfail":
		pa := num(w[1])
		if _, _, ok := in.l.Owner(pa); !ok {
			return "err range"
		}
		in.mem.fail[pa&^(ledger.PageSize-1)] = w[2] == "1"
		return "ok"
	case "write":
		c, pa := own(w[1]), num(w[2])
		if !in.l.CanAccess(in.goID(c), pa) {
			return "err denied"
		}
		in.mem.write(c, pa&^(ledger.PageSize-1))
		return "ok"
	case "read":
		c, pa := own(w[1]), num(w[2])
		if !in.l.CanAccess(in.goID(c), pa) {
			return "err denied"
		}
		return "data " + in.mem.list(pa&^(ledger.PageSize-1))
	case "gwrite", "gread":
		// The guest's access as the MMU performs it: through its real
		// stage 2 tables, allowed by the permission there. The ledger
		// must agree that the page is the guest's: otherwise print what
		// the oracle never prints.
		g, ipa := own(w[1]), num(w[2])
		vm := in.vm(g)
		need := mmu.Read
		if w[0] == "gwrite" {
			need = mmu.Write
		}
		pa, perm, ok := in.s2.Translate(vm, ipa)
		if !ok || perm&need == 0 {
			return "err denied"
		}
		page := pa &^ (ledger.PageSize - 1)
		if o, _, ok := in.h.Ledger.Owner(page); !ok || o != vm.ID {
			return fmt.Sprintf("isolation: VM of guest %d reached pa %#x, owned by %s", g, pa, in.name(o))
		}
		if w[0] == "gwrite" {
			in.mem.write(g, page)
			return "ok"
		}
		return "data " + in.mem.list(page)
	}
	panic("harness: unknown operation " + w[0])
}

// recorder runs lines through the Go interpreter and, as it goes, through
// the oracle: an oracle process reads the trace as it is made, and a
// goroutine compares each line it prints with the Go side's line for the
// same input, so that the Go side and the oracle run side by side.
type recorder struct {
	in    *interp
	lines int

	cmd       *exec.Cmd
	stdin     io.WriteCloser
	w         *bufio.Writer
	stderr    bytes.Buffer
	done      chan struct{}
	traceFile *os.File

	mu      sync.Mutex
	caught  sync.Cond   // the oracle answered, or stopped
	pending [][2]string // (trace line, Go output) the oracle has not answered
	head    int
	recent  []string // the trace lines before the one compared
	first   string   // the first difference
	bad     atomic.Bool
	eof     bool
}

func newRecorder(t testing.TB, v Variant, m machine) *recorder {
	t.Helper()
	if _, err := os.Stat(oraclePath); err != nil {
		t.Fatalf("the oracle %s is missing: run `make -C proofs` (it extracts and builds it from the Coq model)", oraclePath)
	}
	r := &recorder{in: newInterp(v, m), cmd: exec.Command(oraclePath), done: make(chan struct{})}
	r.caught.L = &r.mu
	var err error
	if r.stdin, err = r.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := r.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	r.cmd.Stderr = &r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("oracle: %v", err)
	}
	var w io.Writer = r.stdin
	if f := os.Getenv("PROOFS_TRACE"); f != "" {
		// Keep a copy of the trace (of the last recorder) to replay by hand.
		tf, err := os.Create(f)
		if err != nil {
			t.Fatal(err)
		}
		w = io.MultiWriter(r.stdin, tf)
		r.traceFile = tf
	}
	r.w = bufio.NewWriterSize(w, 1<<16)
	go r.compare(out)
	return r
}

// maxPending bounds the lines the Go side may be ahead of the oracle by.
const maxPending = 1 << 20

// do runs one line on the Go side and sends it to the oracle.
func (r *recorder) do(line string) string {
	out := r.in.exec(line)
	r.mu.Lock()
	if len(r.pending)-r.head >= maxPending {
		// Let the oracle catch up, with every line flushed to it. It
		// answers all of them but those its output buffer holds back
		// (60,000 bytes: at most 30,000 lines) and the pipe's (64 KiB),
		// far fewer than maxPending/2, so the wait ends.
		r.mu.Unlock()
		r.w.Flush()
		r.mu.Lock()
		for len(r.pending)-r.head >= maxPending/2 && !r.eof {
			r.caught.Wait()
		}
	}
	r.pending = append(r.pending, [2]string{line, out})
	r.mu.Unlock()
	r.lines++
	r.w.WriteString(line)
	r.w.WriteByte('\n')
	return out
}

// failed reports that a difference was found (so a search may stop).
func (r *recorder) failed() bool { return r.bad.Load() }

func (r *recorder) compare(out io.Reader) {
	defer close(r.done)
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	n := 0
	for sc.Scan() {
		model := sc.Text()
		n++
		r.mu.Lock()
		if r.head == len(r.pending) {
			if r.first == "" {
				r.first = fmt.Sprintf("the oracle printed more lines than it was given (%d)", n)
				r.bad.Store(true)
			}
			r.mu.Unlock()
			continue
		}
		p := r.pending[r.head]
		r.pending[r.head] = [2]string{}
		r.head++
		if r.head > 4096 && r.head*2 > len(r.pending) {
			r.pending = append(r.pending[:0], r.pending[r.head:]...)
			r.head = 0
		}
		if n%4096 == 0 {
			r.caught.Broadcast()
		}
		r.mu.Unlock()
		if r.first == "" && p[1] != model {
			r.first = fmt.Sprintf("line %d: %q\n  go:    %s\n  model: %s\n  trace before it:\n    %s",
				n, p[0], p[1], model, strings.Join(r.recent, "\n    "))
			r.bad.Store(true)
		}
		if r.recent = append(r.recent, p[0]); len(r.recent) > 8 {
			r.recent = r.recent[1:]
		}
	}
	r.mu.Lock()
	r.eof = true
	r.caught.Broadcast()
	r.mu.Unlock()
}

// finish ends the oracle's input, waits for it, and describes the first
// difference ("" when every line agreed).
func (r *recorder) finish(t testing.TB) string {
	t.Helper()
	r.w.Flush()
	r.stdin.Close()
	if r.traceFile != nil {
		r.traceFile.Close()
	}
	<-r.done
	err := r.cmd.Wait()
	if r.first != "" {
		return r.first
	}
	if left := len(r.pending) - r.head; left > 0 || err != nil {
		return fmt.Sprintf("the oracle stopped with %d of %d lines unanswered (%v): %s", left, r.lines, err, r.stderr.String())
	}
	return ""
}
