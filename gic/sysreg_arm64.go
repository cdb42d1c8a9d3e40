//go:build tamago

// Accessors for the GICv3 CPU interface system registers, at EL2 the
// physical interface (ICC_*) and the virtual interface's control (ICH_*).
package gic

func readICC_SRE() uint64
func writeICC_SRE(v uint64)
func readICC_PMR() uint64
func writeICC_PMR(v uint64)
func readICC_IGRPEN1() uint64
func writeICC_IGRPEN1(v uint64)
func readICC_IAR1() uint64
func writeICC_EOIR1(v uint64)
func writeICC_DIR(v uint64)
func readICC_CTLR() uint64
func writeICC_CTLR(v uint64)
func writeICC_SGI1R(v uint64)
func readICH_HCR() uint64
func writeICH_HCR(v uint64)
func readICH_VTR() uint64
func readICH_MISR() uint64
func readICH_ELRSR() uint64
func readICH_LR0() uint64
func writeICH_LR0(v uint64)
func readICH_LR1() uint64
func writeICH_LR1(v uint64)
func readICH_LR2() uint64
func writeICH_LR2(v uint64)
func readICH_LR3() uint64
func writeICH_LR3(v uint64)
func readICH_LR4() uint64
func writeICH_LR4(v uint64)
func readICH_LR5() uint64
func writeICH_LR5(v uint64)
func readICH_LR6() uint64
func writeICH_LR6(v uint64)
func readICH_LR7() uint64
func writeICH_LR7(v uint64)
func readICH_LR8() uint64
func writeICH_LR8(v uint64)
func readICH_LR9() uint64
func writeICH_LR9(v uint64)
func readICH_LR10() uint64
func writeICH_LR10(v uint64)
func readICH_LR11() uint64
func writeICH_LR11(v uint64)
func readICH_LR12() uint64
func writeICH_LR12(v uint64)
func readICH_LR13() uint64
func writeICH_LR13(v uint64)
func readICH_LR14() uint64
func writeICH_LR14(v uint64)
func readICH_LR15() uint64
func writeICH_LR15(v uint64)
