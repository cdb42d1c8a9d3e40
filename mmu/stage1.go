package mmu

// Stage 1 leaf attributes for the EL2 translation regime without VHE
// (Arm ARM D8.3.2, "Attribute fields in stage 1 VMSAv8-64 Block and Page
// descriptors"). That regime has a single privilege level: AP[1] is RES1
// and bit 54 is XN.
const (
	S1_ATTRINDX_SHIFT = 2
	S1_AP1            = 1 << 6 // RES1 at EL2
	S1_AP2_RO         = 1 << 7 // AP[2]: read-only
	S1_SH_OUTER       = 2 << 8
	S1_SH_INNER       = 3 << 8
	S1_AF             = 1 << 10 // access flag: set, so no access flag faults
	S1_XN             = 1 << 54
)

// MAIR_EL2 attribute indices used by Bulkhead (Arm ARM D19.2, MAIR_EL2).
const (
	MAIRNormalIndex = 0 // Normal, Inner/Outer Write-Back Read/Write-Allocate
	MAIRDeviceIndex = 1 // Device-nGnRE
	MAIRNormal      = 0xff
	MAIRDevicenGnRE = 0x04
	MAIR            = MAIRNormal<<(8*MAIRNormalIndex) | MAIRDevicenGnRE<<(8*MAIRDeviceIndex)
)

// Perm is a set of access permissions.
type Perm uint8

const (
	Read Perm = 1 << iota
	Write
	Exec
)

func (p Perm) String() string {
	b := []byte("---")
	if p&Read != 0 {
		b[0] = 'r'
	}
	if p&Write != 0 {
		b[1] = 'w'
	}
	if p&Exec != 0 {
		b[2] = 'x'
	}
	return string(b)
}

// S1Normal returns EL2 stage 1 attributes for normal cacheable memory.
// Writable mappings are always execute-never (W^X).
func S1Normal(p Perm) uint64 {
	a := uint64(MAIRNormalIndex<<S1_ATTRINDX_SHIFT | S1_AP1 | S1_SH_INNER | S1_AF)
	if p&Write == 0 {
		a |= S1_AP2_RO
	}
	if p&Exec == 0 || p&Write != 0 {
		a |= S1_XN
	}
	return a
}

// S1Device returns EL2 stage 1 attributes for Device-nGnRE, read/write and
// execute-never.
func S1Device() uint64 {
	return MAIRDeviceIndex<<S1_ATTRINDX_SHIFT | S1_AP1 | S1_SH_OUTER | S1_AF | S1_XN
}

// S1Perm decodes the permissions and whether the mapping is device memory.
func S1Perm(attrs uint64) (p Perm, device bool) {
	p = Read
	if attrs&S1_AP2_RO == 0 {
		p |= Write
	}
	if attrs&S1_XN == 0 {
		p |= Exec
	}
	return p, (attrs>>S1_ATTRINDX_SHIFT)&7 == MAIRDeviceIndex
}

// TCR_EL2 fields without VHE (Arm ARM D19.2, TCR_EL2).
const (
	TCR_EL2_RES1  = 1<<31 | 1<<23
	TCR_T0SZ      = 0
	TCR_IRGN0_WB  = 1 << 8
	TCR_ORGN0_WB  = 1 << 10
	TCR_SH0_INNER = 3 << 12
	TCR_TG0_4K    = 0 << 14
	TCR_PS_SHIFT  = 16
)

// TCREL2 returns TCR_EL2 for a 4 KiB granule, inputBits of VA and the
// ID_AA64MMFR0_EL1.PARange code as the output size.
func TCREL2(inputBits int, parange uint64) uint64 {
	return TCR_EL2_RES1 | uint64(64-inputBits)<<TCR_T0SZ | TCR_IRGN0_WB | TCR_ORGN0_WB |
		TCR_SH0_INNER | TCR_TG0_4K | (parange&7)<<TCR_PS_SHIFT
}

// Stage 1 attributes for the EL1&0 regime, as a guest builds its own map
// (Arm ARM D8.3.2): AP[2:1] = 0b00 read/write at EL1 only, 0b10 read-only
// at EL1 only; PXN (bit 53) and UXN (bit 54).
const (
	S1_PXN = 1 << 53
	S1_UXN = 1 << 54
)

// S1EL1Normal returns EL1 stage 1 attributes for normal memory, never
// executable at EL0, and at EL1 only when not writable.
func S1EL1Normal(p Perm) uint64 {
	a := uint64(MAIRNormalIndex<<S1_ATTRINDX_SHIFT | S1_SH_INNER | S1_AF | S1_UXN)
	if p&Write == 0 {
		a |= S1_AP2_RO
	}
	if p&Exec == 0 || p&Write != 0 {
		a |= S1_PXN
	}
	return a
}

// S1EL1Device returns EL1 stage 1 attributes for Device-nGnRE memory,
// read/write at EL1, never executable.
func S1EL1Device() uint64 {
	return MAIRDeviceIndex<<S1_ATTRINDX_SHIFT | S1_SH_OUTER | S1_AF | S1_PXN | S1_UXN
}

// TCR_EL1 fields used by guests (Arm ARM D19.2, TCR_EL1).
const (
	TCR_EL1_EPD1      = 1 << 23 // no walks through TTBR1_EL1
	TCR_EL1_TG1_4K    = 2 << 30
	TCR_EL1_IPS_SHIFT = 32
)

// TCREL1 returns TCR_EL1 for a TTBR0-only regime of inputBits with the
// 4 KiB granule and the PARange code as intermediate physical size.
func TCREL1(inputBits int, parange uint64) uint64 {
	return uint64(64-inputBits)<<TCR_T0SZ | TCR_IRGN0_WB | TCR_ORGN0_WB | TCR_SH0_INNER | TCR_TG0_4K |
		TCR_EL1_EPD1 | TCR_EL1_TG1_4K | (parange&7)<<TCR_EL1_IPS_SHIFT
}
