//go:build tamago

#include "textflag.h"

// Context offsets, mirrored by vcpu.Context (TestContextLayout).
#define CTX_PC 248
#define CTX_PSTATE 256
#define CTX_SYS 264
#define CTX_FP 456
#define CTX_FPCR 968
#define CTX_EL2_HCR 984
#define CTX_EL2_VTTBR 992
#define CTX_EL2_VMPIDR 1000
#define CTX_EL2_VPIDR 1008
#define CTX_EXIT_VECTOR 1016
#define CTX_EXIT_ESR 1024
#define CTX_EXIT_FAR 1032
#define CTX_EXIT_HPFAR 1040
#define CTX_HOST 1048
#define CTX_HOST_SP 1072
#define CTX_DEBUG_BPS 1080
#define CTX_DEBUG_BP 1088
#define CTX_DEBUG_WPS 1344
#define CTX_DEBUG_WP 1352
#define CTX_FP_LIVE 1625

// CPTR_EL2 without VHE (Arm ARM D19.2): its RES1 bits and TZ (SVE trapped),
// the value Go runs with; with TFP also set, EL2's own FP/SIMD accesses
// trap too (fpTrap).
#define CPTR_EL2_GO 0x33ff
#define CPTR_EL2_TFP (1<<10)

// STORE_Q stores q0-q31 at R1 onwards, leaving R1 just past them, where
// the context keeps FPCR and FPSR.
#define STORE_Q \
	VST1.P	[V0.D2, V1.D2, V2.D2, V3.D2], 64(R1); \
	VST1.P	[V4.D2, V5.D2, V6.D2, V7.D2], 64(R1); \
	VST1.P	[V8.D2, V9.D2, V10.D2, V11.D2], 64(R1); \
	VST1.P	[V12.D2, V13.D2, V14.D2, V15.D2], 64(R1); \
	VST1.P	[V16.D2, V17.D2, V18.D2, V19.D2], 64(R1); \
	VST1.P	[V20.D2, V21.D2, V22.D2, V23.D2], 64(R1); \
	VST1.P	[V24.D2, V25.D2, V26.D2, V27.D2], 64(R1); \
	VST1.P	[V28.D2, V29.D2, V30.D2, V31.D2], 64(R1)

// LOAD_DBG loads pair n of the array at R3 into the debug registers whose
// MSR encodings are msrv and msrc (op0 2, op1 0, CRn 0, CRm n): the value
// register from x1, the control register from x2. Pair n is loaded only
// if R4, the count, is above n: the others do not exist on this CPU.
#define LOAD_DBG(n, msrv, msrc, done) \
	CMP	$n, R4; \
	BLS	done; \
	LDP	(16*n)(R3), (R1, R2); \
	WORD	$(msrv | n<<8 | 1); \
	WORD	$(msrc | n<<8 | 2)
#define MSR_DBGBVR 0xd5100080
#define MSR_DBGBCR 0xd51000a0
#define MSR_DBGWVR 0xd51000c0
#define MSR_DBGWCR 0xd51000e0

