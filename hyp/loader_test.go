package hyp

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type seg struct {
	paddr uint64
	data  []byte
	memsz uint64
	ptype elf.ProgType
}

// makeELF writes a minimal ELF64 executable with the given segments.
func makeELF(machine elf.Machine, typ elf.Type, entry uint64, segs ...seg) []byte {
	var b bytes.Buffer
	le := binary.LittleEndian
	phoff := uint64(64)
	dataOff := phoff + uint64(56*len(segs))
	hdr := elf.Header64{
		Type: uint16(typ), Machine: uint16(machine), Version: 1, Entry: entry,
		Phoff: phoff, Ehsize: 64, Phentsize: 56, Phnum: uint16(len(segs)),
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	hdr.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	hdr.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	binary.Write(&b, le, hdr)
	off := dataOff
	for _, s := range segs {
		t := s.ptype
		if t == 0 {
			t = elf.PT_LOAD
		}
		binary.Write(&b, le, elf.Prog64{Type: uint32(t), Off: off, Vaddr: s.paddr, Paddr: s.paddr,
			Filesz: uint64(len(s.data)), Memsz: s.memsz, Align: 4096})
		off += uint64(len(s.data))
	}
	for _, s := range segs {
		b.Write(s.data)
	}
	return b.Bytes()
}

func TestLoadELF(t *testing.T) {
	r := newRig(t)
	pa := uint64(ramBase + 0x20_0000)
	vm, _ := r.guest(t, "elf", pa)
	// Dirty the page where .bss will go: loading must zero it.
	r.phys.Write(pa+0x2000+4, []byte{0xee})
	img := makeELF(elf.EM_AARCH64, elf.ET_EXEC, guestIPA+0x10,
		seg{paddr: guestIPA, data: []byte("TEXT0123"), memsz: 8},
		seg{paddr: guestIPA + 0x2000, data: []byte("DATA"), memsz: 0x1100}, // straddles a page
		seg{paddr: 0x1234, data: []byte("note"), memsz: 4, ptype: elf.PT_NOTE})
	entry, err := r.h.LoadELF(vm, img)
	require.NoError(t, err)
	assert.Equal(t, uint64(guestIPA+0x10), entry)
	assert.Equal(t, byte('T'), r.phys.read(pa))
	assert.Equal(t, byte('3'), r.phys.read(pa+7))
	assert.Equal(t, byte('A'), r.phys.read(pa+0x2003))
	assert.Zero(t, r.phys.read(pa+0x2004), ".bss zeroed")
	assert.Zero(t, r.phys.read(pa+0x30ff), ".bss zeroed across the page boundary")
}

func TestLoadELFRejects(t *testing.T) {
	r := newRig(t)
	vm, _ := r.guest(t, "elf", ramBase+0x20_0000)
	ok := seg{paddr: guestIPA, data: []byte("x"), memsz: 1}
	for _, tc := range []struct {
		img  []byte
		want string
	}{
		{[]byte("not an elf at all, just text"), "not an ELF image"},
		{makeELF(elf.EM_AARCH64, elf.ET_EXEC, guestIPA, ok)[:70], "not an ELF image"},
		{makeELF(elf.EM_X86_64, elf.ET_EXEC, guestIPA, ok), "want ELFCLASS64 ELFDATA2LSB EM_AARCH64"},
		{makeELF(elf.EM_AARCH64, elf.ET_DYN, guestIPA, ok), "want an executable"},
		{makeELF(elf.EM_AARCH64, elf.ET_EXEC, guestIPA, seg{paddr: 0x1000, data: []byte("x"), memsz: 1}), "outside the VM's memory"},
		{makeELF(elf.EM_AARCH64, elf.ET_EXEC, guestIPA, seg{paddr: guestIPA + 1<<20 - 2, data: []byte("xyz"), memsz: 3}), "outside the VM's memory"},
		{makeELF(elf.EM_AARCH64, elf.ET_EXEC, guestIPA, seg{paddr: guestIPA, data: []byte("xyz"), memsz: 2}), "exceeds memory size"},
		{makeELF(elf.EM_AARCH64, elf.ET_EXEC, 0x10, ok), "entry point 0x10 lies outside"},
		{makeELF(elf.EM_AARCH64, elf.ET_EXEC, guestIPA), "no loadable segment"},
	} {
		_, err := r.h.LoadELF(vm, tc.img)
		if assert.Error(t, err) {
			assert.Contains(t, err.Error(), tc.want)
		}
	}
}

func TestParseGuestSpecs(t *testing.T) {
	specs, err := ParseGuestSpecs(map[string]string{
		"guest10": "b:0x52000000:4096:0:0x200000:1:3", "guest2": "a:0x50000000:8192:3:0x2000000:2", "exit": "semihosting",
	})
	require.NoError(t, err)
	require.Len(t, specs, 2)
	assert.Equal(t, GuestSpec{Key: "guest2", Name: "a", Image: 0x50000000, ImageSize: 8192, Arg: 3, Mem: 32 << 20, CPUs: 2}, specs[0])
	assert.Equal(t, GuestSpec{Key: "guest10", Name: "b", Image: 0x52000000, ImageSize: 4096, Mem: 2 << 20, CPUs: 1, PCPU: 4}, specs[1])
	for _, tc := range []struct {
		args map[string]string
		want string
	}{
		{map[string]string{"guestx": "a:1:2"}, "want guest0, guest1"},
		{map[string]string{"guest0": "a:0x50000000"}, "want NAME:IMAGE_ADDR:IMAGE_SIZE"},
		{map[string]string{"guest0": ":0x50000000:1"}, "empty or used twice"},
		{map[string]string{"guest0": "a:0x50000000:1", "guest1": "a:0x51000000:1"}, "empty or used twice"},
		{map[string]string{"guest0": "a:0x50000001:1"}, "8-byte aligned"},
		{map[string]string{"guest0": "a:0x50000000:0"}, "not empty"},
		{map[string]string{"guest0": "a:0x50000000:1:0:0x300000"}, "multiple of 2 MiB"},
		{map[string]string{"guest0": "a:0x50000000:one"}, `"one" is not a number`},
		{map[string]string{"guest0": "a:0x50000000:1:0:0x200000:17"}, "17 vCPUs: want 1 to 16"},
		{map[string]string{"guest0": "a:0x50000000:1:0:0x200000:0"}, "0 vCPUs"},
		{map[string]string{"guest0": "a:0x50000000:1:0:0x200000:1:64"}, "physical CPU 64: want 0 to 63"},
		{map[string]string{"guest0": "a:0x50000000:1:0:0x200000:1:0:9"}, "want NAME:IMAGE_ADDR"},
	} {
		_, err := ParseGuestSpecs(tc.args)
		if assert.Error(t, err, "%v", tc.args) {
			assert.Contains(t, err.Error(), tc.want)
		}
	}
}

func TestPlacer(t *testing.T) {
	p := NewPlacer(0x4400_0000, 0x8000_0000, []Region{{PA: 0x4500_0000, Size: 0x1000}, {PA: 0x4600_0000, Size: 0x30_0000}})
	a, err := p.Place(16 << 20)
	require.NoError(t, err)
	assert.Equal(t, uint64(0x4400_0000), a, "ends right where the first image starts")
	b, err := p.Place(2 << 20)
	require.NoError(t, err)
	assert.Equal(t, uint64(0x4520_0000), b, "past the first image, 2 MiB aligned")
	c, err := p.Place(14 << 20)
	require.NoError(t, err)
	assert.Equal(t, uint64(0x4640_0000), c, "past the second image")
	_, err = p.Place(1 << 30)
	assert.ErrorContains(t, err, "no 1024 MiB of free RAM")

	// What comes back is handed out again, lowest first.
	p.Free(a)
	d, err := p.Place(4 << 20)
	require.NoError(t, err)
	assert.Equal(t, a, d, "reused")
	e, err := p.Place(16 << 20)
	require.NoError(t, err)
	assert.Equal(t, c+14<<20, e, "a hole too small is skipped")
	_, err = p.Place(0x8000_0000 - e - 16<<20 + 2<<20)
	assert.Error(t, err, "exhausted")

	// A claimed range is passed over like a placed one, until freed.
	q := NewPlacer(0x4400_0000, 0x8000_0000, nil)
	q.Claim(0x4400_0000, 6<<20)
	f, err := q.Place(2 << 20)
	require.NoError(t, err)
	assert.Equal(t, uint64(0x4460_0000), f, "past the claim")
	q.Free(0x4400_0000)
	f, err = q.Place(2 << 20)
	require.NoError(t, err)
	assert.Equal(t, uint64(0x4400_0000), f, "the claim's room, once freed")
}
