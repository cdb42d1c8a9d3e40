//go:build tamago

// Command badvirtio is a hostile virtio driver: a TamaGo guest given one
// disk (bulkhead run --disk) that programs its virtio-blk transport at
// 0x0a000000 (VIRTIO 1.2, 4.2.3) by hand and posts chains the mediation
// must refuse: a loop, a buffer outside its RAM, a head or a next past the
// queue, an indirect descriptor, a readable buffer after a writable one, an
// available index far ahead, a queue whose size is not a power of two.
// Each must leave the device asking to be reset (DEVICE_NEEDS_RESET) and
// nothing else: after a reset, a well-formed read of sector 0 must return
// the disk's first bytes, which the test wrote.
//
// Each case prints "badvirtio: ok NAME" or "badvirtio: FAIL NAME: why";
// the exit status is the number of failures.
package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"unsafe"

	"github.com/bulkhead-hv/bulkhead/abi"
	vm "github.com/bulkhead-hv/bulkhead/board/bulkheadvm"
	"github.com/bulkhead-hv/bulkhead/virtio/mmioreg"
)

const (
	base        = 0x0a000000
	statusReset = 64 // DEVICE_NEEDS_RESET
	descNext    = 1
	descWrite   = 2
	descIndir   = 4
	num         = 8
)

var (
	failures int
	dma      vm.DMA
	// The rings and buffers, in the guest's own RAM (IPA = VA).
	desc, avail, used, hdr, data, status []byte
)

func pa(b []byte) uint64 { return uint64(uintptr(unsafe.Pointer(&b[0]))) }

func reg(off uint64) uint32       { return vm.Read32(base + off) }
func setReg(off uint64, v uint32) { vm.Write32(base+off, v) }

// setup resets the device and sets queue 0 up with size n, as a driver
// does (3.1.1, 4.2.3.2).
func setup(n uint32) {
	setReg(mmioreg.Status, 0)
	setReg(mmioreg.Status, mmioreg.StatusAcknowledge|mmioreg.StatusDriver)
	setReg(mmioreg.DriverFeaturesSel, 1)
	setReg(mmioreg.DriverFeatures, 1) // VIRTIO_F_VERSION_1
	setReg(mmioreg.DriverFeaturesSel, 0)
	setReg(mmioreg.DriverFeatures, 0)
	setReg(mmioreg.Status, mmioreg.StatusAcknowledge|mmioreg.StatusDriver|mmioreg.StatusFeaturesOK)
	setReg(mmioreg.QueueSel, 0)
	setReg(mmioreg.QueueNum, n)
	for _, r := range []struct {
		lo, hi uint64
		b      []byte
	}{{mmioreg.QueueDescLow, mmioreg.QueueDescHigh, desc}, {mmioreg.QueueDriverLow, mmioreg.QueueDriverHigh, avail},
		{mmioreg.QueueDeviceLow, mmioreg.QueueDeviceHigh, used}} {
		clear(r.b)
		setReg(r.lo, uint32(pa(r.b)))
		setReg(r.hi, uint32(pa(r.b)>>32))
	}
	setReg(mmioreg.QueueReady, 1)
	setReg(mmioreg.Status, mmioreg.StatusAcknowledge|mmioreg.StatusDriver|mmioreg.StatusFeaturesOK|mmioreg.StatusDriverOK)
}

func setDesc(i int, addr uint64, n uint32, flags, next uint16) {
	e := desc[16*i:]
	binary.LittleEndian.PutUint64(e, addr)
	binary.LittleEndian.PutUint32(e[8:], n)
	binary.LittleEndian.PutUint16(e[12:], flags)
	binary.LittleEndian.PutUint16(e[14:], next)
}

// post makes head available with index idx, and notifies.
func post(head uint16, idx uint16) {
	binary.LittleEndian.PutUint16(avail[4:], head)
	dma.Barrier()
	binary.LittleEndian.PutUint16(avail[2:], idx)
	dma.Barrier()
	setReg(mmioreg.QueueNotify, 0)
}

