//go:build tamago

#include "textflag.h"

// cpuinit is the first code the image runs (runtime/goos.CPUInit jumps
// here). It puts EL2 in a known state and gives the Go runtime its stack.
TEXT cpuinit(SB),NOSPLIT|NOFRAME,$0
	// A boot loader may pass the device tree address in x0: keep it, and
	// the counter, before anything else runs.
	MOVD	R0, ·bootX0(SB)
	MRS	CNTPCT_EL0, R0
	MOVD	R0, ·bootCounter(SB)

	// Bulkhead owns EL2 and never leaves it; anything else is a
	// misconfigured machine (QEMU without virtualization=on).
	MRS	CurrentEL, R0
	LSR	$2, R0, R0
	AND	$3, R0, R0
	CMP	$2, R0
	BNE	wrong_el

	MSR	$0xf, DAIFSet

	// SCTLR_EL2 from a known value, whatever a firmware left there: its
	// RES1 bits only (MMU, caches and alignment checks off until hwinit0
	// turns them on; little-endian).
	MOVD	$0x30c50830, R0
	WORD	$0xd51c1000	// msr sctlr_el2, x0
	ISB	$15

	// HCR_EL2: RW only (lower ELs are AArch64). E2H=0 keeps the non-VHE
	// EL2 regime that the rest of the kernel is written for; TGE=0.
	MOVD	$(1<<31), R0
	WORD	$0xd51c1100	// msr hcr_el2, x0

	// CPTR_EL2 without VHE: RES1 bits [13:12], [9] and [7:0]; TFP=0 lets
	// FP/SIMD run, which the Go runtime needs; TZ=1 traps SVE.
	MOVD	$0x33ff, R0
	WORD	$0xd51c1140	// msr cptr_el2, x0
	ISB	$15

	// SP_EL2, used only by the exception vectors, starts at the top of
	// the hypervisor's RAM. Go runs on SP_EL0 so that a fault on its
	// stack, an overflow included, is reported from a good stack.
	MOVD	runtime∕goos·RamStart(SB), R1
	MOVD	runtime∕goos·RamSize(SB), R2
	ADD	R2, R1, R1
	MOVD	R1, RSP
	WORD	$0xd50040bf	// msr spsel, #0x0
	MOVD	runtime∕goos·RamStackOffset(SB), R2
	SUB	R2, R1, R1
	MOVD	R1, RSP

	B	_rt0_tamago_start(SB)

wrong_el:
	// No console is known yet. Ask the firmware to power off so that the
	// host sees the machine stop rather than hang; QEMU virt without
	// virtualization=on implements PSCI over HVC at EL1.
	MOVD	$0x84000008, R0	// PSCI SYSTEM_OFF
	WORD	$0xd4000002	// hvc #0x0
	MSR	$0xf, DAIFSet
halt:
	WFI
	B	halt
	// Never reached: keeps the UEFI entry (efi_arm64.s), which only the
	// EFI image's header names, in the link.
	MOVD	$efiEntry(SB), R0
