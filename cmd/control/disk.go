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

// guestDisk is a guest's virtio-blk device and the drive behind it.
type guestDisk struct {
	*virtdev
	blk   *virtioblk.Device
	drive *drive
	ro    bool
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

// mapDisks gives the VM handle g's disks: its first virtio-mmio
// transports, in order.
func (g *guest) mapDisks(specs []diskSpec) error {
	for _, s := range specs {
		d := findDrive(s.Name)
		gd := &guestDisk{drive: d, ro: s.ReadOnly}
		vd, err := g.mapVirtio("disk "+s.Name, func(v *virtdev) device {
			gd.blk = virtioblk.New(d.blk, s.ReadOnly, d.name, v.queue(0))
			return gd.blk
		})
		if err != nil {
			return err
		}
		gd.virtdev = vd
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

// diskInfo describes g's disks for ps and stats: the drive, the guest's
// device name and the device's counters.
func (g *guest) diskInfo() []map[string]any {
	var out []map[string]any
	for i, gd := range g.disks {
		st := gd.blk.Stats
		out = append(out, map[string]any{"drive": gd.drive.name, "dev": "vd" + string(rune('a'+i)), "ro": gd.ro,
			"reads": st.Reads, "writes": st.Writes, "flushes": st.Flushes, "errors": st.Errors,
			"read_bytes": st.ReadBytes, "written_bytes": st.WrittenBytes})
	}
	return out
}
