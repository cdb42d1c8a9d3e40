// Package bootimage recognises the images a guest can boot from and places
// them in guest RAM: AArch64 ELF executables (the TamaGo guests), Linux
// arm64 Images and gzip-compressed Images (Image.gz). Placement follows the
// kernel's boot protocol, Linux Documentation/arch/arm64/booting.rst, cited
// below by section title.
//
// Images come from users and are untrusted: every malformed, truncated or
// oversized input is an error, never a panic, and loading never writes
// outside the room the plan reserved for the kernel.
package bootimage

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Placement constants.
const (
	// KernelAlign is the alignment of the base an Image is loaded
	// text_offset bytes above (booting.rst, "Call the kernel image").
	KernelAlign = 2 << 20
	// DTBMaxSize is the most device tree a kernel accepts (booting.rst,
	// "Setup the device tree"). The plan reserves a whole 2 MiB aligned
	// block for it, so a tree of any legal size never crosses a 2 MiB
	// boundary.
	DTBMaxSize = 2 << 20
	// InitrdAlign page-aligns the initrd, so the kernel can free its pages
	// once it has unpacked it.
	InitrdAlign = 4096

	// legacyTextOffset and legacyMargin describe kernels older than 3.17,
	// whose header leaves image_size 0: text_offset is then 0x80000, and
	// the room they need beyond the file (bss, early page tables) is not
	// stated, so a margin is kept (booting.rst, "Call the kernel image").
	legacyTextOffset = 0x80000
	legacyMargin     = 8 << 20

	// The initrd must lie in a 1 GiB aligned window of at most 32 GiB that
	// also covers the kernel (booting.rst, "Call the kernel image").
	initrdWindowAlign = 1 << 30
	initrdWindowSize  = 32 << 30

	mib = 1 << 20
)

// Linux arm64 Image header (booting.rst, "Call the kernel image"): 64
// bytes, little-endian fields.
const (
	imageHeaderSize  = 64
	imageMagic       = 0x644d5241 // "ARM\x64"
	offTextOffset    = 0x08
	offImageSize     = 0x10
	offFlags         = 0x18
	offMagic         = 0x38
	flagBigEndian    = 1 << 0
	flagPageShift    = 1
	flagPageMask     = 3
	gzipMagic0       = 0x1f
	gzipMagic1       = 0x8b
	elfHeaderSize    = 64 // ELF64
	elfPhdrSize      = 56 // ELF64 program header
	elfPhnumOverflow = 0xffff
)

// ErrNoRoom means the guest's RAM is too small for the kernel, its initrd
// and its device tree; the error's text says how much is needed.
var ErrNoRoom = errors.New("bootimage: not enough guest RAM")

// Kind is an image format.
type Kind int

// The formats Parse recognises.
const (
	KindELF       Kind = iota + 1 // an AArch64 ELF executable, loaded by its program headers
	KindImage                     // a Linux arm64 Image, loaded whole
	KindGzipImage                 // a gzip-compressed Image, inflated while it is loaded
)

