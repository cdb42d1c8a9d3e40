//go:build tamago

package gic

// InitCPUInterface enables this CPU's system register interface at EL2 and
// EL1 (the guests' virtual interface needs ICC_SRE_EL2.Enable), unmasks
// every priority, splits priority drop from deactivation (EOImode 1, so a
// guest can deactivate an interrupt linked to a physical one) and enables
// group 1.
func InitCPUInterface() {
	writeICC_SRE(readICC_SRE() | ICC_SRE_SRE | ICC_SRE_Enable)
	writeICC_PMR(0xff)
	writeICC_CTLR(readICC_CTLR() | ICC_CTLR_EOImode)
	writeICC_IGRPEN1(1)
}

// Ack acknowledges the highest priority pending group 1 interrupt; 1023
// means none.
func Ack() uint32 { return uint32(readICC_IAR1()) & ICC_IAR_INTID_MASK }

// EOI drops the running priority of intid.
func EOI(intid uint32) { writeICC_EOIR1(uint64(intid)) }

// Deactivate ends intid (EOImode 1).
func Deactivate(intid uint32) { writeICC_DIR(uint64(intid)) }

// SendSGI raises SGI intid on the one CPU whose MPIDR is mpidr (IHI 0069,
// 12.11.19, ICC_SGI1R_EL1, IRM 0).
//
//go:nosplit
func SendSGI(intid uint32, mpidr uint64) { writeICC_SGI1R(SGI1R(intid, mpidr)) }
