package smmu

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Bus reads and writes the SMMU's registers.
type Bus interface {
	Read32(addr uint64) uint32
	Write32(addr uint64, v uint32)
	Read64(addr uint64) uint64
	Write64(addr uint64, v uint64)
}

// Memory gives the driver memory the SMMU reads and writes: the stream
// table, context descriptors and queues. It must be memory no other
// compartment can reach.
type Memory interface {
	// Alloc returns n/8 zeroed doublewords aligned to align bytes and
	// their physical address.
	Alloc(n, align int) (words []uint64, pa uint64)
	// Barrier makes the driver's memory writes visible to the SMMU
	// before its next register write (DSB).
	Barrier()
}

var (
	ErrUnsupported = errors.New("smmu: unsupported")
	ErrTimeout     = errors.New("smmu: the SMMU did not respond")
	ErrStream      = errors.New("smmu: stream ID outside the stream table")
	ErrBroken      = errors.New("smmu: an invalidation or command failed earlier: its translations cannot be trusted")
)

// Queue sizes, as log2 of their entries: 4 KiB each.
const (
	cmdqBits = 8
	evtqBits = 7
)

// spins bounds every wait for the SMMU: a register acknowledgement or the
// command queue's consumption. A model that never answers ends in
// ErrTimeout, never a hang.
var spins = 10_000_000

// SMMU is one SMMUv3, enabled, with a linear stream table.
type SMMU struct {
	bus  Bus
	base uint64
	mem  Memory

	mu      sync.Mutex
	sidBits int
	strtab  []uint64 // 8 doublewords per stream
	cmdq    []uint64 // 2 per command
	prod    uint32   // CMDQ_PROD as last written: index and wrap bit
	evtq    []uint64 // 4 per event
	cons    uint32   // EVENTQ_CONS as last written
	// OAS is the SMMU's output address size code (SMMU_IDR5.OAS).
	OAS uint64
	hyp bool // IDR0.HYP

	faults, lost atomic.Uint64
	// broken says a TLB invalidation went unconfirmed.
	broken atomic.Bool
}