// func run(c *Context, restoreSys bool)
//
// run enters the guest whose state is c and returns when the guest exits
// to EL2 (through guestExit below). Go runs on SP_EL0, which the guest also
// uses, so the host SP is kept in c and SP_EL2 is selected while switching.
TEXT ·run(SB),NOSPLIT|NOFRAME,$0-9
	// Arguments are on the Go stack: read them before leaving it.
	MOVD	c+0(FP), R0
	MOVBU	restoreSys+8(FP), R4

	// What the calling Go code relies on across a call: g, the frame
	// pointer, the return address and the stack pointer (Go's ABI keeps
	// no other register across calls).
	ADD	$CTX_HOST, R0, R1
	STP	(g, R29), 0(R1)
	MOVD	RSP, R2
	STP	(R30, R2), 16(R1)

	// SP_EL0 can only be written while SP_EL2 is the stack pointer.
	WORD	$0xd50041bf	// msr spsel, #0x1

	// EL1 and EL0 system registers, and the EL2 configuration, unless
	// they are still on this CPU from this context's last run (see
	// PerCPU.Run). SPSR_EL1 and SP_EL0 always: the host's stack pointer
	// overwrites SP_EL0.
	CBZ	R4, sys_done

	// EL2 configuration of this VM and vCPU: it changes with the
	// context, so it is loaded with the EL1 registers.
	MOVD	CTX_EL2_HCR(R0), R1
	WORD	$0xd51c1101	// msr hcr_el2, x1
	MOVD	CTX_EL2_VTTBR(R0), R1
	WORD	$0xd51c2101	// msr vttbr_el2, x1
	MOVD	CTX_EL2_VMPIDR(R0), R1
	WORD	$0xd51c00a1	// msr vmpidr_el2, x1
	MOVD	CTX_EL2_VPIDR(R0), R1
	WORD	$0xd51c0001	// msr vpidr_el2, x1


	LDP	(CTX_SYS+0)(R0), (R1, R2)
	MSR	R1, SCTLR_EL1
	MSR	R2, CPACR_EL1
	LDP	(CTX_SYS+16)(R0), (R1, R2)
	MSR	R1, TTBR0_EL1
	MSR	R2, TTBR1_EL1
	LDP	(CTX_SYS+32)(R0), (R1, R2)
	MSR	R1, TCR_EL1
	MSR	R2, ESR_EL1
	LDP	(CTX_SYS+48)(R0), (R1, R2)
	MSR	R1, AFSR0_EL1
	MSR	R2, AFSR1_EL1
	LDP	(CTX_SYS+64)(R0), (R1, R2)
	MSR	R1, FAR_EL1
	MSR	R2, MAIR_EL1
	LDP	(CTX_SYS+80)(R0), (R1, R2)
	MSR	R1, AMAIR_EL1
	MSR	R2, VBAR_EL1
	LDP	(CTX_SYS+96)(R0), (R1, R2)
	MSR	R1, CONTEXTIDR_EL1
	MSR	R2, TPIDR_EL0
	LDP	(CTX_SYS+112)(R0), (R1, R2)
	MSR	R1, TPIDRRO_EL0
	MSR	R2, TPIDR_EL1
	LDP	(CTX_SYS+128)(R0), (R1, R2)
	MSR	R1, CNTKCTL_EL1
	MSR	R2, PAR_EL1
	LDP	(CTX_SYS+144)(R0), (R1, R2)
	MSR	R1, CSSELR_EL1
	MSR	R2, MDSCR_EL1
	LDP	(CTX_SYS+160)(R0), (R1, R2)
	MSR	R1, SP_EL1
	MSR	R2, ELR_EL1

	// The guest's breakpoints and watchpoints, while it has debug on
	// (vcpu.Debug): all the CPU has, so none of another guest's stay.
	MOVD	(CTX_DEBUG_BPS)(R0), R4
	CBZ	R4, sys_done
	ADD	$CTX_DEBUG_BP, R0, R3
	LOAD_DBG(0, MSR_DBGBVR, MSR_DBGBCR, bps_done)
	LOAD_DBG(1, MSR_DBGBVR, MSR_DBGBCR, bps_done)
	LOAD_DBG(2, MSR_DBGBVR, MSR_DBGBCR, bps_done)
	LOAD_DBG(3, MSR_DBGBVR, MSR_DBGBCR, bps_done)
	LOAD_DBG(4, MSR_DBGBVR, MSR_DBGBCR, bps_done)
	LOAD_DBG(5, MSR_DBGBVR, MSR_DBGBCR, bps_done)
	LOAD_DBG(6, MSR_DBGBVR, MSR_DBGBCR, bps_done)
	LOAD_DBG(7, MSR_DBGBVR, MSR_DBGBCR, bps_done)
	LOAD_DBG(8, MSR_DBGBVR, MSR_DBGBCR, bps_done)
	LOAD_DBG(9, MSR_DBGBVR, MSR_DBGBCR, bps_done)
	LOAD_DBG(10, MSR_DBGBVR, MSR_DBGBCR, bps_done)
	LOAD_DBG(11, MSR_DBGBVR, MSR_DBGBCR, bps_done)
	LOAD_DBG(12, MSR_DBGBVR, MSR_DBGBCR, bps_done)
	LOAD_DBG(13, MSR_DBGBVR, MSR_DBGBCR, bps_done)
	LOAD_DBG(14, MSR_DBGBVR, MSR_DBGBCR, bps_done)
	LOAD_DBG(15, MSR_DBGBVR, MSR_DBGBCR, bps_done)
