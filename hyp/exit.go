package hyp

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/bulkhead-hv/bulkhead/abi"
	"github.com/bulkhead-hv/bulkhead/cpu"
	"github.com/bulkhead-hv/bulkhead/hyp/vgic"
	"github.com/bulkhead-hv/bulkhead/mmu"
	"github.com/bulkhead-hv/bulkhead/vcpu"
)

// ExitReason classifies exits for the VM's counters.
type ExitReason int

const (
	ExitHVC ExitReason = iota
	ExitSMC
	ExitStage2Fault
	ExitWFx
	ExitSysReg
	ExitIRQ
	ExitSError
	ExitAArch32
	ExitUnexpected
	ExitMMIO
	NumExitReasons
)

// The ABI names the counters in this order.
var _ = [1]int{}[NumExitReasons-abi.NumExitReasons]

func (e ExitReason) String() string { return abi.ExitReasons[e] }

// Action is what the scheduler does after an exit.
type Action int

const (
	Resume Action = iota // run the same vCPU again
	Yield                // let others run
	Block                // wait for an interrupt (WFI)
	Stop                 // the VM stopped
)

// maxFaultsInARow stops a guest that keeps faulting without running
// anything in between (a guest without an exception handler, say).
const maxFaultsInARow = 64

// HandleExit decides what a guest exit means. Nothing a guest does makes
// it fail: the worst outcome is that VM being stopped with a report.
//
// What ends in a report or a message is in functions of its own
// (exitNotSync, undefinedSysReg, unexpectedExit): their formatting would
// otherwise give every exit this function's frame and its spills.
func (h *Hyp) HandleExit(r CPU, v *VCPU) Action {
	vm, c := v.VM, &v.Ctx
	if h.cfg.Trace {
		h.traceExit(v)
	}
	if c.Exit.Vector != vcpu.VectorSync64 {
		return h.exitNotSync(v)
	}
	esr := cpu.ESR(c.Exit.ESR)
	if esr.EC() == cpu.EC_HVC64 {
		return h.hvc(v, esr)
	}
	if !esr.IsAbort() {
		vm.faultsInARow = 0
	}
	switch esr.EC() {
	case cpu.EC_SMC64:
		vm.Exits[ExitSMC]++
		c.SkipInstruction() // a trapped SMC returns to the SMC itself
		return h.psci(v, uint16(esr.ISS()))
	case cpu.EC_DABT_LOW, cpu.EC_IABT_LOW:
		ipa := faultIPA(c)
		if vm.vgic != nil && ipa-vgic.RedistBase-uint64(v.Index)*vgic.RedistStride < vgic.RedistStride {
			h.sampleVTimer(r, v) // its own redistributor: the timer PPI's state
		}
		if ok, act := h.emulateMMIO(v, esr, ipa); ok {
			vm.faultsInARow = 0
			return act
		}
		vm.Exits[ExitStage2Fault]++
		return h.stage2Fault(r, v, esr, ipa)
	case cpu.EC_WFx:
		vm.Exits[ExitWFx]++
		c.SkipInstruction()
		if esr.ISS()&1 != 0 { // WFE: a hint, give others a turn
			return Yield
		}
		return h.waitForInterrupt(v)
	case cpu.EC_SYS64:
		vm.Exits[ExitSysReg]++
		reg, write, xt := sysRegISS(esr.ISS())
		if h.emulateSysReg(r, v, reg, write, xt) {
			c.SkipInstruction()
			return Resume
		}
		return h.undefinedSysReg(r, v, reg, write, xt)
	}
	return h.unexpectedExit(v, esr)
}

func (h *Hyp) traceExit(v *VCPU) {
	c := &v.Ctx
	fmt.Fprintf(h.Out, "trace: vm %s vcpu %d: vector %d %s PC %#x x0 %#x\n", v.VM.Name, v.Index, c.Exit.Vector, cpu.ESR(c.Exit.ESR), c.PC, c.X[0])
}

// exitNotSync handles an exit through any vector but a synchronous
// exception from AArch64.
func (h *Hyp) exitNotSync(v *VCPU) Action {
	vm, c := v.VM, &v.Ctx
	switch c.Exit.Vector {
	case vcpu.VectorIRQ64, vcpu.VectorFIQ64:
		// A physical interrupt for EL2: the scheduler services it.
		vm.Exits[ExitIRQ]++
		return Resume
	case vcpu.VectorSError64:
		vm.Exits[ExitSError]++
		return h.stopf(vm, -1, "SError from the guest (ESR %#x) at PC %#x", c.Exit.ESR, c.PC)
	}
	vm.Exits[ExitAArch32]++
	return h.stopf(vm, -1, "exception from AArch32 state (vector %d), which Bulkhead does not run", c.Exit.Vector)
}

