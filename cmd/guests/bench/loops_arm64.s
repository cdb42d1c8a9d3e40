//go:build tamago

#include "textflag.h"

// Each loop runs n times between two reads of the virtual counter, which
// under QEMU's -icount shift=0 ticks once per 16 instructions; it returns
// the ticks. BEGIN takes n into R2 and the start count into R3; END
// returns the count since. (ISB: the counter is read in order.)
#define BEGIN \
	MOVD	n+0(FP), R2 \
	ISB	$15 \
	MRS	CNTVCT_EL0, R3

#define END \
	ISB	$15 \
	MRS	CNTVCT_EL0, R4 \
	SUB	R3, R4, R4 \
	MOVD	R4, ret+8(FP) \
	RET

// func loopEmpty(n uint64) uint64
TEXT ·loopEmpty(SB),NOSPLIT,$0-16
	BEGIN
empty:
	MOVD	$0x80000000, R0
	SUBS	$1, R2, R2
	BNE	empty
	END

// func loopHVC(n uint64) uint64
TEXT ·loopHVC(SB),NOSPLIT,$0-16
	BEGIN
again:
	MOVD	$0x80000000, R0	// SMCCC_VERSION
	WORD	$0xd4000002	// hvc #0x0
	SUBS	$1, R2, R2
	BNE	again
	END

// func loopSGI(n uint64) uint64
//
// SGI 5 to this vCPU, taken at once: the trap, the injection and the
// virtual CPU interface's acknowledge and end of interrupt.
TEXT ·loopSGI(SB),NOSPLIT,$0-16
	MOVD	$(5<<24|1), R5	// SGI 5 to Aff0 0
	BEGIN
sgi:
	WORD	$0xd518cba5	// msr icc_sgi1r_el1, x5
poll:
	WORD	$0xd538cc00	// mrs x0, icc_iar1_el1
	CMP	$1023, R0
	BEQ	poll
	WORD	$0xd518cc20	// msr icc_eoir1_el1, x0
	SUBS	$1, R2, R2
	BNE	sgi
	END

// func loopYield(n uint64) uint64
TEXT ·loopYield(SB),NOSPLIT,$0-16
	BEGIN
yield:
	MOVD	$0xc6000003, R0	// YIELD
	WORD	$0xd4000002	// hvc #0x0
	SUBS	$1, R2, R2
	BNE	yield
	END

// func loopUART(n uint64) uint64
//
// Reads of the emulated PL011's flag register (UARTFR at 0x09000018): a
// stage 2 data abort, the register model in EL2, and the return.
TEXT ·loopUART(SB),NOSPLIT,$0-16
	MOVD	$0x09000018, R5
	BEGIN
uart:
	MOVWU	(R5), R0
	SUBS	$1, R2, R2
	BNE	uart
	END

// hvcForever: HVC SMCCC_VERSION in a loop, adding each round trip to this
// vCPU's word of counts (Aff0 * 64 bytes in). It never returns.
TEXT ·hvcForever(SB),NOSPLIT|NOFRAME,$0
	MRS	MPIDR_EL1, R1
	AND	$0xff, R1, R1
	LSL	$6, R1, R1
	MOVD	$·counts(SB), R2
	ADD	R1, R2, R2
forever:
	MOVD	$0x80000000, R0	// SMCCC_VERSION
	WORD	$0xd4000002	// hvc #0x0
	MOVD	(R2), R3
	ADD	$1, R3, R3
	MOVD	R3, (R2)
	B	forever

TEXT ·hvcForeverPC(SB),NOSPLIT,$0-8
	MOVD	$·hvcForever(SB), R0
	MOVD	R0, ret+0(FP)
	RET
