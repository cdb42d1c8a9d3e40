//go:build tamago

package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/bulkhead-hv/bulkhead/abi"
	vm "github.com/bulkhead-hv/bulkhead/board/bulkheadvm"
	"github.com/bulkhead-hv/bulkhead/guestdt"
	"github.com/bulkhead-hv/bulkhead/vdev/virtioblk"
	"github.com/bulkhead-hv/bulkhead/virtio"
)

// A drive is one of the machine's disks, driven here: under QEMU a
// virtio-blk device whose serial names it (bulkhead up --disk NAME=FILE).
// A guest disk is backed by a whole drive.
type drive struct {
	name string
	blk  *virtio.Blk
	// writer is the guest that has it writable; readers counts those
	// that have it read-only. A drive one guest writes is no other's.
	writer  *guest
	readers int
}

var drives []*drive

// openDrives finds the machine's virtio-blk devices.
func openDrives() {
	for _, base := range virtio.FindAll(vm.MMIO{}, transports(), virtio.DeviceBlock) {
		b, err := virtio.OpenBlk(vm.MMIO{}, &dma, base)
		if err != nil {
			fmt.Printf("control: disk at %#x: %v\n", base, err)
			continue
		}
		b.Idle = func() { vm.Hypercall(abi.YIELD) }
		name := b.ID()
		if name == "" {
			name = fmt.Sprintf("disk%d", len(drives))
		}
		drives = append(drives, &drive{name: name, blk: b})
		ro := ""
		if b.ReadOnly() {
			ro = ", read-only"
		}
		fmt.Printf("control: disk %s: %d MiB at %#x%s\n", name, b.Size()>>20, base, ro)
	}
	sort.Slice(drives, func(i, j int) bool { return drives[i].name < drives[j].name })
}

func findDrive(name string) *drive {
	for _, d := range drives {
		if d.name == name {
			return d
		}
	}
	return nil
}

// diskSpec is a guest disk a run asks for.
type diskSpec struct {
	Name     string `json:"name"`
	ReadOnly bool   `json:"ro,omitempty"`
}

// guestDisk is a guest's virtio-blk device: transport i of its tree.
type guestDisk struct {
	dev   *virtioblk.Device
	drive *drive
	ro    bool
	base  uint64
	intid uint32
	line  bool
}

// attachDisks checks that the drives exist and are free for the guest.
func attachDisks(specs []diskSpec) error {
	if len(specs) > guestdt.MaxVirtio {
		return fmt.Errorf("%d disks: at most %d", len(specs), guestdt.MaxVirtio)
	}
	seen := map[string]bool{}
	for _, s := range specs {
		d := findDrive(s.Name)
		switch {
		case d == nil:
			var names []string
			for _, d := range drives {
				names = append(names, d.name)
			}
			if len(names) == 0 {
				return fmt.Errorf("no disk named %q: the instance has none (bulkhead up --disk NAME=FILE)", s.Name)
			}
			return fmt.Errorf("no disk named %q: the instance has %s", s.Name, strings.Join(names, ", "))
		case seen[s.Name]:
			return fmt.Errorf("disk %s given twice", s.Name)
		case d.writer != nil:
			return fmt.Errorf("disk %s is attached writable to %s", s.Name, d.writer.boot.Name)
		case !s.ReadOnly && d.readers > 0:
			return fmt.Errorf("disk %s is attached read-only to %d other VM(s): attach it read-only (,ro) too", s.Name, d.readers)
		case !s.ReadOnly && d.blk.ReadOnly():
			return fmt.Errorf("disk %s is read-only: attach it with ,ro", s.Name)
		}
		seen[s.Name] = true
	}
	return nil
}

// mapDisks gives the VM handle g's disks: a virtio-mmio transport each,
// forwarded here with its queues mediated by the hypervisor.
func (g *guest) mapDisks(specs []diskSpec) error {
	for i, s := range specs {
		base, intid := guestdt.VirtioAddr(i)
		if code, _ := call(abi.VM_MMIO_MAP, g.handle, base, guestdt.VirtioStride, abi.MapVirtio); code != abi.SUCCESS {
			return fmt.Errorf("VM_MMIO_MAP of disk %s: %s", s.Name, errText(code))
		}
		d := findDrive(s.Name)
		gd := &guestDisk{drive: d, ro: s.ReadOnly, base: base, intid: intid}
		gd.dev = virtioblk.New(d.blk, s.ReadOnly, d.name, mediatedQueue{vm: g.handle, base: base})
		g.disks = append(g.disks, gd)
		if gd.ro {
			d.readers++
		} else {
			d.writer = g
		}
	}
	return nil
}

