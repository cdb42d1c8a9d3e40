//go:build tamago

#include "textflag.h"

TEXT ·readICC_SRE(SB),NOSPLIT,$0-8
	WORD	$0xd53cc9a0	// mrs x0, icc_sre_el2
	MOVD	R0, ret+0(FP)
	RET

TEXT ·writeICC_SRE(SB),NOSPLIT,$0-8
	MOVD	v+0(FP), R0
	WORD	$0xd51cc9a0	// msr icc_sre_el2, x0
	ISB	$15
	RET

TEXT ·readICC_PMR(SB),NOSPLIT,$0-8
	WORD	$0xd5384600	// mrs x0, icc_pmr_el1
	MOVD	R0, ret+0(FP)
	RET

TEXT ·writeICC_PMR(SB),NOSPLIT,$0-8
	MOVD	v+0(FP), R0
	WORD	$0xd5184600	// msr icc_pmr_el1, x0
	ISB	$15
	RET

TEXT ·readICC_IGRPEN1(SB),NOSPLIT,$0-8
	WORD	$0xd538cce0	// mrs x0, icc_igrpen1_el1
	MOVD	R0, ret+0(FP)
	RET

TEXT ·writeICC_IGRPEN1(SB),NOSPLIT,$0-8
	MOVD	v+0(FP), R0
	WORD	$0xd518cce0	// msr icc_igrpen1_el1, x0
	ISB	$15
	RET

TEXT ·readICC_IAR1(SB),NOSPLIT,$0-8
	WORD	$0xd538cc00	// mrs x0, icc_iar1_el1
	MOVD	R0, ret+0(FP)
	RET

TEXT ·writeICC_EOIR1(SB),NOSPLIT,$0-8
	MOVD	v+0(FP), R0
	WORD	$0xd518cc20	// msr icc_eoir1_el1, x0
	ISB	$15
	RET

TEXT ·writeICC_DIR(SB),NOSPLIT,$0-8
	MOVD	v+0(FP), R0
	WORD	$0xd518cb20	// msr icc_dir_el1, x0
	ISB	$15
	RET

TEXT ·readICC_CTLR(SB),NOSPLIT,$0-8
	WORD	$0xd538cc80	// mrs x0, icc_ctlr_el1
	MOVD	R0, ret+0(FP)
	RET

TEXT ·writeICC_CTLR(SB),NOSPLIT,$0-8
	MOVD	v+0(FP), R0
	WORD	$0xd518cc80	// msr icc_ctlr_el1, x0
	ISB	$15
	RET

// The SGI is generated only after this CPU's earlier memory writes are
// visible to the other CPUs (DSB ISH): the one it wakes reads them.
TEXT ·writeICC_SGI1R(SB),NOSPLIT,$0-8
	MOVD	v+0(FP), R0
	DSB	$11	// ish
	WORD	$0xd518cba0	// msr icc_sgi1r_el1, x0
	ISB	$15
	RET

TEXT ·readICH_HCR(SB),NOSPLIT,$0-8
	WORD	$0xd53ccb00	// mrs x0, ich_hcr_el2
	MOVD	R0, ret+0(FP)
	RET

TEXT ·writeICH_HCR(SB),NOSPLIT,$0-8
	MOVD	v+0(FP), R0
	WORD	$0xd51ccb00	// msr ich_hcr_el2, x0
	ISB	$15
	RET

TEXT ·readICH_VTR(SB),NOSPLIT,$0-8
	WORD	$0xd53ccb20	// mrs x0, ich_vtr_el2
	MOVD	R0, ret+0(FP)
	RET

TEXT ·readICH_MISR(SB),NOSPLIT,$0-8
	WORD	$0xd53ccb40	// mrs x0, ich_misr_el2
	MOVD	R0, ret+0(FP)
	RET

TEXT ·readICH_ELRSR(SB),NOSPLIT,$0-8
	WORD	$0xd53ccba0	// mrs x0, ich_elrsr_el2
	MOVD	R0, ret+0(FP)
	RET

TEXT ·readICH_LR0(SB),NOSPLIT,$0-8
	WORD	$0xd53ccc00	// mrs x0, ich_lr0_el2
	MOVD	R0, ret+0(FP)
	RET

TEXT ·writeICH_LR0(SB),NOSPLIT,$0-8
	MOVD	v+0(FP), R0
	WORD	$0xd51ccc00	// msr ich_lr0_el2, x0
	ISB	$15
	RET

TEXT ·readICH_LR1(SB),NOSPLIT,$0-8
	WORD	$0xd53ccc20	// mrs x0, ich_lr1_el2
	MOVD	R0, ret+0(FP)
	RET

TEXT ·writeICH_LR1(SB),NOSPLIT,$0-8
	MOVD	v+0(FP), R0
	WORD	$0xd51ccc20	// msr ich_lr1_el2, x0
	ISB	$15
	RET

TEXT ·readICH_LR2(SB),NOSPLIT,$0-8
	WORD	$0xd53ccc40	// mrs x0, ich_lr2_el2
	MOVD	R0, ret+0(FP)
	RET

TEXT ·writeICH_LR2(SB),NOSPLIT,$0-8
	MOVD	v+0(FP), R0
	WORD	$0xd51ccc40	// msr ich_lr2_el2, x0
	ISB	$15
	RET

TEXT ·readICH_LR3(SB),NOSPLIT,$0-8
	WORD	$0xd53ccc60	// mrs x0, ich_lr3_el2
	MOVD	R0, ret+0(FP)
	RET

