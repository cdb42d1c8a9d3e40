//go:build tamago

#include "textflag.h"

// func loopEmpty(n uint64) uint64
TEXT ·loopEmpty(SB),NOSPLIT,$0-16
	MOVD	n+0(FP), R2
	ISB	$15
	MRS	CNTVCT_EL0, R3
empty:
	MOVD	$0x80000000, R0
	SUBS	$1, R2, R2
	BNE	empty
	ISB	$15
	MRS	CNTVCT_EL0, R4
	SUB	R3, R4, R4
	MOVD	R4, ret+8(FP)
	RET

// func loopHVC(n uint64) uint64
TEXT ·loopHVC(SB),NOSPLIT,$0-16
	MOVD	n+0(FP), R2
	ISB	$15
	MRS	CNTVCT_EL0, R3
again:
	MOVD	$0x80000000, R0	// SMCCC_VERSION
	WORD	$0xd4000002	// hvc #0x0
	SUBS	$1, R2, R2
	BNE	again
	ISB	$15
	MRS	CNTVCT_EL0, R4
	SUB	R3, R4, R4
	MOVD	R4, ret+8(FP)
	RET