bps_done:
	MOVD	(CTX_DEBUG_WPS)(R0), R4
	ADD	$CTX_DEBUG_WP, R0, R3
	LOAD_DBG(0, MSR_DBGWVR, MSR_DBGWCR, sys_done)
	LOAD_DBG(1, MSR_DBGWVR, MSR_DBGWCR, sys_done)
	LOAD_DBG(2, MSR_DBGWVR, MSR_DBGWCR, sys_done)
	LOAD_DBG(3, MSR_DBGWVR, MSR_DBGWCR, sys_done)
	LOAD_DBG(4, MSR_DBGWVR, MSR_DBGWCR, sys_done)
	LOAD_DBG(5, MSR_DBGWVR, MSR_DBGWCR, sys_done)
	LOAD_DBG(6, MSR_DBGWVR, MSR_DBGWCR, sys_done)
	LOAD_DBG(7, MSR_DBGWVR, MSR_DBGWCR, sys_done)
	LOAD_DBG(8, MSR_DBGWVR, MSR_DBGWCR, sys_done)
	LOAD_DBG(9, MSR_DBGWVR, MSR_DBGWCR, sys_done)
	LOAD_DBG(10, MSR_DBGWVR, MSR_DBGWCR, sys_done)
	LOAD_DBG(11, MSR_DBGWVR, MSR_DBGWCR, sys_done)
	LOAD_DBG(12, MSR_DBGWVR, MSR_DBGWCR, sys_done)
	LOAD_DBG(13, MSR_DBGWVR, MSR_DBGWCR, sys_done)
	LOAD_DBG(14, MSR_DBGWVR, MSR_DBGWCR, sys_done)
	LOAD_DBG(15, MSR_DBGWVR, MSR_DBGWCR, sys_done)
sys_done:
	LDP	(CTX_SYS+176)(R0), (R1, R2)
	MSR	R1, SPSR_EL1
	MSR	R2, SP_EL0

	// FP/SIMD: q0-q31, FPCR and FPSR are still on the CPU from this
	// context's last run (fpLive), unless they were saved since. Either
	// way the guest runs with EL2's FP trap off.
	MOVD	$CPTR_EL2_GO, R1
	WORD	$0xd51c1141	// msr cptr_el2, x1
	MOVBU	CTX_FP_LIVE(R0), R1
	CBNZ	R1, fp_done
	ISB	$15
	ADD	$CTX_FP, R0, R1
	VLD1.P	64(R1), [V0.D2, V1.D2, V2.D2, V3.D2]
	VLD1.P	64(R1), [V4.D2, V5.D2, V6.D2, V7.D2]
	VLD1.P	64(R1), [V8.D2, V9.D2, V10.D2, V11.D2]
	VLD1.P	64(R1), [V12.D2, V13.D2, V14.D2, V15.D2]
	VLD1.P	64(R1), [V16.D2, V17.D2, V18.D2, V19.D2]
	VLD1.P	64(R1), [V20.D2, V21.D2, V22.D2, V23.D2]
	VLD1.P	64(R1), [V24.D2, V25.D2, V26.D2, V27.D2]
	VLD1.P	64(R1), [V28.D2, V29.D2, V30.D2, V31.D2]
	LDP	(R1), (R2, R3)
	MSR	R2, FPCR
	MSR	R3, FPSR
	MOVD	$1, R1
	MOVB	R1, CTX_FP_LIVE(R0)
