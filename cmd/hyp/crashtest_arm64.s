//go:build tamago && crashtest

#include "textflag.h"

// func brk()
TEXT ·brk(SB),NOSPLIT,$0-0
	WORD	$0xd4200000	// brk #0x0
	RET

// func crashNoG()
TEXT ·crashNoG(SB),NOSPLIT|NOFRAME,$0
	MOVD	ZR, g
	MOVD	ZR, R0
again:
	MOVD	(R0), R1
	B	again

// func crashNoGAddr() uint64
TEXT ·crashNoGAddr(SB),NOSPLIT,$0-8
	MOVD	$·crashNoG(SB), R0
	MOVD	R0, ret+0(FP)
	RET
