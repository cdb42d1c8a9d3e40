// Package cpio writes and reads the newc cpio archives the Linux kernel
// unpacks as an initramfs (Documentation/driver-api/early-userspace/buffer-format.rst).
//
// Write gives the same archive, byte for byte, for the same entries, so
// that an initramfs depends only on its inputs. Parse reads an archive
// back strictly, for tests and for checking an archive before a kernel
// sees it.
package cpio

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// The Linux kernel unpacks an initramfs in the "newc" cpio format: each
// entry is a 110-byte ASCII header, the NUL-terminated name padded to a
// multiple of 4 bytes (counting the header), then the data padded to a
// multiple of 4. An entry named TRAILER!!! ends the archive.
const (
	newcMagic  = "070701"
	newcHdrLen = 110
	trailer    = "TRAILER!!!"
)

// File type bits of the mode field, as in <sys/stat.h>.
const (
	ModeDir     = 0o040000
	ModeRegular = 0o100000
	ModeSymlink = 0o120000
	ModeCharDev = 0o020000
	ModeType    = 0o170000 // the mask of the type bits
)

// Entry is one cpio member. Its mtime is always 0 so that the same inputs
// give the same archive, byte for byte.
type Entry struct {
	Name     string // path without a leading slash, e.g. "bin/busybox"
	Mode     uint32 // file type bits | permission bits
	UID, GID uint32 // owner and group, 0 (root's) unless set
	Data     []byte // file contents, or the target of a symlink
	// Device number of a character device node.
	RdevMajor, RdevMinor uint32
}

// Dir is a directory, mode 0755.
func Dir(name string) Entry { return Entry{Name: name, Mode: ModeDir | 0o755} }

// File is a regular file holding data.
func File(name string, perm uint32, data []byte) Entry {
	return Entry{Name: name, Mode: ModeRegular | perm, Data: data}
}

// Symlink is a symbolic link to target. Its permission bits are 0777, as
// Linux gives every symlink.
func Symlink(name, target string) Entry {
	return Entry{Name: name, Mode: ModeSymlink | 0o777, Data: []byte(target)}
}

// CharDev is a character device node with the device number major,minor.
func CharDev(name string, perm, major, minor uint32) Entry {
	return Entry{Name: name, Mode: ModeCharDev | perm, RdevMajor: major, RdevMinor: minor}
}

// Write writes entries and the trailer as a newc archive. Inode numbers
// are given in order from 1; every entry has one link, so the kernel
// never tries to join two entries as hard links. Names must be relative,
// unique and not the trailer's, which would end the archive early.
func Write(w io.Writer, entries []Entry) error {
	seen := make(map[string]bool, len(entries))
	for i, e := range entries {
		if e.Name == "" || strings.HasPrefix(e.Name, "/") || e.Name == trailer {
			return fmt.Errorf("cpio: bad entry name %q", e.Name)
		}
		if seen[e.Name] {
			return fmt.Errorf("cpio: %s appears twice", e.Name)
		}
		seen[e.Name] = true
		if err := writeEntry(w, uint32(i+1), e); err != nil {
			return err
		}
	}
	return writeEntry(w, 0, Entry{Name: trailer})
}

func writeEntry(w io.Writer, ino uint32, e Entry) error {
	nlink := uint32(1)
	if e.Mode&ModeType == ModeDir {
		nlink = 2 // "." and the parent's entry
	}
	namesize := len(e.Name) + 1
	hdr := fmt.Sprintf("%s%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		newcMagic,
		ino,
		e.Mode,
		e.UID,
		e.GID,
		nlink,
		0, // mtime
		len(e.Data),
		0, 0, // major, minor of the device the file was on: none
		e.RdevMajor, e.RdevMinor,
		namesize,
		0, // checksum: only the "070702" format uses it
	)
	buf := make([]byte, 0, pad4(newcHdrLen+namesize)+pad4(len(e.Data)))
	buf = append(buf, hdr...)
	buf = append(buf, e.Name...)
	buf = append(buf, 0)
	buf = appendZeros(buf, pad4(len(buf))-len(buf))
	buf = append(buf, e.Data...)
	buf = appendZeros(buf, pad4(len(e.Data))-len(e.Data))
	_, err := w.Write(buf)
	return err
}

// pad4 rounds n up to a multiple of 4.
func pad4(n int) int { return (n + 3) &^ 3 }

func appendZeros(b []byte, n int) []byte {
	for range n {
		b = append(b, 0)
	}
	return b
}

