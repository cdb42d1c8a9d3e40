//go:build tamago

package cpumux

import (
	"runtime/goos"
	"sync/atomic"
	"unsafe"

	"github.com/bulkhead-hv/bulkhead/cpu"
	"github.com/bulkhead-hv/bulkhead/gic"
)

// MaxCPUs is the most CPUs the multiplexer runs threads on.
const MaxCPUs = 64

// idleStack is each idle thread's stack: it runs a few small nosplit
// functions only.
const idleStack = 4 << 10

// regs is what switchTo keeps of a thread that gave its CPU away: Go's ABI
// keeps nothing else across a call (offsets in switch_arm64.s).
type regs struct{ sp, fp, lr, g uint64 }

// Every thread's state, by index. A thread is on one CPU's ring, or in
// one CPU's inbox while it moves there.
var (
	saved     [MaxThreads]regs
	deadline  [MaxThreads]int64   // counter value by which it wants to run again; negative: none
	mps       [MaxThreads]uintptr // its M, for wake (0: an idle thread)
	onCPU     [MaxThreads]int32
	ready     [MaxThreads]uint32 // 0 while its registers are still being saved on the CPU it left
	inboxNext [MaxThreads]int32
	rings     ring
	nthreads  atomic.Int32
)

// A CPU's multiplexer.
type percpu struct {
	mpidr    uint64 // Aff3-Aff0
	icpendr0 uint64 // its redistributor's GICR_ICPENDR0
	id       int32  // its index
	cur      int32  // the thread running
	idle     int32  // its idle thread
	// Threads started or moved here, pushed by any CPU, taken by this one.
	inbox atomic.Int32
	// The sleep/wake handshake: a waker adds to wakes and then sends
	// cpu.WakeSGI if sleeping is set; the idle thread sets sleeping and
	// then looks at wakes, both with a full barrier between, so one of
	// them sees the other.
	wakes, sleeping atomic.Uint32
	stack           [idleStack]byte
}

var (
	cpus  [MaxCPUs]percpu
	ncpus int
	freq  uint64
)

const affMask = 0xff00ffffff

// The hooks the overlay adds to the runtime (cmd/mkoverlay).
//
//go:linkname muxWait runtime.muxWait
var muxWait func(deadline int64)

//go:linkname muxWake runtime.muxWake
var muxWake func(mp unsafe.Pointer)

//go:linkname currentM runtime.muxCurrentM
func currentM() unsafe.Pointer

func switchTo(from, to *regs)
func switchAway(from, to *regs, saved *uint32)
func startPC() uint64
func idleEntryPC() uint64
func interruptPending() bool
func armTimer(cval uint64)
func disarmTimer()
func waitForInterrupt()
func store32(addr uint64, v uint32)
func dmb()
func readCNTHCTL() uint64
func writeCNTHCTL(v uint64)

// Pause waits for an event: another CPU's SendEvent, or this CPU's event
// stream (at most about 130 us at 62.5 MHz). It is the wait of a spin
// loop: under QEMU's emulation it also hands the emulator to the other
// CPUs, one of which may be the one the spinner waits for.
func Pause()

// SendEvent wakes the CPUs waiting in Pause, once this CPU's stores are
// visible to them.
func SendEvent()

// CNTHCTL_EL2's event stream (E2H 0, Arm ARM D19.11): an event on each 0
// to 1 transition of counter bit EVNTI.
const (
	cnthctlEVNTEN    = 1 << 2
	cnthctlEVNTIMask = 0xf << 4
	// Bit 12 rises every 2^13 ticks: 131 us at 62.5 MHz.
	eventStreamBit = 12
)

// enableEventStream turns this CPU's event stream on, leaving CNTHCTL's
// other bits (the guests' access to the EL1 timer and counter) alone.
//
//go:nosplit
func enableEventStream() {
	v := readCNTHCTL()
	writeCNTHCTL(v&^cnthctlEVNTIMask | eventStreamBit<<4 | cnthctlEVNTEN)
}

