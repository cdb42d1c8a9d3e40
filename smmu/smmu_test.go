package smmu

import (
	"errors"
	"strings"
	"testing"

	"github.com/bulkhead-hv/bulkhead/mmu"
)

// arena is physical memory for the tests: the driver's allocations and
// table pages, from one bump allocator.
type arena struct {
	base uint64
	mem  []uint64
	next uint64
}

func newArena() *arena {
	return &arena{base: 0x1000_0000, mem: make([]uint64, 8<<20/8), next: 0x1000_0000}
}

func (a *arena) Alloc(n, align int) ([]uint64, uint64) {
	pa := (a.next + uint64(align) - 1) &^ (uint64(align) - 1)
	a.next = pa + uint64(n)
	if a.next > a.base+uint64(len(a.mem))*8 {
		panic("arena exhausted")
	}
	i := (pa - a.base) / 8
	return a.mem[i : i+uint64(n)/8], pa
}
func (a *arena) Barrier() {}
func (a *arena) AllocTable() (uint64, bool) {
	_, pa := a.Alloc(mmu.PageSize, mmu.PageSize)
	return pa, true
}
func (a *arena) Table(pa uint64) *[mmu.Entries]uint64 {
	i := (pa - a.base) / 8
	return (*[mmu.Entries]uint64)(a.mem[i : i+mmu.Entries])
}
func (a *arena) word(pa uint64) uint64 { return a.mem[(pa-a.base)/8] }

// model plays an SMMUv3 as QEMU's virt has one: stage 1 only, 16-bit
// stream IDs, 44-bit output. It consumes commands when CMDQ_PROD is
// written, caches translations until a TLBI removes them, and records
// events for the faults of translate.
type model struct {
	t         *testing.T
	mem       *arena
	idr0      uint32
	regs      map[uint64]uint64
	noAck     bool
	refuse    bool // refuse CMD_TLBI_EL2_ALL even with IDR0.HYP
	cmds      [][2]uint64
	tlb       map[[2]uint64]uint64 // (asid, page) -> PA page
	cfgCached map[uint32]bool
}

func newModel(t *testing.T, mem *arena) *model {
	return &model{t: t, mem: mem, idr0: IDR0_S1P | IDR0_TTF_AARCH64<<IDR0_TTF_SHIFT | IDR0_COHACC | IDR0_ASID16,
		regs: map[uint64]uint64{}, tlb: map[[2]uint64]uint64{}, cfgCached: map[uint32]bool{}}
}

func (m *model) Read32(a uint64) uint32 {
	switch a - smmuBase {
	case IDR0:
		return m.idr0
	case IDR1:
		return 16 | 19<<IDR1_EVENTQS_SHIFT | 19<<IDR1_CMDQS_SHIFT
	case IDR5:
		return 4 | IDR5_GRAN4K
	case CR0ACK:
		if m.noAck {
			return 0xdead
		}
		return uint32(m.regs[CR0])
	}
	return uint32(m.regs[a-smmuBase])
}
func (m *model) Read64(a uint64) uint64 { return m.regs[a-smmuBase] }
func (m *model) Write64(a uint64, v uint64) {
	m.regs[a-smmuBase] = v
}
func (m *model) Write32(a uint64, v uint32) {
	off := a - smmuBase
	switch off {
	case GBPA:
		v &^= GBPA_UPDATE
	case CMDQ_PROD:
		m.regs[off] = uint64(v)
		m.consume(v)
		return
	case GERRORN:
		m.regs[off] = uint64(v)
		m.consume(uint32(m.regs[CMDQ_PROD]))
		return
	}
	m.regs[off] = uint64(v)
}

const smmuBase = 0x0905_0000

