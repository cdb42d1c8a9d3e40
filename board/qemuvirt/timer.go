//go:build tamago

package qemuvirt

import (
	_ "unsafe"

	"github.com/bulkhead-hv/bulkhead/cpu"
)

// timerFreq is CNTFRQ_EL0, the generic timer's counter frequency in Hz.
var timerFreq uint64

// nanotime is the runtime's monotonic clock: the physical counter scaled to
// nanoseconds, split so that the multiplication cannot overflow.
//
//go:linkname nanotime runtime/goos.Nanotime
//go:nosplit
func nanotime() int64 {
	f := timerFreq
	if f == 0 {
		return 0
	}
	c := cpu.ReadCNTPCT()
	return int64(c/f*1e9 + c%f*1e9/f)
}

// TimerFrequency is the counter frequency in Hz.
func TimerFrequency() uint64 { return timerFreq }
