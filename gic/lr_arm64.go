//go:build tamago

package gic

// ReadLR reads ICH_LR<i>_EL2.
func ReadLR(i int) uint64 {
	switch i {
	case 0:
		return readICH_LR0()
	case 1:
		return readICH_LR1()
	case 2:
		return readICH_LR2()
	case 3:
		return readICH_LR3()
	case 4:
		return readICH_LR4()
	case 5:
		return readICH_LR5()
	case 6:
		return readICH_LR6()
	case 7:
		return readICH_LR7()
	case 8:
		return readICH_LR8()
	case 9:
		return readICH_LR9()
	case 10:
		return readICH_LR10()
	case 11:
		return readICH_LR11()
	case 12:
		return readICH_LR12()
	case 13:
		return readICH_LR13()
	case 14:
		return readICH_LR14()
	case 15:
		return readICH_LR15()
	}
	return 0
}

// WriteLR writes ICH_LR<i>_EL2.
func WriteLR(i int, v uint64) {
	switch i {
	case 0:
		writeICH_LR0(v)
	case 1:
		writeICH_LR1(v)
	case 2:
		writeICH_LR2(v)
	case 3:
		writeICH_LR3(v)
	case 4:
		writeICH_LR4(v)
	case 5:
		writeICH_LR5(v)
	case 6:
		writeICH_LR6(v)
	case 7:
		writeICH_LR7(v)
	case 8:
		writeICH_LR8(v)
	case 9:
		writeICH_LR9(v)
	case 10:
		writeICH_LR10(v)
	case 11:
		writeICH_LR11(v)
	case 12:
		writeICH_LR12(v)
	case 13:
		writeICH_LR13(v)
	case 14:
		writeICH_LR14(v)
	case 15:
		writeICH_LR15(v)
	}
}

// NumLRs is the number of list registers (ICH_VTR_EL2.ListRegs + 1).
func NumLRs() int { return int(readICH_VTR()&0x1f) + 1 }

// WriteICHHCR sets ICH_HCR_EL2.
func WriteICHHCR(v uint64) { writeICH_HCR(v) }
