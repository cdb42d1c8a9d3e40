//go:build tamago

#include "textflag.h"
#include "cpuif.h"

// The guest's GIC CPU interface (GICv3 system registers at EL1, which the
// hypervisor's virtual CPU interface answers) and virtual timer.

// func cpuInterfaceOn()
TEXT ·cpuInterfaceOn(SB),NOSPLIT,$0-0
	CPUIF_ON($0xff)
	RET

// func ack() uint32
TEXT ·ack(SB),NOSPLIT,$0-4
	WORD	$0xd538cc00	// mrs x0, icc_iar1_el1
	MOVW	R0, ret+0(FP)
	RET

// func eoi(intid uint32)
TEXT ·eoi(SB),NOSPLIT,$0-4
	MOVWU	intid+0(FP), R0
	WORD	$0xd518cc20	// msr icc_eoir1_el1, x0
	RET

// func sgi(v uint64)
TEXT ·sgi(SB),NOSPLIT,$0-8
	MOVD	v+0(FP), R0
	WORD	$0xd518cba0	// msr icc_sgi1r_el1, x0
	ISB	$15
	RET

// func wfi()
TEXT ·wfi(SB),NOSPLIT,$0-0
	WFI
	RET

// func setTimer(cval, ctl uint64)
TEXT ·setTimer(SB),NOSPLIT,$0-16
	MOVD	cval+0(FP), R0
	MSR	R0, CNTV_CVAL_EL0
	MOVD	ctl+8(FP), R0
	MSR	R0, CNTV_CTL_EL0
	ISB	$15
	RET

// func dmb()
TEXT ·dmb(SB),NOSPLIT,$0-0
	DMB	$11	// ish
	RET

// func readCNTV_CTL() uint64
TEXT ·readCNTV_CTL(SB),NOSPLIT,$0-8
	ISB	$15
	MRS	CNTV_CTL_EL0, R0
	MOVD	R0, ret+0(FP)
	RET

// func writeCNTV_CTL(v uint64)
TEXT ·writeCNTV_CTL(SB),NOSPLIT,$0-8
	MOVD	v+0(FP), R0
	MSR	R0, CNTV_CTL_EL0
	ISB	$15
	RET

// func writeCNTV_CVAL(v uint64)
TEXT ·writeCNTV_CVAL(SB),NOSPLIT,$0-8
	MOVD	v+0(FP), R0
	MSR	R0, CNTV_CVAL_EL0
	ISB	$15
	RET
