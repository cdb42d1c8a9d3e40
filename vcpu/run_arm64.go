//go:build tamago

package vcpu

import (
	"unsafe"

	"github.com/bulkhead-hv/bulkhead/cpu"
)

func run(c *Context, restoreSys bool)
func saveSys(c *Context)
func saveFP(c *Context)
func fpTrapAddr() uint64
func guestExitAddr() uint64
func setPerCPU(p uint64)

// PerCPU is one physical CPU's state; TPIDR_EL2 points at it. Its first
// word is read by the exception vectors.
type PerCPU struct {
	Current *Context // the context running, or last run, on this CPU
	ID      int
	// loaded is the context whose EL1 system registers are on this CPU.
	// They stay there between its runs: the EL2 kernel never uses them,
	// and not moving them makes an exit and re-entry much cheaper.
	loaded *Context
}

// MaxCPUs is the most physical CPUs the hypervisor runs guests on.
const MaxCPUs = 64

// cpus holds every CPU's state where the GC can see it: TPIDR_EL2 is not
// a GC root.
var cpus [MaxCPUs]PerCPU

// InitCPU installs CPU id's per-CPU data in TPIDR_EL2 and routes exceptions
// from lower ELs to the world switch. Call it on that CPU.
func InitCPU(id int) *PerCPU {
	p := &cpus[id]
	p.ID = id
	setPerCPU(uint64(uintptr(unsafe.Pointer(p))))
	cpu.SetGuestExit(guestExitAddr())
	cpu.SetFPTrap(fpTrapAddr())
	return p
}

// Run enters the guest with state c on this CPU and returns at its next
// exit, with c.Exit saying why.
func (p *PerCPU) Run(c *Context) {
	if p.loaded != c {
		p.load(c)
		run(c, true)
		return
	}
	restore := c.sysInMemory
	c.sysInMemory = false
	run(c, restore)
}

// Resume enters c again after an exit that left its EL1 and FP/SIMD
// registers on this CPU and changed none of them in memory: the last Run
// here was c's, and nothing called SyncSys since.
func (p *PerCPU) Resume(c *Context) { run(c, false) }

// load makes c the context whose registers the CPU holds: another
// context's EL1 and FP/SIMD registers still on it are saved, and the
// vectors are pointed at c. (Kept off the path of a context that simply
// runs again.)
//
//go:noinline
func (p *PerCPU) load(c *Context) {
	if o := p.loaded; o != nil {
		// SyncSys(o), written out: this is every vCPU switch's path, and
		// a call (SyncSys, or a helper both share, which has two calls
		// of its own and so is not inlined) costs it 9 instructions.
		if !o.sysInMemory {
			saveSys(o)
		}
		if o.fpLive {
			saveFP(o)
		}
		o.sysInMemory = true
	}
	p.loaded = c
	p.Current = c
	c.sysInMemory = false
}

// SyncSys makes c.Sys and c.FP current, so Go code may read or change
// them; changes reach the CPU on c's next Run. A context that moves to
// another CPU must be synced first.
func (p *PerCPU) SyncSys(c *Context) {
	if p.loaded == c {
		if !c.sysInMemory {
			saveSys(c)
		}
		if c.fpLive {
			saveFP(c)
		}
	}
	c.sysInMemory = true
}

// Release saves c's registers, if this CPU holds them, and forgets them: c
// runs on another CPU next. Call it on this CPU.
func (p *PerCPU) Release(c *Context) {
	p.SyncSys(c)
	if p.loaded == c {
		p.loaded = nil
	}
}
