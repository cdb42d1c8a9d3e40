package main

import (
	"bytes"
	"debug/elf"
	"debug/pe"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-hv/bulkhead/internal/qemutest"
)

// The hypervisor's EFI image, read back with debug/pe: an arm64 EFI
// application whose one section holds the ELF's bytes at the addresses
// they were linked for, entered at the UEFI entry.
func TestHypervisorEFIImage(t *testing.T) {
	dir := qemutest.ImageDir(t)
	f, err := elf.Open(filepath.Join(dir, "bulkhead-hyp.elf"))
	require.NoError(t, err)
	defer f.Close()
	img, err := loadELF(f, "efiEntry")
	require.NoError(t, err)
	b := writePE(img)
	built, err := os.ReadFile(filepath.Join(dir, "bulkhead-hyp.efi"))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(b, built), "make's build/bulkhead-hyp.efi is this image")

	p, err := pe.NewFile(bytes.NewReader(b))
	require.NoError(t, err)
	assert.Equal(t, uint16(pe.IMAGE_FILE_MACHINE_ARM64), p.Machine)
	assert.NotZero(t, p.Characteristics&pe.IMAGE_FILE_RELOCS_STRIPPED, "no relocations: loaded where it is linked")
	assert.NotZero(t, p.Characteristics&pe.IMAGE_FILE_EXECUTABLE_IMAGE)
	oh, ok := p.OptionalHeader.(*pe.OptionalHeader64)
	require.True(t, ok, "PE32+")
	assert.Equal(t, uint16(0x20b), oh.Magic)
	assert.Equal(t, uint16(pe.IMAGE_SUBSYSTEM_EFI_APPLICATION), oh.Subsystem)

	var entry, end, text uint64
	syms, err := f.Symbols()
	require.NoError(t, err)
	for _, s := range syms {
		switch s.Name {
		case "efiEntry":
			entry = s.Value
		case "runtime.end":
			end = s.Value
		case "runtime.text":
			text = s.Value
		}
	}
	require.NotZero(t, entry)
	assert.Equal(t, entry, oh.ImageBase+uint64(oh.AddressOfEntryPoint), "entered at efiEntry")
	assert.Equal(t, img.base-0x1000, oh.ImageBase, "the headers in the page below the image")
	assert.Equal(t, text-0x2000, oh.ImageBase, "the image starts with the ELF header's page, below the text (efi_arm64.s: IMAGE_BASE)")
	require.Len(t, p.Sections, 1)
	s := p.Sections[0]
	assert.Equal(t, img.base, oh.ImageBase+uint64(s.VirtualAddress))
	assert.GreaterOrEqual(t, oh.ImageBase+uint64(s.VirtualAddress)+uint64(s.VirtualSize), end, "bss included")
	assert.GreaterOrEqual(t, uint64(oh.SizeOfImage), uint64(s.VirtualAddress)+uint64(s.VirtualSize))
	assert.Equal(t, uint32(0), oh.SizeOfImage%oh.SectionAlignment)
	assert.Equal(t, uint32(0), s.Offset%oh.FileAlignment)

	// Every loaded byte of the ELF is where the PE puts it.
	data, err := s.Data()
	require.NoError(t, err)
	for _, prog := range f.Progs {
		if prog.Type != elf.PT_LOAD || prog.Filesz == 0 {
			continue
		}
		want := make([]byte, prog.Filesz)
		_, err := prog.ReadAt(want, 0)
		require.NoError(t, err)
		off := prog.Vaddr - img.base
		assert.True(t, bytes.Equal(want, data[off:off+prog.Filesz]), "segment at %#x", prog.Vaddr)
	}
}

func TestRefusesWhatUEFICannotLoad(t *testing.T) {
	dir := qemutest.ImageDir(t)
	f, err := elf.Open(filepath.Join(dir, "bulkhead-hyp.elf"))
	require.NoError(t, err)
	defer f.Close()
	_, err = loadELF(f, "noSuchSymbol")
	assert.ErrorContains(t, err, "no symbol noSuchSymbol")
}