// Header fields after the magic, in order, each 8 hex digits.
const (
	fIno = iota
	fMode
	fUID
	fGID
	fNlink
	fMtime
	fFilesize
	fDevMajor
	fDevMinor
	fRdevMajor
	fRdevMinor
	fNamesize
	fCheck
	nFields
)

// Parse reads a newc archive strictly: the magic must be 070701, every
// header field 8 hex digits, every name NUL-terminated, every padding
// zeros up to the next 4-byte boundary, no data may run past the end, the
// checksum must be 0, and the archive must end right after the trailer.
// It returns the members in order, without the trailer. A header's
// inode, owner, group, link count, mtime and device fields are not
// returned, since Entry does not carry them: Write always writes them
// the same way.
//
// Each entry's Data is a slice of b, not a copy; it is nil when the
// member has no data.
func Parse(b []byte) ([]Entry, error) {
	var out []Entry
	// Every member starts where the previous one's padding ends, at a
	// multiple of 4 from the start, so checking each padding checks the
	// alignment of every header.
	off := 0
	for {
		if off == len(b) {
			return nil, fmt.Errorf("cpio: archive ends at offset %d with no %s", off, trailer)
		}
		if len(b)-off < newcHdrLen {
			return nil, fmt.Errorf("cpio: archive ends inside a header at offset %d", off)
		}
		h := b[off : off+newcHdrLen]
		if string(h[:len(newcMagic)]) != newcMagic {
			return nil, fmt.Errorf("cpio: bad magic %q at offset %d, want %s (newc)", h[:len(newcMagic)], off, newcMagic)
		}
		var f [nFields]uint32
		for i := range f {
			s := string(h[len(newcMagic)+8*i : len(newcMagic)+8*(i+1)])
			// Base 16 takes no sign, prefix or underscores, so only
			// 8 hex digits pass, and 8 of them always fit in 32 bits.
			v, err := strconv.ParseUint(s, 16, 32)
			if err != nil {
				return nil, fmt.Errorf("cpio: header field %d %q at offset %d is not hex", i, s, off)
			}
			f[i] = uint32(v)
		}
		if f[fCheck] != 0 {
			return nil, fmt.Errorf("cpio: checksum %#x at offset %d, want 0 (newc has none)", f[fCheck], off)
		}
		// Sizes are compared with what is left before they become ints,
		// so that no sum overflows where int is 32 bits.
		nameStart := off + newcHdrLen
		namesize, size := uint64(f[fNamesize]), uint64(f[fFilesize])
		if namesize == 0 || namesize > uint64(len(b)-nameStart) {
			return nil, fmt.Errorf("cpio: name size %d at offset %d runs past the end", namesize, off)
		}
		nameEnd := nameStart + int(namesize)
		if b[nameEnd-1] != 0 {
			return nil, fmt.Errorf("cpio: name at offset %d is not NUL-terminated", off)
		}
		name := string(b[nameStart : nameEnd-1])
		// off is a multiple of 4, so padding the absolute offset pads
		// the header and name together, as the format asks.
		dataStart := pad4(nameEnd)
		if dataStart > len(b) {
			return nil, fmt.Errorf("cpio: %s: name padding runs past the end", name)
		}
		if err := checkPadding(b[nameEnd:dataStart], name, "name"); err != nil {
			return nil, err
		}
		if size > uint64(len(b)-dataStart) {
			return nil, fmt.Errorf("cpio: %s: %d bytes of data run past the end", name, size)
		}
		dataEnd := dataStart + int(size)
		next := pad4(dataEnd)
		if next > len(b) {
			return nil, fmt.Errorf("cpio: %s: data padding runs past the end", name)
		}
		if err := checkPadding(b[dataEnd:next], name, "data"); err != nil {
			return nil, err
		}
		off = next
		if name == trailer {
			if off != len(b) {
				return nil, fmt.Errorf("cpio: %d bytes after %s", len(b)-off, trailer)
			}
			return out, nil
		}
		e := Entry{Name: name, Mode: f[fMode], UID: f[fUID], GID: f[fGID], RdevMajor: f[fRdevMajor], RdevMinor: f[fRdevMinor]}
		if size > 0 {
			// The capacity ends with the data, so that appending to
			// it cannot overwrite the rest of b.
			e.Data = b[dataStart:dataEnd:dataEnd]
		}
		out = append(out, e)
	}
}

// checkPadding checks that pad, the bytes after a name or data up to the
// next 4-byte boundary, are zeros. pad4 makes it at most 3 bytes long.
func checkPadding(pad []byte, name, what string) error {
	for _, c := range pad {
		if c != 0 {
			return fmt.Errorf("cpio: %s: %s padding is %q, not zeros", name, what, pad)
		}
	}
	return nil
}