// String names the format, for messages.
func (k Kind) String() string {
	switch k {
	case KindELF:
		return "AArch64 ELF executable"
	case KindImage:
		return "Linux arm64 Image"
	case KindGzipImage:
		return "gzip-compressed Linux arm64 Image"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Image is a recognised guest image. It refers to the bytes Parse was
// given, which must not change until Load.
type Image struct {
	Kind Kind
	// Entry is the ELF entry point, a guest physical address (guests
	// start with the MMU off). An Image is entered at its first byte, so
	// it is 0 there and Plan.Entry is the load address.
	Entry uint64
	// TextOffset is how far above a KernelAlign aligned base an Image
	// must be loaded (header field text_offset); 0 for ELF.
	TextOffset uint64
	// Size is the RAM the kernel occupies from its load address: for an
	// Image its image_size, which covers bss and the early page tables
	// and so exceeds the file; for ELF the span of its loadable segments.
	Size uint64
	// Flags is the Image header's flags field, for diagnostics.
	Flags uint64
	// PageSize is the kernel's page size from flags bits 1-2 (4096,
	// 16384 or 65536), or 0 when the kernel does not say.
	PageSize uint64
	// Legacy reports an Image header with image_size 0 (kernels before
	// 3.17): TextOffset is then 0x80000 and Size the file's size plus a
	// margin, as the kernel does not state what it needs.
	Legacy bool

	data []byte
	segs []segment // KindELF only
	low  uint64    // KindELF: the lowest segment's address
}

// segment is one ELF PT_LOAD segment.
type segment struct {
	addr, memsz uint64 // where it goes, and how much RAM it covers
	off, filesz uint64 // what of the file goes there; the rest is zeroed
}

// Parse recognises image and reads what placing it needs. A gzip stream is
// only inflated as far as the Image header here; Load inflates (and
// checks) the rest.
func Parse(image []byte) (*Image, error) {
	switch {
	case bytes.HasPrefix(image, []byte(elf.ELFMAG)):
		return parseELF(image)
	case len(image) >= 2 && image[0] == gzipMagic0 && image[1] == gzipMagic1:
		return parseGzip(image)
	case len(image) >= imageHeaderSize && binary.LittleEndian.Uint32(image[offMagic:]) == imageMagic:
		return parseImage(image, KindImage, uint64(len(image)))
	case len(image) < imageHeaderSize:
		return nil, fmt.Errorf("bootimage: an image of %d bytes is too short to be anything bootable (a Linux arm64 Image header alone is %d bytes)",
			len(image), imageHeaderSize)
	}
	return nil, notRecognised(image, "")
}

// notRecognised names what was found instead of a bootable image.
func notRecognised(image []byte, but string) error {
	n := min(len(image), 4)
	s := fmt.Sprintf("% x", image[:n])
	if but != "" {
		s += " but " + but
	}
	return fmt.Errorf("bootimage: not an AArch64 ELF, Linux arm64 Image or gzip-compressed Image (starts with %s)", s)
}

// parseImage reads a Linux arm64 Image header. fileSize is the size of
// the (decompressed) Image, used only by legacy headers.
func parseImage(data []byte, kind Kind, fileSize uint64) (*Image, error) {
	if len(data) < imageHeaderSize {
		return nil, fmt.Errorf("bootimage: truncated Image header: %d bytes, want %d", len(data), imageHeaderSize)
	}
	le := binary.LittleEndian
	if m := le.Uint32(data[offMagic:]); m != imageMagic {
		return nil, fmt.Errorf("bootimage: Image header magic is %#08x, want %#08x (\"ARM\\x64\")", m, uint32(imageMagic))
	}
	im := &Image{
		Kind:       kind,
		TextOffset: le.Uint64(data[offTextOffset:]),
		Size:       le.Uint64(data[offImageSize:]),
		Flags:      le.Uint64(data[offFlags:]),
		data:       data,
	}
	if im.Size == 0 {
		// Before 3.17 the header's fields had no stated endianness;
		// image_size 0 marks such a kernel, and its text_offset is to
		// be taken as 0x80000 whatever the field holds.
		im.Legacy = true
		im.TextOffset = legacyTextOffset
		im.Size = fileSize + legacyMargin
		if im.Size < fileSize {
			return nil, fmt.Errorf("bootimage: Image of %d bytes is too large", fileSize)
		}
		return im, nil
	}
	if im.Flags&flagBigEndian != 0 {
		return nil, fmt.Errorf("bootimage: the kernel is big-endian (Image flags %#x, bit 0 set); guests run little-endian", im.Flags)
	}
	if ps := im.Flags >> flagPageShift & flagPageMask; ps != 0 {
		im.PageSize = 4096 << (2 * (ps - 1)) // 1: 4K, 2: 16K, 3: 64K
	}
	if kind == KindImage && fileSize > im.Size {
		return nil, fmt.Errorf("bootimage: the Image file (%d bytes) is longer than its image_size (%d bytes)", fileSize, im.Size)
	}
	if im.TextOffset+im.Size < im.Size {
		return nil, fmt.Errorf("bootimage: Image text_offset %#x + image_size %#x overflows", im.TextOffset, im.Size)
	}
	return im, nil
}

// parseGzip reads the header of a gzip-compressed Image, inflating only
// its first 64 bytes.
func parseGzip(data []byte) (*Image, error) {
	zr, err := newGzipReader(data)
	if err != nil {
		return nil, err
	}
	var hdr [imageHeaderSize]byte
	n, err := io.ReadFull(zr, hdr[:])
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("bootimage: gzip-compressed data ends after %d bytes, before a %d-byte Image header", n, imageHeaderSize)
	}
	if err != nil {
		return nil, fmt.Errorf("bootimage: gzip-compressed data: %w", err)
	}
	if binary.LittleEndian.Uint32(hdr[offMagic:]) != imageMagic {
		return nil, fmt.Errorf("bootimage: gzip-compressed data is not a Linux arm64 Image (it starts with % x)", hdr[:4])
	}
	// The trailer's ISIZE (the inflated size modulo 2^32) is only a
	// guess at the size for a legacy header; Load enforces the bound.
	isize := uint64(binary.LittleEndian.Uint32(data[len(data)-4:]))
	im, err := parseImage(hdr[:], KindGzipImage, isize)
	if err != nil {
		return nil, err
	}
	im.data = data
	return im, nil
}

// newGzipReader opens a single gzip member: a kernel is one member, and
// bytes after it (padding from some tools) are ignored.
func newGzipReader(data []byte) (*gzip.Reader, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("bootimage: truncated gzip header (%d bytes)", len(data))
	}
	if err != nil {
		return nil, fmt.Errorf("bootimage: gzip-compressed data: %w", err)
	}
	zr.Multistream(false)
	return zr, nil
}

