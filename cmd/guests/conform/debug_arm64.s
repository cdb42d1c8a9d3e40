//go:build tamago

#include "textflag.h"

// The debug checks' exceptions (debug.go). Breakpoint, watchpoint and
// software step exceptions from EL1 are taken at EL1, to dbgVectors,
// which records them; any other exception ends the guest with EXIT(128 +
// EC), as the board's vectors do.

#define OTHER \
	PCALIGN	$128 \
	B	·dbgOther(SB)

TEXT ·dbgVectors(SB),NOSPLIT|NOFRAME,$0
	PCALIGN	$2048
	OTHER	// current EL with SP_EL0
	OTHER
	OTHER
	OTHER
	PCALIGN	$128	// current EL with SP_ELx: synchronous
	B	·dbgSync(SB)
	OTHER
	OTHER
	OTHER
	OTHER	// lower EL
	OTHER
	OTHER
	OTHER
	OTHER
	OTHER
	OTHER
	OTHER

// dbgSync records ESR_EL1, ELR_EL1, FAR_EL1 and x3 of a debug exception
// and counts it. A breakpoint's or watchpoint's instruction is skipped (it
// is a NOP, or an access the check does not need); after a step, step is
// turned off (MDSCR_EL1.SS) and the stepped code goes on.
TEXT ·dbgSync(SB),NOSPLIT|NOFRAME,$0
	WORD	$0xd10043ff	// sub sp, sp, #0x10
	STP	(R0, R1), 0(RSP)
	MRS	ESR_EL1, R0
	MOVD	$·dbgESR(SB), R1
	MOVD	R0, (R1)
	MRS	ELR_EL1, R0
	MOVD	$·dbgELR(SB), R1
	MOVD	R0, (R1)
	MRS	FAR_EL1, R0
	MOVD	$·dbgFAR(SB), R1
	MOVD	R0, (R1)
	MOVD	$·dbgX3(SB), R1
	MOVD	R3, (R1)
	MOVD	$·dbgCount(SB), R1
	MOVD	(R1), R0
	ADD	$1, R0, R0
	MOVD	R0, (R1)
	MRS	ESR_EL1, R0
	LSR	$26, R0, R0
	AND	$0x3f, R0, R0
	CMP	$0x33, R0	// software step, same EL
	BEQ	step
	CMP	$0x31, R0	// breakpoint, same EL
	BEQ	skip
	CMP	$0x35, R0	// watchpoint, same EL
	BEQ	skip
	B	·dbgOther(SB)
skip:
	MRS	ELR_EL1, R0
	ADD	$4, R0, R0
	MSR	R0, ELR_EL1
	B	out
step:
	MRS	MDSCR_EL1, R0
	BIC	$1, R0, R0
	MSR	R0, MDSCR_EL1
out:
	LDP	0(RSP), (R0, R1)
	WORD	$0x910043ff	// add sp, sp, #0x10
	ERET

TEXT ·dbgOther(SB),NOSPLIT|NOFRAME,$0
again:
	MRS	ESR_EL1, R2
	LSR	$26, R2, R1
	AND	$0x3f, R1, R1
	ADD	$128, R1, R1
	MRS	ELR_EL1, R3
	MOVD	$0xc6000002, R0	// EXIT
	WORD	$0xd4000002	// hvc #0x0
	B	again

// func trapped(fn, arg uint64)
//
// Calls the routine at fn with x0 = arg and x3 = 0 under dbgVectors, with
// debug exceptions unmasked (PSTATE.D).
TEXT ·trapped(SB),NOSPLIT,$16-16
	MRS	VBAR_EL1, R1
	MOVD	$·dbgOldVBAR(SB), R2
	MOVD	R1, (R2)
	MOVD	$·dbgVectors(SB), R1
	MSR	R1, VBAR_EL1
	ISB	$15
	MOVD	fn+0(FP), R2
	MOVD	arg+8(FP), R0
	MOVD	ZR, R3
	WORD	$0xd50348ff	// msr daifclr, #0x8
	CALL	(R2)
	WORD	$0xd50348df	// msr daifset, #0x8
	MOVD	$·dbgOldVBAR(SB), R2
	MOVD	(R2), R1
	MSR	R1, VBAR_EL1
	ISB	$15
	RET

// bpTarget is where the breakpoint checks put their breakpoint.
TEXT ·bpTarget(SB),NOSPLIT|NOFRAME,$0
	WORD	$0xd503201f	// nop
	RET

// storeTo stores x0 at x0: the watchpoint checks' access.
TEXT ·storeTo(SB),NOSPLIT|NOFRAME,$0
	MOVD	R0, (R0)
	RET