// undefinedSysReg answers a trapped system register access the hypervisor
// does not emulate: the guest takes an undefined instruction exception.
func (h *Hyp) undefinedSysReg(r CPU, v *VCPU, reg cpu.SysReg, write bool, xt int) Action {
	c := &v.Ctx
	dir := "read"
	if write {
		dir = "write"
	}
	fmt.Fprintf(h.Out, "bulkhead: vm %s: trapped %s of %s (x%d) at PC %#x: undefined instruction injected\n", v.VM.Name, dir, reg, xt, c.PC)
	r.SyncSys(c)
	c.InjectUndefined()
	return Resume
}

// unexpectedExit stops a VM whose exit no handler takes.
func (h *Hyp) unexpectedExit(v *VCPU, esr cpu.ESR) Action {
	v.VM.Exits[ExitUnexpected]++
	return h.stopf(v.VM, -1, "unexpected exit: %s at PC %#x", esr, v.Ctx.PC)
}

// sysRegISS decodes the ISS of a trapped MSR/MRS (Arm ARM D19.2, ESR_EL2
// ISS encoding for EC 0x18).
func sysRegISS(iss uint32) (cpu.SysReg, bool, int) {
	r := cpu.SysReg{
		Op0: uint8((iss >> 20) & 3), Op2: uint8((iss >> 17) & 7), Op1: uint8((iss >> 14) & 7),
		CRn: uint8((iss >> 10) & 15), CRm: uint8((iss >> 1) & 15),
	}
	return r, iss&1 == 0, int((iss >> 5) & 31)
}

// stopf stops a VM that did something it cannot go on from.
func (h *Hyp) stopf(vm *VM, status int64, format string, args ...any) Action {
	return h.stop(vm, abi.StopFault, status, format, args...)
}

// stop stops a VM, for the reason why (abi.Stop*), with an exit status.
func (h *Hyp) stop(vm *VM, why uint64, status int64, format string, args ...any) Action {
	vm.State = Stopped
	vm.Status = status
	vm.Why = why
	vm.Reason = fmt.Sprintf(format, args...)
	for _, v := range vm.VCPUs {
		v.On = false
	}
	h.flushConsole(vm)
	fmt.Fprintf(h.Out, "bulkhead: vm %s stopped: %s\n", vm.Name, vm.Reason)
	h.notifyStopped(vm)
	if vm == h.control {
		h.controlStopped(why, status)
	}
	// Its vCPUs in the guest on other CPUs leave at once; and CPUs with
	// nothing left to run look again whether anything is alive.
	for _, p := range h.pcpus {
		h.kick(p)
	}
	return Stop
}

// stage2Fault handles an access to an IPA the VM's stage 2 does not allow
// and no emulated device claims: it is contained by injecting a synchronous
// external abort, as a bus error on real hardware would be.
func (h *Hyp) stage2Fault(r CPU, v *VCPU, esr cpu.ESR, ipa uint64) Action {
	vm, c := v.VM, &v.Ctx
	instr := esr.EC() == cpu.EC_IABT_LOW
	what := "read"
	switch {
	case instr:
		what = "instruction fetch"
	case esr.Write():
		what = "write"
	}
	vm.Faults++
	vm.faultsInARow++
	if vm.faultsInARow > maxFaultsInARow {
		return h.stopf(vm, -1, "%d stage 2 faults in a row without progress; last: %s at IPA %#x, PC %#x", vm.faultsInARow-1, what, ipa, c.PC)
	}
	fmt.Fprintf(h.Out, "bulkhead: vm %s: stage 2 fault: %s at IPA %#x (VA %#x), PC %#x: external abort injected\n", vm.Name, what, ipa, c.Exit.FAR, c.PC)
	r.SyncSys(c)
	c.InjectExternalAbort(instr, c.Exit.FAR, esr.Write())
	return Resume
}

// faultIPA is the IPA a stage 2 abort was taken at: the page from
// HPFAR_EL2.FIPA, the offset from FAR_EL2 (Arm ARM D19.2).
func faultIPA(c *vcpu.Context) uint64 { return (c.Exit.HPFAR>>4)<<12 | c.Exit.FAR&0xfff }

