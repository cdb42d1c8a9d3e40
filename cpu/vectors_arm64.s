//go:build tamago

#include "textflag.h"

// Frame offsets, mirrored by cpu.Frame.
#define FRAME_SIZE 320
#define FRAME_SP 248
#define FRAME_ELR 256
#define FRAME_SPSR 264
#define FRAME_ESR 272
#define FRAME_FAR 280
#define FRAME_HPFAR 288
#define FRAME_VECTOR 296
#define FRAME_MPIDR 304

// SP adjustments are encoded with WORD: the linker's nosplit stack check
// would otherwise charge the exception stack to the interrupted Go stack.

// Entry for exceptions taken while Go ran on SP_EL0, or from a lower EL: the
// CPU has switched to SP_EL2, the dedicated exception stack, so a Go stack
// overflow still gets a report.
#define ENTRY(n) \
	PCALIGN	$128 \
	WORD	$0xd10503ff /* sub sp, sp, #0x140 */ \
	STP	(R0, R1), 0(RSP) \
	MOVD	$n, R0 \
	B	·excCommon(SB)

// The synchronous entry for exceptions taken while Go ran: EL2's own FP/SIMD
// use while a guest's registers are still on the CPU (ESR_EL2.EC 0x07,
// CPTR_EL2.TFP) goes to the world switch's handler (vcpu.fpTrap,
// registered through SetFPTrap) with the same frame; anything else, and
// that too if no handler is registered, is reported like ENTRY's.
#define SYNC_ENTRY \
	PCALIGN	$128 \
	WORD	$0xd10503ff /* sub sp, sp, #0x140 */ \
	STP	(R0, R1), 0(RSP) \
	WORD	$0xd53c5200 /* mrs x0, esr_el2 */ \
	LSR	$26, R0, R0 \
	CMP	$0x07, R0 \
	BNE	sync_fatal \
	MOVD	·fpTrap(SB), R1 \
	CBZ	R1, sync_fatal \
	JMP	(R1) \
sync_fatal: \
	MOVD	$0, R0 \
	B	·excCommon(SB)

// Entry for exceptions taken on SP_EL2, i.e. a fault inside the handler. It
// restarts the exception stack from its top; a second such fault halts. Only
// R18_PLATFORM, the platform register Go never uses, is clobbered.
#define NESTED(n) \
	PCALIGN	$128 \
	MOVD	$·nested(SB), R18_PLATFORM \
	MOVWU	(R18_PLATFORM), R18_PLATFORM \
	CBNZ	R18_PLATFORM, vhalt \
	MOVD	$·nested(SB), R18_PLATFORM \
	MOVW	R18_PLATFORM, (R18_PLATFORM) \
	MOVD	$·excStackTop(SB), R18_PLATFORM \
	MOVD	(R18_PLATFORM), R18_PLATFORM \
	MOVD	R18_PLATFORM, RSP \
	WORD	$0xd10503ff /* sub sp, sp, #0x140 */ \
	STP	(R0, R1), 0(RSP) \
	MOVD	$n, R0 \
	B	·excCommon(SB)

// Entry for exceptions from a lower EL: push the guest's x0 and x1 and go
// to the world switch's exit path (vcpu.guestExit, registered through
// SetGuestExit), which expects the vector number in x0.
#define GUEST(n) \
	PCALIGN	$128 \
	WORD	$0xd10043ff /* sub sp, sp, #0x10 */ \
	STP	(R0, R1), 0(RSP) \
	MOVD	$n, R0 \
	MOVD	$·guestExit(SB), R1 \
	MOVD	(R1), R1 \
	JMP	(R1)

// The EL2 vector table (Arm ARM D1.10.2): 16 entries of 0x80 bytes, 2 KiB
// aligned for VBAR_EL2.
TEXT ·vectors(SB),NOSPLIT|NOFRAME,$0
	PCALIGN	$2048
	SYNC_ENTRY	// current EL, SP_EL0: synchronous
	ENTRY(1)	// IRQ
	ENTRY(2)	// FIQ
	ENTRY(3)	// SError
	NESTED(4)	// current EL, SP_EL2: synchronous
	NESTED(5)	// IRQ
	NESTED(6)	// FIQ
	NESTED(7)	// SError
	GUEST(8)	// lower EL, AArch64: synchronous
	GUEST(9)	// IRQ
	GUEST(10)	// FIQ
	GUEST(11)	// SError
	GUEST(12)	// lower EL, AArch32: synchronous
	GUEST(13)	// IRQ
	GUEST(14)	// FIQ
	GUEST(15)	// SError
vhalt:
	// A fault while handling a fault inside the handler: nothing is left
	// to report with. Power off so the machine does not hang.
	MSR	$0xf, DAIFSet
	MOVD	$0x84000008, R0	// PSCI SYSTEM_OFF
	WORD	$0xd4000003	// smc #0x0
	WFI
	B	vhalt

