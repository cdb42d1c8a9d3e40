//go:build tamago

#include "textflag.h"

// Remote offsets, mirrored by vcpu.Remote (TestRemoteLayout).
#define RM_CURRENT 0
#define RM_CMD 8
#define RM_SLEEPING 16
#define RM_NUMLRS 24
#define RM_DONESGI 32
#define RM_SELFSGI 40
#define RM_VTCR 48
#define RM_MDCR 56
#define RM_ICH_HCR 64
#define RM_ICH_VMCR 72
#define RM_ICH_AP0R0 80
#define RM_ICH_AP1R0 88
#define RM_CNTVOFF 96
#define RM_CNTV_CVAL 104
#define RM_CNTV_CTL 112
#define RM_CNTHP_CVAL 120
#define RM_LR 128
#define RM_NUMIRQS 256
#define RM_IRQS 264
#define RM_MAXIRQS 8

// The context's exit vector (vcpu.Context, TestContextLayout), and its
// values for an interrupt (vcpu.VectorIRQ64, VectorFIQ64).
#define CTX_EXIT_VECTOR 1016
#define VECTOR_IRQ64 9
#define VECTOR_FIQ64 10

// The SGI that only wakes the loop (cpu.WakeSGI).
#define WAKE_SGI 8

// remoteLoop is a secondary CPU's life once the boot CPU gives it a Remote
// instead of a Go M: it enters with g (R28) = its Remote, SP_EL0 selected
// on a stack of its own, and never returns. It waits for a command, carries
// it out and reports back, forever (vcpu.Remote says how).
//
// Registers kept across the loop: R19 the Remote (run keeps only what Go
// needs, so it is read again from TPIDR_EL2 after each run), R20 an SGI
// taken while waiting for a command, plus one (0: none), raised again once
// the command is known (0 again by the time the command runs).
TEXT ·remoteLoop(SB),NOSPLIT|NOFRAME,$0
	MOVD	g, R19
	MOVD	ZR, g	// no goroutine runs here
	// The vectors find Current through TPIDR_EL2.
	WORD	$0xd51cd053	// msr tpidr_el2, x19
	// The EL2 state the boot CPU set up after this CPU joined.
	MOVD	RM_VTCR(R19), R1
	WORD	$0xd51c2141	// msr vtcr_el2, x1
	MOVD	RM_MDCR(R19), R1
	WORD	$0xd51c1121	// msr mdcr_el2, x1
	// Guests' debug exceptions can fire here (cpu.UnlockOSLock).
	MSR	ZR, OSLAR_EL1
	// Nothing of a guest's may raise an interrupt while it waits: the
	// virtual timer and the vCPU interface off, whatever came before.
	WORD	$0xd51be33f	// msr cntv_ctl_el0, xzr
	WORD	$0xd51ccb1f	// msr ich_hcr_el2, xzr
	ISB	$15
	MOVD	ZR, R20

wait:
	// Announce the sleep, then look again, so that a command posted in
	// between is seen here or its poster sees Sleeping and sends the
	// wake-up SGI (Remote.Post): both sides store, then load.
	ADD	$RM_CMD, R19, R1
	ADD	$RM_SLEEPING, R19, R4
	LDAR	(R1), R2
	CBNZ	R2, command
	MOVD	$1, R3
	STLR	R3, (R4)
	DMB	$11	// ish: the store before the load, in QEMU too (Remote.Post)
	LDAR	(R1), R2
	CBNZ	R2, awake
	WFI
wait_ack:
	// The wake-up SGI has done its job; any other is a kick for a command
	// not posted yet: remember it.
	WORD	$0xd538cc02	// mrs x2, icc_iar1_el1
	AND	$0xffffff, R2, R2
	CMP	$1020, R2
	BHS	awake
	WORD	$0xd518cc22	// msr icc_eoir1_el1, x2
	WORD	$0xd518cb22	// msr icc_dir_el1, x2
	CMP	$WAKE_SGI, R2
	BEQ	wait_ack
	CMP	$16, R2	// only SGIs can arrive here: replay no other
	BHS	wait_ack
	ADD	$1, R2, R20
	B	wait_ack
awake:
	STLR	ZR, (R4)
	B	wait