func (m *model) consume(prod uint32) {
	base := m.regs[CMDQ_BASE] & QBASE_ADDR_MASK
	bits := uint32(m.regs[CMDQ_BASE] & 0x1f)
	cons := uint32(m.regs[CMDQ_CONS])
	for cons != prod && uint32(m.regs[GERROR]^m.regs[GERRORN])&GERROR_CMDQ_ERR == 0 {
		i := uint64(cons & (1<<bits - 1))
		c := [2]uint64{m.mem.word(base + 16*i), m.mem.word(base + 16*i + 8)}
		m.cmds = append(m.cmds, c)
		switch uint8(c[0]) {
		case CMD_CFGI_STE:
			delete(m.cfgCached, uint32(c[0]>>32))
		case CMD_CFGI_ALL:
			m.cfgCached = map[uint32]bool{}
		case CMD_TLBI_EL2_ALL:
			if m.idr0&IDR0_HYP == 0 || m.refuse {
				// CERROR_ILL: the SMMU stops at the command (7.1).
				m.regs[CMDQ_CONS] = uint64(cons | 1<<CMDQ_CONS_ERR_SHIFT)
				m.regs[GERROR] ^= GERROR_CMDQ_ERR
				return
			}
			m.tlb = map[[2]uint64]uint64{}
		case CMD_TLBI_NH_ASID, CMD_TLBI_NSNH_ALL:
			m.tlb = map[[2]uint64]uint64{}
		case CMD_TLBI_NH_VA:
			delete(m.tlb, [2]uint64{c[0] >> 48, c[1] >> 12})
		case CMD_SYNC:
		default:
			m.t.Errorf("unknown command %#x", c[0])
		}
		cons = (cons + 1) & (2<<bits - 1)
	}
	m.regs[CMDQ_CONS] = uint64(cons)
}

// event appends an event record as the SMMU would, or sets OVFLG when
// the queue is full.
func (m *model) event(typ uint8, sid uint32, addr uint64, read bool) {
	base := m.regs[EVENTQ_BASE] & QBASE_ADDR_MASK
	bits := uint32(m.regs[EVENTQ_BASE] & 0x1f)
	prod, cons := uint32(m.regs[EVENTQ_PROD]), uint32(m.regs[EVENTQ_CONS])
	if prod&(2<<bits-1) == cons&(2<<bits-1)^1<<bits {
		m.regs[EVENTQ_PROD] = uint64(prod ^ EVENTQ_PROD_OVFLG)
		return
	}
	i := uint64(prod & (1<<bits - 1))
	r := m.mem.mem[(base+32*i-m.mem.base)/8:]
	r[0], r[1], r[2], r[3] = uint64(typ)|uint64(sid)<<32, 0, addr, 0
	if read {
		r[1] = evtRnW
	}
	m.regs[EVENTQ_PROD] = uint64(prod&EVENTQ_PROD_OVFLG | (prod+1)&(2<<bits-1))
}

// translate is a device's access through the SMMU: the physical address,
// or false with an event recorded.
func (m *model) translate(sid uint32, va uint64, read bool) (uint64, bool) {
	if m.regs[CR0]&CR0_SMMUEN == 0 {
		return va, true
	}
	if sid >= 1<<(m.regs[STRTAB_BASE_CFG]&0x3f) {
		m.event(EVT_C_BAD_STREAMID, sid, 0, read)
		return 0, false
	}
	ste := (m.regs[STRTAB_BASE] & STRTAB_BASE_ADDR) + uint64(sid)*STESize
	s0 := m.mem.word(ste)
	if s0&STE0_V == 0 {
		m.event(EVT_C_BAD_STE, sid, 0, read)
		return 0, false
	}
	if s0>>STE0_CONFIG_SHIFT&7 == STEConfigAbort {
		return 0, false
	}
	cd0 := m.mem.word(s0 & STE0_CTXPTR_MASK)
	asid := cd0 >> CD0_ASID_SHIFT
	if pa, ok := m.tlb[[2]uint64{asid, va >> 12}]; ok {
		return pa | va&0xfff, true
	}
	ttb := m.mem.word(s0&STE0_CTXPTR_MASK+8) & CD1_TTB0_MASK
	bits := 64 - int(cd0&0x3f)
	level := 3
	for ; level > 0 && int(mmu.LevelShift(level))+9 < bits; level-- {
	}
	table := ttb
	for ; level <= 3; level++ {
		e := m.mem.Table(table)[(va>>mmu.LevelShift(level))&511]
		if e&mmu.DescValid == 0 {
			m.event(EVT_F_TRANSLATION, sid, va, read)
			return 0, false
		}
		if level < 3 && e&mmu.DescTable != 0 {
			table = e & mmu.OutputAddrMask
			continue
		}
		// A device's transactions are unprivileged (STE.PRIVCFG 0): they
		// need AP[1].
		if e&mmu.S1_AP1 == 0 || !read && e&mmu.S1_AP2_RO != 0 {
			m.event(EVT_F_PERMISSION, sid, va, read)
			return 0, false
		}
		size := mmu.LevelSize(level)
		pa := e&mmu.OutputAddrMask&^(size-1) | va&(size-1)
		m.tlb[[2]uint64{asid, va >> 12}] = pa &^ 0xfff
		return pa, true
	}
	return 0, false
}

