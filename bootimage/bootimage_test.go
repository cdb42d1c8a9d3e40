package bootimage

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

const (
	ramBase = 0x40000000 // QEMU virt's RAM, which guests mirror
	kib     = 1 << 10
)

// linuxImage makes an Image: the 64-byte header, then payload bytes
// counting up from 1 so misplaced copies show.
func linuxImage(textOffset, imageSize, flags uint64, payload int) []byte {
	b := make([]byte, imageHeaderSize+payload)
	copy(b, []byte{0x4d, 0x5a, 0, 0x91}) // code0, as real kernels (an "MZ" no-op)
	binary.LittleEndian.PutUint64(b[offTextOffset:], textOffset)
	binary.LittleEndian.PutUint64(b[offImageSize:], imageSize)
	binary.LittleEndian.PutUint64(b[offFlags:], flags)
	binary.LittleEndian.PutUint32(b[offMagic:], imageMagic)
	for i := imageHeaderSize; i < len(b); i++ {
		b[i] = byte(i)
	}
	return b
}

func gz(t require.TestingT, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, err := w.Write(b)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return buf.Bytes()
}

// seg is a program header for testELF; data is its file contents.
type seg struct {
	typ         elf.ProgType
	addr, memsz uint64
	data        []byte
}

// elfOpts are the header fields tests vary.
type elfOpts struct {
	class   elf.Class
	data    elf.Data
	machine elf.Machine
	typ     elf.Type
	entry   uint64
}

var aarch64Exec = elfOpts{elf.ELFCLASS64, elf.ELFDATA2LSB, elf.EM_AARCH64, elf.ET_EXEC, 0}

// testELF builds an ELF64 executable by hand: header, program headers, then
// every segment's bytes in order, so the file ends with segment data.
func testELF(o elfOpts, segs ...seg) []byte {
	le := binary.LittleEndian
	h := make([]byte, elfHeaderSize)
	copy(h, elf.ELFMAG)
	h[elf.EI_CLASS], h[elf.EI_DATA], h[elf.EI_VERSION] = byte(o.class), byte(o.data), byte(elf.EV_CURRENT)
	le.PutUint16(h[16:], uint16(o.typ))
	le.PutUint16(h[18:], uint16(o.machine))
	le.PutUint32(h[20:], uint32(elf.EV_CURRENT))
	le.PutUint64(h[24:], o.entry)
	le.PutUint64(h[32:], elfHeaderSize)
	le.PutUint16(h[52:], elfHeaderSize)
	le.PutUint16(h[54:], elfPhdrSize)
	le.PutUint16(h[56:], uint16(len(segs)))
	off := uint64(elfHeaderSize + elfPhdrSize*len(segs))
	var body []byte
	for _, s := range segs {
		ph := make([]byte, elfPhdrSize)
		le.PutUint32(ph[0:], uint32(s.typ))
		le.PutUint64(ph[8:], off)
		le.PutUint64(ph[16:], s.addr)
		le.PutUint64(ph[24:], s.addr)
		le.PutUint64(ph[32:], uint64(len(s.data)))
		le.PutUint64(ph[40:], s.memsz)
		h = append(h, ph...)
		body = append(body, s.data...)
		off += uint64(len(s.data))
	}
	return append(h, body...)
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

// guestELF is a small two-segment executable with bss.
func guestELF() []byte {
	o := aarch64Exec
	o.entry = ramBase + 0x10100
	return testELF(o,
		seg{typ: elf.PT_LOAD, addr: ramBase + 0x10000, memsz: 0x300, data: pattern(0x300, 1)},
		seg{typ: elf.PT_NOTE, addr: ramBase + 0x10000, memsz: 0x10, data: pattern(0x10, 9)},
		seg{typ: elf.PT_LOAD, addr: ramBase + 0x12000, memsz: 0x1800, data: pattern(0x200, 50)},
	)
}

func TestParseImageHeader(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		textOffset, imgSize  uint64
		flags                uint64
		wantPage, wantOffset uint64
		wantSize             uint64
		wantErr              string
	}{
		{name: "modern 4K, anywhere", imgSize: 40 * mib, flags: 1<<1 | 1<<3, wantPage: 4096, wantSize: 40 * mib},
		{name: "16K", textOffset: 0, imgSize: 3 * mib, flags: 2 << 1, wantPage: 16 * kib, wantSize: 3 * mib},
		{name: "64K", textOffset: 0, imgSize: 3 * mib, flags: 3 << 1, wantPage: 64 * kib, wantSize: 3 * mib},
		{name: "page size unspecified, old text_offset", textOffset: 0x80000, imgSize: 5 * mib, wantOffset: 0x80000, wantSize: 5 * mib},
		{name: "big-endian", imgSize: 5 * mib, flags: 1 | 1<<1, wantErr: "big-endian"},
		{name: "file longer than image_size", imgSize: 100, wantErr: "longer than its image_size"},
		{name: "overflow", textOffset: ^uint64(0) - 10, imgSize: 5 * mib, wantErr: "overflows"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := linuxImage(tc.textOffset, tc.imgSize, tc.flags, 4096)
			for _, kind := range []Kind{KindImage, KindGzipImage} {
				in := data
				if kind == KindGzipImage {
					in = gz(t, data)
				}
				im, err := Parse(in)
				if tc.wantErr != "" {
					if kind == KindGzipImage && tc.name == "file longer than image_size" {
						require.NoError(t, err, "found when inflating, by Load")
						continue
					}
					require.ErrorContains(t, err, tc.wantErr)
					continue
				}
				require.NoError(t, err)
				assert.Equal(t, kind, im.Kind)
				assert.Equal(t, tc.wantPage, im.PageSize)
				assert.Equal(t, tc.wantOffset, im.TextOffset)
				assert.Equal(t, tc.wantSize, im.Size)
				assert.Equal(t, tc.flags, im.Flags)
				assert.False(t, im.Legacy)
				assert.Zero(t, im.Entry)
			}
		})
	}
}