// parseELF reads an ELF64 header and its loadable segments.
func parseELF(data []byte) (*Image, error) {
	if len(data) < elf.EI_NIDENT {
		return nil, fmt.Errorf("bootimage: truncated ELF header: %d bytes, want %d", len(data), elfHeaderSize)
	}
	if c := elf.Class(data[elf.EI_CLASS]); c != elf.ELFCLASS64 {
		return nil, notRecognised(data, "is "+c.String())
	}
	if d := elf.Data(data[elf.EI_DATA]); d != elf.ELFDATA2LSB {
		return nil, notRecognised(data, "is "+d.String())
	}
	if len(data) < elfHeaderSize {
		return nil, fmt.Errorf("bootimage: truncated ELF header: %d bytes, want %d", len(data), elfHeaderSize)
	}
	le := binary.LittleEndian
	if m := elf.Machine(le.Uint16(data[18:])); m != elf.EM_AARCH64 {
		return nil, notRecognised(data, "is "+m.String())
	}
	if v := elf.Version(data[elf.EI_VERSION]); v != elf.EV_CURRENT {
		return nil, fmt.Errorf("bootimage: ELF identification version %d, want %d", v, elf.EV_CURRENT)
	}
	if t := elf.Type(le.Uint16(data[16:])); t != elf.ET_EXEC {
		return nil, fmt.Errorf("bootimage: ELF image is %v, want an executable (ET_EXEC)", t)
	}
	entry := le.Uint64(data[24:])
	phoff := le.Uint64(data[32:])
	phentsize := le.Uint16(data[54:])
	phnum := uint64(le.Uint16(data[56:]))
	if phentsize != elfPhdrSize {
		return nil, fmt.Errorf("bootimage: ELF program header entries are %d bytes, want %d", phentsize, elfPhdrSize)
	}
	if phnum == 0 || phnum == elfPhnumOverflow {
		return nil, fmt.Errorf("bootimage: ELF image has %d program headers", phnum)
	}
	if phoff > uint64(len(data)) || phnum*elfPhdrSize > uint64(len(data))-phoff {
		return nil, fmt.Errorf("bootimage: ELF program headers [%#x, +%#x) run past the end of the %d-byte image",
			phoff, phnum*elfPhdrSize, len(data))
	}
	im := &Image{Kind: KindELF, Entry: entry, data: data}
	lo, hi := ^uint64(0), uint64(0)
	for i := uint64(0); i < phnum; i++ {
		ph := data[phoff+i*elfPhdrSize:]
		if elf.ProgType(le.Uint32(ph)) != elf.PT_LOAD {
			continue
		}
		s := segment{off: le.Uint64(ph[8:]), addr: le.Uint64(ph[24:]), filesz: le.Uint64(ph[32:]), memsz: le.Uint64(ph[40:])}
		if s.memsz == 0 {
			continue
		}
		switch {
		case s.filesz > s.memsz:
			return nil, fmt.Errorf("bootimage: ELF segment %d at %#x: file size %#x exceeds memory size %#x", i, s.addr, s.filesz, s.memsz)
		case s.off > uint64(len(data)) || s.filesz > uint64(len(data))-s.off:
			return nil, fmt.Errorf("bootimage: ELF segment %d at %#x: file bytes [%#x, +%#x) run past the end of the %d-byte image",
				i, s.addr, s.off, s.filesz, len(data))
		case s.addr+s.memsz < s.addr:
			return nil, fmt.Errorf("bootimage: ELF segment %d at %#x: size %#x wraps around the address space", i, s.addr, s.memsz)
		}
		for _, t := range im.segs {
			if s.addr < t.addr+t.memsz && t.addr < s.addr+s.memsz {
				return nil, fmt.Errorf("bootimage: ELF segment %d [%#x, +%#x) overlaps segment [%#x, +%#x)", i, s.addr, s.memsz, t.addr, t.memsz)
			}
		}
		im.segs = append(im.segs, s)
		lo, hi = min(lo, s.addr), max(hi, s.addr+s.memsz)
	}
	if len(im.segs) == 0 {
		return nil, fmt.Errorf("bootimage: ELF image has no loadable segment")
	}
	im.Size, im.low = hi-lo, lo
	return im, nil
}

