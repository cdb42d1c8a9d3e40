package vcpu

import (
	"os"
	"regexp"
	"strconv"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-hv/bulkhead/cpu"
)

// asmDefines returns a lookup of the numeric #defines in an assembly file.
func asmDefines(t *testing.T, file string) func(name string) uintptr {
	src, err := os.ReadFile(file)
	require.NoError(t, err)
	return func(name string) uintptr {
		m := regexp.MustCompile(`#define ` + name + ` (\d+)`).FindSubmatch(src)
		require.NotNil(t, m, name)
		v, err := strconv.Atoi(string(m[1]))
		require.NoError(t, err)
		return uintptr(v)
	}
}

func TestContextLayout(t *testing.T) {
	define := asmDefines(t, "switch_arm64.s")
	var c Context
	assert.Equal(t, unsafe.Offsetof(c.PC), define("CTX_PC"))
	assert.Equal(t, unsafe.Offsetof(c.PSTATE), define("CTX_PSTATE"))
	assert.Equal(t, unsafe.Offsetof(c.Sys), define("CTX_SYS"))
	assert.Equal(t, unsafe.Offsetof(c.FP), define("CTX_FP"))
	assert.Equal(t, unsafe.Offsetof(c.FP)+unsafe.Offsetof(c.FP.FPCR), define("CTX_FPCR"))
	assert.Equal(t, unsafe.Offsetof(c.FP)+unsafe.Offsetof(c.FP.FPSR), define("CTX_FPCR")+8, "FPSR follows FPCR")
	assert.Equal(t, unsafe.Offsetof(c.EL2)+unsafe.Offsetof(c.EL2.HCR), define("CTX_EL2_HCR"))
	assert.Equal(t, unsafe.Offsetof(c.EL2)+unsafe.Offsetof(c.EL2.VTTBR), define("CTX_EL2_VTTBR"))
	assert.Equal(t, unsafe.Offsetof(c.EL2)+unsafe.Offsetof(c.EL2.VMPIDR), define("CTX_EL2_VMPIDR"))
	assert.Equal(t, unsafe.Offsetof(c.EL2)+unsafe.Offsetof(c.EL2.VPIDR), define("CTX_EL2_VPIDR"))
	assert.Equal(t, unsafe.Offsetof(c.Exit)+unsafe.Offsetof(c.Exit.Vector), define("CTX_EXIT_VECTOR"))
	assert.Equal(t, unsafe.Offsetof(c.Exit)+unsafe.Offsetof(c.Exit.ESR), define("CTX_EXIT_ESR"))
	assert.Equal(t, unsafe.Offsetof(c.Exit)+unsafe.Offsetof(c.Exit.FAR), define("CTX_EXIT_FAR"))
	assert.Equal(t, unsafe.Offsetof(c.Exit)+unsafe.Offsetof(c.Exit.HPFAR), define("CTX_EXIT_HPFAR"))
	assert.Equal(t, unsafe.Offsetof(c.host), define("CTX_HOST"))
	assert.Equal(t, unsafe.Offsetof(c.host)+unsafe.Offsetof(c.host.SP), define("CTX_HOST_SP"))
	assert.Equal(t, unsafe.Offsetof(c.Debug)+unsafe.Offsetof(c.Debug.BPs), define("CTX_DEBUG_BPS"))
	assert.Equal(t, unsafe.Offsetof(c.Debug)+unsafe.Offsetof(c.Debug.BP), define("CTX_DEBUG_BP"))
	assert.Equal(t, unsafe.Offsetof(c.Debug)+unsafe.Offsetof(c.Debug.WPs), define("CTX_DEBUG_WPS"))
	assert.Equal(t, unsafe.Offsetof(c.Debug)+unsafe.Offsetof(c.Debug.WP), define("CTX_DEBUG_WP"))
	assert.Equal(t, unsafe.Offsetof(c.fpLive), define("CTX_FP_LIVE"))
	// x28, x29 and x30 sit where the switch stores them.
	assert.Equal(t, uintptr(224), unsafe.Offsetof(c.X)+28*8)
	assert.Equal(t, uintptr(240), unsafe.Offsetof(c.X)+30*8)
	assert.Equal(t, unsafe.Offsetof(c.PSTATE), unsafe.Offsetof(c.PC)+8, "PC and PSTATE are stored as a pair")
	assert.Equal(t, unsafe.Offsetof(c.Exit.FAR), unsafe.Offsetof(c.Exit.ESR)+8, "ESR and FAR are stored as a pair")
}

