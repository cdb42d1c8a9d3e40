//go:build tamago

#include "textflag.h"

// Registers Go's assembler names.

TEXT ·ReadCurrentEL(SB),NOSPLIT,$0-8
	MRS	CurrentEL, R0
	MOVD	R0, ret+0(FP)
	RET

TEXT ·ReadMIDR(SB),NOSPLIT,$0-8
	MRS	MIDR_EL1, R0
	MOVD	R0, ret+0(FP)
	RET

TEXT ·ReadMPIDR(SB),NOSPLIT,$0-8
	MRS	MPIDR_EL1, R0
	MOVD	R0, ret+0(FP)
	RET

TEXT ·ReadIDAA64PFR0(SB),NOSPLIT,$0-8
	MRS	ID_AA64PFR0_EL1, R0
	MOVD	R0, ret+0(FP)
	RET

TEXT ·ReadIDAA64ISAR0(SB),NOSPLIT,$0-8
	MRS	ID_AA64ISAR0_EL1, R0
	MOVD	R0, ret+0(FP)
	RET

TEXT ·ReadIDAA64MMFR0(SB),NOSPLIT,$0-8
	MRS	ID_AA64MMFR0_EL1, R0
	MOVD	R0, ret+0(FP)
	RET

TEXT ·ReadIDAA64MMFR1(SB),NOSPLIT,$0-8
	MRS	ID_AA64MMFR1_EL1, R0
	MOVD	R0, ret+0(FP)
	RET

TEXT ·ReadCNTFRQ(SB),NOSPLIT,$0-8
	MRS	CNTFRQ_EL0, R0
	MOVD	R0, ret+0(FP)
	RET

// The ISB keeps the counter read from being hoisted above earlier code
// (Arm ARM D12.1.2, reads of the counter are not ordered).
TEXT ·ReadCNTPCT(SB),NOSPLIT,$0-8
	ISB	$15
	MRS	CNTPCT_EL0, R0
	MOVD	R0, ret+0(FP)
	RET

// EL2 registers, encoded by hand.

TEXT ·setVBAR(SB),NOSPLIT,$0-8
	MOVD	addr+0(FP), R0
	WORD	$0xd51cc000	// msr vbar_el2, x0
	ISB	$15
	RET

TEXT ·vectorTableAddr(SB),NOSPLIT,$0-8
	MOVD	$·vectors(SB), R0
	MOVD	R0, ret+0(FP)
	RET

// RNDR sets NZCV to 0b0100 when it fails to deliver a number.
TEXT ·RNDR(SB),NOSPLIT,$0-9
	WORD	$0xd53b2400	// mrs x0, rndr
	CSET	NE, R1
	MOVD	R0, v+0(FP)
	MOVB	R1, ok+8(FP)
	RET

TEXT ·EnableMMU(SB),NOSPLIT,$0-24
	MOVD	mair+0(FP), R0
	WORD	$0xd51ca200	// msr mair_el2, x0
	MOVD	tcr+8(FP), R0
	WORD	$0xd51c2040	// msr tcr_el2, x0
	MOVD	ttbr0+16(FP), R0
	WORD	$0xd51c2000	// msr ttbr0_el2, x0
	// Tables were written with the MMU off: make them visible to the
	// walker, drop anything cached from reset, then switch on.
	DSB	$15
	ISB	$15
	WORD	$0xd50c871f	// tlbi alle2
	WORD	$0xd508751f	// ic iallu
	DSB	$15
	ISB	$15
	WORD	$0xd53c1000	// mrs x0, sctlr_el2
	ORR	$(1<<0), R0	// M: MMU on
	ORR	$(1<<2), R0	// C: data cache on
	ORR	$(1<<3), R0	// SA: SP alignment check
	ORR	$(1<<12), R0	// I: instruction cache on
	ORR	$(1<<19), R0	// WXN: writable implies execute-never
	BIC	$(1<<1), R0	// A: no alignment fault on normal memory
	WORD	$0xd51c1000	// msr sctlr_el2, x0
	ISB	$15
	RET

