//go:build tamago

#include "textflag.h"

// The guest's EL1 vector table (Arm ARM D1.10.2). The guest runs at EL1h
// (SP_EL1), so its own exceptions arrive at offset 0x200. A synchronous
// exception during Probe is the expected outcome of a probe: it is
// recorded and the probing instruction skipped; an IRQ goes to irqSPx.
// Anything else ends the
// guest with EXIT(128 + EC), ESR and ELR in x2 and x3 for the report.

#define FATAL \
	PCALIGN	$128 \
	WORD	$0xd5385200 /* mrs x0, esr_el1 */ \
	B	·fatal(SB)

TEXT ·vectors(SB),NOSPLIT|NOFRAME,$0
	PCALIGN	$2048
	FATAL	// current EL with SP_EL0
	FATAL
	FATAL
	FATAL
	PCALIGN	$128	// current EL with SP_ELx: synchronous
	B	·syncSPx(SB)
	PCALIGN	$128	// IRQ: taken only by guests that unmask it (irq.go)
	B	·irqSPx(SB)
	FATAL
	FATAL
	FATAL	// lower EL
	FATAL
	FATAL
	FATAL
	FATAL
	FATAL
	FATAL
	FATAL

TEXT ·syncSPx(SB),NOSPLIT|NOFRAME,$0
	// Only x0 and x1 are used, kept in the exception stack frame below SP.
	WORD	$0xd10043ff	// sub sp, sp, #0x10
	STP	(R0, R1), 0(RSP)
	MOVD	$·probing(SB), R0
	MOVD	(R0), R0
	CBZ	R0, notprobe
	WORD	$0xd5385201	// mrs x1, esr_el1
	MOVD	$·probeESR(SB), R0
	MOVD	R1, (R0)
	WORD	$0xd5384021	// mrs x1, elr_el1
	ADD	$4, R1, R1
	WORD	$0xd5184021	// msr elr_el1, x1
	LDP	0(RSP), (R0, R1)
	WORD	$0x910043ff	// add sp, sp, #0x10
	ERET
notprobe:
	LDP	0(RSP), (R0, R1)
	WORD	$0x910043ff	// add sp, sp, #0x10
	WORD	$0xd5385200	// mrs x0, esr_el1
	B	·fatal(SB)

// fatal: x0 = ESR_EL1.
TEXT ·fatal(SB),NOSPLIT|NOFRAME,$0
again:
	MOVD	R0, R2
	LSR	$26, R0, R1
	AND	$0x3f, R1, R1
	ADD	$128, R1, R1
	WORD	$0xd5384023	// mrs x3, elr_el1
	MOVD	$0xc6000002, R0	// EXIT
	WORD	$0xd4000002	// hvc #0x0
	MOVD	R2, R0
	B	again

// func setVBAR()
TEXT ·setVBAR(SB),NOSPLIT,$0-0
	MOVD	$·vectors(SB), R0
	MSR	R0, VBAR_EL1
	ISB	$15
	RET

// func probe(addr uint64, write bool) (value uint64)
//
// One load or store at addr that may fault; syncSPx skips it if it does.
TEXT ·probe(SB),NOSPLIT,$0-24
	MOVD	addr+0(FP), R0
	MOVBU	write+8(FP), R1
	MOVD	$0, R4
	MOVD	$·probing(SB), R2
	MOVD	$1, R3
	MOVD	R3, (R2)
	CBNZ	R1, store
	MOVD	(R0), R4
	B	done
store:
	MOVD	$0x5a5a5a5a5a5a5a5a, R4
	MOVD	R4, (R0)
done:
	MOVD	$·probing(SB), R2
	MOVD	ZR, (R2)
	MOVD	R4, value+16(FP)
	RET
