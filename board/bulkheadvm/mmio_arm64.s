//go:build tamago

#include "textflag.h"

// Narrow device register accesses: one LDRB/LDRH/STRB/STRH each, which
// the compiler could merge or split were they plain Go loads and stores.

// func read8(addr uint64) uint8
TEXT ·read8(SB),NOSPLIT,$0-9
	MOVD	addr+0(FP), R0
	MOVBU	(R0), R1
	MOVB	R1, ret+8(FP)
	RET

// func read16(addr uint64) uint16
TEXT ·read16(SB),NOSPLIT,$0-10
	MOVD	addr+0(FP), R0
	MOVHU	(R0), R1
	MOVH	R1, ret+8(FP)
	RET

// func write8(addr uint64, v uint8)
TEXT ·write8(SB),NOSPLIT,$0-9
	MOVD	addr+0(FP), R0
	MOVBU	v+8(FP), R1
	MOVB	R1, (R0)
	RET

// func write16(addr uint64, v uint16)
TEXT ·write16(SB),NOSPLIT,$0-10
	MOVD	addr+0(FP), R0
	MOVHU	v+8(FP), R1
	MOVH	R1, (R0)
	RET