// hypercallExit reports whether c exited with a hypercall that HandleExit
// would pass straight to hvc (it traces nothing).
func (h *Hyp) hypercallExit(c *vcpu.Context) (cpu.ESR, bool) {
	esr := cpu.ESR(c.Exit.ESR)
	return esr, c.Exit.Vector == vcpu.VectorSync64 && esr.EC() == cpu.EC_HVC64 && !h.cfg.Trace
}

// hvc counts a hypercall exit and dispatches it: the hot path, which the
// scheduler's loop takes without HandleExit.
func (h *Hyp) hvc(v *VCPU, esr cpu.ESR) Action {
	v.VM.Exits[ExitHVC]++
	v.VM.faultsInARow = 0
	return h.hypercall(v, uint16(esr.ISS()))
}

// hypercall dispatches an HVC (SMCCC: function ID in w0, immediate 0).
func (h *Hyp) hypercall(v *VCPU, imm uint16) Action {
	vm, c := v.VM, &v.Ctx
	fid := uint32(c.X[0])
	if imm != 0 {
		c.X[0] = abi.Word(abi.NOT_SUPPORTED)
		return Resume
	}
	switch fid {
	case abi.SMCCC_VERSION:
		c.X[0] = abi.SMCCCVersion1_1
		return Resume
	case abi.SMCCC_ARCH_FEATURES:
		c.X[0] = abi.Word(abi.NOT_SUPPORTED)
		return Resume
	case abi.VENDOR_HYP_CALL_UID:
		u := abi.CallUID
		c.X[0], c.X[1], c.X[2], c.X[3] = uint64(u[0]), uint64(u[1]), uint64(u[2]), uint64(u[3])
		return Resume
	case abi.VENDOR_HYP_REVISION:
		c.X[0], c.X[1] = abi.VersionMajor, abi.VersionMinor
		return Resume
	case abi.CONSOLE_WRITE:
		n := c.X[1]
		if n > abi.ConsoleChunk {
			c.X[0] = abi.Word(abi.INVALID_PARAMETER)
			return Resume
		}
		var buf [abi.ConsoleChunk]byte
		for i := 0; i < 6; i++ {
			binary.LittleEndian.PutUint64(buf[8*i:], c.X[2+i])
		}
		c.X[0] = uint64(h.consoleWrite(vm, buf[:n]))
		return Resume
	case abi.EXIT:
		return h.stop(vm, abi.StopExit, int64(int32(c.X[1])), "exited with status %d", int32(c.X[1]))
	case abi.YIELD:
		// x1: the longest the caller may nap if nothing else wants its
		// CPU, in microseconds, at most a time slice (sched.go).
		v.nap = min(c.X[1], 10000) * h.cfg.Slice / 10000
		c.X[0] = abi.SUCCESS
		return Yield
	case abi.SHARE, abi.UNSHARE:
		if vm == h.control {
			c.X[0] = abi.Word(abi.DENIED) // it lends nothing: it donates
			return Resume
		}
		var err error
		if fid == abi.SHARE {
			var pa uint64
			pa, err = h.Share(vm, c.X[1], c.X[2])
			c.X[1] = pa
		} else {
			err = h.Unshare(vm, c.X[1], c.X[2])
		}
		switch {
		case err == nil:
			c.X[0] = abi.SUCCESS
		case errors.Is(err, ErrIPARange):
			c.X[0] = abi.Word(abi.INVALID_PARAMETER)
		case errors.Is(err, mmu.ErrNoTables):
			c.X[0] = abi.Word(abi.NO_MEMORY)
		default:
			c.X[0] = abi.Word(abi.DENIED) // already shared, or not shared
		}
		return Resume
	case abi.VM_CREATE, abi.VM_DONATE, abi.VCPU_CREATE, abi.VM_START, abi.VM_STATUS, abi.VM_WAIT, abi.VM_DESTROY,
		abi.VM_STOP, abi.VM_CONSOLE_READ, abi.VM_CONSOLE_WRITE, abi.VM_STATS,
		abi.VM_MMIO_MAP, abi.VM_MMIO_NEXT, abi.VM_MMIO_REPLY, abi.VCPU_MOVE, abi.VM_IRQ_LINE, abi.VM_LIST,
		abi.VM_VIRTQ_POP, abi.VM_VIRTQ_READ, abi.VM_VIRTQ_WRITE, abi.VM_VIRTQ_PUSH, abi.CPU_STATS:
		return h.manage(v, fid)
	}
	if abi.IsPSCI(fid) {
		return h.psci(v, 0)
	}
	c.X[0] = abi.Word(abi.NOT_SUPPORTED)
	return Resume
}