// AddCPU makes CPU i, whose MPIDR is mpidr and whose redistributor's
// RD_base is rd, one the multiplexer runs threads on, with its idle
// thread. Call it for every CPU, the boot CPU first as CPU 0, before
// Start.
func AddCPU(i int, mpidr, rd uint64) {
	c := &cpus[i]
	c.id = int32(i)
	c.mpidr = mpidr & affMask
	c.icpendr0 = rd + gic.GICR_ICPENDR0
	c.inbox.Store(none)
	t := newThread(0)
	c.idle, c.cur = t, t
	onCPU[t] = int32(i)
	rings.next[t] = t
	top := (uint64(uintptr(unsafe.Pointer(&c.stack[idleStack-1]))) + 1) &^ 15
	saved[t] = regs{sp: top, fp: idleEntryPC(), lr: startPC()}
	if i >= ncpus {
		ncpus = i + 1
	}
}

// IdleStart is where secondary CPU i starts its idle thread: the stack top
// and PC to give it (cpu.SecondaryBoot.Give, with g 0).
func IdleStart(i int) (sp, pc uint64) { return saved[cpus[i].idle].sp, idleEntryPC() }

// Start makes the calling thread, on the boot CPU, the boot CPU's first
// thread beside its idle one, and hands the runtime's waits, wake-ups,
// new Ms and idle Ms to the multiplexer. freq is the counter's frequency.
func Start(counterFreq uint64) {
	freq = counterFreq
	c := &cpus[0]
	t := newThread(uintptr(currentM()))
	onCPU[t] = 0
	rings.next[t] = t
	rings.insertAfter(t, c.idle)
	c.cur = t
	goos.Task = task
	goos.Idle = idle
	muxWake = wake
	muxWait = wait
}

//go:nosplit
func newThread(mp uintptr) int32 {
	t := nthreads.Add(1) - 1
	if t >= MaxThreads {
		print("cpumux: more than ", MaxThreads, " threads; stopping\n")
		goos.Exit(70)
	}
	mps[t], ready[t], deadline[t] = mp, 1, 0
	return t
}

// self is the calling CPU's multiplexer.
//
//go:nosplit
func self() *percpu {
	m := cpu.ReadMPIDR() & affMask
	for i := 0; i < ncpus; i++ {
		if cpus[i].mpidr == m {
			return &cpus[i]
		}
	}
	return &cpus[0]
}

// task is goos.Task: the runtime's newosproc asks for its new M, mp, to
// run fn (mstart) with g0 gp. It becomes a thread of the boot CPU, started
// on g0's own stack (the runtime's checks on g0 compare against g0's
// bounds); the overlay's newosproc passes no other stack in sp.
//
//go:nosplit
func task(sp, mp, gp, fn unsafe.Pointer) {
	t := newThread(uintptr(mp))
	hi := *(*uint64)(unsafe.Add(gp, 8)) // g.stack.hi: g's first field is its stack {lo, hi}
	saved[t] = regs{sp: hi, fp: uint64(uintptr(fn)), lr: startPC(), g: uint64(uintptr(gp))}
	cpus[0].push(t)
}

// push puts t in c's inbox and wakes c.
//
//go:nosplit
func (c *percpu) push(t int32) {
	for {
		h := c.inbox.Load()
		inboxNext[t] = h
		if c.inbox.CompareAndSwap(h, t) {
			break
		}
	}
	c.kick()
}

// kick makes c look at its threads again before it next sleeps, and wakes
// it if it sleeps.
//
//go:nosplit
func (c *percpu) kick() {
	c.wakes.Add(1)
	dmb()
	if c.sleeping.Load() != 0 {
		gic.SendSGI(cpu.WakeSGI, c.mpidr)
	}
}

// drain puts the threads in c's inbox on its ring, next after the one
// running. Only c calls it.
//
//go:nosplit
func (c *percpu) drain(i int32) {
	for h := c.inbox.Swap(none); h != none; {
		nx := inboxNext[h]
		onCPU[h] = i
		rings.insertAfter(c.cur, h)
		h = nx
	}
}

// giveWay switches from the running thread to the next on its CPU's ring;
// d is the running one's deadline meanwhile.
//
//go:nosplit
func giveWay(d int64) {
	c := self()
	t := c.cur
	deadline[t] = d
	c.drain(c.id)
	nx := rings.next[t]
	if nx == t {
		return
	}
	c.cur = nx
	for atomic.LoadUint32(&ready[nx]) == 0 {
	}
	switchTo(&saved[t], &saved[nx])
}

