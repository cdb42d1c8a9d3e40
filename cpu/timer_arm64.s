//go:build tamago

#include "textflag.h"

TEXT ·ReadCNTHP_CTL(SB),NOSPLIT,$0-8
	WORD	$0xd53ce220	// mrs x0, cnthp_ctl_el2
	MOVD	R0, ret+0(FP)
	RET

TEXT ·WriteCNTHP_CTL(SB),NOSPLIT,$0-8
	MOVD	v+0(FP), R0
	WORD	$0xd51ce220	// msr cnthp_ctl_el2, x0
	ISB	$15
	RET

TEXT ·ReadCNTHP_CVAL(SB),NOSPLIT,$0-8
	WORD	$0xd53ce240	// mrs x0, cnthp_cval_el2
	MOVD	R0, ret+0(FP)
	RET

TEXT ·WriteCNTHP_CVAL(SB),NOSPLIT,$0-8
	MOVD	v+0(FP), R0
	WORD	$0xd51ce240	// msr cnthp_cval_el2, x0
	ISB	$15
	RET

TEXT ·ReadCNTV_CTL(SB),NOSPLIT,$0-8
	WORD	$0xd53be320	// mrs x0, cntv_ctl_el0
	MOVD	R0, ret+0(FP)
	RET

TEXT ·WriteCNTV_CTL(SB),NOSPLIT,$0-8
	MOVD	v+0(FP), R0
	WORD	$0xd51be320	// msr cntv_ctl_el0, x0
	ISB	$15
	RET

TEXT ·ReadCNTV_CVAL(SB),NOSPLIT,$0-8
	WORD	$0xd53be340	// mrs x0, cntv_cval_el0
	MOVD	R0, ret+0(FP)
	RET

TEXT ·WriteCNTV_CVAL(SB),NOSPLIT,$0-8
	MOVD	v+0(FP), R0
	WORD	$0xd51be340	// msr cntv_cval_el0, x0
	ISB	$15
	RET

TEXT ·ReadCNTVOFF(SB),NOSPLIT,$0-8
	WORD	$0xd53ce060	// mrs x0, cntvoff_el2
	MOVD	R0, ret+0(FP)
	RET

TEXT ·WriteCNTVOFF(SB),NOSPLIT,$0-8
	MOVD	v+0(FP), R0
	WORD	$0xd51ce060	// msr cntvoff_el2, x0
	ISB	$15
	RET

TEXT ·ReadCNTHCTL(SB),NOSPLIT,$0-8
	WORD	$0xd53ce100	// mrs x0, cnthctl_el2
	MOVD	R0, ret+0(FP)
	RET

TEXT ·WriteCNTHCTL(SB),NOSPLIT,$0-8
	MOVD	v+0(FP), R0
	WORD	$0xd51ce100	// msr cnthctl_el2, x0
	ISB	$15
	RET
