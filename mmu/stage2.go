package mmu

// Stage 2 leaf attributes without FEAT_S2FWB (Arm ARM D8.3.3, "Attribute
// fields in stage 2 VMSAv8-64 Block and Page descriptors").
const (
	S2_MEMATTR_SHIFT  = 2
	S2_MEMATTR_NORMAL = 0b1111 << S2_MEMATTR_SHIFT // Outer and Inner Write-Back Cacheable
	S2_MEMATTR_DEVICE = 0b0001 << S2_MEMATTR_SHIFT // Device-nGnRE
	S2AP_R            = 1 << 6
	S2AP_W            = 1 << 7
	S2_SH_INNER       = 3 << 8
	S2_AF             = 1 << 10
	// XN[1:0] = 0b10: not executable at EL1 or EL0 (bit 53 is RES0 without
	// FEAT_XNX, so only bit 54 is used).
	S2_XN = 1 << 54
)

// S2Normal returns stage 2 attributes for guest RAM with permissions p.
func S2Normal(p Perm) uint64 {
	return S2_MEMATTR_NORMAL | S2_SH_INNER | S2_AF | s2perm(p)
}

// S2Device returns stage 2 attributes for a device region passed through.
func S2Device(p Perm) uint64 {
	return S2_MEMATTR_DEVICE | S2_AF | s2perm(p&^Exec)
}

func s2perm(p Perm) uint64 {
	var a uint64
	if p&Read != 0 {
		a |= S2AP_R
	}
	if p&Write != 0 {
		a |= S2AP_W
	}
	if p&Exec == 0 {
		a |= S2_XN
	}
	return a
}

// S2Perm decodes stage 2 permissions.
func S2Perm(attrs uint64) Perm {
	var p Perm
	if attrs&S2AP_R != 0 {
		p |= Read
	}
	if attrs&S2AP_W != 0 {
		p |= Write
	}
	if attrs&S2_XN == 0 {
		p |= Exec
	}
	return p
}

// VTCR_EL2 fields (Arm ARM D19.2, VTCR_EL2).
const (
	VTCR_RES1      = 1 << 31
	VTCR_SL0_SHIFT = 6
	VTCR_IRGN0_WB  = 1 << 8
	VTCR_ORGN0_WB  = 1 << 10
	VTCR_SH0_INNER = 3 << 12
	VTCR_TG0_4K    = 0 << 14
	VTCR_PS_SHIFT  = 16
	VTCR_VS_16BIT  = 1 << 19
)

// VTCREL2 returns VTCR_EL2 for stage 2 tables of ipaBits (whose start level
// InitStage2 derives the same way), the PARange code as the output size,
// and 16-bit VMIDs when vmid16.
func VTCREL2(ipaBits int, parange uint64, vmid16 bool) uint64 {
	level, _ := Stage2Start(ipaBits)
	// SL0 with the 4 KiB granule: 0b00 starts at level 2, 0b01 at 1, 0b10 at 0.
	sl0 := uint64(2 - level)
	v := uint64(VTCR_RES1) | uint64(64-ipaBits) | sl0<<VTCR_SL0_SHIFT |
		VTCR_IRGN0_WB | VTCR_ORGN0_WB | VTCR_SH0_INNER | VTCR_TG0_4K | (parange&7)<<VTCR_PS_SHIFT
	if vmid16 {
		v |= VTCR_VS_16BIT
	}
	return v
}

// VTTBR returns VTTBR_EL2 for a VMID and the tables' root.
func VTTBR(t *Tables, vmid uint16) uint64 { return uint64(vmid)<<48 | t.root }
