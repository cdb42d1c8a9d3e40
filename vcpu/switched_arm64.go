//go:build tamago

package vcpu

// LoadSwitched loads what EL2 switches with a vCPU beside the world
// switch's context: its virtual timer (CNTV_CTL_EL0, CNTV_CVAL_EL0), its
// VM's CNTVOFF_EL2, and its virtual CPU interface's ICH_VMCR_EL2,
// ICH_AP0R0_EL2, ICH_AP1R0_EL2 and ICH_HCR_EL2. One call, one ISB: a call
// and an ISB per register cost a vCPU switch some 200 instructions.
func LoadSwitched(ctl, cval, cntvoff, vmcr, ap0r, ap1r, hcr uint64)

// SaveSwitched reads them back (CNTV_CTL_EL0 without ISTATUS, which is the
// hardware's) and leaves the CPU with the virtual timer off and
// ICH_HCR_EL2 zero: off the CPU, a vCPU's timer is the scheduler's to
// watch, and its list registers are not the CPU's to signal.
func SaveSwitched() (ctl, cval, vmcr, ap0r, ap1r uint64)