// New resets the SMMU at base and enables it with every stream of
// sidBits (at most what SMMU_IDR1.SIDSIZE allows) aborting: traffic
// aborts from the moment the driver takes over (GBPA), and afterwards
// every stream the hypervisor has not attached. Translation faults are
// recorded in the event queue.
func New(bus Bus, base uint64, mem Memory, sidBits int) (*SMMU, error) {
	s := &SMMU{bus: bus, base: base, mem: mem}
	idr0 := s.r32(IDR0)
	idr1 := s.r32(IDR1)
	idr5 := s.r32(IDR5)
	switch {
	case idr0&IDR0_S1P == 0:
		return nil, fmt.Errorf("%w: no stage 1 translation (IDR0 %#x)", ErrUnsupported, idr0)
	case (idr0>>IDR0_TTF_SHIFT)&3&IDR0_TTF_AARCH64 == 0:
		return nil, fmt.Errorf("%w: no AArch64 table format (IDR0 %#x)", ErrUnsupported, idr0)
	case idr0&IDR0_COHACC == 0:
		// The tables and queues are cacheable memory the SMMU would
		// read past the caches.
		return nil, fmt.Errorf("%w: table walks are not coherent (IDR0 %#x)", ErrUnsupported, idr0)
	case idr5&IDR5_GRAN4K == 0:
		return nil, fmt.Errorf("%w: no 4 KiB granule (IDR5 %#x)", ErrUnsupported, idr5)
	case idr1&(IDR1_TABLES_PRESET|IDR1_QUEUES_PRESET) != 0:
		return nil, fmt.Errorf("%w: fixed table or queue bases (IDR1 %#x)", ErrUnsupported, idr1)
	}
	if max := int(idr1 & IDR1_SIDSIZE_MASK); sidBits > max {
		sidBits = max
	}
	if int(idr1>>IDR1_CMDQS_SHIFT&IDR1_QS_MASK) < cmdqBits || int(idr1>>IDR1_EVENTQS_SHIFT&IDR1_QS_MASK) < evtqBits {
		return nil, fmt.Errorf("%w: queues smaller than %d commands or %d events (IDR1 %#x)", ErrUnsupported, 1<<cmdqBits, 1<<evtqBits, idr1)
	}
	s.sidBits = sidBits
	s.hyp = idr0&IDR0_HYP != 0
	s.OAS = uint64(min(idr5&IDR5_OAS_MASK, idr5OASMaxSupported))

	// Off, aborting what arrives meanwhile.
	if err := s.setCR0(0); err != nil {
		return nil, err
	}
	s.w32(GBPA, GBPA_ABORT|GBPA_UPDATE)
	if !s.wait(func() bool { return s.r32(GBPA)&GBPA_UPDATE == 0 }) {
		return nil, fmt.Errorf("%w: GBPA update", ErrTimeout)
	}
	s.w32(IRQ_CTRL, 0) // polled
	s.w32(CR1, CR1_QUEUE_IC_WB|CR1_QUEUE_OC_WB|CR1_QUEUE_SH_ISH|CR1_TABLE_IC_WB|CR1_TABLE_OC_WB|CR1_TABLE_SH_ISH)
	s.w32(CR2, CR2_RECINVSID|CR2_PTM)

	// Every entry starts invalid: a stream that is never attached
	// aborts, with a C_BAD_STE event.
	var pa uint64
	n := STESize << sidBits
	s.strtab, pa = mem.Alloc(n, max(n, 64))
	s.w64(STRTAB_BASE, STRTAB_BASE_RA|pa&STRTAB_BASE_ADDR)
	s.w32(STRTAB_BASE_CFG, 0<<STRTAB_CFG_FMT_SHIFT|uint32(sidBits))

	s.cmdq, pa = mem.Alloc(CmdSize<<cmdqBits, CmdSize<<cmdqBits)
	s.w64(CMDQ_BASE, QBASE_RA_WA|pa&QBASE_ADDR_MASK|cmdqBits)
	s.w32(CMDQ_PROD, 0)
	s.w32(CMDQ_CONS, 0)
	s.evtq, pa = mem.Alloc(EventSize<<evtqBits, EventSize<<evtqBits)
	s.w64(EVENTQ_BASE, QBASE_RA_WA|pa&QBASE_ADDR_MASK|evtqBits)
	s.w32(EVENTQ_PROD, 0)
	s.w32(EVENTQ_CONS, 0)
	mem.Barrier()

	if err := s.setCR0(CR0_CMDQEN); err != nil {
		return nil, err
	}
	// Forget whatever the SMMU cached under the firmware's setup.
	inval := [][2]uint64{cfgiAll(), tlbiNSNHAll()}
	if s.hyp {
		inval = append(inval, tlbiEL2All())
	}
	if err := s.issue(inval...); err != nil {
		return nil, err
	}
	if err := s.setCR0(CR0_CMDQEN | CR0_EVENTQEN); err != nil {
		return nil, err
	}
	if err := s.setCR0(CR0_CMDQEN | CR0_EVENTQEN | CR0_SMMUEN); err != nil {
		return nil, err
	}
	return s, nil
}

// Streams is the number of stream IDs the stream table covers.
func (s *SMMU) Streams() int { return 1 << s.sidBits }

// Faults is the number of events recorded so far, and Lost the number
// of times the event queue overflowed and events were dropped.
func (s *SMMU) Faults() uint64 { return s.faults.Load() }
func (s *SMMU) Lost() uint64   { return s.lost.Load() }

// Broken says the SMMU once failed to confirm a TLB invalidation or
// refused a command: what it translates may no longer be what the tables
// say, and every domain's Map and Unmap fails from then on.
func (s *SMMU) Broken() bool { return s.broken.Load() }

// setSTE writes stream sid's entry, dword 0 (its valid bit) last, and
// has the SMMU drop its cached copy.
func (s *SMMU) setSTE(sid uint32, ste [8]uint64) error {
	if sid >= uint32(s.Streams()) {
		return fmt.Errorf("%w: %#x of %d", ErrStream, sid, s.Streams())
	}
	e := s.strtab[sid*8 : sid*8+8]
	// Off first, so that the SMMU never sees half an entry.
	atomic.StoreUint64(&e[0], 0)
	s.mem.Barrier()
	if err := s.issue(cfgiSTE(sid)); err != nil {
		return err
	}
	for i := 7; i >= 1; i-- {
		e[i] = ste[i]
	}
	s.mem.Barrier()
	atomic.StoreUint64(&e[0], ste[0])
	s.mem.Barrier()
	return s.issue(cfgiSTE(sid))
}

