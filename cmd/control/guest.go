//go:build tamago

package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"unsafe"

	"github.com/bulkhead-hv/bulkhead/abi"
	"github.com/bulkhead-hv/bulkhead/bootimage"
	"github.com/bulkhead-hv/bulkhead/cpu"
	"github.com/bulkhead-hv/bulkhead/guestdt"
	"github.com/bulkhead-hv/bulkhead/hyp"
	"github.com/bulkhead-hv/bulkhead/vdev/pl031"
)

// guest is a VM the control partition started, from VM_CREATE until
// VM_DESTROY.
type guest struct {
	// boot and image are what it was started from, kept to start it
	// again when it asks to be reset; stagePA is the upload holding them,
	// if any, freed with the guest.
	boot    bootSpec
	image   []byte
	stagePA uint64
	why     uint64 // why it stopped (abi.Stop*)
	// rtc is its real-time clock, emulated here over forwarded MMIO;
	// rtcLine is the level its interrupt line was last driven to.
	rtc     *pl031.RTC
	rtcLine bool
	// virtio are its virtio-mmio transports, in the order of its tree;
	// disks its virtio-blk devices among them, first.
	virtio  []*virtdev
	disks   []*guestDisk
	net     *guestNet // its network device, after the disks
	handle  uint64
	pa      uint64
	ram     []uint64 // the placer's ranges it holds, by their PA
	linux   bool
	stopped bool  // VM_STATUS said so
	status  int32 // its exit status, once stopped
	// input waits for room in the VM's console input ring.
	input []byte
	// line collects console output into lines when there is no host
	// channel to send it to.
	line []byte
	// tail is its recent console, for a network client that attaches.
	tail []byte
}

// placer hands out pool memory for guests and takes it back when they are
// destroyed.
var placer *hyp.Placer

// bootSpec is what a guest is started from, besides its image.
type bootSpec struct {
	hyp.GuestSpec
	Cmdline string
	Initrd  []byte
	PCPUs   []int // the physical CPUs its vCPUs are pinned to, in turn; none: the hypervisor places them
	Disks   []diskSpec
	Net     bool   // a network device on the instance's uplink
	Peers   string // the group of guests it may reach there; "": none
}