func newSMMU(t *testing.T) (*SMMU, *model, *arena) {
	t.Helper()
	mem := newArena()
	m := newModel(t, mem)
	s, err := New(m, smmuBase, mem, 8)
	if err != nil {
		t.Fatal(err)
	}
	return s, m, mem
}

func TestNewAbortsEveryStream(t *testing.T) {
	s, m, _ := newSMMU(t)
	if m.regs[CR0] != CR0_SMMUEN|CR0_EVENTQEN|CR0_CMDQEN {
		t.Errorf("CR0 %#x", m.regs[CR0])
	}
	if m.regs[GBPA]&GBPA_ABORT == 0 {
		t.Errorf("GBPA %#x: bypass left on", m.regs[GBPA])
	}
	if s.Streams() != 256 || m.regs[STRTAB_BASE_CFG] != 8 {
		t.Errorf("%d streams, STRTAB_BASE_CFG %#x", s.Streams(), m.regs[STRTAB_BASE_CFG])
	}
	var ops []uint8
	for _, c := range m.cmds {
		ops = append(ops, uint8(c[0]))
	}
	// No CMD_TLBI_EL2_ALL: the model has no IDR0.HYP, and would refuse it.
	if string(ops) != string([]uint8{CMD_CFGI_ALL, CMD_TLBI_NSNH_ALL, CMD_SYNC}) {
		t.Errorf("commands at reset %x", ops)
	}
	for _, sid := range []uint32{0, 8, 255} {
		if _, ok := m.translate(sid, 0x4000_0000, true); ok {
			t.Errorf("stream %d reached memory before any attach", sid)
		}
	}
	if _, ok := m.translate(256, 0x4000_0000, true); ok {
		t.Errorf("stream 256, past the table, reached memory")
	}
	ev := s.Poll()
	if len(ev) != 4 || ev[0].Type != EVT_C_BAD_STE || ev[1].Stream != 8 || ev[3].Type != EVT_C_BAD_STREAMID {
		t.Fatalf("events %v", ev)
	}
	if s.Faults() != 4 || len(s.Poll()) != 0 {
		t.Errorf("faults %d, or events returned twice", s.Faults())
	}
}