// The switch saves and restores the system registers in SysRegs order.
func TestSwitchSysRegOrder(t *testing.T) {
	src, err := os.ReadFile("switch_arm64.s")
	require.NoError(t, err)
	names := []string{"SCTLR_EL1", "CPACR_EL1", "TTBR0_EL1", "TTBR1_EL1", "TCR_EL1", "ESR_EL1",
		"AFSR0_EL1", "AFSR1_EL1", "FAR_EL1", "MAIR_EL1", "AMAIR_EL1", "VBAR_EL1", "CONTEXTIDR_EL1",
		"TPIDR_EL0", "TPIDRRO_EL0", "TPIDR_EL1", "CNTKCTL_EL1", "PAR_EL1", "CSSELR_EL1", "MDSCR_EL1",
		"SP_EL1", "ELR_EL1", "SPSR_EL1", "SP_EL0"}
	require.Equal(t, len(names)*8, int(unsafe.Sizeof(SysRegs{})))
	writes := regexp.MustCompile(`MSR\tR\d, ([A-Z0-9_]+EL[01])`).FindAllSubmatch(src, -1)
	require.Len(t, writes, len(names))
	for i, n := range names {
		assert.Equal(t, n, string(writes[i][1]), "restore #%d", i)
	}
	// guestExit saves the last two on every exit; saveSys the rest.
	exit := src[regexp.MustCompile(`TEXT ·guestExit`).FindIndex(src)[0]:regexp.MustCompile(`TEXT ·guestExitAddr`).FindIndex(src)[0]]
	save := src[regexp.MustCompile(`TEXT ·saveSys`).FindIndex(src)[0]:]
	reads := func(b []byte) (out []string) {
		for _, m := range regexp.MustCompile(`MRS\t([A-Z0-9_]+EL[01]), R\d`).FindAllSubmatch(b, -1) {
			out = append(out, string(m[1]))
		}
		return out
	}
	assert.Equal(t, names[22:], reads(exit))
	assert.Equal(t, names[:22], reads(save))
}

// The switch loads every breakpoint and watchpoint pair there can be, in
// order, with the MSR encodings of DBGBVR<n>_EL1 and DBGBCR<n>_EL1 (op2 4
// and 5), DBGWVR<n>_EL1 and DBGWCR<n>_EL1 (op2 6 and 7).
func TestSwitchLoadsDebugRegisters(t *testing.T) {
	hex := func(name string) uint32 {
		src, err := os.ReadFile("switch_arm64.s")
		require.NoError(t, err)
		m := regexp.MustCompile(`#define ` + name + ` 0x([0-9a-f]+)`).FindSubmatch(src)
		require.NotNil(t, m, name)
		v, err := strconv.ParseUint(string(m[1]), 16, 32)
		require.NoError(t, err)
		return uint32(v)
	}
	for _, r := range []struct {
		name string
		op2  uint8
	}{{"MSR_DBGBVR", 4}, {"MSR_DBGBCR", 5}, {"MSR_DBGWVR", 6}, {"MSR_DBGWCR", 7}} {
		assert.Equal(t, cpu.SysReg{Op0: 2, Op2: r.op2}.Encode(true, 0), hex(r.name), r.name)
	}
	src, err := os.ReadFile("switch_arm64.s")
	require.NoError(t, err)
	var c Context
	for _, kind := range []struct{ v, c string }{{"MSR_DBGBVR", "MSR_DBGBCR"}, {"MSR_DBGWVR", "MSR_DBGWCR"}} {
		m := regexp.MustCompile(`LOAD_DBG\((\d+), `+kind.v+`, `+kind.c+`,`).FindAllSubmatch(src, -1)
		require.Len(t, m, len(c.Debug.BP), kind.v)
		for i := range m {
			assert.Equal(t, strconv.Itoa(i), string(m[i][1]), kind.v)
		}
	}
	assert.Equal(t, len(c.Debug.BP), len(c.Debug.WP))
	assert.Equal(t, uintptr(16), unsafe.Sizeof(c.Debug.BP[0]), "LOAD_DBG's pairs are 16 bytes apart")
}