command:
	MOVD	R2, R5
	MOVD	ZR, RM_NUMIRQS(R19)
	// A kick taken while waiting: raise it again, so that the command
	// ends at once with it.
	CBZ	R20, kicked
	SUB	$1, R20, R2
	LSL	$24, R2, R2
	MOVD	RM_SELFSGI(R19), R3
	ORR	R3, R2, R2
	WORD	$0xd518cba2	// msr icc_sgi1r_el1, x2
	ISB	$15
	MOVD	ZR, R20
kicked:
	// The EL2 timer: the end of the time slice, or the next deadline.
	MOVD	RM_CNTHP_CVAL(R19), R2
	CBZ	R2, timer_set
	WORD	$0xd51ce242	// msr cnthp_cval_el2, x2
	MOVD	$1, R2	// ENABLE
	WORD	$0xd51ce222	// msr cnthp_ctl_el2, x2
timer_set:
	CMP	$1, R5	// RemoteRun
	BEQ	run
	ISB	$15
	WFI
	B	ack

run:
	// The vCPU interface: active priorities, list registers (as many as
	// the CPU has), then ICH_HCR_EL2, which enables it.
	MOVD	RM_ICH_VMCR(R19), R2
	WORD	$0xd51ccbe2	// msr ich_vmcr_el2, x2
	MOVD	RM_ICH_AP0R0(R19), R2
	WORD	$0xd51cc802	// msr ich_ap0r0_el2, x2
	MOVD	RM_ICH_AP1R0(R19), R2
	WORD	$0xd51cc902	// msr ich_ap1r0_el2, x2
	MOVD	RM_NUMLRS(R19), R3
	MOVD	(RM_LR+0)(R19), R2
	WORD	$0xd51ccc02	// msr ich_lr0_el2, x2
	CMP	$1, R3
	BLS	lrs_loaded
	MOVD	(RM_LR+8)(R19), R2
	WORD	$0xd51ccc22	// msr ich_lr1_el2, x2
	CMP	$2, R3
	BLS	lrs_loaded
	MOVD	(RM_LR+16)(R19), R2
	WORD	$0xd51ccc42	// msr ich_lr2_el2, x2
	CMP	$3, R3
	BLS	lrs_loaded
	MOVD	(RM_LR+24)(R19), R2
	WORD	$0xd51ccc62	// msr ich_lr3_el2, x2
	CMP	$4, R3
	BLS	lrs_loaded
	MOVD	(RM_LR+32)(R19), R2
	WORD	$0xd51ccc82	// msr ich_lr4_el2, x2
	CMP	$5, R3
	BLS	lrs_loaded
	MOVD	(RM_LR+40)(R19), R2
	WORD	$0xd51ccca2	// msr ich_lr5_el2, x2
	CMP	$6, R3
	BLS	lrs_loaded
	MOVD	(RM_LR+48)(R19), R2
	WORD	$0xd51cccc2	// msr ich_lr6_el2, x2
	CMP	$7, R3
	BLS	lrs_loaded
	MOVD	(RM_LR+56)(R19), R2
	WORD	$0xd51ccce2	// msr ich_lr7_el2, x2
	CMP	$8, R3
	BLS	lrs_loaded
	MOVD	(RM_LR+64)(R19), R2
	WORD	$0xd51ccd02	// msr ich_lr8_el2, x2
	CMP	$9, R3
	BLS	lrs_loaded
	MOVD	(RM_LR+72)(R19), R2
	WORD	$0xd51ccd22	// msr ich_lr9_el2, x2
	CMP	$10, R3
	BLS	lrs_loaded
	MOVD	(RM_LR+80)(R19), R2
	WORD	$0xd51ccd42	// msr ich_lr10_el2, x2
	CMP	$11, R3
	BLS	lrs_loaded
	MOVD	(RM_LR+88)(R19), R2
	WORD	$0xd51ccd62	// msr ich_lr11_el2, x2
	CMP	$12, R3
	BLS	lrs_loaded
	MOVD	(RM_LR+96)(R19), R2
	WORD	$0xd51ccd82	// msr ich_lr12_el2, x2
	CMP	$13, R3
	BLS	lrs_loaded
	MOVD	(RM_LR+104)(R19), R2
	WORD	$0xd51ccda2	// msr ich_lr13_el2, x2
	CMP	$14, R3
	BLS	lrs_loaded
	MOVD	(RM_LR+112)(R19), R2
	WORD	$0xd51ccdc2	// msr ich_lr14_el2, x2
	CMP	$15, R3
	BLS	lrs_loaded
	MOVD	(RM_LR+120)(R19), R2
	WORD	$0xd51ccde2	// msr ich_lr15_el2, x2
