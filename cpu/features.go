package cpu

import (
	"fmt"
	"strings"
)

// IDRegs holds the raw identification registers that feature discovery reads.
type IDRegs struct {
	MIDR, MPIDR               uint64
	PFR0, ISAR0, MMFR0, MMFR1 uint64
	CurrentEL                 uint64 // CurrentEL register value (EL in bits [3:2])
}

// Features is what later work depends on, decoded from IDRegs.
type Features struct {
	EL       int  // current Exception level
	VHE      bool // FEAT_VHE: ID_AA64MMFR1_EL1.VH
	VMID16   bool // FEAT_VMID16: ID_AA64MMFR1_EL1.VMIDBits == 0b0010
	PARange  int  // physical address bits, ID_AA64MMFR0_EL1.PARange
	RNG      bool // FEAT_RNG: ID_AA64ISAR0_EL1.RNDR
	PAN      bool // FEAT_PAN: ID_AA64MMFR1_EL1.PAN != 0
	GICv3    bool // GICv3 system register interface: ID_AA64PFR0_EL1.GIC != 0
	EL2      bool // EL2 implemented: ID_AA64PFR0_EL1.EL2 != 0
	FP, SIMD bool // ID_AA64PFR0_EL1.FP, .AdvSIMD != 0b1111
	SVE      bool // ID_AA64PFR0_EL1.SVE
	Gran4K   bool // ID_AA64MMFR0_EL1.TGran4 != 0b1111
}

func field(v uint64, shift uint) uint64 { return (v >> shift) & 0xf }

// parangeBits maps ID_AA64MMFR0_EL1.PARange to bits (Arm ARM D19.2).
var parangeBits = [...]int{32, 36, 40, 42, 44, 48, 52}

// Decode interprets the ID registers.
func Decode(r IDRegs) Features {
	f := Features{
		EL:     int(r.CurrentEL>>2) & 3,
		VHE:    field(r.MMFR1, 8) != 0,
		VMID16: field(r.MMFR1, 4) == 0b0010,
		RNG:    field(r.ISAR0, 60) != 0,
		PAN:    field(r.MMFR1, 20) != 0,
		GICv3:  field(r.PFR0, 24) != 0,
		EL2:    field(r.PFR0, 8) != 0,
		FP:     field(r.PFR0, 16) != 0xf,
		SIMD:   field(r.PFR0, 20) != 0xf,
		SVE:    field(r.PFR0, 32) != 0,
		Gran4K: field(r.MMFR0, 28) != 0xf,
	}
	if pa := field(r.MMFR0, 0); int(pa) < len(parangeBits) {
		f.PARange = parangeBits[pa]
	}
	return f
}

// String lists the features as "name+" / "name-" words.
func (f Features) String() string {
	b := func(name string, v bool) string {
		if v {
			return name + "+"
		}
		return name + "-"
	}
	return strings.Join([]string{
		b("VHE", f.VHE), b("VMID16", f.VMID16), fmt.Sprintf("PA=%d", f.PARange),
		b("RNG", f.RNG), b("PAN", f.PAN), b("GICv3-sysreg", f.GICv3),
		b("FP", f.FP && f.SIMD), b("SVE", f.SVE),
	}, " ")
}

// MIDR fields (Arm ARM D19.2, "MIDR_EL1, Main ID Register").
type MIDR uint64

func (m MIDR) Implementer() uint8 { return uint8(m >> 24) }
func (m MIDR) Variant() uint8     { return uint8(m>>20) & 0xf }
func (m MIDR) PartNum() uint16    { return uint16(m>>4) & 0xfff }
func (m MIDR) Revision() uint8    { return uint8(m) & 0xf }

var implementers = map[uint8]string{
	0x00: "software (emulator)",
	0x41: "Arm",
	0x42: "Broadcom",
	0x43: "Cavium",
	0x46: "Fujitsu",
	0x48: "HiSilicon",
	0x4e: "NVIDIA",
	0x51: "Qualcomm",
	0x61: "Apple",
	0xc0: "Ampere",
}

// Arm Ltd part numbers of the cores Bulkhead targets or is emulated as.
var armParts = map[uint16]string{
	0xd03: "Cortex-A53",
	0xd07: "Cortex-A57",
	0xd08: "Cortex-A72",
	0xd0c: "Neoverse N1",
	0xd40: "Neoverse V1",
	0xd49: "Neoverse N2",
	0xd4f: "Neoverse V2",
	0xd8e: "Neoverse N3",
	0xd84: "Neoverse V3",
}

// String names the core, e.g. "Arm Neoverse N1 r3p1 (MIDR 0x413fd0c1)".
func (m MIDR) String() string {
	impl, ok := implementers[m.Implementer()]
	if !ok {
		impl = fmt.Sprintf("implementer 0x%02x", m.Implementer())
	}
	part := fmt.Sprintf("part 0x%03x", m.PartNum())
	if m.Implementer() == 0x41 {
		if p, ok := armParts[m.PartNum()]; ok {
			part = p
		}
	}
	return fmt.Sprintf("%s %s r%dp%d (MIDR 0x%08x)", impl, part, m.Variant(), m.Revision(), uint64(m))
}
