//go:build tamago

#include "textflag.h"

// func LoadSwitched(ctl, cval, cntvoff, vmcr, ap0r, ap1r, hcr uint64)
TEXT ·LoadSwitched(SB),NOSPLIT,$0-56
	MOVD	cntvoff+16(FP), R0
	WORD	$0xd51ce060	// msr cntvoff_el2, x0
	MOVD	cval+8(FP), R0
	WORD	$0xd51be340	// msr cntv_cval_el0, x0
	MOVD	ctl+0(FP), R0
	WORD	$0xd51be320	// msr cntv_ctl_el0, x0
	MOVD	vmcr+24(FP), R0
	WORD	$0xd51ccbe0	// msr ich_vmcr_el2, x0
	MOVD	ap0r+32(FP), R0
	WORD	$0xd51cc800	// msr ich_ap0r0_el2, x0
	MOVD	ap1r+40(FP), R0
	WORD	$0xd51cc900	// msr ich_ap1r0_el2, x0
	MOVD	hcr+48(FP), R0
	WORD	$0xd51ccb00	// msr ich_hcr_el2, x0
	ISB	$15
	RET

// func SaveSwitched() (ctl, cval, vmcr, ap0r, ap1r uint64)
TEXT ·SaveSwitched(SB),NOSPLIT,$0-40
	WORD	$0xd53be320	// mrs x0, cntv_ctl_el0
	BIC	$4, R0, R0	// ISTATUS: the hardware's, not state
	MOVD	R0, ctl+0(FP)
	WORD	$0xd53be340	// mrs x0, cntv_cval_el0
	MOVD	R0, cval+8(FP)
	WORD	$0xd51be33f	// msr cntv_ctl_el0, xzr
	WORD	$0xd53ccbe0	// mrs x0, ich_vmcr_el2
	MOVD	R0, vmcr+16(FP)
	WORD	$0xd53cc800	// mrs x0, ich_ap0r0_el2
	MOVD	R0, ap0r+24(FP)
	WORD	$0xd53cc900	// mrs x0, ich_ap1r0_el2
	MOVD	R0, ap1r+32(FP)
	WORD	$0xd51ccb1f	// msr ich_hcr_el2, xzr
	ISB	$15
	RET
