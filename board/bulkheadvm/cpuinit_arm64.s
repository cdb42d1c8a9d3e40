//go:build tamago

#include "textflag.h"

// cpuinit is the guest image's entry point (runtime/goos.CPUInit). The
// hypervisor starts it at EL1h with interrupts masked and x0 = its argument.
TEXT cpuinit(SB),NOSPLIT|NOFRAME,$0
	MOVD	R0, ·bootArg(SB)

	MRS	CurrentEL, R0
	LSR	$2, R0, R0
	AND	$3, R0, R0
	CMP	$1, R0
	BNE	wrong_el

	// CPACR_EL1.FPEN = 0b11: FP/SIMD at EL1 and EL0, which Go needs.
	MRS	CPACR_EL1, R0
	ORR	$(3<<20), R0
	MSR	R0, CPACR_EL1
	ISB	$15

	MOVD	runtime∕goos·RamStart(SB), R1
	MOVD	runtime∕goos·RamSize(SB), R2
	ADD	R2, R1, R1
	MOVD	runtime∕goos·RamStackOffset(SB), R2
	SUB	R2, R1, R1
	MOVD	R1, RSP
	B	_rt0_tamago_start(SB)

wrong_el:
	MOVD	$0xc6000002, R0	// EXIT
	MOVD	$125, R1
	WORD	$0xd4000002	// hvc #0x0
	B	wrong_el

// func hvc(fid, a1, a2, a3, a4, a5, a6, a7 uint64) (r0, r1 uint64)
TEXT ·hvc(SB),NOSPLIT,$0-80
	MOVD	fid+0(FP), R0
	MOVD	a1+8(FP), R1
	MOVD	a2+16(FP), R2
	MOVD	a3+24(FP), R3
	MOVD	a4+32(FP), R4
	MOVD	a5+40(FP), R5
	MOVD	a6+48(FP), R6
	MOVD	a7+56(FP), R7
	WORD	$0xd4000002	// hvc #0x0
	MOVD	R0, r0+64(FP)
	MOVD	R1, r1+72(FP)
	RET

// func imageSymbols() (text, etext, noptrdata, end uint64)
TEXT ·imageSymbols(SB),NOSPLIT,$0-32
	MOVD	$runtime·text(SB), R0
	MOVD	R0, text+0(FP)
	MOVD	$runtime·etext(SB), R0
	MOVD	R0, etext+8(FP)
	MOVD	$runtime·noptrdata(SB), R0
	MOVD	R0, noptrdata+16(FP)
	MOVD	$runtime·end(SB), R0
	MOVD	R0, end+24(FP)
	RET

// func enableMMU(mair, tcr, ttbr0 uint64)
TEXT ·enableMMU(SB),NOSPLIT,$0-24
	MOVD	mair+0(FP), R0
	MSR	R0, MAIR_EL1
	MOVD	tcr+8(FP), R0
	MSR	R0, TCR_EL1
	MOVD	ttbr0+16(FP), R0
	MSR	R0, TTBR0_EL1
	DSB	$15
	ISB	$15
	WORD	$0xd508871f	// tlbi vmalle1
	WORD	$0xd508751f	// ic iallu
	DSB	$15
	ISB	$15
	MRS	SCTLR_EL1, R0
	ORR	$(1<<0), R0	// M
	ORR	$(1<<2), R0	// C
	ORR	$(1<<12), R0	// I
	ORR	$(1<<19), R0	// WXN
	BIC	$(1<<1), R0	// A
	MSR	R0, SCTLR_EL1
	ISB	$15
	RET

// func readCNTVCT() uint64
TEXT ·readCNTVCT(SB),NOSPLIT,$0-8
	ISB	$15
	MRS	CNTVCT_EL0, R0
	MOVD	R0, ret+0(FP)
	RET
