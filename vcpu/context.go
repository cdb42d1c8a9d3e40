// Package vcpu holds a virtual CPU's register context and the world switch
// that runs it: Run is a Go call that enters the guest at EL1 and returns
// when the guest exits to EL2, with the syndrome of the exit.
//
// The context layout is shared with switch_arm64.s; TestContextLayout keeps
// the two in step. Everything but the switch itself is pure Go.
package vcpu

// SysRegs are the EL1 (and EL0) system registers a guest OS uses, switched
// with the vCPU. Their order is the order switch_arm64.s saves them in.
type SysRegs struct {
	SCTLR_EL1      uint64
	CPACR_EL1      uint64
	TTBR0_EL1      uint64
	TTBR1_EL1      uint64
	TCR_EL1        uint64
	ESR_EL1        uint64
	AFSR0_EL1      uint64
	AFSR1_EL1      uint64
	FAR_EL1        uint64
	MAIR_EL1       uint64
	AMAIR_EL1      uint64
	VBAR_EL1       uint64
	CONTEXTIDR_EL1 uint64
	TPIDR_EL0      uint64
	TPIDRRO_EL0    uint64
	TPIDR_EL1      uint64
	CNTKCTL_EL1    uint64
	PAR_EL1        uint64
	CSSELR_EL1     uint64
	MDSCR_EL1      uint64
	SP_EL1         uint64
	ELR_EL1        uint64
	SPSR_EL1       uint64
	SP_EL0         uint64
}

// FPRegs is the FP/SIMD state: q0-q31, FPCR and FPSR.
type FPRegs struct {
	Q    [32][2]uint64
	FPCR uint64
	FPSR uint64
}

// EL2Config is the per-VM and per-vCPU EL2 state loaded on entry.
type EL2Config struct {
	HCR    uint64 // HCR_EL2 while the guest runs
	VTTBR  uint64 // VMID and stage 2 root
	VMPIDR uint64 // MPIDR_EL1 as the guest reads it
	VPIDR  uint64 // MIDR_EL1 as the guest reads it
}

// Exit is why the guest stopped running.
type Exit struct {
	Vector uint64 // EL2 vector entry taken (8-15: from a lower EL)
	ESR    uint64 // ESR_EL2
	FAR    uint64 // FAR_EL2
	HPFAR  uint64 // HPFAR_EL2
}

// host is what Run saves of the calling Go code: the registers Go's ABI
// keeps across a call.
type host struct {
	G, FP, LR, SP uint64 // R28, R29, R30 and SP_EL0
}

// Context is a vCPU's complete register state.
type Context struct {
	X      [31]uint64 // x0-x30
	PC     uint64     // ELR_EL2 on entry
	PSTATE uint64     // SPSR_EL2 on entry
	Sys    SysRegs
	FP     FPRegs
	EL2    EL2Config
	Exit   Exit
	host   host
	Debug  Debug
	// sysInMemory says Sys (but for SPSR_EL1 and SP_EL0, always saved) is
	// the authoritative copy; otherwise the CPU that last ran the context
	// holds the current values (see PerCPU).
	sysInMemory bool
	// fpLive says the FP/SIMD registers of the CPU that last ran the
	// context are newer than FP: they stay there after an exit until EL2
	// uses FP/SIMD itself (which traps and saves them), another context
	// runs there, or the context is synced to memory (PerCPU.SyncSys).
	fpLive bool
}

// Debug is a vCPU's self-hosted debug state (Arm ARM D2): its breakpoint
// and watchpoint registers and its OS lock, as the guest wrote them through
// the accesses MDCR_EL2.TDA and TDOSA trap. The registers are loaded with
// the EL1 registers when the guest has debug on (BPs non-zero) and left
// as they are otherwise: with MDSCR_EL1.MDE clear no comparator raises an
// exception, and with every access trapped no guest reads another's
// values. The guest cannot change them but through the hypervisor, so
// they are never saved.
type Debug struct {
	BPs uint64        // breakpoints to load: 0 when debug is off
	BP  [16][2]uint64 // DBGBVR<n>_EL1, DBGBCR<n>_EL1
	WPs uint64        // watchpoints to load
	WP  [16][2]uint64 // DBGWVR<n>_EL1, DBGWCR<n>_EL1
	// MDSCR is MDSCR_EL1 as the guest wrote it; Sys.MDSCR_EL1 is what
	// the CPU runs with, which the OS lock masks.
	MDSCR uint64
	OSLK  bool // OSLSR_EL1.OSLK: set at reset, as on a cold reset
}

// Vector entries for exceptions from a lower EL (Arm ARM D1.10.2).
const (
	VectorSync64   = 8
	VectorIRQ64    = 9
	VectorFIQ64    = 10
	VectorSError64 = 11
	VectorSync32   = 12
)

// PSTATE values (SPSR_EL2.M and DAIF, Arm ARM C5.2).
const (
	PSR_MODE_EL0t = 0b0000
	PSR_MODE_EL1t = 0b0100
	PSR_MODE_EL1h = 0b0101
	PSR_MODE_MASK = 0b1111
	PSR_nRW       = 1 << 4 // AArch32
	PSR_F         = 1 << 6
	PSR_I         = 1 << 7
	PSR_A         = 1 << 8
	PSR_D         = 1 << 9
	PSR_DAIF      = PSR_D | PSR_A | PSR_I | PSR_F
	PSR_BTYPE     = 3 << 10
	PSR_SS        = 1 << 21 // software step (Arm ARM D2.12)
)

// SCTLR_EL1 reset state Bulkhead gives a new vCPU: MMU and caches off,
// RES1 bits set (Arm ARM D19.2, SCTLR_EL1: bits 11, 20, 22, 23, 28, 29).
const SCTLR_EL1_RESET = 1<<29 | 1<<28 | 1<<23 | 1<<22 | 1<<20 | 1<<11

// Reset puts the context in the state of a CPU entering at pc at EL1h with
// interrupts masked, x0 = arg0.
func (c *Context) Reset(pc, arg0 uint64) {
	el2 := c.EL2
	*c = Context{EL2: el2}
	c.PC = pc
	c.PSTATE = PSR_MODE_EL1h | PSR_DAIF
	c.X[0] = arg0
	c.Sys.SCTLR_EL1 = SCTLR_EL1_RESET
	c.Debug.OSLK = true
	c.sysInMemory = true
}

// EL returns the exception level the guest was at (0 or 1).
func (c *Context) EL() int { return int(c.PSTATE>>2) & 3 }