func TestDomainMirrorsMapAndUnmap(t *testing.T) {
	s, m, mem := newSMMU(t)
	d, err := s.NewDomain(mem, 48, 1)
	if err != nil {
		t.Fatal(err)
	}
	const ram = 0x4400_0000
	if err := d.Map(ram, 8<<20); err != nil {
		t.Fatal(err)
	}
	if err := d.Attach(8); err != nil {
		t.Fatal(err)
	}
	page := uint64(ram + 3<<20 + 0x5000)
	for _, a := range []uint64{ram, ram + 0x1234, page + 0x10, ram + 8<<20 - 8} {
		if pa, ok := m.translate(8, a, false); !ok || pa != a {
			t.Fatalf("write at %#x: %#x, %v", a, pa, ok)
		}
	}
	if err := d.Unmap(page, mmu.PageSize); err != nil {
		t.Fatal(err)
	}
	// The page was in the model's TLB: only the driver's TLBI removes it.
	if _, ok := m.translate(8, page+0x10, true); ok {
		t.Errorf("a page unmapped from the domain is still reachable")
	}
	if pa, ok := m.translate(8, page+mmu.PageSize, true); !ok || pa != page+mmu.PageSize {
		t.Errorf("the page after the unmapped one: %#x, %v", pa, ok)
	}
	if _, ok := m.translate(8, ram+8<<20, false); ok {
		t.Errorf("past the mapped range reached memory")
	}
	if _, ok := m.translate(9, ram, true); ok {
		t.Errorf("a stream not attached reached the domain")
	}
	ev := s.Poll()
	if len(ev) != 3 {
		t.Fatalf("events %v", ev)
	}
	if e := ev[0]; e.Type != EVT_F_TRANSLATION || e.Stream != 8 || e.Addr != page+0x10 || !e.Read {
		t.Errorf("first event %v", e)
	}
	if e := ev[1]; e.Type != EVT_F_TRANSLATION || e.Addr != ram+8<<20 || e.Read {
		t.Errorf("second event %v", e)
	}
	if got := ev[1].String(); !strings.Contains(got, "F_TRANSLATION, stream 0x8, write at 0x44800000") {
		t.Errorf("event text %q", got)
	}
	// Mapped again, as when a guest's pages come back.
	if err := d.Map(page, mmu.PageSize); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.translate(8, page, true); !ok {
		t.Errorf("a page mapped back stays unreachable")
	}
	if err := d.Attach(256); !errors.Is(err, ErrStream) {
		t.Errorf("attach past the stream table: %v", err)
	}
	if err := s.Abort(8); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.translate(8, ram, true); ok {
		t.Errorf("an aborted stream reached memory")
	}
}

func TestEventQueueOverflow(t *testing.T) {
	s, m, _ := newSMMU(t)
	for i := 0; i < 1<<evtqBits+5; i++ {
		m.translate(3, 0, true)
	}
	if n := len(s.Poll()); n != 1<<evtqBits {
		t.Errorf("%d events, want a full queue", n)
	}
	if s.Lost() != 1 {
		t.Errorf("overflow not counted: %d", s.Lost())
	}
	m.translate(3, 0, true)
	if ev := s.Poll(); len(ev) != 1 || s.Lost() != 1 {
		t.Errorf("after the overflow: %v, lost %d", ev, s.Lost())
	}
}

func TestNewRefuses(t *testing.T) {
	mem := newArena()
	m := newModel(t, mem)
	m.idr0 &^= IDR0_S1P
	if _, err := New(m, smmuBase, mem, 8); !errors.Is(err, ErrUnsupported) {
		t.Errorf("no stage 1: %v", err)
	}
	m = newModel(t, mem)
	m.noAck = true
	old := spins
	spins = 1000
	defer func() { spins = old }()
	if _, err := New(m, smmuBase, mem, 8); !errors.Is(err, ErrTimeout) {
		t.Errorf("CR0 never acknowledged: %v", err)
	}
}

// A refused command is skipped and acknowledged, so the queue moves on,
// and the SMMU is distrusted: every later Map and Unmap fails, so no page
// is given away on an invalidation that may not have happened.
func TestRefusedCommandBreaks(t *testing.T) {
	s, m, mem := newSMMU(t)
	d, err := s.NewDomain(mem, 48, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Map(0x4400_0000, 2<<20); err != nil {
		t.Fatal(err)
	}
	m.refuse, m.idr0 = true, m.idr0|IDR0_HYP
	if err := s.issue(tlbiEL2All()); err == nil || !s.Broken() {
		t.Fatalf("a refused command: %v, broken %v", err, s.Broken())
	}
	if uint32(m.regs[CMDQ_CONS])&(2<<cmdqBits-1) != s.prod {
		t.Errorf("the queue did not move past the refused command: CONS %#x, PROD %#x", m.regs[CMDQ_CONS], s.prod)
	}
	if err := d.Unmap(0x4400_0000, mmu.PageSize); !errors.Is(err, ErrBroken) {
		t.Errorf("Unmap on a distrusted SMMU: %v", err)
	}
	if err := d.Map(0x4800_0000, mmu.PageSize); !errors.Is(err, ErrBroken) {
		t.Errorf("Map on a distrusted SMMU: %v", err)
	}
}