TEXT ·InvalidateTLB(SB),NOSPLIT,$0-0
	DSB	$10	// ishst: table writes before the invalidation
	WORD	$0xd50c871f	// tlbi alle2
	DSB	$11	// ish
	ISB	$15
	RET

TEXT ·SMC(SB),NOSPLIT,$0-64
	MOVD	fid+0(FP), R0
	MOVD	a1+8(FP), R1
	MOVD	a2+16(FP), R2
	MOVD	a3+24(FP), R3
	WORD	$0xd4000003	// smc #0x0
	MOVD	R0, r0+32(FP)
	MOVD	R1, r1+40(FP)
	MOVD	R2, r2+48(FP)
	MOVD	R3, r3+56(FP)
	RET

TEXT ·Semihost(SB),NOSPLIT,$0-24
	MOVD	op+0(FP), R0
	MOVD	param+8(FP), R1
	WORD	$0xd45e0000	// hlt #0xf000
	MOVD	R0, ret+16(FP)
	RET

TEXT ·Halt(SB),NOSPLIT|NOFRAME,$0-0
	MSR	$0xf, DAIFSet
halt:
	WFI
	B	halt

TEXT ·WriteVTCR(SB),NOSPLIT,$0-8
	MOVD	v+0(FP), R0
	WORD	$0xd51c2140	// msr vtcr_el2, x0
	ISB	$15
	RET

// Stage 2 break-before-make for one entry of one VMID: the cleared entry
// is made visible to table walkers, then the IPA's stage 2 entries and,
// since combined stage 1+2 entries may hold the old output, the VMID's
// stage 1 entries are invalidated on every CPU (Arm ARM D8.16.2).
// VTTBR_EL2 is restored afterwards: the world switch loads it only when
// the context changes.
TEXT ·TLBIStage2IPA(SB),NOSPLIT,$0-16
	MOVHU	vmid+0(FP), R0
	LSL	$48, R0, R0
	MOVD	ipa+8(FP), R1
	LSR	$12, R1, R1
	WORD	$0xd53c2102	// mrs x2, vttbr_el2
	WORD	$0xd51c2100	// msr vttbr_el2, x0
	ISB	$15
	DSB	$10	// ishst
	WORD	$0xd50c8021	// tlbi ipas2e1is, x1
	DSB	$11	// ish
	WORD	$0xd508831f	// tlbi vmalle1is
	DSB	$11	// ish
	WORD	$0xd51c2102	// msr vttbr_el2, x2
	ISB	$15
	RET

// TLBIAllE1 invalidates EL1&0 entries of every VMID on every CPU: the VMID
// generation rollover.
TEXT ·TLBIAllE1(SB),NOSPLIT,$0-0
	DSB	$10	// ishst
	WORD	$0xd50c839f	// tlbi alle1is
	DSB	$11	// ish
	ISB	$15
	RET

// func DSB()
TEXT ·DSB(SB),NOSPLIT,$0-0
	DSB	$15
	RET

// WaitForInterrupt idles until an interrupt is pending; interrupts stay
// masked at EL2, so it returns rather than taking it.
TEXT ·WaitForInterrupt(SB),NOSPLIT,$0-0
	DSB	$15
	WFI
	RET

// func ImageSymbols() (text, rodata, noptrdata, end uint64)
TEXT ·ImageSymbols(SB),NOSPLIT,$0-32
	MOVD	$runtime·text(SB), R0
	MOVD	R0, text+0(FP)
	MOVD	$runtime·rodata(SB), R0
	MOVD	R0, rodata+8(FP)
	MOVD	$runtime·noptrdata(SB), R0
	MOVD	R0, noptrdata+16(FP)
	MOVD	$runtime·end(SB), R0
	MOVD	R0, end+24(FP)
	RET
