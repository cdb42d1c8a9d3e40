package hyp

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/bulkhead-hv/bulkhead/cpu"
)

func field(v uint64, shift uint) uint64 { return v >> shift & 0xf }

// What QEMU's -cpu max reports, roughly: every feature present.
var maxHost = func() (r [32]uint64) {
	for i := range r {
		r[i] = 0x1111111111111111
	}
	return r
}()

func TestGuestIDRegsHideWhatIsNotSwitched(t *testing.T) {
	g := GuestIDRegs(maxHost, 40)
	for _, f := range []struct {
		name  string
		reg   int
		shift uint
		want  uint64
	}{
		{"EL0 AArch64 only", idPFR0, 0, 1}, {"EL1 AArch64 only", idPFR0, 4, 1},
		{"no EL2", idPFR0, 8, 0}, {"no EL3", idPFR0, 12, 0},
		{"FP", idPFR0, 16, 1}, {"GIC CPU interface", idPFR0, 24, 1},
		{"no RAS", idPFR0, 28, 0}, {"no SVE", idPFR0, 32, 0}, {"no MPAM", idPFR0, 40, 0}, {"no AMU", idPFR0, 44, 0},
		{"BTI", idPFR1, 0, 1}, {"no MTE", idPFR1, 8, 0}, {"no SME", idPFR1, 24, 0},
		{"Armv8.0 debug", idDFR0, 0, 6}, {"no trace", idDFR0, 4, 0}, {"no PMU", idDFR0, 8, 0},
		{"the CPU's breakpoints", idDFR0, 12, 1}, {"the CPU's watchpoints", idDFR0, 20, 1},
		{"the CPU's context-aware breakpoints", idDFR0, 28, 1},
		{"no SPE", idDFR0, 32, 0}, {"no double lock", idDFR0, 36, 0xf},
		{"AES", idISAR0, 4, 1}, {"atomics", idISAR0, 20, 1},
		{"no PAuth APA", idISAR1, 4, 0}, {"no PAuth API", idISAR1, 8, 0},
		{"no PAuth GPA", idISAR1, 24, 0}, {"no PAuth GPI", idISAR1, 28, 0}, {"JSCVT", idISAR1, 12, 1},
		{"no WFxT", idISAR2, 0, 0}, {"no MOPS", idISAR2, 16, 0},
		{"PARange = IPA size (40 bits)", idMMFR0, 0, 2}, {"4K granule", idMMFR0, 28, 1}, {"no ECV", idMMFR0, 60, 0},
		{"no VHE", idMMFR1, 8, 0}, {"no LORegions", idMMFR1, 16, 0}, {"PAN", idMMFR1, 20, 1},
		{"no NV", idMMFR2, 24, 0}, {"no FWB", idMMFR2, 40, 0}, {"E0PD", idMMFR2, 60, 1},
	} {
		assert.Equal(t, f.want, field(g[f.reg], f.shift), f.name)
	}
	assert.Zero(t, g[4], "ID_AA64ZFR0_EL1: no SVE")
	assert.Zero(t, g[5], "ID_AA64SMFR0_EL1: no SME")
	assert.Zero(t, g[9], "ID_AA64DFR1_EL1")
	assert.Zero(t, g[27], "ID_AA64MMFR3_EL1: nothing not vetted")
}

func TestGuestIDRegsNeverInventFeatures(t *testing.T) {
	g := GuestIDRegs([32]uint64{}, 48)
	for i, v := range g {
		switch i {
		case idPFR0:
			assert.Equal(t, uint64(0x11), v, "AArch64 EL0 and EL1 are always there")
		case idDFR0:
			assert.Equal(t, uint64(6|1<<12|1<<20|0xf<<36), v, "Armv8.0 debug with the architecture's two breakpoints and watchpoints")
		case idMMFR0:
			assert.Equal(t, uint64(5), v, "48-bit IPA")
		default:
			assert.Zero(t, v, "register %d", i)
		}
	}
}

func TestIDRegSpace(t *testing.T) {
	h := &Hyp{cfg: Config{IDRegs: GuestIDRegs(maxHost, 40)}}
	v, ok := h.idReg(cpu.SysReg{Op0: 3, CRm: 7})
	assert.True(t, ok)
	assert.Equal(t, h.cfg.IDRegs[idMMFR0], v)
	v, ok = h.idReg(cpu.SysReg{Op0: 3, CRm: 1, Op2: 0}) // ID_PFR0_EL1
	assert.True(t, ok)
	assert.Zero(t, v, "AArch32 registers read as zero")
	_, ok = h.idReg(cpu.SysReg{Op0: 3, CRm: 0, Op2: 5}) // MPIDR_EL1
	assert.False(t, ok, "not TID3's")
}
