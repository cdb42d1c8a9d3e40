//go:build tamago

package qemuvirt

import (
	"unsafe"

	"github.com/bulkhead-hv/bulkhead/abi"
	"github.com/bulkhead-hv/bulkhead/cpu"
)

// Semihosting (Arm semihosting specification, 6.5 SYS_EXIT).
const (
	SYS_EXIT                    = 0x18
	ADP_Stopped_ApplicationExit = 0x20026
)

var (
	// semihosting is set by the boot argument exit=semihosting: QEMU then
	// exits with the hypervisor's status instead of 0.
	semihosting bool
	exitBlock   [2]uint64
)

// exit ends the hypervisor: it is goos.Exit, so main returning, os.Exit,
// a Go panic and the crash handler all end here. The status line is what
// the test harness reads when the exit path cannot carry a status.
func exit(code int32) {
	print("\nbulkhead: exit status ", code, "\n")
	if semihosting {
		exitBlock = [2]uint64{ADP_Stopped_ApplicationExit, uint64(code)}
		cpu.Semihost(SYS_EXIT, uint64(uintptr(unsafe.Pointer(&exitBlock))))
	}
	cpu.SMC(abi.PSCI_SYSTEM_OFF, 0, 0, 0)
	cpu.Halt()
}
