package main

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
)

// PE/COFF constants (Microsoft PE format specification; UEFI 2.10, 2.1.1
// "UEFI Images").
const (
	machineARM64        = 0xaa64
	magicPE32Plus       = 0x20b
	subsystemEFIApp     = 10
	fileRelocsStripped  = 0x0001
	fileExecutableImage = 0x0002
	fileLargeAddress    = 0x0020
	scnCode             = 0x00000020
	scnInitializedData  = 0x00000040
	scnMemExecute       = 0x20000000
	scnMemRead          = 0x40000000
	scnMemWrite         = 0x80000000

	sectionAlign = 0x1000
	fileAlign    = 0x200
	peOffset     = 0x40 // e_lfanew: the PE signature right after the DOS header
	numDataDirs  = 16
	optHdrSize   = 112 + 8*numDataDirs
	headersSize  = peOffset + 4 + 20 + optHdrSize + 40 // one section header
)

// image is the part of an ELF the PE carries: the bytes from the first
// loaded address to the last one backed by the file, and the size in
// memory, bss included.
type image struct {
	base  uint64 // lowest loaded address, page-aligned
	data  []byte // file-backed contents from base
	size  uint64 // in memory, from base
	entry uint64 // the PE's entry point (an address)
}

// loadELF lays out an ELF's PT_LOAD segments as they are in memory.
func loadELF(f *elf.File, entry string) (*image, error) {
	if f.Machine != elf.EM_AARCH64 || f.Class != elf.ELFCLASS64 {
		return nil, errors.New("not a 64-bit arm64 ELF")
	}
	var segs []*elf.Prog
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Memsz > 0 {
			segs = append(segs, p)
		}
	}
	if len(segs) == 0 {
		return nil, errors.New("no loadable segment")
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].Vaddr < segs[j].Vaddr })
	img := &image{base: segs[0].Vaddr &^ (sectionAlign - 1)}
	if img.base < sectionAlign {
		return nil, fmt.Errorf("image at %#x leaves no page below it for the PE headers", segs[0].Vaddr)
	}
	var fileEnd uint64
	for i, p := range segs {
		if p.Paddr != p.Vaddr {
			return nil, fmt.Errorf("segment %d loads at %#x but runs at %#x: a UEFI image is loaded where it runs", i, p.Paddr, p.Vaddr)
		}
		if i > 0 && p.Vaddr < segs[i-1].Vaddr+segs[i-1].Memsz {
			return nil, fmt.Errorf("segments %d and %d overlap", i-1, i)
		}
		img.size = max(img.size, p.Vaddr+p.Memsz-img.base)
		if p.Filesz > 0 {
			fileEnd = max(fileEnd, p.Vaddr+p.Filesz-img.base)
		}
	}
	img.data = make([]byte, fileEnd)
	for i, p := range segs {
		if p.Filesz == 0 {
			continue
		}
		if _, err := p.ReadAt(img.data[p.Vaddr-img.base:p.Vaddr-img.base+p.Filesz], 0); err != nil {
			return nil, fmt.Errorf("segment %d: %w", i, err)
		}
	}
	syms, err := f.Symbols()
	if err != nil {
		return nil, fmt.Errorf("symbols: %w", err)
	}
	for _, s := range syms {
		if s.Name == entry {
			img.entry = s.Value
		}
	}
	if img.entry == 0 {
		return nil, fmt.Errorf("no symbol %s for the entry point", entry)
	}
	if img.entry < img.base || img.entry >= img.base+uint64(len(img.data)) {
		return nil, fmt.Errorf("entry %s at %#x is outside the image's contents", entry, img.entry)
	}
	return img, nil
}

func alignUp(v, a uint64) uint64 { return (v + a - 1) &^ (a - 1) }

// writePE makes a PE32+ EFI application of img: its headers in the page
// below the image (ImageBase), and one section, readable, writable and
// executable, holding the whole image at the addresses it was linked for.
// It has no relocations, so the firmware loads it at ImageBase or not at
// all: the kernel is linked to run where it is.
func writePE(img *image) []byte {
	imageBase := img.base - sectionAlign
	rawSize := alignUp(uint64(len(img.data)), fileAlign)
	rawOff := alignUp(headersSize, fileAlign)
	sizeOfImage := alignUp(sectionAlign+img.size, sectionAlign)

	var b bytes.Buffer
	le := binary.LittleEndian
	w := func(v any) { binary.Write(&b, le, v) }

	// DOS header: "MZ", and e_lfanew at 0x3c.
	dos := make([]byte, peOffset)
	copy(dos, "MZ")
	le.PutUint32(dos[0x3c:], peOffset)
	b.Write(dos)

	b.WriteString("PE\x00\x00")
	// COFF file header.
	w(uint16(machineARM64))
	w(uint16(1)) // NumberOfSections
	w(uint32(0)) // TimeDateStamp: the output depends on its input only
	w(uint32(0)) // PointerToSymbolTable
	w(uint32(0)) // NumberOfSymbols
	w(uint16(optHdrSize))
	w(uint16(fileRelocsStripped | fileExecutableImage | fileLargeAddress))

	// Optional header, PE32+.
	w(uint16(magicPE32Plus))
	w(uint8(0))                                 // MajorLinkerVersion
	w(uint8(0))                                 // MinorLinkerVersion
	w(uint32(rawSize))                          // SizeOfCode
	w(uint32(rawSize))                          // SizeOfInitializedData
	w(uint32(img.size - uint64(len(img.data)))) // SizeOfUninitializedData
	w(uint32(img.entry - imageBase))            // AddressOfEntryPoint
	w(uint32(sectionAlign))                     // BaseOfCode
	w(imageBase)
	w(uint32(sectionAlign))
	w(uint32(fileAlign))
	w([6]uint16{}) // OS, image and subsystem versions
	w(uint32(0))   // Win32VersionValue
	w(uint32(sizeOfImage))
	w(uint32(rawOff)) // SizeOfHeaders
	w(uint32(0))      // CheckSum: not checked for EFI images
	w(uint16(subsystemEFIApp))
	w(uint16(0))   // DllCharacteristics
	w([4]uint64{}) // stack and heap reserve and commit
	w(uint32(0))   // LoaderFlags
	w(uint32(numDataDirs))
	w([numDataDirs][2]uint32{}) // no exports, imports, relocations, debug

	// The section header.
	var name [8]byte
	copy(name[:], ".text")
	w(name)
	w(uint32(img.size))     // VirtualSize
	w(uint32(sectionAlign)) // VirtualAddress
	w(uint32(rawSize))
	w(uint32(rawOff))
	w(uint32(0)) // PointerToRelocations
	w(uint32(0)) // PointerToLinenumbers
	w(uint16(0)) // NumberOfRelocations
	w(uint16(0)) // NumberOfLinenumbers
	w(uint32(scnCode | scnInitializedData | scnMemExecute | scnMemRead | scnMemWrite))

	b.Write(make([]byte, rawOff-uint64(b.Len())))
	b.Write(img.data)
	b.Write(make([]byte, rawSize-uint64(len(img.data))))
	return b.Bytes()
}