TEXT ·writeICH_LR3(SB),NOSPLIT,$0-8
	MOVD	v+0(FP), R0
	WORD	$0xd51ccc60	// msr ich_lr3_el2, x0
	ISB	$15
	RET

TEXT ·readICH_LR4(SB),NOSPLIT,$0-8
	WORD	$0xd53ccc80	// mrs x0, ich_lr4_el2
	MOVD	R0, ret+0(FP)
	RET

TEXT ·writeICH_LR4(SB),NOSPLIT,$0-8
	MOVD	v+0(FP), R0
	WORD	$0xd51ccc80	// msr ich_lr4_el2, x0
	ISB	$15
	RET

TEXT ·readICH_LR5(SB),NOSPLIT,$0-8
	WORD	$0xd53ccca0	// mrs x0, ich_lr5_el2
	MOVD	R0, ret+0(FP)
	RET

TEXT ·writeICH_LR5(SB),NOSPLIT,$0-8
	MOVD	v+0(FP), R0
	WORD	$0xd51ccca0	// msr ich_lr5_el2, x0
	ISB	$15
	RET

TEXT ·readICH_LR6(SB),NOSPLIT,$0-8
	WORD	$0xd53cccc0	// mrs x0, ich_lr6_el2
	MOVD	R0, ret+0(FP)
	RET

TEXT ·writeICH_LR6(SB),NOSPLIT,$0-8
	MOVD	v+0(FP), R0
	WORD	$0xd51cccc0	// msr ich_lr6_el2, x0
	ISB	$15
	RET

TEXT ·readICH_LR7(SB),NOSPLIT,$0-8
	WORD	$0xd53ccce0	// mrs x0, ich_lr7_el2
	MOVD	R0, ret+0(FP)
	RET

TEXT ·writeICH_LR7(SB),NOSPLIT,$0-8
	MOVD	v+0(FP), R0
	WORD	$0xd51ccce0	// msr ich_lr7_el2, x0
	ISB	$15
	RET

TEXT ·readICH_LR8(SB),NOSPLIT,$0-8
	WORD	$0xd53ccd00	// mrs x0, ich_lr8_el2
	MOVD	R0, ret+0(FP)
	RET

TEXT ·writeICH_LR8(SB),NOSPLIT,$0-8
	MOVD	v+0(FP), R0
	WORD	$0xd51ccd00	// msr ich_lr8_el2, x0
	ISB	$15
	RET

TEXT ·readICH_LR9(SB),NOSPLIT,$0-8
	WORD	$0xd53ccd20	// mrs x0, ich_lr9_el2
	MOVD	R0, ret+0(FP)
	RET

TEXT ·writeICH_LR9(SB),NOSPLIT,$0-8
	MOVD	v+0(FP), R0
	WORD	$0xd51ccd20	// msr ich_lr9_el2, x0
	ISB	$15
	RET

TEXT ·readICH_LR10(SB),NOSPLIT,$0-8
	WORD	$0xd53ccd40	// mrs x0, ich_lr10_el2
	MOVD	R0, ret+0(FP)
	RET

TEXT ·writeICH_LR10(SB),NOSPLIT,$0-8
	MOVD	v+0(FP), R0
	WORD	$0xd51ccd40	// msr ich_lr10_el2, x0
	ISB	$15
	RET

TEXT ·readICH_LR11(SB),NOSPLIT,$0-8
	WORD	$0xd53ccd60	// mrs x0, ich_lr11_el2
	MOVD	R0, ret+0(FP)
	RET

TEXT ·writeICH_LR11(SB),NOSPLIT,$0-8
	MOVD	v+0(FP), R0
	WORD	$0xd51ccd60	// msr ich_lr11_el2, x0
	ISB	$15
	RET

TEXT ·readICH_LR12(SB),NOSPLIT,$0-8
	WORD	$0xd53ccd80	// mrs x0, ich_lr12_el2
	MOVD	R0, ret+0(FP)
	RET

TEXT ·writeICH_LR12(SB),NOSPLIT,$0-8
	MOVD	v+0(FP), R0
	WORD	$0xd51ccd80	// msr ich_lr12_el2, x0
	ISB	$15
	RET

TEXT ·readICH_LR13(SB),NOSPLIT,$0-8
	WORD	$0xd53ccda0	// mrs x0, ich_lr13_el2
	MOVD	R0, ret+0(FP)
	RET

TEXT ·writeICH_LR13(SB),NOSPLIT,$0-8
	MOVD	v+0(FP), R0
	WORD	$0xd51ccda0	// msr ich_lr13_el2, x0
	ISB	$15
	RET

TEXT ·readICH_LR14(SB),NOSPLIT,$0-8
	WORD	$0xd53ccdc0	// mrs x0, ich_lr14_el2
	MOVD	R0, ret+0(FP)
	RET

TEXT ·writeICH_LR14(SB),NOSPLIT,$0-8
	MOVD	v+0(FP), R0
	WORD	$0xd51ccdc0	// msr ich_lr14_el2, x0
	ISB	$15
	RET

TEXT ·readICH_LR15(SB),NOSPLIT,$0-8
	WORD	$0xd53ccde0	// mrs x0, ich_lr15_el2
	MOVD	R0, ret+0(FP)
	RET

TEXT ·writeICH_LR15(SB),NOSPLIT,$0-8
	MOVD	v+0(FP), R0
	WORD	$0xd51ccde0	// msr ich_lr15_el2, x0
	ISB	$15
	RET
