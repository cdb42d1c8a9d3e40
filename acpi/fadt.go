package acpi

// FADT is what Bulkhead reads of the Fixed ACPI Description Table
// (5.2.9): how to reach PSCI.
type FADT struct {
	Header
	// HWReduced: the hardware-reduced ACPI model, which every Arm server
	// uses (Flags bit 20).
	HWReduced bool
	// PSCICompliant and PSCIUseHVC are ARM_BOOT_ARCH's bits (5.2.9.4):
	// PSCI is implemented, and its conduit is HVC rather than SMC.
	PSCICompliant, PSCIUseHVC bool
}

// FADT field offsets (5.2.9, Table 5.9).
const (
	fadtFlags       = 112
	fadtARMBootArch = 129
	fadtMinLength   = 131 // through ARM_BOOT_ARCH
)

// ParseFADT reads a FADT ("FACP").
func ParseFADT(b []byte) (*FADT, error) {
	t, err := parseTable(b, "FACP", fadtMinLength, "ARM_BOOT_ARCH")
	if err != nil {
		return nil, err
	}
	flags := t.u32(fadtFlags, "Flags")
	arch := t.u16(fadtARMBootArch, "ARM_BOOT_ARCH")
	if t.err != nil {
		return nil, t.err
	}
	return &FADT{Header: t.Header, HWReduced: flags&(1<<20) != 0, PSCICompliant: arch&1 != 0, PSCIUseHVC: arch&2 != 0}, nil
}

// Conduit is how PSCI is called: "hvc" or "smc", or "" when the FADT says
// PSCI is not there.
func (f *FADT) Conduit() string {
	switch {
	case !f.PSCICompliant:
		return ""
	case f.PSCIUseHVC:
		return "hvc"
	}
	return "smc"
}