// excCommon completes the frame and calls trap(frame) in Go.
TEXT ·excCommon(SB),NOSPLIT|NOFRAME,$0
	STP	(R2, R3), 16(RSP)
	STP	(R4, R5), 32(RSP)
	STP	(R6, R7), 48(RSP)
	STP	(R8, R9), 64(RSP)
	STP	(R10, R11), 80(RSP)
	STP	(R12, R13), 96(RSP)
	STP	(R14, R15), 112(RSP)
	STP	(R16, R17), 128(RSP)
	STP	(R18_PLATFORM, R19), 144(RSP)
	STP	(R20, R21), 160(RSP)
	STP	(R22, R23), 176(RSP)
	STP	(R24, R25), 192(RSP)
	STP	(R26, R27), 208(RSP)
	STP	(g, R29), 224(RSP)
	MOVD	R30, 240(RSP)
	MOVD	R0, FRAME_VECTOR(RSP)

	// The interrupted SP: SP_EL0 unless the fault nested on SP_EL2.
	MRS	SP_EL0, R1
	AND	$~3, R0, R2
	CMP	$4, R2
	BNE	sp_saved
	ADD	$FRAME_SIZE, RSP, R1
sp_saved:
	MOVD	R1, FRAME_SP(RSP)

	WORD	$0xd53c4021	// mrs x1, elr_el2
	MOVD	R1, FRAME_ELR(RSP)
	WORD	$0xd53c4001	// mrs x1, spsr_el2
	MOVD	R1, FRAME_SPSR(RSP)
	WORD	$0xd53c5201	// mrs x1, esr_el2
	MOVD	R1, FRAME_ESR(RSP)
	WORD	$0xd53c6001	// mrs x1, far_el2
	MOVD	R1, FRAME_FAR(RSP)
	WORD	$0xd53c6081	// mrs x1, hpfar_el2
	MOVD	R1, FRAME_HPFAR(RSP)
	MRS	MPIDR_EL1, R1
	AND	$0xff00ffffff, R1, R1	// Aff3-Aff0
	MOVD	R1, FRAME_MPIDR(RSP)

	// The handler runs on the interrupted goroutine's g but on a stack
	// above every Go stack; clearing g.stackguard0 (offset 16, after
	// g.stack) keeps a pending preemption request from sending it into
	// morestack. The handler never returns to that goroutine.
	MOVD	RSP, R1
	CBZ	g, foreign
	MOVD	ZR, 16(g)
	// End frame-pointer and link-register chains for the unwinder.
	MOVD	ZR, R29
	MOVD	ZR, R30
	WORD	$0xd10043ff	// sub sp, sp, #0x10
	MOVD	R1, 8(RSP)
	BL	·trap(SB)
	B	·excHalt(SB)

foreign:
	// No goroutine runs here (a secondary's remote loop): Go cannot run
	// the report on this CPU, so the boot CPU is given the frame.
	B	·foreignCrash(SB)

// foreignCrash hands the frame at R1 to the boot CPU, which reports it
// (RemoteCrash), and parks this CPU for good. The first CPU to crash is
// the one reported; any other just parks.
TEXT ·foreignCrash(SB),NOSPLIT|NOFRAME,$0
	MOVD	$·remoteCrash(SB), R2
claim:
	LDAXR	(R2), R3
	CBNZ	R3, park
	STLXR	R1, (R2), R4
	CBNZ	R4, claim
	MOVD	$·crashSGI1R(SB), R3
	MOVD	(R3), R3
	CBZ	R3, park
	DSB	$0xb	// ISH: the frame is visible before the SGI
	WORD	$0xd518cba3	// msr icc_sgi1r_el1, x3
	ISB	$15
park:
	MSR	$0xf, DAIFSet
	WFI
	B	park

TEXT ·excHalt(SB),NOSPLIT|NOFRAME,$0
	MSR	$0xf, DAIFSet
halt:
	WFI
	B	halt

// lowerELCrash is the lower-EL path while no world switch is registered:
// an exception from a lower EL then means a bug, reported like one at EL2.
// x18 is clobbered.
TEXT ·lowerELCrash(SB),NOSPLIT|NOFRAME,$0
	MOVD	R0, R18_PLATFORM
	LDP	0(RSP), (R0, R1)
	WORD	$0x910043ff	// add sp, sp, #0x10
	WORD	$0xd10503ff	// sub sp, sp, #0x140
	STP	(R0, R1), 0(RSP)
	MOVD	R18_PLATFORM, R0
	B	·excCommon(SB)

// func lowerELCrashAddr() uint64
TEXT ·lowerELCrashAddr(SB),NOSPLIT,$0-8
	MOVD	$·lowerELCrash(SB), R0
	MOVD	R0, ret+0(FP)
	RET
