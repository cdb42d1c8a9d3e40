// Package pl031 is the real-time clock guests find at QEMU virt's
// 0x0901_0000, emulated by the control partition over forwarded MMIO
// (VM_MMIO_MAP): a PrimeCell PL031 (Arm DDI 0224) counting seconds from
// the host's clock. Its match interrupt is not raised: the control
// partition cannot inject interrupts, so alarms never fire.
package pl031

// Register offsets (DDI 0224, 3.2 "Summary of RTC registers").
const (
	RTCDR     = 0x000 // data: the current time in seconds
	RTCMR     = 0x004 // match
	RTCLR     = 0x008 // load: sets the time
	RTCCR     = 0x00c // control: bit 0 starts the counter (always on here)
	RTCIMSC   = 0x010
	RTCRIS    = 0x014
	RTCMIS    = 0x018
	RTCICR    = 0x01c
	PeriphID0 = 0xfe0 // PeriphID0-3, then PCellID0-3 at 0xff0
)

// PeriphID 0x00041031 (part 0x031, designer Arm 0x41) and the PrimeCell
// ID, which the AMBA bus matches drivers on (DDI 0224, 3.3.10-3.3.11).
var ids = [8]uint8{0x31, 0x10, 0x04, 0x00, 0x0d, 0xf0, 0x05, 0xb1}

// Size is the register frame's size.
const Size = 0x1000

// RTC is one guest's clock. Now returns the host's time in seconds.
type RTC struct {
	Now    func() uint64
	offset uint64 // what the guest loaded, less Now() then
	match  uint32
	imsc   uint32
}

// Read emulates a register read; unknown offsets read as zero.
func (r *RTC) Read(off uint64) uint32 {
	switch {
	case off == RTCDR:
		return uint32(r.Now() + r.offset)
	case off == RTCMR:
		return r.match
	case off == RTCCR:
		return 1
	case off == RTCIMSC:
		return r.imsc
	case off >= PeriphID0 && off < PeriphID0+0x20 && off%4 == 0:
		return uint32(ids[(off-PeriphID0)/4])
	}
	return 0
}

// Write emulates a register write; read-only and unknown offsets ignore it.
func (r *RTC) Write(off uint64, v uint32) {
	switch off {
	case RTCLR:
		r.offset = uint64(v) - r.Now()
	case RTCMR:
		r.match = v
	case RTCIMSC:
		r.imsc = v & 1
	}
}