fp_done:

	// Where the guest resumes.
	LDP	CTX_PC(R0), (R1, R2)
	WORD	$0xd51c4021	// msr elr_el2, x1
	WORD	$0xd51c4002	// msr spsr_el2, x2

	// General registers last, x0 (the context pointer) at the very end.
	LDP	16(R0), (R2, R3)
	LDP	32(R0), (R4, R5)
	LDP	48(R0), (R6, R7)
	LDP	64(R0), (R8, R9)
	LDP	80(R0), (R10, R11)
	LDP	96(R0), (R12, R13)
	LDP	112(R0), (R14, R15)
	LDP	128(R0), (R16, R17)
	LDP	144(R0), (R18_PLATFORM, R19)
	LDP	160(R0), (R20, R21)
	LDP	176(R0), (R22, R23)
	LDP	192(R0), (R24, R25)
	LDP	208(R0), (R26, R27)
	LDP	224(R0), (g, R29)
	MOVD	240(R0), R30
	LDP	0(R0), (R0, R1)
	ERET

// guestExit is where the EL2 vectors send an exception from a lower EL,
// with the vector number in x0 and the guest's x0 and x1 pushed on SP_EL2.
// It saves the guest into the running context (TPIDR_EL2 points at the
// per-CPU data, whose first word is that context) and returns from run.
TEXT ·guestExit(SB),NOSPLIT|NOFRAME,$0
	WORD	$0xd53cd041	// mrs x1, tpidr_el2
	MOVD	(R1), R1
	STP	(R2, R3), 16(R1)
	STP	(R4, R5), 32(R1)
	STP	(R6, R7), 48(R1)
	STP	(R8, R9), 64(R1)
	STP	(R10, R11), 80(R1)
	STP	(R12, R13), 96(R1)
	STP	(R14, R15), 112(R1)
	STP	(R16, R17), 128(R1)
	STP	(R18_PLATFORM, R19), 144(R1)
	STP	(R20, R21), 160(R1)
	STP	(R22, R23), 176(R1)
	STP	(R24, R25), 192(R1)
	STP	(R26, R27), 208(R1)
	STP	(g, R29), 224(R1)
	MOVD	R30, 240(R1)
	LDP	0(RSP), (R2, R3)
	STP	(R2, R3), 0(R1)
	WORD	$0x910043ff	// add sp, sp, #0x10

	// Why the guest stopped, and where.
	MOVD	R0, CTX_EXIT_VECTOR(R1)
	WORD	$0xd53c5202	// mrs x2, esr_el2
	WORD	$0xd53c6003	// mrs x3, far_el2
	STP	(R2, R3), CTX_EXIT_ESR(R1)
	WORD	$0xd53c6082	// mrs x2, hpfar_el2
	MOVD	R2, CTX_EXIT_HPFAR(R1)
	WORD	$0xd53c4022	// mrs x2, elr_el2
	WORD	$0xd53c4003	// mrs x3, spsr_el2
	STP	(R2, R3), CTX_PC(R1)

	// Only SPSR_EL1 and SP_EL0: the other EL1 registers stay on the CPU
	// until saveSys or another context's run needs them.
	MRS	SPSR_EL1, R2
	MRS	SP_EL0, R3
	STP	(R2, R3), (CTX_SYS+176)(R1)

	// FP/SIMD stays on the CPU: the next run of this context finds it
	// there, and EL2's own first use of it traps (fpTrap), which saves it.
	// The ISB makes the trap certain before Go's next FP instruction.
	MOVD	$(CPTR_EL2_GO|CPTR_EL2_TFP), R2
	WORD	$0xd51c1142	// msr cptr_el2, x2
	ISB	$15

	// Back to the Go code that called run, on its own stack.
	ADD	$CTX_HOST, R1, R1
	LDP	0(R1), (g, R29)
	LDP	16(R1), (R30, R2)
	WORD	$0xd50040bf	// msr spsel, #0x0
	MOVD	R2, RSP
	RET

// func guestExitAddr() uint64
TEXT ·guestExitAddr(SB),NOSPLIT,$0-8
	MOVD	$·guestExit(SB), R0
	MOVD	R0, ret+0(FP)
	RET

// func setPerCPU(p uint64)
TEXT ·setPerCPU(SB),NOSPLIT,$0-8
	MOVD	p+0(FP), R0
	WORD	$0xd51cd040	// msr tpidr_el2, x0
	RET