// Abort makes stream sid abort every transaction.
func (s *SMMU) Abort(sid uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.setSTE(sid, abortSTE())
}

// issue puts commands on the queue, then a CMD_SYNC, and returns once the
// SMMU has consumed them all.
func (s *SMMU) issue(cmds ...[2]uint64) error {
	n := uint32(1) << cmdqBits
	for _, c := range append(cmds, cmdSync()) {
		// The queue holds 2^cmdqBits commands and is drained after each
		// call, so it never fills.
		i := s.prod & (n - 1)
		s.cmdq[2*i], s.cmdq[2*i+1] = c[0], c[1]
		s.prod = (s.prod + 1) & (2*n - 1)
	}
	s.mem.Barrier()
	s.w32(CMDQ_PROD, s.prod)
	var cons uint32
	if !s.wait(func() bool {
		cons = s.r32(CMDQ_CONS)
		return cons&(2*n-1) == s.prod || s.r32(GERROR)&GERROR_CMDQ_ERR != s.r32(GERRORN)&GERROR_CMDQ_ERR
	}) {
		return fmt.Errorf("%w: command queue at %#x of %#x", ErrTimeout, cons, s.prod)
	}
	if g, gn := s.r32(GERROR), s.r32(GERRORN); g&GERROR_CMDQ_ERR != gn&GERROR_CMDQ_ERR {
		// The SMMU stopped at the refused command (7.1): put a CMD_SYNC
		// in its place and acknowledge, so that the queue moves again,
		// and distrust the SMMU from now on, as a command the driver
		// relied on did not run.
		s.broken.Store(true)
		i := cons & (n - 1)
		sync := cmdSync()
		s.cmdq[2*i], s.cmdq[2*i+1] = sync[0], sync[1]
		s.mem.Barrier()
		s.w32(GERRORN, gn^GERROR_CMDQ_ERR)
		s.wait(func() bool { return s.r32(CMDQ_CONS)&(2*n-1) == s.prod })
		return fmt.Errorf("smmu: command at queue index %d refused: CMDQ_CONS.ERR %#x", i, cons>>CMDQ_CONS_ERR_SHIFT&CMDQ_CONS_ERR_MASK)
	}
	return nil
}

// Poll returns the events recorded since the last call, and counts them.
func (s *SMMU) Poll() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := uint32(1) << evtqBits
	prod := s.r32(EVENTQ_PROD)
	var out []Event
	for s.cons&(2*n-1) != prod&(2*n-1) && len(out) < int(n) {
		i := s.cons & (n - 1)
		r := [4]uint64(s.evtq[4*i : 4*i+4])
		out = append(out, decodeEvent(r))
		s.cons = s.cons&EVENTQ_PROD_OVFLG | (s.cons+1)&(2*n-1)
	}
	ack := prod&EVENTQ_PROD_OVFLG != s.cons&EVENTQ_PROD_OVFLG
	if ack {
		// Acknowledge the overflow (OVACKFLG takes OVFLG's value).
		s.cons = s.cons&^EVENTQ_PROD_OVFLG | prod&EVENTQ_PROD_OVFLG
		s.lost.Add(1)
	}
	if len(out) > 0 || ack {
		s.w32(EVENTQ_CONS, s.cons)
	}
	s.faults.Add(uint64(len(out)))
	return out
}

func (s *SMMU) setCR0(v uint32) error {
	s.w32(CR0, v)
	if !s.wait(func() bool { return s.r32(CR0ACK) == v }) {
		return fmt.Errorf("%w: CR0 %#x not acknowledged (CR0ACK %#x)", ErrTimeout, v, s.r32(CR0ACK))
	}
	return nil
}

func (s *SMMU) wait(done func() bool) bool {
	for i := 0; i < spins; i++ {
		if done() {
			return true
		}
	}
	return false
}

func (s *SMMU) r32(off uint64) uint32    { return s.bus.Read32(s.base + off) }
func (s *SMMU) w32(off uint64, v uint32) { s.bus.Write32(s.base+off, v) }
func (s *SMMU) w64(off uint64, v uint64) { s.bus.Write64(s.base+off, v) }
