// Package pl031 is the real-time clock guests find at QEMU virt's
// 0x0901_0000, emulated by the control partition over forwarded MMIO
// (VM_MMIO_MAP): a PrimeCell PL031 (Arm DDI 0224) counting seconds from
// the host's clock. Its interrupt output is Line, which the control
// partition drives into the guest with VM_IRQ_LINE.
package pl031

// Register offsets (DDI 0224, 3.2 "Summary of RTC registers").
const (
	RTCDR     = 0x000 // data: the current time in seconds
	RTCMR     = 0x004 // match
	RTCLR     = 0x008 // load: sets the time
	RTCCR     = 0x00c // control: bit 0 starts the counter (always on here)
	RTCIMSC   = 0x010 // interrupt mask set and clear
	RTCRIS    = 0x014 // raw interrupt status
	RTCMIS    = 0x018 // masked interrupt status
	RTCICR    = 0x01c // interrupt clear
	PeriphID0 = 0xfe0 // PeriphID0-3, then PCellID0-3 at 0xff0
)

// PeriphID 0x00141031 (part 0x031, designer Arm 0x41, revision 1) and
// the PrimeCell ID, which the AMBA bus matches drivers on (DDI 0224,
// 3.3.10-3.3.11); the same as QEMU's PL031.
var ids = [8]uint8{0x31, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1}

// Size is the register frame's size.
const Size = 0x1000

// RTC is one guest's clock. Now returns the host's time in seconds.
type RTC struct {
	Now    func() uint64
	offset uint64 // what the guest loaded, less Now() then
	load   uint32 // RTCLR as last written
	match  uint32
	imsc   uint32
	ris    uint32
	// alarm is the host second at which the count reaches the match
	// register, while armed: a write to RTCMR or RTCLR arms it, and it
	// fires once (DDI 0224, 2.2.2).
	alarm uint64
	armed bool
}

func (r *RTC) count() uint32 { return uint32(r.Now() + r.offset) }

// arm sets the alarm for the next time the 32-bit count equals the match
// register, now if it does already.
func (r *RTC) arm() {
	ticks := r.match - r.count()
	if ticks == 0 {
		r.ris, r.armed = 1, false
		return
	}
	r.alarm, r.armed = r.Now()+uint64(ticks), true
}

// poll raises the raw interrupt once the alarm's second has come.
func (r *RTC) poll() {
	if r.armed && r.Now() >= r.alarm {
		r.ris, r.armed = 1, false
	}
}

// Line is the interrupt output, RTCINTR: high while the match interrupt
// is raised and unmasked. The caller drives the guest's SPI to follow it,
// after every access and as time passes.
func (r *RTC) Line() bool {
	r.poll()
	return r.ris&r.imsc != 0
}

// Read emulates a register read; unknown offsets read as zero.
func (r *RTC) Read(off uint64) uint32 {
	r.poll()
	switch {
	case off == RTCDR:
		return r.count()
	case off == RTCMR:
		return r.match
	case off == RTCLR:
		return r.load
	case off == RTCCR:
		return 1
	case off == RTCIMSC:
		return r.imsc
	case off == RTCRIS:
		return r.ris
	case off == RTCMIS:
		return r.ris & r.imsc
	case off >= PeriphID0 && off < PeriphID0+0x20 && off%4 == 0:
		return uint32(ids[(off-PeriphID0)/4])
	}
	return 0
}

// Write emulates a register write; read-only and unknown offsets ignore it.
func (r *RTC) Write(off uint64, v uint32) {
	r.poll()
	switch off {
	case RTCLR:
		r.load = v
		r.offset = uint64(v) - r.Now()
		r.arm()
	case RTCMR:
		r.match = v
		r.arm()
	case RTCIMSC:
		r.imsc = v & 1
	case RTCICR:
		r.ris &^= v & 1
	}
}