// releaseDisks gives the guest's drives back, flushed.
func (g *guest) releaseDisks() {
	for _, gd := range g.disks {
		if gd.ro {
			gd.drive.readers--
			continue
		}
		gd.drive.writer = nil
		if err := gd.drive.blk.Flush(); err != nil {
			fmt.Printf("control: disk %s: flush after %s: %v\n", gd.drive.name, g.boot.Name, err)
		}
	}
	g.disks = nil
}

// diskAt returns the guest disk whose transport holds ipa (none for a
// nil guest).
func (g *guest) diskAt(ipa uint64) *guestDisk {
	if g == nil {
		return nil
	}
	for _, gd := range g.disks {
		if ipa >= gd.base && ipa < gd.base+guestdt.VirtioStride {
			return gd
		}
	}
	return nil
}

// driveLine makes the disk's interrupt line follow its device's output.
func (g *guest) driveLine(gd *guestDisk) {
	level := gd.dev.Line()
	if level == gd.line || g.stopped {
		return
	}
	var v uint64
	if level {
		v = 1
	}
	if code, _ := call(abi.VM_IRQ_LINE, g.handle, uint64(gd.intid), v); code == abi.SUCCESS {
		gd.line = level
	}
}

// mediatedQueue is queue 0 of a guest's virtio-blk transport, reached
// through the hypervisor (VM_VIRTQ_*): the control partition holds no
// mapping of the guest's memory, only the chains the guest posted.
type mediatedQueue struct{ vm, base uint64 }

func (q mediatedQueue) Pop() (uint16, uint32, uint32, bool, error) {
	code, found, head, lens := vm.Hypercall4(abi.VM_VIRTQ_POP, q.vm, q.base, 0)
	switch {
	case int64(code) == abi.NEEDS_RESET:
		return 0, 0, 0, false, virtioblk.ErrNeedsReset
	case code != abi.SUCCESS:
		return 0, 0, 0, false, fmt.Errorf("VM_VIRTQ_POP: %s", errText(int64(code)))
	case found == 0:
		return 0, 0, 0, false, nil
	}
	return uint16(head), uint32(lens >> 32), uint32(lens), true, nil
}

func (q mediatedQueue) copy(fid uint32, head uint16, off uint32, b []byte) error {
	for len(b) > 0 {
		n := min(len(b), abi.VirtqMaxCopy)
		if code, _ := call(fid, q.vm, q.base, 0, uint64(head), uint64(off), addr(b), uint64(n)); code != abi.SUCCESS {
			return fmt.Errorf("%s: %s", map[uint32]string{abi.VM_VIRTQ_READ: "VM_VIRTQ_READ", abi.VM_VIRTQ_WRITE: "VM_VIRTQ_WRITE"}[fid], errText(code))
		}
		b, off = b[n:], off+uint32(n)
	}
	return nil
}

func (q mediatedQueue) Read(head uint16, off uint32, b []byte) error {
	return q.copy(abi.VM_VIRTQ_READ, head, off, b)
}

func (q mediatedQueue) Write(head uint16, off uint32, b []byte) error {
	return q.copy(abi.VM_VIRTQ_WRITE, head, off, b)
}

func (q mediatedQueue) Push(head uint16, written uint32) error {
	if code, _ := call(abi.VM_VIRTQ_PUSH, q.vm, q.base, 0, uint64(head), uint64(written)); code != abi.SUCCESS {
		return fmt.Errorf("VM_VIRTQ_PUSH: %s", errText(code))
	}
	return nil
}

// serveDisk answers a forwarded access to one of g's disks, or a queue
// notification (which takes no reply). It reports whether to reply.
func (g *guest) serveDisk(gd *guestDisk, w [abi.MMIOWords]uint64) (value uint64, reply bool) {
	off := w[abi.MMIOIPA] - gd.base
	switch w[abi.MMIOWrite] {
	case abi.MMIONotify:
		gd.dev.Notify(uint32(w[abi.MMIOValue]))
		g.driveLine(gd)
		return 0, false
	case 1:
		gd.dev.Write(off, int(w[abi.MMIOSize]), w[abi.MMIOValue])
	default:
		value = gd.dev.Read(off, int(w[abi.MMIOSize]))
	}
	// Before the reply: an InterruptACK completes with the line low.
	g.driveLine(gd)
	return value, true
}

// diskInfo describes g's disks for ps and stats: the drive, the guest's
// device name and the device's counters.
func (g *guest) diskInfo() []map[string]any {
	var out []map[string]any
	for i, gd := range g.disks {
		st := gd.dev.Stats
		out = append(out, map[string]any{"drive": gd.drive.name, "dev": "vd" + string(rune('a'+i)), "ro": gd.ro,
			"reads": st.Reads, "writes": st.Writes, "flushes": st.Flushes, "errors": st.Errors,
			"read_bytes": st.ReadBytes, "written_bytes": st.WrittenBytes})
	}
	return out
}
