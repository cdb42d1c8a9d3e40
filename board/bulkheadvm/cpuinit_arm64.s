//go:build tamago

#include "textflag.h"
#include "cpuif.h"

// cpuinit is the guest image's entry point (runtime/goos.CPUInit). The
// hypervisor starts it at EL1h with interrupts masked and x0 = its argument.
TEXT cpuinit(SB),NOSPLIT|NOFRAME,$0
	// Every vCPU enters here; the Go runtime runs on vCPU 0 only.
	WORD	$0xd53800a1	// mrs x1, mpidr_el1
	AND	$0xff, R1, R1
	CBZ	R1, primary
	B	·secondary(SB)
primary:
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

// func hvc4(fid, a1, a2, a3, a4, a5, a6, a7 uint64) (r0, r1, r2, r3 uint64)
TEXT ·hvc4(SB),NOSPLIT,$0-96
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
	MOVD	R2, r2+80(FP)
	MOVD	R3, r3+88(FP)
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

// secondary is what every vCPU but the first runs, without a stack or the
// MMU: it enables its GIC CPU interface and serves SGIs from vCPU 0.
// SGI 1 is answered with SGI 2 to vCPU 0 (a ping-pong for IPI tests);
// SGI 4 makes it call YIELD for ever (a partner for switch benchmarks);
// SGI 15 (OffSGI) makes it power itself off, for StartCPU.
TEXT ·secondary(SB),NOSPLIT|NOFRAME,$0
	CPUIF_ON($0xff)
serve:
	WORD	$0xd538cc00	// mrs x0, icc_iar1_el1
	CMP	$1023, R0
	BEQ	sleep
	CMP	$4, R0
	BEQ	yield
	CMP	$15, R0	// OffSGI
	BEQ	off
	CMP	$1, R0
	BNE	done
	MOVD	$(2<<24|1), R1	// SGI 2 to Aff0 0
	WORD	$0xd518cba1	// msr icc_sgi1r_el1, x1
done:
	WORD	$0xd518cc20	// msr icc_eoir1_el1, x0
	B	serve
sleep:
	WFI
	B	serve
off:
	WORD	$0xd518cc20	// msr icc_eoir1_el1, x0
	MOVD	$0x84000002, R0	// PSCI CPU_OFF
	WORD	$0xd4000002	// hvc #0x0
	B	off
yield:
	WORD	$0xd518cc20	// msr icc_eoir1_el1, x0
yieldloop:
	MOVD	$0xc6000003, R0	// YIELD
	WORD	$0xd4000002	// hvc #0x0
	B	yieldloop
