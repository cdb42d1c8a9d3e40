package hyp

import "runtime"

// SpinWait is the pause in the scheduler lock's spin loop. Yielding to
// Go's scheduler suits the host, where the tests run several CPUs' loops
// as goroutines; a board whose scheduler turns run pinned to their CPU,
// which must never enter Go's scheduler, replaces it with a plain spin.
var SpinWait = runtime.Gosched
