//go:build tamago

#include "textflag.h"

// func switchTo(from, to *regs)
//
// switchTo saves what the calling Go code keeps across a call (its stack
// pointer, frame pointer, return address and g) in from and resumes the
// thread whose registers are in to.
TEXT ·switchTo(SB),NOSPLIT|NOFRAME,$0-16
	MOVD	from+0(FP), R0
	MOVD	to+8(FP), R1
	MOVD	RSP, R2
	STP	(R2, R29), 0(R0)
	STP	(R30, g), 16(R0)
	LDP	0(R1), (R2, R29)
	LDP	16(R1), (R30, g)
	MOVD	R2, RSP
	RET

// func switchAway(from, to *regs, saved *uint32)
//
// switchAway is switchTo for a thread that moves to another CPU: once its
// registers are stored it sets *saved, with release semantics, and from
// then on the other CPU may resume it.
TEXT ·switchAway(SB),NOSPLIT|NOFRAME,$0-24
	MOVD	from+0(FP), R0
	MOVD	to+8(FP), R1
	MOVD	saved+16(FP), R3
	MOVD	RSP, R2
	STP	(R2, R29), 0(R0)
	STP	(R30, g), 16(R0)
	MOVW	$1, R4
	STLRW	R4, (R3)
	LDP	0(R1), (R2, R29)
	LDP	16(R1), (R30, g)
	MOVD	R2, RSP
	RET

// start is where a new thread is first switched to: its entry point is in
// R29 (regs.fp), and it starts with no frame or return address for the
// unwinder to follow, as the runtime's newosproc expects of a new thread.
TEXT ·start(SB),NOSPLIT|NOFRAME,$0
	MOVD	R29, R3
	MOVD	ZR, R29
	MOVD	ZR, R30
	JMP	(R3)

TEXT ·startPC(SB),NOSPLIT,$0-8
	MOVD	$·start(SB), R0
	MOVD	R0, ret+0(FP)
	RET

// idleEntry runs a CPU's idle thread, which never returns.
TEXT ·idleEntry(SB),NOSPLIT|NOFRAME,$0
	BL	·idleLoop(SB)
	UNDEF

TEXT ·idleEntryPC(SB),NOSPLIT,$0-8
	MOVD	$·idleEntry(SB), R0
	MOVD	R0, ret+0(FP)
	RET

// func interruptPending() bool: ISR_EL1.I, which at EL2 shows a physical
// IRQ pending (Arm ARM D19.2, ISR_EL1).
TEXT ·interruptPending(SB),NOSPLIT,$0-1
	MRS	ISR_EL1, R0
	UBFX	$7, R0, $1, R0
	MOVB	R0, ret+0(FP)
	RET

// func armTimer(cval uint64): the EL1 physical timer, enabled and
// unmasked, fires at cval.
TEXT ·armTimer(SB),NOSPLIT,$0-8
	MOVD	cval+0(FP), R0
	MSR	R0, CNTP_CVAL_EL0
	MOVD	$1, R0
	MSR	R0, CNTP_CTL_EL0
	ISB	$15
	RET

TEXT ·disarmTimer(SB),NOSPLIT,$0-0
	MSR	ZR, CNTP_CTL_EL0
	ISB	$15
	RET

// waitForInterrupt: WFI ends on a pending interrupt whether or not it is
// masked, and interrupts stay masked at EL2.
TEXT ·waitForInterrupt(SB),NOSPLIT,$0-0
	DSB	$15
	WFI
	RET

TEXT ·store32(SB),NOSPLIT,$0-12
	MOVD	addr+0(FP), R0
	MOVW	v+8(FP), R1
	MOVW	R1, (R0)
	RET

// dmb orders the sleep/wake handshake's store and load: one side's
// atomic read-modify-write, then the other side's flag, each way.
TEXT ·dmb(SB),NOSPLIT,$0-0
	DMB	$11	// ish
	RET

TEXT ·Pause(SB),NOSPLIT,$0-0
	WFE
	RET

TEXT ·SendEvent(SB),NOSPLIT,$0-0
	DSB	$11	// ish
	SEV
	RET

TEXT ·readCNTHCTL(SB),NOSPLIT,$0-8
	WORD	$0xd53ce100	// mrs x0, cnthctl_el2
	MOVD	R0, ret+0(FP)
	RET

TEXT ·writeCNTHCTL(SB),NOSPLIT,$0-8
	MOVD	v+0(FP), R0
	WORD	$0xd51ce100	// msr cnthctl_el2, x0
	ISB	$15
	RET