// waitFor polls cond for up to a second of the virtual counter.
func waitFor(cond func() bool) bool {
	end := vm.Counter() + vm.CounterFrequency()
	for vm.Counter() < end {
		if cond() {
			return true
		}
		vm.Hypercall(abi.YIELD, 100) // a short nap
	}
	return cond()
}

func check(name string, ok bool, format string, args ...any) {
	if ok {
		fmt.Printf("badvirtio: ok %s\n", name)
		return
	}
	failures++
	fmt.Printf("badvirtio: FAIL %s: %s\n", name, fmt.Sprintf(format, args...))
}

// readChain lays out a well-formed read of sector 0 in descriptors 0-2.
func readChain() {
	clear(hdr)
	setDesc(0, pa(hdr), 16, descNext, 1)
	setDesc(1, pa(data), 512, descNext|descWrite, 2)
	setDesc(2, pa(status), 1, descWrite, 0)
}

func main() {
	desc, _ = dma.Alloc(16 * num)
	avail, _ = dma.Alloc(6 + 2*num)
	used, _ = dma.Alloc(6 + 8*num)
	hdr, _ = dma.Alloc(16)
	data, _ = dma.Alloc(512)
	status, _ = dma.Alloc(1)
	if reg(mmioreg.MagicValue) != mmioreg.Magic || reg(mmioreg.DeviceID) != mmioreg.DeviceBlock {
		fmt.Printf("badvirtio: no virtio-blk device at %#x: run with --disk\n", base)
		os.Exit(100)
	}
	outside := uint64(0x1000) // below the guest's RAM
	for _, c := range []struct {
		name  string
		n     uint32
		build func()
	}{
		{"loop", num, func() {
			setDesc(0, pa(hdr), 16, descNext, 1)
			setDesc(1, pa(data), 16, descNext|descWrite, 0)
			post(0, 1)
		}},
		{"buffer-outside-ram", num, func() {
			readChain()
			setDesc(1, outside, 512, descNext|descWrite, 2)
			post(0, 1)
		}},
		{"head-past-queue", num, func() { readChain(); post(num+1, 1) }},
		{"next-past-queue", num, func() { readChain(); setDesc(1, pa(data), 512, descNext|descWrite, 200); post(0, 1) }},
		{"indirect", num, func() { readChain(); setDesc(0, pa(hdr), 16, descIndir, 0); post(0, 1) }},
		{"readable-after-writable", num, func() { readChain(); setDesc(2, pa(status), 1, 0, 0); post(0, 1) }},
		{"length-overflow", num, func() {
			readChain()
			setDesc(1, pa(data), 0xffffffff, descNext|descWrite, 2)
			post(0, 1)
		}},
		{"index-far-ahead", num, func() { readChain(); post(0, 100) }},
		{"queue-size-not-power-of-two", 6, func() { readChain(); post(0, 1) }},
	} {
		setup(c.n)
		c.build()
		broke := waitFor(func() bool { return reg(mmioreg.Status)&statusReset != 0 })
		check(c.name, broke, "status %#x: the device does not ask to be reset", reg(mmioreg.Status))
		check(c.name+"-not-served", binary.LittleEndian.Uint16(used[2:]) == 0, "the device used the bad chain (used idx %d)", binary.LittleEndian.Uint16(used[2:]))
	}

	// After a reset the device works: sector 0 holds what the test wrote.
	setup(num)
	readChain()
	status[0] = 0xff
	post(0, 1)
	done := waitFor(func() bool { return binary.LittleEndian.Uint16(used[2:]) == 1 })
	check("read-after-reset", done && status[0] == 0, "used idx %d, status %#x", binary.LittleEndian.Uint16(used[2:]), status[0])
	want := bytes.Repeat([]byte("bulkhead-sector0"), 32)
	check("read-data", bytes.Equal(data, want), "sector 0 reads %q", data[:32])
	fmt.Printf("badvirtio: %d failures\n", failures)
	os.Exit(failures)
}