func TestParseLegacyImage(t *testing.T) {
	// image_size 0: the header's other fields mean nothing, text_offset is
	// 0x80000 and the kernel gets its file size plus a margin.
	data := linuxImage(0x1234, 0, 1, 10000)
	im, err := Parse(data)
	require.NoError(t, err)
	assert.True(t, im.Legacy)
	assert.Equal(t, uint64(0x80000), im.TextOffset)
	assert.Equal(t, uint64(len(data))+legacyMargin, im.Size)

	im, err = Parse(gz(t, data))
	require.NoError(t, err, "the size comes from the gzip trailer")
	assert.Equal(t, KindGzipImage, im.Kind)
	assert.Equal(t, uint64(len(data))+legacyMargin, im.Size)

	p, err := im.Plan(ramBase, 64*mib, 0)
	require.NoError(t, err)
	assert.Equal(t, uint64(ramBase+0x80000), p.KernelAddr)
	ram := make([]byte, 64*mib)
	require.NoError(t, im.Load(ram, p))
	assert.Equal(t, data, ram[0x80000:0x80000+len(data)])
}

func TestParseRejects(t *testing.T) {
	x86 := aarch64Exec
	x86.machine = elf.EM_X86_64
	elf32 := aarch64Exec
	elf32.class = elf.ELFCLASS32
	msb := aarch64Exec
	msb.data = elf.ELFDATA2MSB
	dyn := aarch64Exec
	dyn.typ = elf.ET_DYN
	load := seg{typ: elf.PT_LOAD, addr: ramBase, memsz: 16, data: pattern(16, 0)}
	notImage := linuxImage(0, mib, 0, 64)
	notImage[offMagic] = 'X'

	for _, tc := range []struct {
		name, want string
		data       []byte
	}{
		{"empty", "an image of 0 bytes is too short", nil},
		{"short", "an image of 63 bytes is too short", make([]byte, 63)},
		{"x86-64 ELF", "bootimage: not an AArch64 ELF, Linux arm64 Image or gzip-compressed Image (starts with 7f 45 4c 46 but is EM_X86_64)", testELF(x86, load)},
		{"ELF32", "(starts with 7f 45 4c 46 but is ELFCLASS32)", testELF(elf32, load)},
		{"big-endian ELF", "(starts with 7f 45 4c 46 but is ELFDATA2MSB)", testELF(msb, load)},
		{"shared object", "ELF image is ET_DYN, want an executable (ET_EXEC)", testELF(dyn, load)},
		{"no loadable segment", "no loadable segment", testELF(aarch64Exec, seg{typ: elf.PT_NOTE, memsz: 4, data: pattern(4, 0)})},
		{"no program headers", "0 program headers", testELF(aarch64Exec)},
		{"PE/COFF", "(starts with 4d 5a 90 00)", append([]byte{'M', 'Z', 0x90, 0}, make([]byte, 200)...)},
		{"no Image magic", "(starts with 4d 5a 00 91)", notImage},
		{"gzip of something else", "gzip-compressed data is not a Linux arm64 Image (it starts with 7f 45 4c 46)", gz(t, guestELF())},
		{"gzip of too little", "gzip-compressed data ends after 10 bytes", gz(t, make([]byte, 10))},
		{"bad gzip", "gzip-compressed data: gzip: invalid header", append([]byte{0x1f, 0x8b, 7}, make([]byte, 40)...)},
		{"filesz > memsz", "file size 0x20 exceeds memory size 0x10", testELF(aarch64Exec, seg{typ: elf.PT_LOAD, addr: ramBase, memsz: 16, data: pattern(32, 0)})},
		{"overlapping segments", "overlaps segment", testELF(aarch64Exec, load, seg{typ: elf.PT_LOAD, addr: ramBase + 8, memsz: 16, data: pattern(4, 0)})},
		{"wrapping segment", "wraps around", testELF(aarch64Exec, seg{typ: elf.PT_LOAD, addr: ^uint64(0) - 4, memsz: 16})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			im, err := Parse(tc.data)
			require.ErrorContains(t, err, tc.want)
			assert.Nil(t, im)
		})
	}
}

