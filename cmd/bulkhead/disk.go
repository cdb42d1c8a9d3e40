package main

import (
	"fmt"

	"github.com/bulkhead-hv/bulkhead/ctlstate"
	"os"
	"regexp"
	"strings"
)

// A drive is a disk image an instance gives its control partition: under
// QEMU a virtio-blk device whose serial is the drive's name, from which
// the control partition backs guests' disks.
type drive struct {
	name, file string
	ro         bool
	state      bool // the control plane's state drive (up --listen)
}

// driveName is what a drive may be called: the virtio-blk serial holds 20
// bytes.
var driveName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,20}$`)

// parseDrive reads up's --disk NAME=FILE[,ro].
func parseDrive(v string) (drive, error) {
	name, rest, ok := strings.Cut(v, "=")
	if !ok {
		return drive{}, fmt.Errorf("--disk %q: want NAME=FILE or NAME=FILE,ro", v)
	}
	file, ro := cutRO(rest)
	d := drive{name: name, file: file, ro: ro}
	return d, d.check()
}

// cutRO takes a trailing ",ro" off a --disk value.
func cutRO(v string) (string, bool) {
	if s, ok := strings.CutSuffix(v, ",ro"); ok {
		return s, true
	}
	return v, false
}

// check refuses a drive QEMU or the guest could not use: a bad name, or a
// file that is missing, not a regular file, empty, or not whole sectors.
func (d drive) check() error {
	if !driveName.MatchString(d.name) {
		return fmt.Errorf("--disk %s: name it with 1 to 20 letters, digits, '_' or '-'", d.name)
	}
	if d.name == ctlstate.DriveName && !d.state {
		return fmt.Errorf("--disk %s: the name is the instance's state drive's (up --listen): pick another", d.name)
	}
	fi, err := os.Stat(d.file)
	switch {
	case err != nil:
		return fmt.Errorf("--disk %s: %v", d.file, err)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("--disk %s: not a regular file (a raw disk image)", d.file)
	case fi.Size() == 0 || fi.Size()%512 != 0:
		return fmt.Errorf("--disk %s: %d bytes: a raw disk image is a non-zero number of 512-byte sectors", d.file, fi.Size())
	}
	if !d.ro {
		f, err := os.OpenFile(d.file, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("--disk %s: cannot be written (%v): add ,ro to attach it read-only", d.file, err)
		}
		f.Close()
	}
	return nil
}

// qemuArgs attach the drive: raw, as a virtio-blk device (on virtio-mmio,
// or PCI with --iommu), its serial the name. QEMU writes through its page
// cache, and a guest's flush reaches the file with fdatasync.
func (d drive) qemuArgs(m *machineConfig) []string {
	opts := fmt.Sprintf("file=%s,if=none,format=raw,id=drive-%s", d.file, d.name)
	if d.ro {
		opts += ",readonly=on"
	}
	return []string{"-drive", opts, "-device", m.virtioDevice("blk", fmt.Sprintf(",drive=drive-%s,serial=%s", d.name, d.name))}
}

// driveFlag collects up's --disk flags.
type driveFlag struct{ v *[]drive }

func (f driveFlag) String() string { return "" }

func (f driveFlag) Set(s string) error {
	d, err := parseDrive(s)
	if err != nil {
		return err
	}
	for _, o := range *f.v {
		if o.name == d.name {
			return fmt.Errorf("--disk %s: a drive of that name is given already", d.name)
		}
	}
	*f.v = append(*f.v, d)
	return nil
}

// parseDiskRef reads run's --disk for an instance that is up: NAME, or
// NAME@OFFSET+SIZE for a range of the drive, then ,ro for read-only. It
// returns the run request's disk entry.
func parseDiskRef(v string) (map[string]any, error) {
	ref, ro := cutRO(v)
	name, rng, ranged := strings.Cut(ref, "@")
	if !driveName.MatchString(name) {
		return nil, fmt.Errorf("--disk %s: name a drive of the instance with 1 to 20 letters, digits, '_' or '-'", v)
	}
	d := map[string]any{"name": name, "ro": ro}
	if ranged {
		o, sz, ok := strings.Cut(rng, "+")
		var off uint64
		var err1 error
		if o != "0" { // parseSize takes no zero
			off, err1 = parseSize(o)
		}
		size, err2 := parseSize(sz)
		if !ok || err1 != nil || err2 != nil || size == 0 || off%512 != 0 || size%512 != 0 {
			return nil, fmt.Errorf("--disk %s: want NAME@OFFSET+SIZE, both multiples of 512 bytes and a size above 0, e.g. %s@64M+32M", v, name)
		}
		d["offset"], d["size"] = off, size
	}
	return d, nil
}
