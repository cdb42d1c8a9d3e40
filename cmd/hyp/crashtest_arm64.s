//go:build tamago && crashtest

#include "textflag.h"

// func brk()
TEXT ·brk(SB),NOSPLIT,$0-0
	WORD	$0xd4200000	// brk #0x0
	RET
