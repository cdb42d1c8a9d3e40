package acpi

// MADT is what the Multiple APIC Description Table (5.2.12) says of an
// Arm machine: its CPUs' GIC CPU interfaces, the distributor, the
// redistributor ranges and the ITSs. Other entries (the x86 ones, GIC MSI
// frames) are skipped.
type MADT struct {
	Header
	GICC []GICC
	GICD GICD
	GICR []GICR
	ITS  []ITS
}

// GICC is one CPU (5.2.12.14, the GICC structure).
type GICC struct {
	CPUInterface uint32
	UID          uint32
	// Enabled: the CPU is usable now; OnlineCapable: it is not, but may
	// be brought online (6.5: both clear, it cannot be used at all).
	Enabled, OnlineCapable bool
	// PerfGSIV and VGICMaintenance are the PMU's and the vGIC
	// maintenance interrupt's GSIVs (PPIs).
	PerfGSIV, VGICMaintenance uint32
	// GICRBase is this CPU's redistributor, when the MADT gives one per
	// CPU rather than GICR ranges.
	GICRBase uint64
	MPIDR    uint64
}

// GICD is the distributor (5.2.12.15).
type GICD struct {
	Base    uint64
	Version uint8 // 3 for GICv3, 4 for GICv4; 0: the firmware does not say
	Found   bool
}

// GICR is a redistributor discovery range (5.2.12.17).
type GICR struct {
	Base, Length uint64
}

// ITS is an interrupt translation service (5.2.12.18).
type ITS struct {
	ID   uint32
	Base uint64
}

// MADT structure types (Table 5.21).
const (
	madtGICC = 0x0b
	madtGICD = 0x0c
	madtGICR = 0x0e
	madtITS  = 0x0f

	madtEntries = HeaderSize + 8 // after Local Interrupt Controller Address and Flags

	// The GICC structure's length: 76 bytes hold the MPIDR (ACPI 5.1);
	// ACPI 6.0 made it 80, 6.3 82 with the SPE interrupt, 6.5 82 still.
	gicc51Length = 76
	gicdLength   = 24
	gicrLength   = 16
	itsLength    = 20

	giccEnabled       = 1 << 0
	giccOnlineCapable = 1 << 3
)

// ParseMADT reads an MADT ("APIC").
func ParseMADT(b []byte) (*MADT, error) {
	t, err := parseTable(b, "APIC", madtEntries, "Flags")
	if err != nil {
		return nil, err
	}
	m := &MADT{Header: t.Header}
	for off := madtEntries; off < len(t.b); {
		if off+2 > len(t.b) {
			return nil, errf("APIC", "Interrupt Controller Structure", "%d trailing byte(s) at offset %d", len(t.b)-off, off)
		}
		typ, n := t.b[off], int(t.b[off+1])
		if n < 2 || off+n > len(t.b) {
			return nil, errf("APIC", "Interrupt Controller Structure", "type %#x at offset %d: length %d runs past the table's end (%d) or is too short", typ, off, n, len(t.b))
		}
		short := func(want int, what string) error {
			return errf("APIC", what, "length %d at offset %d, want at least %d", n, off, want)
		}
		switch typ {
		case madtGICC:
			if n < gicc51Length {
				return nil, short(gicc51Length, "GICC")
			}
			flags := t.u32(off+12, "GICC Flags")
			m.GICC = append(m.GICC, GICC{CPUInterface: t.u32(off+4, "CPU Interface Number"), UID: t.u32(off+8, "ACPI Processor UID"),
				Enabled: flags&giccEnabled != 0, OnlineCapable: flags&giccOnlineCapable != 0,
				PerfGSIV: t.u32(off+20, "Performance Interrupt GSIV"), VGICMaintenance: t.u32(off+56, "VGIC Maintenance interrupt"),
				GICRBase: t.u64(off+60, "GICR Base Address"), MPIDR: t.u64(off+68, "MPIDR")})
		case madtGICD:
			if n < gicdLength {
				return nil, short(gicdLength, "GICD")
			}
			if m.GICD.Found {
				return nil, errf("APIC", "GICD", "a second distributor at offset %d", off)
			}
			m.GICD = GICD{Base: t.u64(off+8, "GICD Physical Base Address"), Version: t.u8(off+20, "GIC version"), Found: true}
		case madtGICR:
			if n < gicrLength {
				return nil, short(gicrLength, "GICR")
			}
			m.GICR = append(m.GICR, GICR{Base: t.u64(off+4, "Discovery Range Base Address"), Length: uint64(t.u32(off+12, "Discovery Range Length"))})
		case madtITS:
			if n < itsLength {
				return nil, short(itsLength, "GIC ITS")
			}
			m.ITS = append(m.ITS, ITS{ID: t.u32(off+4, "GIC ITS ID"), Base: t.u64(off+8, "Physical Base Address")})
		}
		off += n
	}
	if t.err != nil {
		return nil, t.err
	}
	if !m.GICD.Found {
		return nil, errf("APIC", "GICD", "no distributor")
	}
	if len(m.GICC) == 0 {
		return nil, errf("APIC", "GICC", "no CPU")
	}
	seen := map[uint64]bool{}
	for _, c := range m.GICC {
		if seen[c.MPIDR] {
			return nil, errf("APIC", "MPIDR", "%#x names two CPUs", c.MPIDR)
		}
		seen[c.MPIDR] = true
	}
	return m, nil
}

// Usable are the CPUs that can run: enabled now. A CPU that is only
// online-capable is not started at boot.
func (m *MADT) Usable() []GICC {
	var out []GICC
	for _, c := range m.GICC {
		if c.Enabled {
			out = append(out, c)
		}
	}
	return out
}