// start places a guest's RAM in the pool, loads its image (an AArch64 ELF,
// a Linux arm64 Image or a gzip-compressed one), its initrd and its device
// tree there, then gives the pages to a new VM and starts it. Nothing of
// the attempt remains when it fails.
func start(s bootSpec, image []byte) (*guest, error) {
	if err := attachDisks(s.Disks); err != nil {
		return nil, err
	}
	if s.Net && uplink == nil {
		return nil, fmt.Errorf("the instance has no uplink for --net (bulkhead up --net user)")
	}
	im, err := bootimage.Parse(image)
	if err != nil {
		return nil, err
	}
	plan, err := im.Plan(hyp.GuestIPA, s.Mem, uint64(len(s.Initrd)))
	if err != nil {
		return nil, err
	}
	pa, err := placer.Place(s.Mem)
	if err != nil {
		return nil, err
	}
	g := &guest{boot: s, image: image, pa: pa, ram: []uint64{pa}, linux: im.Kind != bootimage.KindELF}
	ram := mem(pa, s.Mem)
	fail := func(err error) (*guest, error) {
		placer.Free(pa)
		return nil, err
	}
	clear(ram)
	if err := im.Load(ram, plan); err != nil {
		return fail(err)
	}
	if len(s.Initrd) > 0 {
		copy(ram[plan.InitrdAddr-hyp.GuestIPA:], s.Initrd)
	}
	dtb, err := guestdt.Build(guestdt.Config{
		RAMBase: hyp.GuestIPA, RAMSize: s.Mem, CPUs: s.CPUs, Bootargs: s.Cmdline,
		InitrdStart: plan.InitrdAddr, InitrdEnd: plan.InitrdAddr + plan.InitrdSize,
		Virtio: s.transports(),
	})
	if err != nil {
		return fail(err)
	}
	copy(ram[plan.DTBAddr-hyp.GuestIPA:], dtb)
	// Linux takes its device tree in x0; other guests get the argument.
	x0 := s.Arg
	if g.linux {
		x0 = plan.DTBAddr
	}

	var name [16]byte
	copy(name[:], s.Name)
	code, h := call(abi.VM_CREATE, binary.LittleEndian.Uint64(name[:]), binary.LittleEndian.Uint64(name[8:]))
	if code != abi.SUCCESS {
		return fail(fmt.Errorf("VM_CREATE: %s", errText(code)))
	}
	g.handle = h
	destroy := func(err error) (*guest, error) {
		call(abi.VM_DESTROY, h)
		g.releaseDisks()
		g.releaseNet()
		return fail(err)
	}
	if code, _ := call(abi.VM_MMIO_MAP, h, guestdt.RTCBase, guestdt.RTCSize); code != abi.SUCCESS {
		return destroy(fmt.Errorf("VM_MMIO_MAP: %s", errText(code)))
	}
	g.rtc = &pl031.RTC{Now: hostSeconds}
	if err := g.mapDisks(s.Disks); err != nil {
		return destroy(err)
	}
	if s.Net {
		if err := g.mapNet(s.Peers); err != nil {
			return destroy(err)
		}
	}
	if code, _ := call(abi.VM_DONATE, h, pa, hyp.GuestIPA, s.Mem, abi.PermRead|abi.PermWrite|abi.PermExec); code != abi.SUCCESS {
		return destroy(fmt.Errorf("VM_DONATE: %s", errText(code)))
	}
	for i := 0; i < s.CPUs; i++ {
		// TamaGo guests start every vCPU at the entry point; Linux
		// starts its secondaries with PSCI CPU_ON.
		var flags uint64
		if g.linux && i > 0 {
			flags = abi.VCPUOff
		}
		var pcpu uint64 // VCPU_CREATE's x5: the physical CPU plus one; 0 lets the hypervisor pick
		if len(s.PCPUs) > 0 {
			pcpu = uint64(s.PCPUs[i%len(s.PCPUs)]) + 1
		}
		if code, _ := call(abi.VCPU_CREATE, h, plan.Entry, x0, flags, pcpu); code != abi.SUCCESS {
			if code == abi.INVALID_PARAMETER && pcpu != 0 {
				return destroy(fmt.Errorf("vCPU %d: physical CPU %d: the machine has fewer CPUs", i, pcpu-1))
			}
			return destroy(fmt.Errorf("VCPU_CREATE: %s", errText(code)))
		}
	}
	if code, _ := call(abi.VM_START, h); code != abi.SUCCESS {
		return destroy(fmt.Errorf("VM_START: %s", errText(code)))
	}
	fmt.Printf("control: started %s (%v) as VM %d: %d MiB at PA %#x, %d vCPU(s)\n", s.Name, im.Kind, h, s.Mem>>20, pa, s.CPUs)
	return g, nil
}

func errText(code int64) string {
	switch name := abi.CodeName(code); {
	case code == abi.NO_MEMORY:
		return "the hypervisor is out of table memory (NO_MEMORY)"
	case name != "":
		return name
	}
	return fmt.Sprintf("error %d", code)
}

// conBuf is the page the hypervisor copies console bytes through: the
// control partition's own memory, at IPA = PA.
var conBuf = pageBuffer()

func pageBuffer() []byte {
	b := make([]byte, 2*4096)
	off := (4096 - uintptr(unsafe.Pointer(&b[0]))%4096) % 4096
	return b[off : off+4096]
}

func addr(b []byte) uint64 { return uint64(uintptr(unsafe.Pointer(&b[0]))) }

// drain moves the guest's console output out of the hypervisor, to out.
// It reports whether the ring is empty.
func (g *guest) drain(out func(g *guest, b []byte)) bool {
	for i := 0; i < 16; i++ {
		code, n := call(abi.VM_CONSOLE_READ, g.handle, addr(conBuf), uint64(len(conBuf)))
		if code != abi.SUCCESS || n == 0 {
			return true
		}
		out(g, bytes.Clone(conBuf[:n]))
	}
	return false
}