func TestReset(t *testing.T) {
	var c Context
	c.X[5] = 9
	c.EL2.HCR = 0x80000001
	c.Reset(0x40010000, 0x1234)
	assert.Equal(t, uint64(0x40010000), c.PC)
	assert.Equal(t, uint64(0x3c5), c.PSTATE, "EL1h, DAIF masked")
	assert.Equal(t, uint64(0x1234), c.X[0])
	assert.Zero(t, c.X[5])
	assert.Equal(t, uint64(0x30d00800), c.Sys.SCTLR_EL1)
	assert.Equal(t, uint64(0x80000001), c.EL2.HCR, "the EL2 configuration survives a reset")
	assert.True(t, c.Debug.OSLK, "the OS lock is set, as on a cold reset")
	assert.Zero(t, c.Debug.BPs, "debug is off")
	assert.Equal(t, 1, c.EL())
}

func TestInjectExternalAbort(t *testing.T) {
	var c Context
	c.Reset(0x40001000, 0)
	c.Sys.VBAR_EL1 = 0x40080000
	c.PSTATE = PSR_MODE_EL1h // interrupts unmasked
	c.InjectExternalAbort(false, 0x9000000, true)
	esr := cpu.ESR(c.Sys.ESR_EL1)
	assert.Equal(t, uint8(cpu.EC_DABT_CUR), esr.EC())
	assert.True(t, esr.Write())
	name, _ := esr.FaultStatus()
	assert.Equal(t, "Synchronous External abort", name)
	assert.Equal(t, uint64(0x9000000), c.Sys.FAR_EL1)
	assert.Equal(t, uint64(0x40001000), c.Sys.ELR_EL1)
	assert.Equal(t, uint64(PSR_MODE_EL1h), c.Sys.SPSR_EL1)
	assert.Equal(t, uint64(0x40080200), c.PC, "current EL with SP_EL1: VBAR+0x200")
	assert.Equal(t, uint64(0x3c5), c.PSTATE)

	// From EL0: lower-EL class and vector.
	c.PSTATE, c.PC = PSR_MODE_EL0t, 0x1000
	c.InjectExternalAbort(true, 0x1000, false)
	assert.Equal(t, uint8(cpu.EC_IABT_LOW), cpu.ESR(c.Sys.ESR_EL1).EC())
	assert.Equal(t, uint64(0x40080400), c.PC)

	// From EL1t (SP_EL0 selected): VBAR+0.
	c.PSTATE, c.PC = PSR_MODE_EL1t, 0x2000
	c.InjectUndefined()
	assert.Equal(t, uint8(cpu.EC_UNKNOWN), cpu.ESR(c.Sys.ESR_EL1).EC())
	assert.Equal(t, uint64(0x40080000), c.PC)
	c.PSTATE |= PSR_SS | PSR_BTYPE
	c.SkipInstruction()
	assert.Equal(t, uint64(0x40080004), c.PC)
	assert.Equal(t, uint64(PSR_MODE_EL1h|PSR_DAIF), c.PSTATE,
		"a skipped instruction has completed: PSTATE.SS and BTYPE clear (the step, if any, is taken next)")
}
