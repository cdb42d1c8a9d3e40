//go:build tamago && dmacontrol

// A hostile control partition for the SMMU's test (build tag dmacontrol,
// image bulkhead-control-dma.elf): once its first guest, a victim that
// checks its memory, runs, it points the machine's virtio-blk PCI
// functions' DMA where it must not reach: the victim's donated memory,
// the hypervisor's text and an address beyond RAM, one drive for each,
// as a write (the device reads memory out to its file); then a read into
// the victim's memory (the device writes it). Each drive's DMA is
// expected to be stopped by the SMMU: the files stay as they were, the
// victim's checks find its memory unchanged. Then it watches the victim
// for a second and stops it, so the run ends.
package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"

	"github.com/bulkhead-hv/bulkhead/abi"
	vm "github.com/bulkhead-hv/bulkhead/board/bulkheadvm"
	"github.com/bulkhead-hv/bulkhead/cpu"
	"github.com/bulkhead-hv/bulkhead/virtio"
	"github.com/bulkhead-hv/bulkhead/virtio/mmioreg"
)

func init() { afterStart = dmaAttack }

// virtio-blk request types (VIRTIO 1.2, 5.2.6).
const (
	blkIn  = 0
	blkOut = 1
)

func dmaAttack(c *control) {
	if len(c.guests) == 0 || c.guests[0].boot.Arg>>63 == 0 {
		fmt.Printf("control-dma: the first guest must be the victim (the fuzz guest, argument bit 63 set)\n")
		os.Exit(1)
	}
	victim := c.guests[0]
	// The victim says where its checked memory is; its RAM starts at IPA
	// 0x40000000, at PA victim.pa.
	var filled uint64
	var seen []byte
	for t0 := vm.Counter(); filled == 0 && vm.Counter()-t0 < 30*cpu.ReadCNTFRQ(); {
		victim.drain(func(g *guest, b []byte) {
			c.console(g, b)
			seen = append(seen, b...)
		})
		if i := bytes.Index(seen, []byte("filled at ")); i >= 0 {
			fmt.Sscanf(string(seen[i+len("filled at "):]), "%v", &filled)
		}
		call(abi.YIELD, napMicros)
	}
	if filled < 0x40000000 {
		fmt.Printf("control-dma: the victim never said where its memory is\n")
		os.Exit(1)
	}
	checked := victim.pa + filled - 0x40000000
	targets := []struct {
		what  string
		pa    uint64
		write bool // the device writes memory (a read request)
	}{
		{"the victim's text", victim.pa + 0x10000, false},
		{"the hypervisor's text", 0x40200000, false},
		{"beyond RAM", 0x100_0000_0000, false},
		{"the victim's checked memory", checked + 0x1000, true},
	}
	drives := virtio.FindPCI(pciFuncs, mmioreg.DeviceBlock)
	if len(drives) < len(targets) {
		fmt.Printf("control-dma: %d virtio-blk PCI functions, want %d\n", len(drives), len(targets))
		os.Exit(1)
	}
	for i, tg := range targets {
		f := drives[i]
		d, err := virtio.InitPCI(f, vm.MMIO{}, &dma, 0)
		if err != nil {
			fmt.Printf("control-dma: %v: %v\n", f, err)
			os.Exit(1)
		}
		q, err := d.Queue(0, 8, 0)
		if err != nil {
			fmt.Printf("control-dma: %v: %v\n", f, err)
			os.Exit(1)
		}
		d.Ready()
		hdr, hdrPA := dma.Alloc(16)
		st, stPA := dma.Alloc(1)
		typ := uint32(blkOut)
		if tg.write {
			typ = blkIn
		}
		binary.LittleEndian.PutUint32(hdr, typ)
		st[0] = 0xff
		kind := "read from"
		if tg.write {
			kind = "write to"
		}
		fmt.Printf("control-dma: drive %d (stream %#x): a DMA %s %s at %#x\n", i, f.RequesterID(), kind, tg.what, tg.pa)
		if _, err := q.Post(virtio.Seg{Addr: hdrPA, Len: 16}, virtio.Seg{Addr: tg.pa, Len: 4096, Write: tg.write},
			virtio.Seg{Addr: stPA, Len: 1, Write: true}); err != nil {
			fmt.Printf("control-dma: post: %v\n", err)
			os.Exit(1)
		}
		// QEMU's device completes the request even though every word of
		// its transfer faulted: what moved is for the test to check, in
		// the drive's file and the victim's memory. Wait for it, napping
		// so that the hypervisor reports the faults before the next.
		done := false
		for t0 := vm.Counter(); vm.Counter()-t0 < cpu.ReadCNTFRQ()/2 && !done; {
			done = len(q.Reap()) > 0
			call(abi.YIELD, napMicros)
		}
		for t0 := vm.Counter(); vm.Counter()-t0 < cpu.ReadCNTFRQ()/10; {
			call(abi.YIELD, napMicros)
		}
		fmt.Printf("control-dma: drive %d: completed %v, status %#x\n", i, done, st[0])
	}
	// Let the victim check its memory a few more times, then stop it.
	for t0 := vm.Counter(); vm.Counter()-t0 < cpu.ReadCNTFRQ(); {
		victim.drain(c.console)
		call(abi.YIELD, napMicros)
	}
	call(abi.VM_STOP, victim.handle, abi.StatusStopped)
	fmt.Printf("control-dma: done\n")
}
