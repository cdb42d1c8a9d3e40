package crash

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/bulkhead-hv/bulkhead/cpu"
)

// fakeMachine has code at 0x1000 and a stack of frame records.
type fakeMachine struct {
	mem  map[uint64]uint64
	syms map[uint64]string // function start -> name; functions are 0x100 long
}

func (m *fakeMachine) Symbol(pc uint64) (string, string, int, bool) {
	for start, name := range m.syms {
		if pc >= start && pc < start+0x100 {
			return name, "fake.go", int(pc-start) / 4, true
		}
	}
	return "", "", 0, false
}

func (m *fakeMachine) Read64(addr uint64) (uint64, bool) {
	v, ok := m.mem[addr]
	return v, ok
}

// CPUIndex knows CPUs 0 to 3 by Aff0, and CPU 4 as 0x100.
func (m *fakeMachine) CPUIndex(mpidr uint64) (int, bool) {
	if mpidr < 4 {
		return int(mpidr), true
	}
	if mpidr == 0x100 {
		return 4, true
	}
	return 0, false
}

func newFake() *fakeMachine {
	return &fakeMachine{
		mem: map[uint64]uint64{
			// ldr x0, [x0] (f9400000) at 0x1010, next to a nop (d503201f).
			0x1010: 0xd503201f_f9400000,
			// msr vbar_el2, x0 at 0x1018.
			0x1018: 0x00000000_d51cc000,
			// Frame records: fp 0x8000 -> (0x8100, ret 0x2040) -> (0x8200, ret 0x3080) -> (0, 0).
			0x8000: 0x8100, 0x8008: 0x2040,
			0x8100: 0x8200, 0x8108: 0x3080,
			0x8200: 0, 0x8208: 0,
		},
		syms: map[uint64]string{0x1000: "main.crash", 0x2000: "main.caller", 0x3000: "main.main"},
	}
}

func TestReport(t *testing.T) {
	m := newFake()
	f := &cpu.Frame{ELR: 0x1010, ESR: 0x97c08006, FAR: 0, SPSR: 0x800003c8, Vector: 0, SP: 0x7ff0, MPIDR: 0x100}
	for i := range f.X {
		f.X[i] = uint64(0x1111 * i)
	}
	f.X[29], f.X[30] = 0x8000, 0x2040
	var b bytes.Buffer
	Write(&b, f, m)
	out := b.String()
	for _, want := range []string{
		Begin, End,
		"exception: Synchronous, current EL with SP_EL0",
		"cpu: 4 (MPIDR 0x100)",
		"ESR  0x97c08006 EC 0x25 (Data Abort taken without a change in Exception level): Translation fault, level 2, read",
		"FAR  0x0000000000000000 (valid)",
		"ELR  0x0000000000001010 main.crash at fake.go:4",
		"SPSR 0x00000000800003c8 (EL2t, DAIF=1111, NZCV=1000)",
		"instruction: f9400000  ldr x0, [x0]    (Go: MOVD (R0), R0)",
		"  x0  0x0000000000000000  x1  0x0000000000001111",
		"  x28 0x000000000001dddc  x29 0x0000000000008000",
		"  x30 0x0000000000002040  sp  0x0000000000007ff0",
		"  #0  0x0000000000001010 main.crash at fake.go:4",
		"  #1  0x0000000000002040 main.caller at fake.go:15",
		"  #2  0x0000000000003080 main.main at fake.go:31",
	} {
		assert.Contains(t, out, want)
	}
	assert.NotContains(t, out, "#3 ", "the chain ends at a zero frame pointer")
	assert.NotContains(t, out, "HPFAR", "only lower-EL exceptions have an IPA")
}

func TestReportNamesSystemRegisters(t *testing.T) {
	got := Disassemble(newFake(), 0x1018)
	assert.Contains(t, got, "msr vbar_el2, x0")
	assert.Contains(t, got, "MSR R0, VBAR_EL2")
}

func TestReportUnreadablePC(t *testing.T) {
	m := newFake()
	assert.Contains(t, Disassemble(m, 0x5000), "not in readable memory")
	assert.Contains(t, Disassemble(m, 0x1012), "not 4-byte aligned")
	var b bytes.Buffer
	Write(&b, &cpu.Frame{ELR: 0x5000, Vector: 1, ESR: 0x12345, MPIDR: 0x10000}, m)
	out := b.String()
	assert.Contains(t, out, "exception: IRQ, current EL with SP_EL0")
	assert.Contains(t, out, "cpu: MPIDR 0x10000", "a CPU the machine does not list is named by its affinity")
	assert.Contains(t, out, "not a synchronous exception")
	assert.Contains(t, out, "(not valid for this exception)")
	assert.Contains(t, out, "ELR  0x0000000000005000 (no Go symbol)")
}

func TestReportNestedAndLowerEL(t *testing.T) {
	var b bytes.Buffer
	Write(&b, &cpu.Frame{ELR: 0x1010, Vector: 4, ESR: 0x97c08006}, newFake())
	assert.Contains(t, b.String(), "taken inside the exception handler")
	b.Reset()
	Write(&b, &cpu.Frame{ELR: 0x1010, Vector: 8, ESR: 0x93c08007, HPFAR: 0x123450}, newFake())
	assert.Contains(t, b.String(), "Data Abort from a lower Exception level")
	assert.Contains(t, b.String(), "HPFAR 0x0000000000123450 (IPA page 0x12345000)")
}

func TestBacktraceStopsOnLoopsAndGarbage(t *testing.T) {
	m := newFake()
	m.mem[0x8100] = 0x8000 // points back down: a corrupt chain
	pcs := Backtrace(m, &cpu.Frame{ELR: 0x1010, X: [31]uint64{29: 0x8000, 30: 0x2040}}, 32)
	assert.Equal(t, []uint64{0x1010, 0x2040, 0x3080}, pcs)
	pcs = Backtrace(m, &cpu.Frame{ELR: 0x1010, X: [31]uint64{29: 0xdead}}, 32)
	assert.Equal(t, []uint64{0x1010}, pcs)
	assert.Len(t, Backtrace(m, &cpu.Frame{ELR: 0x1010, X: [31]uint64{29: 0x8000, 30: 0x2040}}, 2), 2)
}
