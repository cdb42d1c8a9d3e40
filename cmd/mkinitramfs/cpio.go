package main

import (
	"fmt"
	"io"
	"strings"
)

// The Linux kernel unpacks an initramfs in the "newc" cpio format
// (Documentation/driver-api/early-userspace/buffer-format.rst): each
// entry is a 110-byte ASCII header, the NUL-terminated name padded to a
// multiple of 4 bytes (counting the header), then the data padded to a
// multiple of 4. An entry named TRAILER!!! ends the archive.
const (
	newcMagic   = "070701"
	newcHdrLen  = 110
	cpioTrailer = "TRAILER!!!"
)

// File type bits of the mode field, as in <sys/stat.h>.
const (
	modeDir     = 0o040000
	modeRegular = 0o100000
	modeSymlink = 0o120000
	modeCharDev = 0o020000
	modeType    = 0o170000
)

// entry is one cpio member. Owner, group and mtime are always 0 so that
// the same inputs give the same archive, byte for byte.
type entry struct {
	name string // path without a leading slash, e.g. "bin/busybox"
	mode uint32 // file type bits | permission bits
	data []byte // file contents, or the target of a symlink
	// Device number of a character device node.
	rdevMajor, rdevMinor uint32
}

func dir(name string) entry { return entry{name: name, mode: modeDir | 0o755} }

func file(name string, perm uint32, data []byte) entry {
	return entry{name: name, mode: modeRegular | perm, data: data}
}

func symlink(name, target string) entry {
	return entry{name: name, mode: modeSymlink | 0o777, data: []byte(target)}
}

func charDev(name string, perm, major, minor uint32) entry {
	return entry{name: name, mode: modeCharDev | perm, rdevMajor: major, rdevMinor: minor}
}

// writeCpio writes entries and the trailer as a newc archive. Inode
// numbers are given in order from 1; every entry has one link, so the
// kernel never tries to join two entries as hard links.
func writeCpio(w io.Writer, entries []entry) error {
	seen := make(map[string]bool, len(entries))
	for i, e := range entries {
		if e.name == "" || strings.HasPrefix(e.name, "/") || e.name == cpioTrailer {
			return fmt.Errorf("cpio: bad entry name %q", e.name)
		}
		if seen[e.name] {
			return fmt.Errorf("cpio: %s appears twice", e.name)
		}
		seen[e.name] = true
		if err := writeEntry(w, uint32(i+1), e); err != nil {
			return err
		}
	}
	return writeEntry(w, 0, entry{name: cpioTrailer})
}

func writeEntry(w io.Writer, ino uint32, e entry) error {
	nlink := uint32(1)
	if e.mode&modeType == modeDir {
		nlink = 2 // "." and the parent's entry
	}
	namesize := len(e.name) + 1
	hdr := fmt.Sprintf("%s%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		newcMagic,
		ino,
		e.mode,
		0, // uid
		0, // gid
		nlink,
		0, // mtime
		len(e.data),
		0, 0, // major, minor of the device the file was on: none
		e.rdevMajor, e.rdevMinor,
		namesize,
		0, // checksum: only the "070702" format uses it
	)
	buf := make([]byte, 0, pad4(newcHdrLen+namesize)+pad4(len(e.data)))
	buf = append(buf, hdr...)
	buf = append(buf, e.name...)
	buf = append(buf, 0)
	buf = appendZeros(buf, pad4(len(buf))-len(buf))
	buf = append(buf, e.data...)
	buf = appendZeros(buf, pad4(len(e.data))-len(e.data))
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