// feed passes queued input to the guest as far as it takes it.
func (g *guest) feed() {
	for len(g.input) > 0 {
		n := copy(conBuf, g.input)
		code, took := call(abi.VM_CONSOLE_WRITE, g.handle, addr(conBuf), uint64(n))
		if code != abi.SUCCESS || took == 0 {
			return
		}
		g.input = g.input[took:]
	}
}

// stats reads VM_STATS for handle (0: the machine).
func stats(handle uint64) ([abi.StatsWords]uint64, bool) {
	return statsCall(abi.VM_STATS, handle)
}

// cpuStats reads CPU_STATS for physical CPU i.
func cpuStats(i uint64) ([abi.StatsWords]uint64, bool) {
	return statsCall(abi.CPU_STATS, i)
}

// statsCall makes a call that writes StatsWords words into conBuf.
func statsCall(fid uint32, arg uint64) ([abi.StatsWords]uint64, bool) {
	var w [abi.StatsWords]uint64
	code, _ := call(fid, arg, addr(conBuf))
	if code != abi.SUCCESS {
		return w, false
	}
	for i := range w {
		w[i] = binary.LittleEndian.Uint64(conBuf[8*i:])
	}
	return w, true
}

// hostEpoch is the host's clock, in seconds, when the counter read zero:
// run requests carry the host's time.
var hostEpoch uint64

func hostSeconds() uint64 { return hostEpoch + cpu.ReadCNTPCT()/cpu.ReadCNTFRQ() }

// setHostTime records the host's time, in seconds since 1970.
func setHostTime(unix uint64) { hostEpoch = unix - cpu.ReadCNTPCT()/cpu.ReadCNTFRQ() }

// driveRTC makes the guest's RTC interrupt line follow the PL031's output,
// which changes with its registers and with time (an alarm's second).
func (g *guest) driveRTC() {
	if g.rtc == nil || g.stopped {
		return
	}
	level := g.rtc.Line()
	if level == g.rtcLine {
		return
	}
	var v uint64
	if level {
		v = 1
	}
	// BUSY: the VM is stopping; nothing left to drive.
	if code, _ := call(abi.VM_IRQ_LINE, g.handle, guestdt.RTCIntID, v); code == abi.SUCCESS {
		g.rtcLine = level
	}
}

// serveMMIO answers the guests' accesses to the devices emulated here.
func (c *control) serveMMIO() (served bool) {
	if len(c.guests) == 0 {
		return false // nobody's accesses to forward: spare the call
	}
	for i := 0; i < 64; i++ {
		code, found := call(abi.VM_MMIO_NEXT, addr(conBuf), uint64(len(conBuf)))
		if code != abi.SUCCESS || found == 0 {
			return served
		}
		served = true
		var w [abi.MMIOWords]uint64
		for j := range w {
			w[j] = binary.LittleEndian.Uint64(conBuf[8*j:])
		}
		var value uint64
		var g *guest
		for _, o := range c.guests {
			if o.handle == w[abi.MMIOVM] {
				g = o
			}
		}
		ipa := w[abi.MMIOIPA]
		if vd := g.virtioAt(ipa); vd != nil {
			v, reply := g.serveVirtio(vd, w)
			if reply {
				call(abi.VM_MMIO_REPLY, w[abi.MMIOVM], w[abi.MMIOVCPU], v)
			}
			continue
		}
		if w[abi.MMIOWrite] == abi.MMIONotify {
			continue // no device of a guest that is gone: nobody waits
		}
		if g != nil && g.rtc != nil && ipa >= guestdt.RTCBase && ipa < guestdt.RTCBase+guestdt.RTCSize {
			off := ipa - guestdt.RTCBase
			if w[abi.MMIOWrite] == 1 {
				g.rtc.Write(off&^3, uint32(w[abi.MMIOValue]))
			} else {
				value = uint64(g.rtc.Read(off&^3)) >> (8 * (off & 3))
			}
			// Before the reply: a write to RTCICR completes with the line
			// already low.
			g.driveRTC()
		}
		call(abi.VM_MMIO_REPLY, w[abi.MMIOVM], w[abi.MMIOVCPU], value)
	}
	return served
}

// transports is how many virtio-mmio transports the guest has: its disks,
// then its network device.
func (s bootSpec) transports() int {
	if s.Net {
		return len(s.Disks) + 1
	}
	return len(s.Disks)
}
