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
	"github.com/bulkhead-hv/bulkhead/virtio/mmioreg"
)

// A drive is one of the machine's disks, driven here: under QEMU a
// virtio-blk device whose serial names it (bulkhead up --disk NAME=FILE).
// A guest disk is backed by a whole drive or a range of one.
type drive struct {
	name string
	blk  *virtio.Blk
	// attached are the guest disks on it. A range one guest has writable
	// overlaps no other guest's; read-only ranges may overlap.
	attached []*guestDisk
}

var drives []*drive

// openDrives finds the machine's virtio-blk devices.
func openDrives() {
	for _, h := range hostDevices(mmioreg.DeviceBlock) {
		b, err := h.openBlk()
		if err != nil {
			fmt.Printf("control: disk at %v: %v\n", h, err)
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
		fmt.Printf("control: disk %s: %d MiB at %v%s\n", name, b.Size()>>20, h, ro)
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

// diskSpec is a guest disk a run asks for: a drive, or Size bytes of it
// from Offset (Size 0: to its end).
type diskSpec struct {
	Name     string `json:"name"`
	ReadOnly bool   `json:"ro,omitempty"`
	Offset   int64  `json:"offset,omitempty"`
	Size     int64  `json:"size,omitempty"`
}

// guestDisk is a guest's virtio-blk device and the drive range behind it.
type guestDisk struct {
	*virtdev
	blk      *virtioblk.Device
	drive    *drive
	g        *guest
	ro       bool
	off, len int64
}

// overlaps reports whether the disk's range meets [off, off+n).
func (gd *guestDisk) overlaps(off, n int64) bool { return off < gd.off+gd.len && gd.off < off+n }

// attachDisks checks that the drives exist and are free for the guest.
func attachDisks(specs []diskSpec) error {
	if len(specs) > guestdt.MaxVirtio {
		return fmt.Errorf("%d disks: at most %d", len(specs), guestdt.MaxVirtio)
	}
	seen := map[string]bool{}
	for i, s := range specs {
		d := findDrive(s.Name)
		if d != nil && s.Size == 0 {
			specs[i].Size = d.blk.Size() - s.Offset
			s.Size = specs[i].Size
		}
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
		case s.Offset < 0 || s.Size <= 0 || s.Offset%512 != 0 || s.Size%512 != 0 || s.Offset+s.Size > d.blk.Size():
			return fmt.Errorf("disk %s: %d bytes at %d: a range of whole 512-byte sectors inside its %d bytes", s.Name, s.Size, s.Offset, d.blk.Size())
		case !s.ReadOnly && d.blk.ReadOnly():
			return fmt.Errorf("disk %s is read-only: attach it with ,ro", s.Name)
		}
		for _, a := range d.attached {
			if a.overlaps(s.Offset, s.Size) && (!s.ReadOnly || !a.ro) {
				how := "read-only"
				if !a.ro {
					how = "writable"
				}
				return fmt.Errorf("disk %s is attached %s to %s (bytes %d to %d)", s.Name, how, a.g.boot.Name, a.off, a.off+a.len)
			}
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
		gd := &guestDisk{drive: d, g: g, ro: s.ReadOnly, off: s.Offset, len: s.Size}
		var backing virtioblk.Disk = d.blk
		if s.Offset != 0 || s.Size != d.blk.Size() {
			backing = &virtioblk.Slice{Disk: d.blk, Off: s.Offset, Len: s.Size}
		}
		vd, err := g.mapVirtio("disk "+s.Name, func(v *virtdev) device {
			gd.blk = virtioblk.New(backing, s.ReadOnly, d.name, v.queue(0))
			return gd.blk
		})
		if err != nil {
			return err
		}
		gd.virtdev = vd
		g.disks = append(g.disks, gd)
		d.attached = append(d.attached, gd)
	}
	return nil
}

// releaseDisks gives the guest's drives back, flushed.
func (g *guest) releaseDisks() {
	for _, gd := range g.disks {
		d := gd.drive
		for i, a := range d.attached {
			if a == gd {
				d.attached = append(d.attached[:i], d.attached[i+1:]...)
				break
			}
		}
		if gd.ro {
			continue
		}
		if err := d.blk.Flush(); err != nil {
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
			"offset": gd.off, "bytes": gd.len,
			"reads": st.Reads, "writes": st.Writes, "flushes": st.Flushes, "errors": st.Errors,
			"read_bytes": st.ReadBytes, "written_bytes": st.WrittenBytes})
	}
	return out
}