// Plan is where an image and what comes with it go in guest RAM. All
// addresses are guest physical.
type Plan struct {
	RAMBase, RAMSize uint64
	// KernelAddr is where the kernel's first byte goes: text_offset above
	// the first KernelAlign aligned address in RAM for an Image (as low
	// as possible, which kernels before 4.6 need: booting.rst, "Call the
	// kernel image"), the lowest segment for ELF.
	KernelAddr uint64
	// KernelSize is the room reserved from KernelAddr (Image.Size).
	KernelSize uint64
	// Entry is where the boot vCPU starts.
	Entry uint64
	// DTBAddr is the device tree's address: the last 2 MiB aligned block
	// of RAM, reserved whole (DTBMaxSize). Linux takes it in x0, with
	// x1-x3 zero (booting.rst, "Call the kernel image").
	DTBAddr uint64
	// InitrdAddr is the initrd's address, InitrdAlign aligned, right
	// below the device tree; both are 0 without an initrd.
	InitrdAddr, InitrdSize uint64
}

// Plan places the image in RAM [ramBase, ramBase+ramSize) with an initrd
// of initrdSize bytes (0 for none) and room for a device tree. It fails
// with an error wrapping ErrNoRoom when they do not fit.
func (im *Image) Plan(ramBase, ramSize, initrdSize uint64) (Plan, error) {
	ramEnd := ramBase + ramSize
	if ramSize == 0 || ramEnd < ramBase {
		return Plan{}, fmt.Errorf("bootimage: guest RAM [%#x, +%#x) is empty or wraps around", ramBase, ramSize)
	}
	p := Plan{RAMBase: ramBase, RAMSize: ramSize, KernelSize: im.Size, InitrdSize: initrdSize}
	noRoom := func() error { return im.noRoom(p) }

	if im.Kind == KindELF {
		for _, s := range im.segs {
			if s.addr < ramBase || s.addr+s.memsz > ramEnd {
				return Plan{}, fmt.Errorf("bootimage: ELF segment [%#x, +%#x) lies outside the guest's RAM [%#x, %#x)",
					s.addr, s.memsz, ramBase, ramEnd)
			}
		}
		if im.Entry < ramBase || im.Entry >= ramEnd {
			return Plan{}, fmt.Errorf("bootimage: ELF entry point %#x lies outside the guest's RAM [%#x, %#x)", im.Entry, ramBase, ramEnd)
		}
		p.KernelAddr, p.Entry = im.low, im.Entry
	} else {
		base := alignUp(ramBase, KernelAlign)
		if base < ramBase || base-ramBase >= ramSize || im.TextOffset >= ramEnd-base || im.Size > ramEnd-base-im.TextOffset {
			return Plan{}, noRoom()
		}
		p.KernelAddr = base + im.TextOffset
		p.Entry = p.KernelAddr
	}
	kernelEnd := p.KernelAddr + p.KernelSize // inside RAM: checked above

	top := alignDown(ramEnd, DTBMaxSize)
	if top < ramBase || top-ramBase < DTBMaxSize {
		return Plan{}, noRoom()
	}
	p.DTBAddr = top - DTBMaxSize
	if overlaps(p.KernelAddr, kernelEnd, p.DTBAddr, top) {
		return Plan{}, noRoom()
	}

	if initrdSize > 0 {
		limit := p.DTBAddr
		if im.Kind != KindELF {
			w := alignDown(p.KernelAddr, initrdWindowAlign) + initrdWindowSize
			if w > p.KernelAddr && w < limit {
				limit = w
			}
		}
		if initrdSize > limit-ramBase {
			return Plan{}, noRoom()
		}
		p.InitrdAddr = alignDown(limit-initrdSize, InitrdAlign)
		if p.InitrdAddr < ramBase || overlaps(p.KernelAddr, kernelEnd, p.InitrdAddr, p.InitrdAddr+initrdSize) {
			return Plan{}, noRoom()
		}
	}
	return p, nil
}

