// Package fwcfg reads files from QEMU's firmware configuration device
// (fw_cfg, docs/specs/fw_cfg.rst in QEMU), through its DMA interface: how
// the hypervisor, booted by UEFI firmware, gets its control partition's
// image. (A boot loader's -device loader image would sit in RAM the
// firmware believes free; fw_cfg hands the file over once the firmware is
// gone.)
package fwcfg

import (
	"encoding/binary"
	"fmt"
)

// RegDMA is the DMA address register's offset from the MMIO base
// (fw_cfg.rst, "Memory-Mapped I/O"): 64 bits, big-endian; writing its low
// half starts the transfer.
const (
	RegDMA = 0x10

	keyFileDir = 0x0019

	// FWCfgDmaAccess.control bits.
	dmaError  = 0x01
	dmaRead   = 0x02
	dmaSelect = 0x08

	// dmaSignature is what the DMA register reads: "QEMU CFG" (as a
	// big-endian 64-bit value).
	dmaSignature = 0x51454d5520434647
	// fileNameSize is a directory entry's name field.
	fileNameSize = 56
)

// Device is the hardware seam: the DMA register, and the memory the
// transfers use, at physical addresses the device reaches
// (identity-mapped at EL2).
type Device interface {
	ReadDMA() uint64
	// StartDMA writes the physical address of a 16-byte FWCfgDmaAccess
	// to the DMA register, big-endian, and returns once the device has
	// taken it (QEMU completes the transfer within the write).
	StartDMA(pa uint64)
	// Buffer returns memory of n bytes the device can write, and its
	// physical address.
	Buffer(n int) ([]byte, uint64)
}

// File is a directory entry.
type File struct {
	Name   string
	Size   uint32
	Select uint16
}

// Reader reads one device.
type Reader struct{ d Device }

// Open checks that the device has the DMA interface.
func Open(d Device) (*Reader, error) {
	if sig := d.ReadDMA(); sig != dmaSignature {
		return nil, fmt.Errorf("fw_cfg: DMA register reads %#x, not \"QEMU CFG\": no DMA interface", sig)
	}
	return &Reader{d}, nil
}

// read transfers n bytes of item key (from its start) by DMA.
func (r *Reader) read(key uint16, n int) ([]byte, error) {
	buf, pa := r.d.Buffer(16 + n)
	desc := buf[:16]
	binary.BigEndian.PutUint32(desc[0:], uint32(key)<<16|dmaSelect|dmaRead)
	binary.BigEndian.PutUint32(desc[4:], uint32(n))
	binary.BigEndian.PutUint64(desc[8:], pa+16)
	r.d.StartDMA(pa)
	if c := binary.BigEndian.Uint32(desc[0:]); c != 0 {
		if c&dmaError != 0 {
			return nil, fmt.Errorf("fw_cfg: reading item %#x: the device reports an error", key)
		}
		return nil, fmt.Errorf("fw_cfg: reading item %#x: transfer not complete (control %#x)", key, c)
	}
	return buf[16:], nil
}

// Files lists the directory.
func (r *Reader) Files() ([]File, error) {
	head, err := r.read(keyFileDir, 4)
	if err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(head)
	const entry = 4 + 2 + 2 + fileNameSize
	if n > 4096 {
		return nil, fmt.Errorf("fw_cfg: the directory claims %d files", n)
	}
	b, err := r.read(keyFileDir, 4+int(n)*entry)
	if err != nil {
		return nil, err
	}
	var out []File
	for i := 0; i < int(n); i++ {
		e := b[4+i*entry:][:entry]
		name := e[8:]
		for j, c := range name {
			if c == 0 {
				name = name[:j]
				break
			}
		}
		out = append(out, File{Name: string(name), Size: binary.BigEndian.Uint32(e), Select: binary.BigEndian.Uint16(e[4:])})
	}
	return out, nil
}

// ReadFile returns the contents of the named file, refused if it is
// larger than max.
func (r *Reader) ReadFile(name string, max int) ([]byte, error) {
	files, err := r.Files()
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		if f.Name != name {
			continue
		}
		if int64(f.Size) > int64(max) {
			return nil, fmt.Errorf("fw_cfg: %s is %d bytes, more than the %d it may be", name, f.Size, max)
		}
		return r.read(f.Select, int(f.Size))
	}
	return nil, fmt.Errorf("fw_cfg: no file %s (QEMU's -fw_cfg name=%s,file=...)", name, name)
}
