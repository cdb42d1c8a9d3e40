package acpi

// GTDT is the Generic Timer Description Table (5.2.25): the interrupts of
// the generic timers, as GSIVs with their trigger mode.
type GTDT struct {
	Header
	SecureEL1, NonSecureEL1, VirtualEL1, NonSecureEL2 Timer
	// VirtualEL2 is the EL2 virtual timer's, in revision 3 tables; zero
	// otherwise.
	VirtualEL2 Timer
}

// Timer is one timer's interrupt (Table 5.128, the timer flags).
type Timer struct {
	GSIV      uint32
	Edge      bool // bit 0: edge-triggered, else level
	ActiveLow bool // bit 1
	AlwaysOn  bool // bit 2: the timer keeps counting in low-power states
}

const (
	gtdtLength   = 96  // revision 2
	gtdtV3Length = 104 // with the EL2 virtual timer
)

func timerAt(t *table, off int, name string) Timer {
	g, f := t.u32(off, name+" GSIV"), t.u32(off+4, name+" Flags")
	return Timer{GSIV: g, Edge: f&1 != 0, ActiveLow: f&2 != 0, AlwaysOn: f&4 != 0}
}

// ParseGTDT reads a GTDT.
func ParseGTDT(b []byte) (*GTDT, error) {
	t, err := parseTable(b, "GTDT", gtdtLength, "Platform Timer Offset")
	if err != nil {
		return nil, err
	}
	g := &GTDT{Header: t.Header, SecureEL1: timerAt(t, 48, "Secure EL1 Timer"), NonSecureEL1: timerAt(t, 56, "Non-Secure EL1 Timer"),
		VirtualEL1: timerAt(t, 64, "Virtual EL1 Timer"), NonSecureEL2: timerAt(t, 72, "EL2 Timer")}
	if t.Revision >= 3 && len(t.b) >= gtdtV3Length {
		g.VirtualEL2 = timerAt(t, 96, "Virtual EL2 Timer")
	}
	// The platform timers (memory-mapped, watchdogs) are not read; their
	// offset must still lie in the table.
	count, at := t.u32(88, "Platform Timer Count"), t.u32(92, "Platform Timer Offset")
	if count > 0 && (at < gtdtLength || uint64(at) >= uint64(len(t.b))) {
		return nil, errf("GTDT", "Platform Timer Offset", "%d, outside the table's %d bytes past its fixed part", at, len(t.b))
	}
	return g, t.err
}
