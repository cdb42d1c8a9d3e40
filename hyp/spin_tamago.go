//go:build tamago

package hyp

import (
	_ "unsafe" // go:linkname

	"github.com/bulkhead-hv/bulkhead/cpumux"
)

// The scheduler lock's holder is not preempted (spinLock).
//
//go:linkname procPin runtime.procPin
func procPin() int

//go:linkname procUnpin runtime.procUnpin
func procUnpin()

// spinWait is the pause in the scheduler lock's spin loop. The holder is a
// goroutine on another CPU, or one of this CPU's other threads, which runs
// only if this one gives way. It is also a preemption point: the holder
// may be waiting, in the collector, for every P to stop or pass a safe
// point, and a spinner that never reaches one would wait for it for good.
// (cpumux.Yield splits no stack and so is no such point; this function's
// prologue is.) Not runtime.Gosched: each CPU's loop is locked to its M,
// and a locked goroutine that yields hands its P to another M and waits
// for one to hand it back, through the boot CPU.
//
// Then it waits for an event (the holder's Unlock sends one), so that a
// spinner neither floods the interconnect nor, under QEMU, spends its
// emulated time while the holder waits for its own.
//
//go:noinline
func spinWait() {
	cpumux.Yield()
	cpumux.Pause()
}

// spinWake is the Unlock's event for the CPUs in spinWait.
func spinWake() { cpumux.SendEvent() }
