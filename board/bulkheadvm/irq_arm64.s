//go:build tamago

#include "textflag.h"
#include "cpuif.h"

// The IRQ handler (vector table entry "current EL with SP_ELx, IRQ") and
// the entry of vCPUs started with StartCPU. See irq.go.

// Where the handler finds the active state: GICR_ISACTIVER0 in the SGI
// frame of the vCPU's redistributor, GICD_ISACTIVER<n> for SPIs (GICv3,
// IHI 0069, 12.9.13 and 12.11.11).
#define GICD_ISACTIVER 0x08000300
#define GICR_ISACTIVER0 0x080b0300	/* GICRBase + GICR_SGI_BASE + 0x300 */

TEXT ·irqSPx(SB),NOSPLIT|NOFRAME,$0
	WORD	$0xd100c3ff	// sub sp, sp, #0x30
	STP	(R0, R1), 0(RSP)
	STP	(R2, R3), 16(RSP)
	STP	(R4, R5), 32(RSP)
	WORD	$0xd538cc00	// mrs x0, icc_iar1_el1
	CMP	$1020, R0
	BHS	out	// spurious: nothing to end
	CMP	$15, R0	// OffSGI
	BEQ	off
	MRS	MPIDR_EL1, R1
	AND	$0xff, R1, R1
	CMP	$16, R1
	BHS	eoi
	// Quiet the source: the virtual timer is masked, a device's register
	// written (irqQuiet).
	CMP	$27, R0
	BNE	device
	MRS	CNTV_CTL_EL0, R2
	ORR	$2, R2, R2	// IMASK
	MSR	R2, CNTV_CTL_EL0
	ISB	$15
	B	active
device:
	CMP	$96, R0
	BHS	active
	MOVD	$·irqQuiet(SB), R2
	ADD	R0<<4, R2, R2
	MOVD	0(R2), R3
	CBZ	R3, active
	MOVD	8(R2), R4
	MOVW	R4, (R3)
	DSB	$15
active:
	// R2: the active-state word's address.
	CMP	$32, R0
	BHS	spi
	MOVD	$GICR_ISACTIVER0, R2
	ADD	R1<<17, R2, R2
	B	readactive
spi:
	MOVD	$GICD_ISACTIVER, R2
	LSR	$5, R0, R3
	ADD	R3<<2, R2, R2
readactive:
	MOVD	$·irqActive(SB), R3
	ADD	R1<<3, R3, R3
	MOVWU	(R2), R4
	MOVW	R4, 0(R3)
	CMP	$96, R0
	BHS	eoi
	// irqCount[cpu][intid]++: this vCPU's row has no other writer.
	MOVD	$96, R4
	MUL	R1, R4, R4
	ADD	R0, R4, R4
	MOVD	$·irqCount(SB), R5
	ADD	R4<<2, R5, R5
	MOVWU	(R5), R4
	ADD	$1, R4, R4
	MOVW	R4, (R5)
eoi:
	WORD	$0xd518cc20	// msr icc_eoir1_el1, x0
	ISB	$15
	CMP	$16, R1
	BHS	out
	CMP	$96, R0
	BHS	out
	MOVWU	(R2), R4
	MOVW	R4, 4(R3)
	DMB	$11	// ish: the records before the interrupted code reads them
out:
	LDP	0(RSP), (R0, R1)
	LDP	16(RSP), (R2, R3)
	LDP	32(RSP), (R4, R5)
	WORD	$0x9100c3ff	// add sp, sp, #0x30
	ERET

off:
	WORD	$0xd518cc20	// msr icc_eoir1_el1, x0
	MOVD	$0x84000002, R0	// PSCI CPU_OFF
	WORD	$0xd4000002	// hvc #0x0
	B	off

// irqSecondary is where a vCPU started by StartCPU begins: at EL1 with
// its MMU off, x0 = its bootRecord. It takes the caller's stage 1 map and
// the board's vectors, turns its GIC CPU interface on and waits for
// interrupts, which irqSPx takes, or goes where StartCPUAt said.
TEXT ·irqSecondary(SB),NOSPLIT|NOFRAME,$0
	MOVD	0(R0), R1
	MSR	R1, MAIR_EL1
	MOVD	8(R0), R1
	MSR	R1, TCR_EL1
	MOVD	16(R0), R1
	MSR	R1, TTBR0_EL1
	MOVD	32(R0), R1
	MOVD	R1, RSP
	MOVD	40(R0), R3
	MOVD	24(R0), R2
	DSB	$15
	ISB	$15
	WORD	$0xd508871f	// tlbi vmalle1
	WORD	$0xd508751f	// ic iallu
	DSB	$15
	ISB	$15
	MOVD	$·vectors(SB), R1
	MSR	R1, VBAR_EL1
	MSR	R2, SCTLR_EL1
	ISB	$15
	CPUIF_ON($0xf0)
	WORD	$0xd50342ff	// msr daifclr, #0x2
	CBZ	R3, wait
	B	(R3)
wait:
	WFI
	B	wait

// func irqSecondaryPC() uint64
TEXT ·irqSecondaryPC(SB),NOSPLIT,$0-8
	MOVD	$·irqSecondary(SB), R0
	MOVD	R0, ret+0(FP)
	RET

// func irqOn()
TEXT ·irqOn(SB),NOSPLIT,$0-0
	WORD	$0xd50342ff	// msr daifclr, #0x2
	RET

// func irqOff()
TEXT ·irqOff(SB),NOSPLIT,$0-0
	WORD	$0xd50342df	// msr daifset, #0x2
	RET

// func readMMURegs() (mair, tcr, ttbr0, sctlr uint64)
TEXT ·readMMURegs(SB),NOSPLIT,$0-32
	MRS	MAIR_EL1, R0
	MOVD	R0, mair+0(FP)
	MRS	TCR_EL1, R0
	MOVD	R0, tcr+8(FP)
	MRS	TTBR0_EL1, R0
	MOVD	R0, ttbr0+16(FP)
	MRS	SCTLR_EL1, R0
	MOVD	R0, sctlr+24(FP)
	RET
