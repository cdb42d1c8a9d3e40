package smmu

// Stream table entries (IHI 0070, 5.2 "Stream Table Entry"): 64 bytes,
// eight little-endian doublewords.
const (
	STESize = 64

	STE0_V            = 1 << 0
	STE0_CONFIG_SHIFT = 1 // [3:1]
	STE0_CTXPTR_MASK  = 0x000f_ffff_ffff_ffc0

	// Config values: abort, stage 1 translation, stage 2 translation.
	STEConfigAbort = 0b000
	STEConfigS1    = 0b101
	STEConfigS2    = 0b110

	// The context descriptor fetch: inner and outer write-back, inner
	// shareable (S1CIR, S1COR, S1CSH).
	STE1_S1CIR_WB  = 1 << 2
	STE1_S1COR_WB  = 1 << 4
	STE1_S1CSH_ISH = 3 << 6
)

// Context descriptors (5.4 "Context Descriptor"): 64 bytes.
const (
	CDSize = 64

	CD0_T0SZ_SHIFT = 0 // [5:0]
	CD0_TG0_4K     = 0 << 6
	CD0_IR0_WB     = 1 << 8
	CD0_OR0_WB     = 1 << 10
	CD0_SH0_ISH    = 3 << 12
	CD0_EPD1       = 1 << 30 // no walks through TTB1
	CD0_V          = 1 << 31
	CD0_IPS_SHIFT  = 32      // [34:32]
	CD0_AFFD       = 1 << 35 // access flag faults disabled
	CD0_AA64       = 1 << 41
	CD0_R          = 1 << 45 // record translation faults as events
	CD0_A          = 1 << 46 // abort, rather than stall, faulting transactions
	CD0_ASID_SHIFT = 48
	CD1_TTB0_MASK  = 0x000f_ffff_ffff_fff0
)

// abortSTE is an entry that is valid and aborts every transaction: where a
// stream has no translation, its traffic stops, and the invalid entry that
// Init writes is kept for streams nothing should use (an invalid entry
// also aborts, and records C_BAD_STE).
func abortSTE() [8]uint64 {
	return [8]uint64{STE0_V | STEConfigAbort<<STE0_CONFIG_SHIFT}
}

// stage1STE translates through the single context descriptor at cd.
func stage1STE(cd uint64) [8]uint64 {
	return [8]uint64{
		STE0_V | STEConfigS1<<STE0_CONFIG_SHIFT | cd&STE0_CTXPTR_MASK,
		STE1_S1CIR_WB | STE1_S1COR_WB | STE1_S1CSH_ISH,
	}
}

// stage1CD is a context descriptor for an AArch64 table walk of
// inputBits from ttb0 with the 4 KiB granule, output size code ips, the
// attribute indices of mair and address space asid. Translation faults
// are recorded and the transaction aborted.
func stage1CD(ttb0 uint64, inputBits int, ips uint64, mair uint64, asid uint16) [8]uint64 {
	return [8]uint64{
		uint64(64-inputBits)<<CD0_T0SZ_SHIFT | CD0_TG0_4K | CD0_IR0_WB | CD0_OR0_WB | CD0_SH0_ISH |
			CD0_EPD1 | CD0_V | ips<<CD0_IPS_SHIFT | CD0_AFFD | CD0_AA64 | CD0_R | CD0_A |
			uint64(asid)<<CD0_ASID_SHIFT,
		ttb0 & CD1_TTB0_MASK,
		0,
		mair,
	}
}