// noRoom explains what the guest would need.
func (im *Image) noRoom(p Plan) error {
	var kernel uint64
	what := "ELF segments"
	if im.Kind == KindELF {
		kernel = p.KernelAddr + p.KernelSize - p.RAMBase
	} else {
		kernel = satAdd(satAdd(alignUp(p.RAMBase, KernelAlign)-p.RAMBase, im.TextOffset), im.Size)
		what = "text_offset + image_size"
		if im.Legacy {
			what = "the file + a margin, as its header gives no image_size"
		}
	}
	initrd := ""
	if p.InitrdSize > 0 {
		initrd = fmt.Sprintf(" + initrd %d MiB", ceilMiB(p.InitrdSize))
	}
	return fmt.Errorf("%w: the kernel needs %d MiB (%s)%s + %d MiB device tree; the VM has only %d MiB: give it more --mem",
		ErrNoRoom, ceilMiB(kernel), what, initrd, DTBMaxSize/mib, p.RAMSize/mib)
}

// Load writes the kernel into ram, which holds the guest's RAM (index 0 is
// p.RAMBase), as planned by p: ELF segments with their bss zeroed, an
// Image as it is, a gzip-compressed Image inflated straight into place. An
// Image's room beyond the file is left alone: the kernel clears its own
// bss. Nothing outside [p.KernelAddr, +p.KernelSize) is written, however
// the image is crafted. The device tree and the initrd are the caller's.
func (im *Image) Load(ram []byte, p Plan) error {
	if uint64(len(ram)) != p.RAMSize {
		return fmt.Errorf("bootimage: load: guest RAM is %d bytes, the plan is for %d", len(ram), p.RAMSize)
	}
	if p.KernelSize != im.Size || im.Kind == KindELF && p.KernelAddr != im.low || p.KernelAddr < p.RAMBase || p.KernelAddr-p.RAMBase > p.RAMSize ||
		p.KernelSize > p.RAMSize-(p.KernelAddr-p.RAMBase) {
		return fmt.Errorf("bootimage: load: the plan (kernel [%#x, +%#x) in RAM [%#x, +%#x)) is not one for this %d-byte %v",
			p.KernelAddr, p.KernelSize, p.RAMBase, p.RAMSize, im.Size, im.Kind)
	}
	off := p.KernelAddr - p.RAMBase
	room := ram[off : off+p.KernelSize]
	switch im.Kind {
	case KindELF:
		for _, s := range im.segs {
			at := s.addr - p.KernelAddr // segments lie within [KernelAddr, +Size)
			copy(room[at:at+s.filesz], im.data[s.off:s.off+s.filesz])
			clear(room[at+s.filesz : at+s.memsz])
		}
	case KindImage:
		copy(room, im.data)
	case KindGzipImage:
		zr, err := newGzipReader(im.data)
		if err != nil {
			return err
		}
		if err := inflate(room, zr); err != nil {
			return err
		}
	default:
		return fmt.Errorf("bootimage: load: unknown image kind %v", im.Kind)
	}
	return nil
}

// inflate decompresses r into dst and fails, rather than overrun, if the
// stream holds more than dst takes. Reaching the end of the stream also
// checks its CRC and length.
func inflate(dst []byte, r io.Reader) error {
	n := 0
	for n < len(dst) {
		m, err := r.Read(dst[n:])
		n += m
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return gzipError(n, err)
		}
	}
	var probe [1]byte
	for {
		m, err := r.Read(probe[:])
		if m > 0 {
			return fmt.Errorf("bootimage: the gzip-compressed Image inflates beyond its image_size of %d bytes", len(dst))
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return gzipError(n, err)
		}
	}
}

func gzipError(n int, err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("bootimage: the gzip-compressed Image is truncated (it ends after %d inflated bytes)", n)
	}
	return fmt.Errorf("bootimage: inflating the Image after %d bytes: %w", n, err)
}

func alignUp(v, a uint64) uint64   { return (v + a - 1) &^ (a - 1) }
func alignDown(v, a uint64) uint64 { return v &^ (a - 1) }
func ceilMiB(v uint64) uint64      { return v/mib + min(v%mib, 1) }

// satAdd adds without wrapping, for sizes quoted in messages.
func satAdd(a, b uint64) uint64 {
	if a+b < a {
		return ^uint64(0)
	}
	return a + b
}

// overlaps reports whether [a, aEnd) and [b, bEnd) share a byte.
func overlaps(a, aEnd, b, bEnd uint64) bool { return a < bEnd && b < aEnd && a < aEnd && b < bEnd }
