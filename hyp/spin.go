//go:build !tamago

package hyp

import "runtime"

// spinWait is the pause in the scheduler lock's spin loop: it lets the
// goroutine holding the lock run, where several CPUs' loops are goroutines
// sharing Go's scheduler (the host's tests).
var spinWait = runtime.Gosched

// spinWake has nothing to wake on the host.
func spinWake() {}

// procPin and procUnpin do nothing on the host: there the CPUs' loops are
// goroutines the OS and Go preempt, and nothing needs the holder pinned.
func procPin() int { return 0 }
func procUnpin()   {}
