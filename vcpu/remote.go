package vcpu

// Remote is the mailbox of a secondary CPU that runs no Go: Go on the boot
// CPU posts a command (run a vCPU until its next exit, or wait for an
// interrupt) with the per-CPU hardware state to load, and the CPU's loop
// (remote_arm64.s) carries it out and posts back what it saved and the
// physical interrupts it took. docs/architecture.md, "CPUs", says why the
// secondaries run this loop rather than Go.
//
// The layout is shared with remote_arm64.s (TestRemoteLayout). Cmd is
// written last by each side, with release semantics, and read first, with
// acquire: whoever sees it change sees everything written before.
type Remote struct {
	Current  *Context // the context Run enters; the vectors read it first
	Cmd      uint64   // RemoteRun or RemoteWait while posted; 0 once done
	Sleeping uint64   // the CPU is about to wait, or waits, in WFI for a command

	// Set once, before the loop starts.
	NumLRs  uint64 // list registers the CPU has (ICH_VTR_EL2.ListRegs + 1)
	DoneSGI uint64 // ICC_SGI1R_EL1 value that tells the boot CPU a command is done
	SelfSGI uint64 // ICC_SGI1R_EL1 value, but for the INTID, that targets this CPU
	VTCR    uint64 // VTCR_EL2, as on the boot CPU
	MDCR    uint64 // MDCR_EL2, as on the boot CPU

	// The per-CPU hardware state of the vCPU interface and timers, as the
	// boot CPU's scheduler would write it to its own registers: loaded
	// before each command, saved after Run.
	ICH_HCR, ICH_VMCR, ICH_AP0R0, ICH_AP1R0 uint64
	CNTVOFF, CNTV_CVAL, CNTV_CTL            uint64
	CNTHP_CVAL                              uint64 // the EL2 timer's deadline; 0: disarmed
	LR                                      [16]uint64

	// The physical interrupts the command ended with: acknowledged and
	// deactivated, in the order taken. Only private interrupts reach a
	// secondary, so a few slots are enough; the loop drops any beyond.
	NumIRQs uint64
	IRQs    [8]uint64
}

// Commands a Remote carries out.
const (
	RemoteRun  = 1 // enter Current and return at its next exit
	RemoteWait = 2 // wait for an interrupt, with the EL2 timer armed at CNTHP_CVAL
)
