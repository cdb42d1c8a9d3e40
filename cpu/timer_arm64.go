//go:build tamago

// Generic Timer registers: the EL2 physical timer (CNTHP_*) that drives
// preemption, the guest's virtual timer (CNTV_*) switched with its vCPU, and
// the EL2 controls (CNTVOFF_EL2, CNTHCTL_EL2).
package cpu

func ReadCNTHP_CTL() uint64
func WriteCNTHP_CTL(v uint64)
func ReadCNTHP_CVAL() uint64
func WriteCNTHP_CVAL(v uint64)
func ReadCNTV_CTL() uint64
func WriteCNTV_CTL(v uint64)
func ReadCNTV_CVAL() uint64
func WriteCNTV_CVAL(v uint64)
func ReadCNTVOFF() uint64
func WriteCNTVOFF(v uint64)
func ReadCNTHCTL() uint64
func WriteCNTHCTL(v uint64)
