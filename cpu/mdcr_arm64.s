//go:build tamago

#include "textflag.h"

// MDCR_EL2 decides which debug, trace and PMU registers trap from EL1.
TEXT ·ReadMDCR(SB),NOSPLIT,$0-8
	WORD	$0xd53c1120	// mrs x0, mdcr_el2
	MOVD	R0, ret+0(FP)
	RET

TEXT ·WriteMDCR(SB),NOSPLIT,$0-8
	MOVD	v+0(FP), R0
	WORD	$0xd51c1120	// msr mdcr_el2, x0
	ISB	$15
	RET

// The OS lock is set on a cold reset (Arm ARM D2.5) and, while set,
// keeps every breakpoint, watchpoint and step exception from being
// generated: EL2 clears it, and emulates each vCPU's own (hyp/debug.go).
TEXT ·UnlockOSLock(SB),NOSPLIT,$0-0
	MSR	ZR, OSLAR_EL1
	ISB	$15
	RET