lrs_loaded:
	MOVD	RM_ICH_HCR(R19), R2
	WORD	$0xd51ccb02	// msr ich_hcr_el2, x2
	// The vCPU's virtual timer, with its VM's offset.
	MOVD	RM_CNTVOFF(R19), R2
	WORD	$0xd51ce062	// msr cntvoff_el2, x2
	MOVD	RM_CNTV_CVAL(R19), R2
	WORD	$0xd51be342	// msr cntv_cval_el0, x2
	MOVD	RM_CNTV_CTL(R19), R2
	WORD	$0xd51be322	// msr cntv_ctl_el0, x2
	ISB	$15

	// run(Current, true), then saveSys(Current) and saveFP(Current): the
	// boot CPU reads and changes the context from memory only.
	MOVD	RM_CURRENT(R19), R0
	MOVD	R0, 8(RSP)
	MOVD	$1, R0
	MOVB	R0, 16(RSP)
	BL	·run(SB)
	WORD	$0xd53cd053	// mrs x19, tpidr_el2
	MOVD	ZR, R20
	MOVD	RM_CURRENT(R19), R0
	MOVD	R0, 8(RSP)
	BL	·saveSys(SB)
	MOVD	RM_CURRENT(R19), R0
	MOVD	R0, 8(RSP)
	BL	·saveFP(SB)

	WORD	$0xd53ccbe2	// mrs x2, ich_vmcr_el2
	MOVD	R2, RM_ICH_VMCR(R19)
	WORD	$0xd53cc802	// mrs x2, ich_ap0r0_el2
	MOVD	R2, RM_ICH_AP0R0(R19)
	WORD	$0xd53cc902	// mrs x2, ich_ap1r0_el2
	MOVD	R2, RM_ICH_AP1R0(R19)
	MOVD	RM_NUMLRS(R19), R3
	WORD	$0xd53ccc02	// mrs x2, ich_lr0_el2
	MOVD	R2, (RM_LR+0)(R19)
	CMP	$1, R3
	BLS	lrs_saved
	WORD	$0xd53ccc22	// mrs x2, ich_lr1_el2
	MOVD	R2, (RM_LR+8)(R19)
	CMP	$2, R3
	BLS	lrs_saved
	WORD	$0xd53ccc42	// mrs x2, ich_lr2_el2
	MOVD	R2, (RM_LR+16)(R19)
	CMP	$3, R3
	BLS	lrs_saved
	WORD	$0xd53ccc62	// mrs x2, ich_lr3_el2
	MOVD	R2, (RM_LR+24)(R19)
	CMP	$4, R3
	BLS	lrs_saved
	WORD	$0xd53ccc82	// mrs x2, ich_lr4_el2
	MOVD	R2, (RM_LR+32)(R19)
	CMP	$5, R3
	BLS	lrs_saved
	WORD	$0xd53ccca2	// mrs x2, ich_lr5_el2
	MOVD	R2, (RM_LR+40)(R19)
	CMP	$6, R3
	BLS	lrs_saved
	WORD	$0xd53cccc2	// mrs x2, ich_lr6_el2
	MOVD	R2, (RM_LR+48)(R19)
	CMP	$7, R3
	BLS	lrs_saved
	WORD	$0xd53ccce2	// mrs x2, ich_lr7_el2
	MOVD	R2, (RM_LR+56)(R19)
	CMP	$8, R3
	BLS	lrs_saved
	WORD	$0xd53ccd02	// mrs x2, ich_lr8_el2
	MOVD	R2, (RM_LR+64)(R19)
	CMP	$9, R3
	BLS	lrs_saved
	WORD	$0xd53ccd22	// mrs x2, ich_lr9_el2
	MOVD	R2, (RM_LR+72)(R19)
	CMP	$10, R3
	BLS	lrs_saved
	WORD	$0xd53ccd42	// mrs x2, ich_lr10_el2
	MOVD	R2, (RM_LR+80)(R19)
	CMP	$11, R3
	BLS	lrs_saved
	WORD	$0xd53ccd62	// mrs x2, ich_lr11_el2
	MOVD	R2, (RM_LR+88)(R19)
	CMP	$12, R3
	BLS	lrs_saved
	WORD	$0xd53ccd82	// mrs x2, ich_lr12_el2
	MOVD	R2, (RM_LR+96)(R19)
	CMP	$13, R3
	BLS	lrs_saved
	WORD	$0xd53ccda2	// mrs x2, ich_lr13_el2
	MOVD	R2, (RM_LR+104)(R19)
	CMP	$14, R3
	BLS	lrs_saved
	WORD	$0xd53ccdc2	// mrs x2, ich_lr14_el2
	MOVD	R2, (RM_LR+112)(R19)
	CMP	$15, R3
	BLS	lrs_saved
	WORD	$0xd53ccde2	// mrs x2, ich_lr15_el2
	MOVD	R2, (RM_LR+120)(R19)