// psci emulates the PSCI calls of guests, over SMC (Arm DEN0022).
func (h *Hyp) psci(v *VCPU, imm uint16) Action {
	vm, c := v.VM, &v.Ctx
	fid := uint32(c.X[0])
	if imm != 0 {
		c.X[0] = abi.Word(abi.PSCI_NOT_SUPPORTED)
		return Resume
	}
	switch fid {
	case abi.PSCI_VERSION:
		c.X[0] = abi.PSCI_VERSION_1_1
	case abi.PSCI_FEATURES:
		switch uint32(c.X[1]) {
		case abi.PSCI_VERSION, abi.PSCI_FEATURES, abi.PSCI_CPU_OFF, abi.PSCI_SYSTEM_OFF, abi.PSCI_SYSTEM_RESET,
			abi.PSCI_CPU_ON, abi.PSCI_CPU_ON32, abi.PSCI_AFFINITY_INFO, abi.PSCI_AFFINITY_INFO32,
			abi.PSCI_CPU_SUSPEND, abi.PSCI_CPU_SUSPEND32:
			c.X[0] = 0
		default:
			c.X[0] = abi.Word(abi.PSCI_NOT_SUPPORTED)
		}
	case abi.PSCI_CPU_ON, abi.PSCI_CPU_ON32:
		t := vm.vcpuByMPIDR(c.X[1])
		switch {
		case t == nil:
			c.X[0] = abi.Word(abi.PSCI_INVALID_PARAMETERS)
		case t.On:
			c.X[0] = abi.Word(abi.PSCI_ALREADY_ON)
		case !vm.contains(c.X[2], 4) || c.X[2]%4 != 0:
			c.X[0] = abi.Word(abi.PSCI_INVALID_ADDRESS)
		default:
			t.Ctx.Reset(c.X[2], c.X[3])
			t.timer = vtimer{}
			t.On, t.blocked = true, false
			h.enqueue(t)
			c.X[0] = 0
		}
	case abi.PSCI_AFFINITY_INFO, abi.PSCI_AFFINITY_INFO32:
		t := vm.vcpuByMPIDR(c.X[1])
		switch {
		case t == nil || c.X[2] != 0: // only level 0: a vCPU
			c.X[0] = abi.Word(abi.PSCI_INVALID_PARAMETERS)
		case t.On:
			c.X[0] = 0 // ON
		default:
			c.X[0] = 1 // OFF
		}
	case abi.PSCI_CPU_SUSPEND, abi.PSCI_CPU_SUSPEND32:
		// Every suspend is entered as standby, which PSCI allows for any
		// power state: like WFI, until an interrupt.
		c.X[0] = 0
		return h.waitForInterrupt(v)
	case abi.PSCI_CPU_OFF:
		v.On = false
		for _, o := range vm.VCPUs {
			if o.On {
				return Yield
			}
		}
		return h.stop(vm, abi.StopPowerOff, 0, "last vCPU called PSCI CPU_OFF")
	case abi.PSCI_SYSTEM_OFF:
		return h.stop(vm, abi.StopPowerOff, 0, "PSCI SYSTEM_OFF")
	case abi.PSCI_SYSTEM_RESET:
		// The VM stops; its control partition starts it again.
		return h.stop(vm, abi.StopReset, 0, "PSCI SYSTEM_RESET")
	default:
		c.X[0] = abi.Word(abi.PSCI_NOT_SUPPORTED)
	}
	return Resume
}

// consoleWrite takes a VM's console output: echoed, or queued in its
// UART's ring as far as there is room. It returns the bytes taken.
func (h *Hyp) consoleWrite(vm *VM, b []byte) int {
	if vm.Echo || vm.uart == nil {
		h.echo(vm, b)
		return len(b)
	}
	return vm.uart.Output(b)
}

// echo prints a VM's output line by line, prefixed with its name.
func (h *Hyp) echo(vm *VM, b []byte) {
	if vm.console.Len() < maxEcho {
		vm.console.Write(b)
	}
	for _, ch := range b {
		if ch == '\n' {
			h.flushConsole(vm)
			continue
		}
		vm.consoleLine = append(vm.consoleLine, ch)
	}
}

func (h *Hyp) flushConsole(vm *VM) {
	if len(vm.consoleLine) == 0 {
		return
	}
	fmt.Fprintf(h.Out, "%s| %s\n", vm.Name, vm.consoleLine)
	vm.consoleLine = vm.consoleLine[:0]
}

