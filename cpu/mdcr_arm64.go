//go:build tamago

package cpu

// ReadMDCR and WriteMDCR access MDCR_EL2.
func ReadMDCR() uint64
func WriteMDCR(v uint64)

// UnlockOSLock clears this CPU's OS lock (OSLAR_EL1), so that guests'
// breakpoints, watchpoints and software step can fire.
func UnlockOSLock()

// MDCR_EL2 bits (Arm ARM D19.3, MDCR_EL2): EL1 accesses to the PMU
// (TPM, TPMCR), SPE (TPMS, with E2PB = 0) and trace filters (TTRF) trap to
// EL2, where guests find them absent; the debug registers' (TDA, TDOSA,
// TDRA) too, which EL2 emulates per vCPU. TDE stays clear, so debug
// exceptions are taken at EL1, never at EL2. HPMN is kept as reset.
const (
	MDCR_HPMN_MASK = 0x1f
	MDCR_TPMCR     = 1 << 5
	MDCR_TPM       = 1 << 6
	MDCR_TDA       = 1 << 9
	MDCR_TDOSA     = 1 << 10
	MDCR_TDRA      = 1 << 11
	MDCR_TPMS      = 1 << 14
	MDCR_TTRF      = 1 << 19
	MDCRGuest      = MDCR_TPMCR | MDCR_TPM | MDCR_TDA | MDCR_TDOSA | MDCR_TDRA | MDCR_TPMS | MDCR_TTRF
)