// wait is the runtime's muxWait.
//
//go:nosplit
func wait(ns int64) {
	d := int64(-1)
	if ns >= 0 {
		d = ticks(ns, freq)
	}
	giveWay(d)
}

// wake is the runtime's muxWake: mp's semaphore was posted. Its CPU
// counts the wake-up, so that its idle thread does not sleep on it, and is
// woken if it sleeps.
//
//go:nosplit
func wake(mp unsafe.Pointer) {
	i := int32(0)
	n := nthreads.Load()
	for t := int32(0); t < n; t++ {
		if mps[t] == uintptr(mp) {
			i = onCPU[t]
			break
		}
	}
	cpus[i].kick()
}

// idle is goos.Idle: an M with a P and nothing to run. It gives way until
// the runtime's next timer, and at least every millisecond: work other
// CPUs queue for it does not wake it.
//
//go:nosplit
func idle(until int64) {
	d := int64(cpu.ReadCNTPCT() + freq/1000)
	if until > 0 {
		if u := ticks(until, freq); u < d {
			d = u
		}
	}
	giveWay(d)
}

// Yield lets the other threads on this CPU run, if any wants to, and
// returns as soon as they have given way.
//
//go:nosplit
func Yield() { giveWay(0) }

// WaitForInterrupt returns once a physical interrupt is pending at this
// CPU, letting the other threads on it run meanwhile.
func WaitForInterrupt() {
	for !interruptPending() {
		giveWay(-1)
	}
}

// MoveTo moves the calling thread to CPU i, where it goes on when the
// call returns. The caller must be locked to its M (runtime.LockOSThread)
// for the move to mean anything to its goroutine.
func MoveTo(i int) {
	c, dst := self(), &cpus[i]
	if c == dst {
		return
	}
	t := c.cur
	nx := rings.remove(t)
	c.cur = nx
	deadline[t] = 0
	atomic.StoreUint32(&ready[t], 0)
	// dst may take t from its inbox at once, but switches to it only once
	// switchAway has saved its registers and set ready.
	dst.push(t)
	for atomic.LoadUint32(&ready[nx]) == 0 {
	}
	switchAway(&saved[t], &saved[nx], &ready[t])
}

// idleLoop is each CPU's idle thread. It runs with no g, on its own
// stack: everything it calls is nosplit and allocates nothing.
//
//go:nosplit
func idleLoop() {
	enableEventStream()
	c := self()
	i := c.id
	me := c.idle
	for {
		// A thread may be woken after its turn in the round below has
		// passed: counted from here, that keeps the CPU awake.
		seen := c.wakes.Load()
		c.drain(i)
		if nx := rings.next[me]; nx != me {
			deadline[me] = -1
			c.cur = nx
			for atomic.LoadUint32(&ready[nx]) == 0 {
			}
			switchTo(&saved[me], &saved[nx])
			// Every other thread here has given way once since.
		}
		c.sleep(me, seen)
	}
}

// sleep idles the CPU until an interrupt, a kick or the earliest deadline
// of its threads, unless one has passed already or a kick came since
// wakes read seen.
//
//go:nosplit
func (c *percpu) sleep(me int32, seen uint32) {
	d := rings.earliest(me, &deadline)
	if d >= 0 && uint64(d) <= cpu.ReadCNTPCT() {
		return
	}
	c.sleeping.Swap(1)
	dmb()
	if c.wakes.Load() == seen && c.inbox.Load() == none {
		if d >= 0 {
			armTimer(uint64(d))
		}
		waitForInterrupt()
		if d >= 0 {
			disarmTimer()
		}
	}
	c.sleeping.Store(0)
	// A kick's SGI is only there to end a WFI: left pending it would end
	// every later one at once, with no scheduler loop to take it.
	store32(c.icpendr0, 1<<cpu.WakeSGI)
}

// Threads is how many threads there are: Ms and idle threads.
func Threads() int { return int(nthreads.Load()) }
