//go:build tamago

#include "textflag.h"

// func syncCode(page uint64)
//
// After the page's attributes or contents changed: its stale translations
// go, its data reaches the point of unification and the instruction
// cache forgets it (Arm ARM D7.5.9, self-modifying code).
TEXT ·syncCode(SB),NOSPLIT,$0-8
	MOVD	page+0(FP), R0
	DSB	$15
	WORD	$0xd508871f	// tlbi vmalle1
	WORD	$0xd50b7b20	// dc cvau, x0
	DSB	$15
	WORD	$0xd508751f	// ic iallu
	DSB	$15
	ISB	$15
	RET

// func callCode(page, x0 uint64) uint64
//
// Calls the instruction at page with probing set, so that an exception
// it causes is recorded and the instruction skipped (vectors_arm64.s).
TEXT ·callCode(SB),NOSPLIT,$16-24
	MOVD	page+0(FP), R1
	MOVD	$·probing(SB), R2
	MOVD	$1, R3
	MOVD	R3, (R2)
	MOVD	x0+8(FP), R0
	CALL	(R1)
	MOVD	$·probing(SB), R2
	MOVD	ZR, (R2)
	MOVD	R0, ret+16(FP)
	RET

// func tlbiAll()
TEXT ·tlbiAll(SB),NOSPLIT,$0-0
	DSB	$15
	WORD	$0xd508871f	// tlbi vmalle1
	DSB	$15
	ISB	$15
	RET
