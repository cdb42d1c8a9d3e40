//go:build tamago

package crash

import (
	"os"
	"runtime"
	"unsafe"

	"github.com/bulkhead-hv/bulkhead/board/qemuvirt"
	"github.com/bulkhead-hv/bulkhead/cpu"
	"github.com/bulkhead-hv/bulkhead/mmu"
)

// live reads the running system through the hypervisor's own tables, so a
// corrupt pointer in a register cannot fault the report.
type live struct{ t *mmu.Tables }

func (l live) Symbol(pc uint64) (string, string, int, bool) {
	fn := runtime.FuncForPC(uintptr(pc))
	if fn == nil {
		return "", "", 0, false
	}
	file, line := fn.FileLine(uintptr(pc))
	return fn.Name(), file, line, true
}

func (l live) Read64(addr uint64) (uint64, bool) {
	if addr%8 != 0 {
		return 0, false
	}
	_, attrs, _, ok := l.t.Translate(addr)
	if !ok {
		return 0, false
	}
	if p, dev := mmu.S1Perm(attrs); dev || p&mmu.Read == 0 {
		return 0, false
	}
	return *(*uint64)(unsafe.Pointer(uintptr(addr))), true
}

func (l live) CPUIndex(mpidr uint64) (int, bool) {
	m, _ := qemuvirt.Boot()
	if m == nil {
		return 0, false
	}
	for i, c := range m.CPUs {
		if c == mpidr {
			return i, true
		}
	}
	return 0, false
}

func init() {
	cpu.FatalHandler = func(f *cpu.Frame) {
		Write(os.Stdout, f, live{qemuvirt.HypTables()})
		os.Exit(ExitStatus)
	}
}
