//go:build !tamago

package hyp

import "runtime"

// spinWait is the pause in the scheduler lock's spin loop: it lets the
// goroutine holding the lock run, where several CPUs' loops are goroutines
// sharing Go's scheduler (the host's tests).
var spinWait = runtime.Gosched
