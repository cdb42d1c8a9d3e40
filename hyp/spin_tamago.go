//go:build tamago

package hyp

import "github.com/bulkhead-hv/bulkhead/cpumux"

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
//go:noinline
func spinWait() {
	cpumux.Yield()
}
