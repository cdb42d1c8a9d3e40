//go:build tamago

#include "textflag.h"

// FILL puts the pattern of register n into v: seed+n in lane 0, its
// complement in lane 1 (seed in R9).
#define FILL(n, v) \
	ADD	$n, R9, R1 \
	MVN	R1, R2 \
	VMOV	R1, v.D[0] \
	VMOV	R2, v.D[1]

// CHECK counts in R10 each lane of v that no longer holds its pattern.
#define CHECK(n, v) \
	ADD	$n, R9, R1 \
	MVN	R1, R2 \
	VMOV	v.D[0], R3 \
	VMOV	v.D[1], R4 \
	CMP	R1, R3 \
	CINC	NE, R10, R10 \
	CMP	R2, R4 \
	CINC	NE, R10, R10

#define FILL_ALL \
	FILL(0, V0); FILL(1, V1); FILL(2, V2); FILL(3, V3) \
	FILL(4, V4); FILL(5, V5); FILL(6, V6); FILL(7, V7) \
	FILL(8, V8); FILL(9, V9); FILL(10, V10); FILL(11, V11) \
	FILL(12, V12); FILL(13, V13); FILL(14, V14); FILL(15, V15) \
	FILL(16, V16); FILL(17, V17); FILL(18, V18); FILL(19, V19) \
	FILL(20, V20); FILL(21, V21); FILL(22, V22); FILL(23, V23) \
	FILL(24, V24); FILL(25, V25); FILL(26, V26); FILL(27, V27) \
	FILL(28, V28); FILL(29, V29); FILL(30, V30); FILL(31, V31)

// CHECK_ALL also counts FPCR if it is not R12.
#define CHECK_ALL \
	CHECK(0, V0); CHECK(1, V1); CHECK(2, V2); CHECK(3, V3) \
	CHECK(4, V4); CHECK(5, V5); CHECK(6, V6); CHECK(7, V7) \
	CHECK(8, V8); CHECK(9, V9); CHECK(10, V10); CHECK(11, V11) \
	CHECK(12, V12); CHECK(13, V13); CHECK(14, V14); CHECK(15, V15) \
	CHECK(16, V16); CHECK(17, V17); CHECK(18, V18); CHECK(19, V19) \
	CHECK(20, V20); CHECK(21, V21); CHECK(22, V22); CHECK(23, V23) \
	CHECK(24, V24); CHECK(25, V25); CHECK(26, V26); CHECK(27, V27) \
	CHECK(28, V28); CHECK(29, V29); CHECK(30, V30); CHECK(31, V31) \
	MRS	FPCR, R3 \
	CMP	R12, R3 \
	CINC	NE, R10, R10

// YIELD_HVC gives up the vCPU's time slice (YIELD, no nap): an exit, and
// a switch to any other vCPU runnable on the physical CPU.
#define YIELD_HVC \
	MOVD	$0xc6000003, R0 \
	MOVD	ZR, R1 \
	WORD	$0xd4000002 /* hvc #0x0 */

// func fpYields(n, seed, fpcr uint64) (bad uint64)
//
// fpYields fills q0-q31 and FPCR with this vCPU's patterns, yields n
// times and checks them after each: it returns how many registers (and
// lanes) had changed, summed over the yields. Interrupts are masked so
// that nothing of the guest's own runs in between.
TEXT ·fpYields(SB),NOSPLIT,$0-32
	MOVD	n+0(FP), R11
	MOVD	seed+8(FP), R9
	MOVD	fpcr+16(FP), R12
	MRS	DAIF, R13
	MSR	$0x3, DAIFSet
	MRS	FPCR, R14
	MSR	R12, FPCR
	MOVD	ZR, R10
	FILL_ALL
yields:
	YIELD_HVC
	CHECK_ALL
	SUBS	$1, R11, R11
	BNE	yields
	MSR	R14, FPCR
	MSR	R13, DAIF
	MOVD	R10, bad+24(FP)
	RET

// fpSpinner is what vCPU 1 runs for the FP/SIMD checks (StartCPUAt):
// its own patterns, yielding and checking them over and over, adding what
// changed to fpBad and counting rounds in fpSpins, until fpStop is set;
// then it powers itself off (PSCI CPU_OFF).
TEXT ·fpSpinner(SB),NOSPLIT|NOFRAME,$0
	// A vCPU comes out of reset with FP/SIMD trapped at EL1 (CPACR_EL1.FPEN).
	MOVD	$(3<<20), R1
	MSR	R1, CPACR_EL1
	ISB	$15
	MOVD	$0x5eed000000000000, R9
	MOVD	$0x00400000, R12	// FPCR.RMode: round towards plus infinity
	MSR	R12, FPCR
	FILL_ALL
spin:
	YIELD_HVC
	MOVD	ZR, R10
	CHECK_ALL
	MOVD	$·fpBad(SB), R1
	MOVD	(R1), R2
	ADD	R10, R2, R2
	MOVD	R2, (R1)
	MOVD	$·fpSpins(SB), R1
	MOVD	(R1), R2
	ADD	$1, R2, R2
	MOVD	R2, (R1)
	MOVD	$·fpStop(SB), R1
	MOVD	(R1), R2
	CBZ	R2, spin
	MSR	ZR, FPCR
off:
	MOVD	$0x84000002, R0	// PSCI CPU_OFF
	WORD	$0xd4000002	// hvc #0x0
	B	off

// func fpSpinnerAddr() uint64
TEXT ·fpSpinnerAddr(SB),NOSPLIT,$0-8
	MOVD	$·fpSpinner(SB), R0
	MOVD	R0, ret+0(FP)
	RET