func TestParseELFHeaders(t *testing.T) {
	good := guestELF()
	le := binary.LittleEndian
	for _, tc := range []struct {
		name, want string
		edit       func(b []byte)
	}{
		{"program headers past the end", "program headers [0xffff0, +0xa8) run past the end", func(b []byte) { le.PutUint64(b[32:], 0xffff0) }},
		{"huge program header offset", "run past the end", func(b []byte) { le.PutUint64(b[32:], ^uint64(0)-8) }},
		{"odd program header size", "entries are 32 bytes, want 56", func(b []byte) { le.PutUint16(b[54:], 32) }},
		{"PN_XNUM", "65535 program headers", func(b []byte) { le.PutUint16(b[56:], 0xffff) }},
		{"segment past the end", "run past the end of the", func(b []byte) { le.PutUint64(b[64+8:], uint64(len(b))-0x10) }},
		{"segment offset huge", "run past the end of the", func(b []byte) { le.PutUint64(b[64+8:], ^uint64(0)) }},
		{"ident version", "identification version 0", func(b []byte) { b[elf.EI_VERSION] = 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := bytes.Clone(good)
			tc.edit(b)
			_, err := Parse(b)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestELFPlanAndLoad(t *testing.T) {
	data := guestELF()
	im, err := Parse(data)
	require.NoError(t, err)
	assert.Equal(t, KindELF, im.Kind)
	assert.Equal(t, uint64(ramBase+0x10100), im.Entry)
	assert.Equal(t, uint64(0x3800), im.Size, "from the first segment to the end of the last one's bss")

	p, err := im.Plan(ramBase, 16*mib, 0)
	require.NoError(t, err)
	assert.Equal(t, Plan{
		RAMBase: ramBase, RAMSize: 16 * mib,
		KernelAddr: ramBase + 0x10000, KernelSize: 0x3800, Entry: ramBase + 0x10100,
		DTBAddr: ramBase + 14*mib,
	}, p)

	ram := bytes.Repeat([]byte{0xaa}, 16*mib)
	require.NoError(t, im.Load(ram, p))
	assert.Equal(t, pattern(0x300, 1), ram[0x10000:0x10300])
	assert.Equal(t, bytes.Repeat([]byte{0xaa}, 0x1d00), ram[0x10300:0x12000], "the gap between segments is not the loader's")
	assert.Equal(t, pattern(0x200, 50), ram[0x12000:0x12200])
	assert.Equal(t, make([]byte, 0x1600), ram[0x12200:0x13800], "bss zeroed")
	assert.Equal(t, bytes.Repeat([]byte{0xaa}, 0x10000), ram[:0x10000])
	assert.Equal(t, byte(0xaa), ram[0x13800])
}

func TestELFPlanErrors(t *testing.T) {
	im, err := Parse(guestELF())
	require.NoError(t, err)

	_, err = im.Plan(ramBase+0x11000, 16*mib, 0)
	require.ErrorContains(t, err, "ELF segment [0x40010000, +0x300) lies outside the guest's RAM [0x40011000, 0x41011000)")

	_, err = im.Plan(ramBase, 0x12000, 0)
	require.ErrorContains(t, err, "lies outside the guest's RAM")

	o := aarch64Exec
	o.entry = 0x1000
	far, err := Parse(testELF(o, seg{typ: elf.PT_LOAD, addr: ramBase, memsz: 16}))
	require.NoError(t, err)
	_, err = far.Plan(ramBase, 16*mib, 0)
	require.ErrorContains(t, err, "ELF entry point 0x1000 lies outside the guest's RAM")

	// The device tree goes in the last 2 MiB: an ELF that reaches there
	// does not fit.
	_, err = im.Plan(ramBase, 2*mib, 0)
	require.ErrorIs(t, err, ErrNoRoom)
	assert.EqualError(t, err, "bootimage: not enough guest RAM: the kernel needs 1 MiB (ELF segments) + 2 MiB device tree; the VM has only 2 MiB: give it more --mem")

	p, err := im.Plan(ramBase, 4*mib, 1*mib)
	require.NoError(t, err)
	assert.Equal(t, uint64(ramBase+2*mib), p.DTBAddr)
	assert.Equal(t, uint64(ramBase+1*mib), p.InitrdAddr)

	_, err = im.Plan(ramBase, 4*mib, 2*mib-0x13000)
	require.ErrorIs(t, err, ErrNoRoom, "the initrd would run into the segments")
}

func TestImagePlan(t *testing.T) {
	for _, tc := range []struct {
		name                       string
		textOffset, imageSize      uint64
		base, size, initrd         uint64
		kernel, dtb, initrdAt      uint64
		wantErr                    string
		wantWindowEnd, wantRAMTail bool
	}{
		{name: "QEMU virt, Linux 6.x", imageSize: 30 * mib, base: ramBase, size: 256 * mib, initrd: 10*mib + 123,
			kernel: ramBase, dtb: ramBase + 254*mib, initrdAt: 0x4f3ff000},
		{name: "no initrd", imageSize: 30 * mib, base: ramBase, size: 64 * mib,
			kernel: ramBase, dtb: ramBase + 62*mib},
		{name: "old text_offset", textOffset: 0x80000, imageSize: 20 * mib, base: ramBase, size: 64 * mib, initrd: 4096,
			kernel: ramBase + 0x80000, dtb: ramBase + 62*mib, initrdAt: ramBase + 62*mib - 4096},
		{name: "RAM base not 2 MiB aligned", imageSize: 4 * mib, base: ramBase + 0x100000, size: 64 * mib,
			kernel: ramBase + 2*mib, dtb: ramBase + 62*mib},
		{name: "RAM end not 2 MiB aligned", imageSize: 4 * mib, base: ramBase, size: 64*mib + 0x1000,
			kernel: ramBase, dtb: ramBase + 62*mib},
		{name: "exact fit", imageSize: 28 * mib, base: ramBase, size: 32 * mib, initrd: 2 * mib,
			kernel: ramBase, dtb: ramBase + 30*mib, initrdAt: ramBase + 28*mib},
		{name: "initrd in the 32 GiB window", imageSize: 30 * mib, base: ramBase, size: 64 << 30, initrd: 5 * mib,
			kernel: ramBase, dtb: ramBase + 64<<30 - 2*mib, initrdAt: ramBase + 32<<30 - 5*mib},
		{name: "too small", imageSize: 40 * mib, base: ramBase, size: 32 * mib, initrd: 10*mib + 1,
			wantErr: "bootimage: not enough guest RAM: the kernel needs 40 MiB (text_offset + image_size) + initrd 11 MiB + 2 MiB device tree; the VM has only 32 MiB: give it more --mem"},
		{name: "no room for the initrd", imageSize: 28 * mib, base: ramBase, size: 32 * mib, initrd: 2*mib + 1,
			wantErr: "the kernel needs 28 MiB (text_offset + image_size) + initrd 3 MiB + 2 MiB device tree; the VM has only 32 MiB"},
		{name: "no room for the tree", imageSize: 31 * mib, base: ramBase, size: 32 * mib,
			wantErr: "the kernel needs 31 MiB (text_offset + image_size) + 2 MiB device tree; the VM has only 32 MiB"},
		{name: "kernel larger than RAM", imageSize: 64 * mib, base: ramBase, size: 32 * mib,
			wantErr: "the kernel needs 64 MiB"},
		{name: "RAM smaller than the alignment", imageSize: 4096, base: ramBase + 4096, size: mib,
			wantErr: "the kernel needs 2 MiB"},
		{name: "huge text_offset", textOffset: 1 << 62, imageSize: mib, base: ramBase, size: 32 * mib,
			wantErr: "not enough guest RAM"},
		{name: "RAM wraps", imageSize: mib, base: ^uint64(0) - mib, size: 32 * mib,
			wantErr: "is empty or wraps around"},
		{name: "RAM at the top of the address space", imageSize: mib, base: ^uint64(0) - 3*mib + 1, size: 2 * mib,
			wantErr: "not enough guest RAM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			im, err := Parse(linuxImage(tc.textOffset, tc.imageSize, 0xa, 64))
			require.NoError(t, err)
			p, err := im.Plan(tc.base, tc.size, tc.initrd)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, Plan{
				RAMBase: tc.base, RAMSize: tc.size, KernelAddr: tc.kernel, KernelSize: tc.imageSize,
				Entry: tc.kernel, DTBAddr: tc.dtb, InitrdAddr: tc.initrdAt, InitrdSize: tc.initrd,
			}, p)
		})
	}
}

func TestLegacyNoRoomMessage(t *testing.T) {
	im, err := Parse(linuxImage(0, 0, 0, 64))
	require.NoError(t, err)
	_, err = im.Plan(ramBase, 8*mib, 0)
	require.EqualError(t, err, "bootimage: not enough guest RAM: the kernel needs 9 MiB (the file + a margin, as its header gives no image_size) + 2 MiB device tree; the VM has only 8 MiB: give it more --mem")
}

func TestImageLoad(t *testing.T) {
	data := linuxImage(0, 3*mib, 0xa, 2*mib)
	for _, in := range [][]byte{data, gz(t, data)} {
		im, err := Parse(in)
		require.NoError(t, err)
		p, err := im.Plan(ramBase+0x1000, 16*mib, 0) // kernel at the 2 MiB boundary above
		require.NoError(t, err)
		require.Equal(t, uint64(ramBase+2*mib), p.KernelAddr)

		ram := bytes.Repeat([]byte{0xaa}, 16*mib)
		require.NoError(t, im.Load(ram, p))
		off := int(p.KernelAddr - p.RAMBase)
		assert.True(t, bytes.Equal(data, ram[off:off+len(data)]), "%v: the Image lands at its load address", im.Kind)
		assert.Equal(t, bytes.Repeat([]byte{0xaa}, off), ram[:off])
		assert.Equal(t, bytes.Repeat([]byte{0xaa}, len(ram)-off-len(data)), ram[off+len(data):], "bss left to the kernel")
	}
}

func TestLoadRejectsForeignPlans(t *testing.T) {
	im, err := Parse(linuxImage(0, 3*mib, 0, 64))
	require.NoError(t, err)
	p, err := im.Plan(ramBase, 16*mib, 0)
	require.NoError(t, err)

	require.ErrorContains(t, im.Load(make([]byte, 8*mib), p), "guest RAM is 8388608 bytes, the plan is for 16777216")
	for _, edit := range []func(*Plan){
		func(p *Plan) { p.KernelSize = 1 },
		func(p *Plan) { p.KernelAddr = ramBase + 14*mib },
		func(p *Plan) { p.KernelAddr = ramBase - 1 },
		func(p *Plan) { p.KernelAddr = ^uint64(0) },
	} {
		q := p
		edit(&q)
		require.ErrorContains(t, im.Load(make([]byte, 16*mib), q), "is not one for this")
	}

	e, err := Parse(guestELF())
	require.NoError(t, err)
	p, err = e.Plan(ramBase, 16*mib, 0)
	require.NoError(t, err)
	p.KernelAddr -= 0x1000
	require.ErrorContains(t, e.Load(make([]byte, 16*mib), p), "is not one for this")
}

// A gzip bomb: a header claiming 1 MiB, then 64 MiB of zeros. Inflating
// stops at the kernel's room and touches nothing beyond it.
func TestGzipBomb(t *testing.T) {
	var buf bytes.Buffer
	w, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	require.NoError(t, err)
	_, err = w.Write(linuxImage(0, mib, 0, 0))
	require.NoError(t, err)
	zeros := make([]byte, mib)
	for range 64 {
		_, err = w.Write(zeros)
		require.NoError(t, err)
	}
	require.NoError(t, w.Close())
	require.Less(t, buf.Len(), 200*kib)

	im, err := Parse(buf.Bytes())
	require.NoError(t, err)
	p, err := im.Plan(ramBase, 8*mib, 0)
	require.NoError(t, err)
	ram := bytes.Repeat([]byte{0xaa}, 8*mib)
	err = im.Load(ram, p)
	require.EqualError(t, err, "bootimage: the gzip-compressed Image inflates beyond its image_size of 1048576 bytes")
	assert.Equal(t, bytes.Repeat([]byte{0xaa}, 7*mib), ram[mib:], "nothing written past the kernel's room")
}

func TestGzipCorruption(t *testing.T) {
	good := gz(t, linuxImage(0, mib, 0, 100*kib))
	load := func(b []byte) error {
		im, err := Parse(b)
		if err != nil {
			return err
		}
		p, err := im.Plan(ramBase, 8*mib, 0)
		if err != nil {
			return err
		}
		return im.Load(make([]byte, 8*mib), p)
	}
	require.NoError(t, load(good))

	badCRC := bytes.Clone(good)
	badCRC[len(badCRC)-8] ^= 1
	require.ErrorIs(t, load(badCRC), gzip.ErrChecksum)

	// Bytes after the single member (padding) are ignored.
	require.NoError(t, load(append(bytes.Clone(good), make([]byte, 512)...)))

	require.ErrorContains(t, load(good[:len(good)-3]), "is truncated")
}

// Every prefix of an image is rejected by Parse, Plan or Load, and none
// panics. A raw Image cut after its header is still a (shorter) Image, so
// only its header must be whole.
func TestTruncations(t *testing.T) {
	raw := linuxImage(0, mib, 0, 600)
	for _, tc := range []struct {
		name      string
		data      []byte
		okFromLen int
	}{
		{"ELF", guestELF(), -1},
		{"Image", raw, imageHeaderSize},
		{"Image.gz", gz(t, raw), -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for n := 0; n < len(tc.data); n++ {
				b := bytes.Clone(tc.data[:n])
				err := func() error {
					im, err := Parse(b)
					if err != nil {
						return err
					}
					p, err := im.Plan(ramBase, 8*mib, 0)
					if err != nil {
						return err
					}
					return im.Load(make([]byte, 8*mib), p)
				}()
				if tc.okFromLen >= 0 && n >= tc.okFromLen {
					require.NoError(t, err, "length %d", n)
				} else {
					require.Error(t, err, "length %d", n)
				}
			}
		})
	}
}

// Plan keeps the kernel, the initrd and the device tree inside RAM, apart,
// and aligned as booting.rst asks; and it fails only when they cannot fit.
func TestPlanProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		base := rapid.Uint64Range(0, 1<<24).Draw(t, "basePage") * 4096
		size := rapid.Uint64Range(1, 1<<24).Draw(t, "sizePages") * 4096
		textOffset := rapid.SampledFrom([]uint64{0, 0x80000, 0x1000, 0x1ff000}).Draw(t, "textOffset")
		imageSize := rapid.Uint64Range(imageHeaderSize, size+4*mib).Draw(t, "imageSize")
		var initrd uint64
		if rapid.Bool().Draw(t, "hasInitrd") {
			initrd = rapid.Uint64Range(1, size).Draw(t, "initrd")
		}
		im, err := Parse(linuxImage(textOffset, imageSize, 0, 0))
		if err != nil {
			t.Fatal(err)
		}
		p, err := im.Plan(base, size, initrd)
		fits := base%KernelAlign == 0 && size%KernelAlign == 0 && size <= 31<<30 &&
			alignUp(textOffset+imageSize, 4096)+alignUp(initrd, 4096)+DTBMaxSize <= size
		if err != nil {
			if !errors.Is(err, ErrNoRoom) {
				t.Fatalf("error not ErrNoRoom: %v", err)
			}
			if fits {
				t.Fatalf("Plan fails though everything fits: %v", err)
			}
			return
		}
		end := base + size
		in := func(what string, a, n uint64) {
			if a < base || a+n > end || a+n < a {
				t.Fatalf("%s [%#x, +%#x) outside RAM [%#x, %#x)", what, a, n, base, end)
			}
		}
		kbase := p.KernelAddr - textOffset
		if kbase%KernelAlign != 0 || kbase < base || p.Entry != p.KernelAddr || p.KernelSize != imageSize {
			t.Fatalf("kernel misplaced: %+v", p)
		}
		in("kernel", p.KernelAddr, p.KernelSize)
		if p.DTBAddr%DTBMaxSize != 0 || p.DTBAddr+2*DTBMaxSize <= end {
			t.Fatalf("device tree not in the last 2 MiB block: %+v", p)
		}
		in("device tree", p.DTBAddr, DTBMaxSize)
		ranges := [][2]uint64{{p.KernelAddr, p.KernelAddr + p.KernelSize}, {p.DTBAddr, p.DTBAddr + DTBMaxSize}}
		if initrd > 0 {
			in("initrd", p.InitrdAddr, p.InitrdSize)
			if p.InitrdAddr%InitrdAlign != 0 || p.InitrdSize != initrd {
				t.Fatalf("initrd misplaced: %+v", p)
			}
			if p.InitrdAddr+initrd > alignDown(p.KernelAddr, 1<<30)+32<<30 {
				t.Fatalf("initrd outside the kernel's 32 GiB window: %+v", p)
			}
			ranges = append(ranges, [2]uint64{p.InitrdAddr, p.InitrdAddr + initrd})
		} else if p.InitrdAddr != 0 || p.InitrdSize != 0 {
			t.Fatalf("initrd placed without one: %+v", p)
		}
		for i := range ranges {
			for j := i + 1; j < len(ranges); j++ {
				if overlaps(ranges[i][0], ranges[i][1], ranges[j][0], ranges[j][1]) {
					t.Fatalf("%#x and %#x overlap: %+v", ranges[i], ranges[j], p)
				}
			}
		}
	})
}