// func saveSys(c *Context)
//
// saveSys copies the EL1 system registers still on this CPU into c.
TEXT ·saveSys(SB),NOSPLIT,$0-8
	MOVD	c+0(FP), R0
	MRS	SCTLR_EL1, R2
	MRS	CPACR_EL1, R3
	STP	(R2, R3), (CTX_SYS+0)(R0)
	MRS	TTBR0_EL1, R2
	MRS	TTBR1_EL1, R3
	STP	(R2, R3), (CTX_SYS+16)(R0)
	MRS	TCR_EL1, R2
	MRS	ESR_EL1, R3
	STP	(R2, R3), (CTX_SYS+32)(R0)
	MRS	AFSR0_EL1, R2
	MRS	AFSR1_EL1, R3
	STP	(R2, R3), (CTX_SYS+48)(R0)
	MRS	FAR_EL1, R2
	MRS	MAIR_EL1, R3
	STP	(R2, R3), (CTX_SYS+64)(R0)
	MRS	AMAIR_EL1, R2
	MRS	VBAR_EL1, R3
	STP	(R2, R3), (CTX_SYS+80)(R0)
	MRS	CONTEXTIDR_EL1, R2
	MRS	TPIDR_EL0, R3
	STP	(R2, R3), (CTX_SYS+96)(R0)
	MRS	TPIDRRO_EL0, R2
	MRS	TPIDR_EL1, R3
	STP	(R2, R3), (CTX_SYS+112)(R0)
	MRS	CNTKCTL_EL1, R2
	MRS	PAR_EL1, R3
	STP	(R2, R3), (CTX_SYS+128)(R0)
	MRS	CSSELR_EL1, R2
	MRS	MDSCR_EL1, R3
	STP	(R2, R3), (CTX_SYS+144)(R0)
	MRS	SP_EL1, R2
	MRS	ELR_EL1, R3
	STP	(R2, R3), (CTX_SYS+160)(R0)
	RET

// func saveFP(c *Context)
//
// saveFP copies the FP/SIMD registers, c's, into c, and turns EL2's FP
// trap off.
TEXT ·saveFP(SB),NOSPLIT,$0-8
	MOVD	$CPTR_EL2_GO, R1
	WORD	$0xd51c1141	// msr cptr_el2, x1
	ISB	$15
	MOVD	c+0(FP), R0
	ADD	$CTX_FP, R0, R1
	STORE_Q
	MRS	FPCR, R2
	MRS	FPSR, R3
	STP	(R2, R3), (R1)
	MOVB	ZR, CTX_FP_LIVE(R0)
	// Go's own FP control: round to nearest, no traps.
	MSR	ZR, FPCR
	MSR	ZR, FPSR
	RET

// fpTrap is where the vectors send EL2's own first FP/SIMD instruction
// after a guest exit (CPTR_EL2.TFP, ESR_EL2.EC 0x07), with x0 and x1
// pushed in a frame of 0x140 bytes on SP_EL2. The registers still hold
// the context that ran last on this CPU (the per-CPU data's first word):
// it saves them into it, unless they were saved, or it was reset, since,
// turns the trap off and returns to the instruction, which runs again.
// Only x0 and x1 are used.
TEXT ·fpTrap(SB),NOSPLIT|NOFRAME,$0
	MOVD	$CPTR_EL2_GO, R0
	WORD	$0xd51c1140	// msr cptr_el2, x0
	ISB	$15
	WORD	$0xd53cd040	// mrs x0, tpidr_el2
	MOVD	(R0), R0
	CBZ	R0, fptrap_done
	MOVBU	CTX_FP_LIVE(R0), R1
	CBZ	R1, fptrap_done
	MOVB	ZR, CTX_FP_LIVE(R0)
	ADD	$CTX_FP, R0, R1
	STORE_Q
	MRS	FPCR, R0
	MOVD	R0, (R1)
	MRS	FPSR, R0
	MOVD	R0, 8(R1)
	MSR	ZR, FPCR
	MSR	ZR, FPSR
fptrap_done:
	LDP	0(RSP), (R0, R1)
	WORD	$0x910503ff	// add sp, sp, #0x140
	ERET

// func fpTrapAddr() uint64
TEXT ·fpTrapAddr(SB),NOSPLIT,$0-8
	MOVD	$·fpTrap(SB), R0
	MOVD	R0, ret+0(FP)
	RET
