package hyp

import "github.com/bulkhead-hv/bulkhead/vcpu"

// Runner enters a guest and returns at its next exit: the world switch on
// hardware, a scripted guest in tests.
type Runner interface {
	Run(c *vcpu.Context)
	// SyncSys makes c.Sys current before Go code reads or changes it.
	SyncSys(c *vcpu.Context)
}

// RunAll schedules every powered-on vCPU round-robin on this CPU until all
// VMs have stopped. A vCPU runs until it yields (WFI/WFE, YIELD, an
// interrupt) or its VM stops.
func (h *Hyp) RunAll(r Runner) {
	for {
		ran := false
		for _, vm := range h.VMs() {
			for _, v := range vm.VCPUs {
				if vm.State != Running || !v.On {
					continue
				}
				ran = true
				h.runSlice(r, v)
			}
		}
		if !ran {
			return
		}
	}
}

func (h *Hyp) runSlice(r Runner, v *VCPU) {
	vm := v.VM
	vm.vmid = h.vmids.Refresh(vm.vmid)
	v.Ctx.EL2.VTTBR = vttbr(vm)
	for {
		r.Run(&v.Ctx)
		if h.HandleExit(r, v) != Resume {
			return
		}
	}
}

func vttbr(vm *VM) uint64 { return uint64(vm.vmid.ID)<<48 | vm.s2.Root() }