// Load writes only inside [KernelAddr, +KernelSize), whatever an Image or
// Image.gz holds beyond its image_size, and whatever ELF segments say.
func TestLoadStaysInItsRoom(t *testing.T) {
	const size = 8 * mib
	rapid.Check(t, func(t *rapid.T) {
		var data []byte
		switch kind := rapid.SampledFrom([]Kind{KindELF, KindImage, KindGzipImage}).Draw(t, "kind"); kind {
		case KindELF:
			var segs []seg
			at := uint64(ramBase)
			for i := range rapid.IntRange(1, 4).Draw(t, "segments") {
				at += rapid.Uint64Range(0, 64*kib).Draw(t, fmt.Sprint("gap", i))
				memsz := rapid.Uint64Range(1, 64*kib).Draw(t, fmt.Sprint("memsz", i))
				filesz := rapid.Uint64Range(0, memsz).Draw(t, fmt.Sprint("filesz", i))
				segs = append(segs, seg{typ: elf.PT_LOAD, addr: at, memsz: memsz, data: pattern(int(filesz), byte(i))})
				at += memsz
			}
			o := aarch64Exec
			o.entry = segs[0].addr
			data = testELF(o, segs...)
		default:
			imageSize := rapid.Uint64Range(imageHeaderSize, 256*kib).Draw(t, "imageSize")
			payload := rapid.IntRange(0, 300*kib).Draw(t, "payload")
			data = linuxImage(0, imageSize, 0, payload)
			if kind == KindGzipImage {
				data = gz(t, data)
			}
		}
		im, err := Parse(data)
		if err != nil {
			return // a raw Image longer than its image_size
		}
		p, err := im.Plan(ramBase, size, 0)
		if err != nil {
			t.Fatal(err)
		}
		ram := bytes.Repeat([]byte{0xaa}, size)
		err = im.Load(ram, p)
		if err != nil && !(im.Kind == KindGzipImage && bytes.Contains([]byte(err.Error()), []byte("inflates beyond"))) {
			t.Fatal(err)
		}
		lo, hi := p.KernelAddr-ramBase, p.KernelAddr-ramBase+p.KernelSize
		for i, b := range ram {
			if b != 0xaa && (uint64(i) < lo || uint64(i) >= hi) {
				t.Fatalf("byte %#x written, outside the kernel's room [%#x, %#x)", i, lo, hi)
			}
		}
	})
}

func TestKindString(t *testing.T) {
	assert.Equal(t, "AArch64 ELF executable", KindELF.String())
	assert.Equal(t, "Linux arm64 Image", KindImage.String())
	assert.Equal(t, "gzip-compressed Linux arm64 Image", KindGzipImage.String())
	assert.Equal(t, "Kind(9)", Kind(9).String())
}