lrs_saved:
	WORD	$0xd53be322	// mrs x2, cntv_ctl_el0
	MOVD	R2, RM_CNTV_CTL(R19)
	WORD	$0xd53be342	// mrs x2, cntv_cval_el0
	MOVD	R2, RM_CNTV_CVAL(R19)
	// After any other exit than an interrupt's, take none: the boot CPU
	// handles interrupts only with an interrupt exit. A level-sensitive
	// source the silencing below lowers is raised again by the state
	// loaded for the next run; an SGI stays pending, and the wait for the
	// next command takes it and replays it.
	MOVD	RM_CURRENT(R19), R0
	MOVD	CTX_EXIT_VECTOR(R0), R2
	CMP	$VECTOR_IRQ64, R2
	BEQ	ack
	CMP	$VECTOR_FIQ64, R2
	BNE	silence

ack:
	// Take every pending interrupt while its source still asserts it,
	// dropping its priority only; record it, except the wake-up SGI.
	WORD	$0xd538cc02	// mrs x2, icc_iar1_el1
	AND	$0xffffff, R2, R2
	CMP	$1020, R2
	BHS	silence
	WORD	$0xd518cc22	// msr icc_eoir1_el1, x2
	CMP	$WAKE_SGI, R2
	BEQ	ack_end
	MOVD	RM_NUMIRQS(R19), R3
	CMP	$RM_MAXIRQS, R3
	BHS	ack_end
	ADD	$RM_IRQS, R19, R4
	MOVD	R2, (R4)(R3<<3)
	ADD	$1, R3, R3
	MOVD	R3, RM_NUMIRQS(R19)
	B	ack
ack_end:
	WORD	$0xd518cb22	// msr icc_dir_el1, x2
	B	ack

silence:
	// Turn the level-sensitive sources off (the vCPU interface's
	// maintenance interrupt, the virtual timer, the EL2 timer) before
	// deactivating what they raised, so that nothing fires again while no
	// vCPU runs here.
	WORD	$0xd51ccb1f	// msr ich_hcr_el2, xzr
	WORD	$0xd51be33f	// msr cntv_ctl_el0, xzr
	WORD	$0xd51ce23f	// msr cnthp_ctl_el2, xzr
	ISB	$15
	MOVD	RM_NUMIRQS(R19), R3
	ADD	$RM_IRQS, R19, R4
	MOVD	ZR, R5
deactivate:
	CMP	R3, R5
	BHS	done
	MOVD	(R4)(R5<<3), R2
	WORD	$0xd518cb22	// msr icc_dir_el1, x2
	ADD	$1, R5, R5
	B	deactivate
done:
	ISB	$15
	// Report: Cmd back to 0 last, then, once that is visible to the boot
	// CPU (DSB ISH), the SGI that wakes it.
	ADD	$RM_CMD, R19, R1
	STLR	ZR, (R1)
	DSB	$11	// ish
	MOVD	RM_DONESGI(R19), R2
	WORD	$0xd518cba2	// msr icc_sgi1r_el1, x2
	ISB	$15
	B	wait

// func remoteLoopAddr() uint64
TEXT ·remoteLoopAddr(SB),NOSPLIT,$0-8
	MOVD	$·remoteLoop(SB), R0
	MOVD	R0, ret+0(FP)
	RET
