//go:build tamago

package bulkheadvm

import (
	"sync/atomic"
	"unsafe"

	"github.com/bulkhead-hv/bulkhead/gic"
)

// The guest's GICv3, at QEMU virt's addresses (emulated by the hypervisor).
const (
	GICDBase     = 0x08000000
	GICRBase     = 0x080a0000
	GICRStride   = 0x20000
	VirtualTimer = 27 // PPI
)

func cpuInterfaceOn()
func ack() uint32
func eoi(intid uint32)
func sgi(v uint64)
func wfi()
func setTimer(cval, ctl uint64)
func readCNTV_CTL() uint64
func writeCNTV_CTL(v uint64)
func writeCNTV_CVAL(v uint64)

func mmioWrite(addr uint64, v uint32) {
	atomic.StoreUint32((*uint32)(unsafe.Pointer(uintptr(addr))), v)
}

// GICInit brings the GIC up for ncpus vCPUs: every redistributor awake
// with its SGIs and PPIs in group 1, the distributor's group 1 on, and
// this CPU's interface enabled. The interrupts stay disabled until
// Enable; they are taken by polling (WaitInterrupt), with PSTATE.I masked.
func GICInit(ncpus int) {
	for i := 0; i < ncpus; i++ {
		rd := uint64(GICRBase + i*GICRStride)
		mmioWrite(rd+gic.GICR_WAKER, 0)
		mmioWrite(rd+gic.GICR_IGROUPR0, 0xffffffff)
	}
	mmioWrite(GICDBase+gic.GICD_CTLR, gic.GICD_CTLR_EnableGrp1|gic.GICD_CTLR_ARE)
	cpuInterfaceOn()
}

// Enable enables an SGI or PPI of vCPU cpu.
func Enable(cpu int, intid uint32) {
	mmioWrite(uint64(GICRBase+cpu*GICRStride)+gic.GICR_ISENABLER0, 1<<intid)
}

// WaitInterrupt sleeps until an interrupt is pending, acknowledges it and
// returns its INTID. The caller ends it with EOI.
func WaitInterrupt() uint32 {
	for {
		if id := ack(); id < 1020 {
			return id
		}
		wfi()
	}
}

// PollInterrupt acknowledges a pending interrupt without waiting; ok is
// false if none is pending.
func PollInterrupt() (uint32, bool) {
	id := ack()
	return id, id < 1020
}

// EOI ends an interrupt.
func EOI(intid uint32) { eoi(intid) }

// SendSGI sends SGI intid to the vCPU with affinity Aff0 = cpu.
func SendSGI(cpu int, intid uint32) { sgi(uint64(intid)<<24 | 1<<uint(cpu)) }

// SetTimer arms the virtual timer to fire when the virtual count reaches
// cval; 0 disarms it.
func SetTimer(cval uint64) {
	if cval == 0 {
		setTimer(0, 0)
		return
	}
	setTimer(cval, 1) // ENABLE, IMASK clear
}

// Counter reads the virtual count.
func Counter() uint64 { return readCNTVCT() }

// TimerControl reads CNTV_CTL_EL0 (ENABLE, IMASK, ISTATUS: Arm ARM
// D11.2.4); SetTimerControl and SetTimerCompare write CNTV_CTL_EL0 and
// CNTV_CVAL_EL0 alone.
func TimerControl() uint64        { return readCNTV_CTL() }
func SetTimerControl(ctl uint64)  { writeCNTV_CTL(ctl) }
func SetTimerCompare(cval uint64) { writeCNTV_CVAL(cval) }

// CPUInterfaceOn enables this vCPU's GIC CPU interface (system
// registers, PMR 0xff, group 1).
func CPUInterfaceOn() { cpuInterfaceOn() }

// SGI1R writes ICC_SGI1R_EL1: an SGI as the GICv3 specification encodes
// it (IHI 0069, 12.2.23).
func SGI1R(v uint64) { sgi(v) }