// STEP returns to stepped at EL1 with software step on (MDSCR_EL1.SS and
// KDE, SPSR_EL1.SS), debug exceptions unmasked and the others masked: the
// first instruction there is stepped (Arm ARM D2.12). MDSCR_EL1.SS is set
// with PSTATE.D masked, as it must be: with debug exceptions unmasked and
// PSTATE.SS clear, the step would be taken at once (active-pending). R5
// keeps the return address of the routine.
#define STEP(stepped) \
	MOVD	R30, R5 \
	WORD	$0xd50348df /* msr daifset, #0x8 */ \
	MRS	MDSCR_EL1, R1 \
	ORR	$(1|1<<13), R1, R1 \
	MSR	R1, MDSCR_EL1 \
	ISB	$15 \
	MOVD	$stepped, R1 \
	MSR	R1, ELR_EL1 \
	MOVD	$(0x1c5|1<<21), R2 \
	MSR	R2, SPSR_EL1 \
	ERET

// stepPlain steps an instruction that runs in the guest.
TEXT ·stepPlain(SB),NOSPLIT|NOFRAME,$0
	STEP(·steppedPlain(SB))

TEXT ·steppedPlain(SB),NOSPLIT|NOFRAME,$0
	ADD	$1, R3, R3
	ADD	$1, R3, R3
	MOVD	R5, R30
	RET

// stepTrapped steps a read of ID_AA64DFR0_EL1, which HCR_EL2.TID3 traps
// and the hypervisor emulates: one step still.
TEXT ·stepTrapped(SB),NOSPLIT|NOFRAME,$0
	STEP(·steppedTrapped(SB))

TEXT ·steppedTrapped(SB),NOSPLIT|NOFRAME,$0
	MRS	ID_AA64DFR0_EL1, R4
	ADD	$1, R3, R3
	MOVD	R5, R30
	RET

// stepHVC steps a hypercall (SMCCC_VERSION).
TEXT ·stepHVC(SB),NOSPLIT|NOFRAME,$0
	STEP(·steppedHVC(SB))

TEXT ·steppedHVC(SB),NOSPLIT|NOFRAME,$0
	WORD	$0xd4000002	// hvc #0x0
	ADD	$1, R3, R3
	MOVD	R5, R30
	RET

// dbgSpinner is another vCPU's life during the per-vCPU check
// (StartCPUAt): its own debug on (OS lock clear, MDSCR_EL1.MDE and KDE,
// PSTATE.D clear) but no breakpoint or watchpoint of its own, it runs
// bpTarget and stores to watched over and over, counting in spins. The
// other vCPU's breakpoint and watchpoint on those must not fire here: if
// one did, the board's vectors would end the guest. Once spinStop is set
// it turns debug off and powers itself off (PSCI CPU_OFF).
TEXT ·dbgSpinner(SB),NOSPLIT|NOFRAME,$0
	MSR	ZR, OSLAR_EL1
	MOVD	$(1<<15|1<<13), R1
	MSR	R1, MDSCR_EL1
	ISB	$15
	WORD	$0xd50348ff	// msr daifclr, #0x8
loop:
	BL	·bpTarget(SB)
	MOVD	$·watched(SB), R1
	MOVD	R1, (R1)
	MOVD	$·spins(SB), R1
	MOVD	(R1), R2
	ADD	$1, R2, R2
	MOVD	R2, (R1)
	MOVD	$·spinStop(SB), R1
	MOVD	(R1), R2
	CBZ	R2, loop
	WORD	$0xd50348df	// msr daifset, #0x8
	MSR	ZR, MDSCR_EL1
off:
	MOVD	$0x84000002, R0	// PSCI CPU_OFF
	WORD	$0xd4000002	// hvc #0x0
	B	off

// func addrs() (bp, store, plain, trap, hvc, spinner uint64)
TEXT ·addrs(SB),NOSPLIT,$0-48
	MOVD	$·bpTarget(SB), R0
	MOVD	R0, bp+0(FP)
	MOVD	$·storeTo(SB), R0
	MOVD	R0, store+8(FP)
	MOVD	$·steppedPlain(SB), R0
	MOVD	R0, plain+16(FP)
	MOVD	$·steppedTrapped(SB), R0
	MOVD	R0, trap+24(FP)
	MOVD	$·steppedHVC(SB), R0
	MOVD	R0, hvc+32(FP)
	MOVD	$·dbgSpinner(SB), R0
	MOVD	R0, spinner+40(FP)
	RET

// func stepAddrs() (plain, trap, hvc uint64)
TEXT ·stepAddrs(SB),NOSPLIT,$0-24
	MOVD	$·stepPlain(SB), R0
	MOVD	R0, plain+0(FP)
	MOVD	$·stepTrapped(SB), R0
	MOVD	R0, trap+8(FP)
	MOVD	$·stepHVC(SB), R0
	MOVD	R0, hvc+16(FP)
	RET
