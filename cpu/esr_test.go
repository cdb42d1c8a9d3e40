package cpu

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func esr(ec uint8, iss uint32) ESR {
	return ESR(uint64(ec)<<ESR_EC_SHIFT | ESR_IL | uint64(iss))
}

func TestESRDecode(t *testing.T) {
	for _, tc := range []struct {
		esr       ESR
		ec        uint8
		class     string
		fault     string
		level     int
		write     bool
		farValid  bool
		summaryIn string
	}{
		// From QEMU: a 64-bit LDR from address 0 at EL2.
		{ESR(0x97c08006), EC_DABT_CUR, "Data Abort taken without a change in Exception level",
			"Translation fault", 2, false, true, "Translation fault, level 2, read"},
		// STR to a read-only page: permission fault at level 3, WnR=1.
		{ESR(0x9781004f), EC_DABT_CUR, "Data Abort taken without a change in Exception level",
			"Permission fault", 3, true, true, "Permission fault, level 3, write"},
		// Guest stage 2 fault with FAR not valid (FnV).
		{esr(EC_DABT_LOW, ISS_DA_FnV|0b000111), EC_DABT_LOW, "Data Abort from a lower Exception level",
			"Translation fault", 3, false, false, "read"},
		{esr(EC_IABT_CUR, 0b001001), EC_IABT_CUR, "Instruction Abort taken without a change in Exception level",
			"Access flag fault", 1, false, true, "Access flag fault, level 1"},
		{esr(EC_DABT_CUR, 0b100001|ISS_DA_WnR), EC_DABT_CUR, "Data Abort taken without a change in Exception level",
			"Alignment fault", -1, true, true, "Alignment fault, write"},
		{esr(EC_DABT_CUR, 0b010000), EC_DABT_CUR, "Data Abort taken without a change in Exception level",
			"Synchronous External abort", -1, false, true, "Synchronous External abort"},
	} {
		assert.Equal(t, tc.ec, tc.esr.EC(), "%#x", uint64(tc.esr))
		assert.Equal(t, tc.class, tc.esr.ClassName())
		assert.True(t, tc.esr.IsAbort())
		name, lvl := tc.esr.FaultStatus()
		assert.Equal(t, tc.fault, name, "%#x", uint64(tc.esr))
		assert.Equal(t, tc.level, lvl, "%#x", uint64(tc.esr))
		assert.Equal(t, tc.write, tc.esr.Write(), "%#x", uint64(tc.esr))
		assert.Equal(t, tc.farValid, tc.esr.FARValid(), "%#x", uint64(tc.esr))
		assert.Contains(t, tc.esr.String(), tc.summaryIn)
	}
}

func TestESRAccessSyndrome(t *testing.T) {
	// ISV=1, SAS=0b10 (word), SRT=5: e.g. a guest's 32-bit MMIO store from w5.
	e := esr(EC_DABT_LOW, ISS_DA_ISV|2<<ISS_DA_SAS|5<<ISS_DA_SRT|ISS_DA_WnR|0b000111)
	size, reg, ok := e.Access()
	assert.True(t, ok)
	assert.Equal(t, 4, size)
	assert.Equal(t, 5, reg)
	_, _, ok = esr(EC_DABT_LOW, 0b000111).Access()
	assert.False(t, ok, "no syndrome without ISV")
	_, _, ok = esr(EC_HVC64, ISS_DA_ISV).Access()
	assert.False(t, ok, "not a data abort")
}

func TestESRClasses(t *testing.T) {
	assert.Equal(t, "HVC in AArch64", esr(EC_HVC64, 0).ClassName())
	assert.Equal(t, "BRK in AArch64", ESR(0xf2000000).ClassName())
	assert.Equal(t, "Trapped MSR/MRS/system instruction", esr(EC_SYS64, 0).ClassName())
	assert.Equal(t, "Reserved exception class 0x3f", esr(0x3f, 0).ClassName())
	assert.False(t, esr(EC_HVC64, 0).IsAbort())
	assert.True(t, esr(EC_HVC64, 0).FARValid(), "FnV applies to aborts only")
	assert.NotContains(t, esr(EC_HVC64, 0).String(), "fault")
	assert.True(t, esr(EC_SVC64, 0).IL())
	assert.Equal(t, uint32(0x1234), esr(EC_SVC64, 0x1234).ISS())
	// Every named class maps back to its number.
	for ec, name := range ecNames {
		assert.Equal(t, name, esr(ec, 0).ClassName())
	}
}

func TestFaultStatusReserved(t *testing.T) {
	name, lvl := esr(EC_DABT_CUR, 0b111111).FaultStatus()
	assert.Equal(t, "Reserved fault status 0x3f", name)
	assert.Equal(t, -1, lvl)
}
