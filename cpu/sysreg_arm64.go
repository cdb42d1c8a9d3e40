//go:build tamago

package cpu

// Accessors for the registers Go's assembler can name, and for the EL2
// registers it cannot (encoded with WORD in sysreg_arm64.s).
func ReadCurrentEL() uint64
func ReadMIDR() uint64
func ReadMPIDR() uint64
func ReadIDAA64PFR0() uint64
func ReadIDAA64ISAR0() uint64
func ReadIDAA64MMFR0() uint64
func ReadIDAA64MMFR1() uint64
func ReadCNTFRQ() uint64
func ReadCNTPCT() uint64

// RNDR reads FEAT_RNG's random number register; ok is false when the
// hardware could not return a random number in reasonable time (NZCV.Z=1).
func RNDR() (v uint64, ok bool)

// EnableMMU installs the EL2 stage 1 translation regime and turns on the MMU
// and caches with write-implies-execute-never (SCTLR_EL2.WXN).
func EnableMMU(mair, tcr, ttbr0 uint64)

// InvalidateTLB invalidates every EL2 stage 1 TLB entry on this CPU.
func InvalidateTLB()

// SMC issues an SMCCC call through the Secure Monitor Call conduit
// (SMC Calling Convention, DEN0028, section 2).
func SMC(fid, a1, a2, a3 uint64) (r0, r1, r2, r3 uint64)

// Semihost issues an Arm semihosting call (HLT #0xF000); it traps as an
// undefined instruction unless the platform enables semihosting.
func Semihost(op, param uint64) uint64

// Halt masks all interrupts and waits for interrupt forever.
func Halt()

func setVBAR(addr uint64)
func vectorTableAddr() uint64

// WriteVTCR sets VTCR_EL2, the stage 2 translation control.
func WriteVTCR(v uint64)

// TLBIStage2IPA invalidates the stage 2 translation of ipa for vmid, and
// that VMID's stage 1 entries, on all CPUs, after a table entry was cleared.
func TLBIStage2IPA(vmid uint16, ipa uint64)

// TLBIAllE1 invalidates all EL1&0 translations of all VMIDs on all CPUs.
func TLBIAllE1()

// WaitForInterrupt idles until an interrupt is pending.
func WaitForInterrupt()

// DSB waits until this CPU's memory accesses are complete, for every
// observer, devices such as an SMMU included (DSB SY).
func DSB()

// ImageSymbols returns where the linker put the running image's sections:
// runtime.text, runtime.rodata (the page-aligned start of the read-only
// segment with -R 0x1000), runtime.noptrdata and runtime.end.
func ImageSymbols() (text, rodata, noptrdata, end uint64)
