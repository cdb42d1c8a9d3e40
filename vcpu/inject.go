package vcpu

import "github.com/bulkhead-hv/bulkhead/cpu"

// Offsets in the guest's EL1 vector table (Arm ARM D1.10.2).
const (
	vecCurrentSP0 = 0x000
	vecCurrentSPx = 0x200
	vecLower64    = 0x400
	vecLower32    = 0x600
	vecSyncOffset = 0x000
)

// ESR ISS fault status for a synchronous external abort (not on a walk).
const fscSyncExternal = 0b010000

// enterEL1 performs, on the saved context, what the CPU does when it takes
// a synchronous exception to EL1: save PC and PSTATE in ELR_EL1/SPSR_EL1,
// set ESR_EL1 and FAR_EL1, mask interrupts, switch to EL1h and jump to the
// right entry of VBAR_EL1.
func (c *Context) enterEL1(esr, far uint64) {
	var off uint64
	switch {
	case c.PSTATE&PSR_nRW != 0:
		off = vecLower32
	case c.PSTATE&PSR_MODE_MASK == PSR_MODE_EL0t:
		off = vecLower64
	case c.PSTATE&PSR_MODE_MASK == PSR_MODE_EL1t:
		off = vecCurrentSP0
	default:
		off = vecCurrentSPx
	}
	c.Sys.ELR_EL1 = c.PC
	c.Sys.SPSR_EL1 = c.PSTATE
	c.Sys.ESR_EL1 = esr
	c.Sys.FAR_EL1 = far
	c.PSTATE = PSR_MODE_EL1h | PSR_DAIF
	c.PC = c.Sys.VBAR_EL1 + off + vecSyncOffset
}

// InjectExternalAbort makes the guest take a synchronous external abort for
// the access at far: the data abort (write or not) or instruction abort
// that stage 2 refused. The exception class says from which EL.
func (c *Context) InjectExternalAbort(instruction bool, far uint64, write bool) {
	lower := c.EL() == 0
	var ec uint64
	switch {
	case instruction && lower:
		ec = cpu.EC_IABT_LOW
	case instruction:
		ec = cpu.EC_IABT_CUR
	case lower:
		ec = cpu.EC_DABT_LOW
	default:
		ec = cpu.EC_DABT_CUR
	}
	iss := uint64(fscSyncExternal)
	if write && !instruction {
		iss |= cpu.ISS_DA_WnR
	}
	c.enterEL1(ec<<cpu.ESR_EC_SHIFT|cpu.ESR_IL|iss, far)
}

// InjectUndefined makes the guest take an Undefined Instruction exception
// for the instruction at PC (for trapped instructions Bulkhead does not
// emulate).
func (c *Context) InjectUndefined() {
	c.enterEL1(cpu.EC_UNKNOWN<<cpu.ESR_EC_SHIFT|cpu.ESR_IL, 0)
}

// SkipInstruction advances past the trapped A64 instruction, as the CPU
// would on executing it: BTYPE is cleared, and so is PSTATE.SS, so that a
// guest stepping the instruction takes its software step exception right
// after it (Arm ARM D2.12.5: the step state machine moves to
// active-pending), not after the next one.
func (c *Context) SkipInstruction() {
	c.PC += 4
	c.PSTATE &^= PSR_BTYPE | PSR_SS
}
