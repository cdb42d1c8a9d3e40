//go:build tamago

package cpu

import (
	"sync/atomic"
	"unsafe"
)

var (
	// excStackTop is loaded into SP_EL2 when a fault nests inside the
	// handler, so that a corrupted handler stack cannot recurse forever.
	excStackTop uint64
	// nested is set on the first nested fault; a second one halts.
	nested uint32

	// guestExit is where exceptions from a lower EL go (see GUEST in
	// vectors_arm64.s).
	guestExit uint64
	// fpTrap is where EL2's own trapped FP/SIMD accesses go (see
	// SYNC_ENTRY in vectors_arm64.s); 0: they are fatal.
	fpTrap uint64

	// remoteCrash is the frame of the first exception taken on a CPU
	// that runs no goroutine, for the boot CPU to report (RemoteCrash);
	// crashSGI1R is the ICC_SGI1R_EL1 value that tells the boot CPU.
	remoteCrash, crashSGI1R uint64

	// FatalHandler reports an exception that EL2 cannot handle and stops
	// the machine. It runs on the exception stack (or, for a CPU that runs
	// no goroutine, in the boot CPU's scheduler) and must not return.
	FatalHandler func(f *Frame)
)

// InstallVectors points VBAR_EL2 at Bulkhead's vector table. stackTop is the
// top of the exception stack that cpuinit loaded into SP_EL2.
//
//go:nosplit
func InstallVectors(stackTop uint64) bool {
	excStackTop = stackTop
	addr := vectorTableAddr()
	// VBAR_EL2 bits [10:0] are RES0: the table must be 2 KiB aligned.
	if addr&0x7ff != 0 {
		return false
	}
	if guestExit == 0 {
		guestExit = lowerELCrashAddr()
	}
	setVBAR(addr)
	return true
}

func lowerELCrashAddr() uint64

// SetGuestExit routes exceptions from lower ELs to addr, the world
// switch's exit path.
func SetGuestExit(addr uint64) { guestExit = addr }

// SetCrashSGI sets the ICC_SGI1R_EL1 value a CPU that runs no goroutine
// writes to tell the boot CPU it crashed: an SGI the boot CPU's scheduler
// answers with RemoteCrash.
func SetCrashSGI(sgi1r uint64) { crashSGI1R = sgi1r }

// RemoteCrash returns the frame of an exception taken on a CPU that runs
// no goroutine (a secondary's remote loop), if one was: that CPU parked
// after leaving it on its exception stack, and the caller reports it.
func RemoteCrash() *Frame {
	p := atomic.LoadUint64(&remoteCrash)
	if p == 0 {
		return nil
	}
	return (*Frame)(unsafe.Pointer(uintptr(p)))
}

// SetFPTrap routes EL2's own trapped FP/SIMD accesses (CPTR_EL2.TFP) to
// addr, the world switch's lazy FP/SIMD save.
func SetFPTrap(addr uint64) { fpTrap = addr }

// trap is called by vectors_arm64.s on the exception stack.
func trap(f *Frame) {
	if FatalHandler == nil {
		print("bulkhead: exception ", VectorName(f.Vector), " ESR=", Hex(f.ESR), " ELR=", Hex(f.ELR), " before the handler was installed\n")
		Halt()
	}
	FatalHandler(f)
	Halt()
}