// System registers the hypervisor emulates (op0, op1, CRn, CRm, op2),
// compared as literals: the compiler folds a comparison with one into a
// few instructions, where a variable's fields are each loaded.
//
// ICC_SGI1R_EL1, ICC_ASGI1R_EL1 and ICC_SGI0R_EL1 are op2 5, 6 and 7 of
// 3, 0, C12, C11 (IHI 0069, 12.2).
func isSGIR(r cpu.SysReg) bool {
	return r.Op0 == 3 && r.Op1 == 0 && r.CRn == 12 && r.CRm == 11 && r.Op2 >= 5
}

// razWI reports the trapped registers of features guests are told are
// absent, which read as zero and ignore writes, so that a guest probing
// them does not die of an Undefined Instruction: the PMU's
// (MDCR_EL2.TPM: CRn 9 CRm 12-14 of op1 3, PMINTEN*_EL1 and PMMIR_EL1 at
// op1 0 CRm 14, the event counters at CRn 14 CRm 8-15), SPE's (CRn 9 CRm
// 9-10, MDCR_EL2.TPMS) and the EL1 physical timer's (CNTP_*_EL0,
// CNTHCTL_EL2.EL1PCEN clear).
func razWI(r cpu.SysReg) bool {
	switch {
	case r.Op0 != 3:
		return false
	case r.Op1 == 3 && r.CRn == 9 && r.CRm >= 12:
		return true
	case r.Op1 == 0 && r.CRn == 9 && (r.CRm == 14 || r.CRm == 9 || r.CRm == 10):
		return true
	case r.Op1 == 3 && r.CRn == 14 && r.CRm >= 8:
		return true
	case r.Op1 == 3 && r.CRn == 14 && r.CRm == 2 && r.Op2 <= 2:
		return true
	}
	return false
}

// emulateSysReg handles the trapped accesses that have a meaning for a
// guest: SGI generation (HCR_EL2.IMO traps ICC_SGI*R_EL1), reads of the
// physical counter (CNTHCTL_EL2.EL1PCTEN is clear), which return the VM's
// virtual count, and the debug registers (debug.go). Others fall through
// to an Undefined Instruction.
func (h *Hyp) emulateSysReg(r CPU, v *VCPU, reg cpu.SysReg, write bool, xt int) bool {
	c := &v.Ctx
	val := func() uint64 {
		if xt == 31 {
			return 0
		}
		return c.X[xt]
	}
	switch {
	case write && isSGIR(reg):
		if v.VM.vgic == nil {
			return false
		}
		vm := v.VM
		vm.vgic.SGI(v.Index, val(), func(t *vgic.CPU) {
			if t != v.gic { // the sender flushes before it runs again
				h.notify(vm.VCPUs[t.Index])
			}
		})
		return true
	case !write && reg == (cpu.SysReg{Op0: 3, Op1: 3, CRn: 14, CRm: 0, Op2: 1}): // CNTPCT_EL0
		if xt != 31 {
			c.X[xt] = r.Counter() - v.VM.cntvoff
		}
		return true
	case reg.Op0 == 2:
		return h.emulateDebugAt(r, v, reg, write, xt)
	case razWI(reg):
		if !write && xt != 31 {
			c.X[xt] = 0
		}
		return true
	}
	if id, ok := h.idReg(reg); ok && !write {
		if xt != 31 {
			c.X[xt] = id
		}
		return true
	}
	return false
}

// emulateDebugAt is emulateDebug on the MSR's or MRS's Xt.
func (h *Hyp) emulateDebugAt(r CPU, v *VCPU, reg cpu.SysReg, write bool, xt int) bool {
	var val uint64
	if write && xt != 31 {
		val = v.Ctx.X[xt]
	}
	if !h.emulateDebug(r, v, reg, write, &val) {
		return false
	}
	if !write && xt != 31 {
		v.Ctx.X[xt] = val
	}
	return true
}

// vcpuByMPIDR finds the vCPU a PSCI call names by its MPIDR affinity:
// Aff0 is the index, the higher levels are zero.
func (vm *VM) vcpuByMPIDR(mpidr uint64) *VCPU {
	if mpidr&^0xff != 0 || int(mpidr) >= len(vm.VCPUs) {
		return nil
	}
	return vm.VCPUs[mpidr]
}

// waitForInterrupt is WFI: the vCPU goes on at once if it has an interrupt
// to take, and blocks until one arrives otherwise.
func (h *Hyp) waitForInterrupt(v *VCPU) Action {
	if v.VM.vgic != nil && v.VM.vgic.HasPending(v.gic) {
		return Resume
	}
	return Block
}
