package fwcfg

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// model is fw_cfg's DMA interface as QEMU implements it, over items by
// key: a transfer selects, reads into guest memory and clears control.
type model struct {
	items map[uint16][]byte
	mem   []byte // "physical" memory from base
	base  uint64
	noDMA bool
}

func (m *model) ReadDMA() uint64 {
	if m.noDMA {
		return 0
	}
	return dmaSignature
}

func (m *model) Buffer(n int) ([]byte, uint64) {
	m.mem = make([]byte, n)
	return m.mem, m.base
}

func (m *model) StartDMA(pa uint64) {
	d := m.mem[pa-m.base:]
	control := binary.BigEndian.Uint32(d)
	n := binary.BigEndian.Uint32(d[4:])
	addr := binary.BigEndian.Uint64(d[8:])
	item, ok := m.items[uint16(control>>16)]
	if !ok || control&dmaSelect == 0 || control&dmaRead == 0 || uint64(n) > uint64(len(item)) {
		binary.BigEndian.PutUint32(d, dmaError)
		return
	}
	copy(m.mem[addr-m.base:], item[:n])
	binary.BigEndian.PutUint32(d, 0)
}

func dir(files ...File) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(files)))
	for _, f := range files {
		b = binary.BigEndian.AppendUint32(b, f.Size)
		b = binary.BigEndian.AppendUint16(b, f.Select)
		b = append(b, 0, 0)
		name := make([]byte, fileNameSize)
		copy(name, f.Name)
		b = append(b, name...)
	}
	return b
}

func TestReadFile(t *testing.T) {
	elf := []byte("\x7fELF and the rest of the control partition")
	m := &model{base: 0x4800_0000, items: map[uint16][]byte{
		keyFileDir: dir(File{Name: "etc/boot-menu-wait", Size: 2, Select: 0x20}, File{Name: "opt/org.bulkhead/control", Size: uint32(len(elf)), Select: 0x21}),
		0x20:       {0, 0},
		0x21:       elf,
	}}
	r, err := Open(m)
	require.NoError(t, err)
	files, err := r.Files()
	require.NoError(t, err)
	assert.Equal(t, []File{{"etc/boot-menu-wait", 2, 0x20}, {"opt/org.bulkhead/control", uint32(len(elf)), 0x21}}, files)
	got, err := r.ReadFile("opt/org.bulkhead/control", 1<<20)
	require.NoError(t, err)
	assert.Equal(t, elf, got)

	_, err = r.ReadFile("opt/org.bulkhead/control", 8)
	assert.ErrorContains(t, err, "more than the 8 it may be")
	_, err = r.ReadFile("opt/none", 1<<20)
	assert.ErrorContains(t, err, "no file opt/none")
}

func TestRefusals(t *testing.T) {
	_, err := Open(&model{noDMA: true})
	assert.ErrorContains(t, err, "no DMA interface")

	m := &model{items: map[uint16][]byte{keyFileDir: {0xff, 0xff, 0xff, 0xff}}}
	r, err := Open(m)
	require.NoError(t, err)
	_, err = r.Files()
	assert.ErrorContains(t, err, "claims 4294967295 files")

	m.items[keyFileDir] = dir(File{Name: "x", Size: 100, Select: 0x22})
	m.items[0x22] = []byte("short")
	_, err = r.ReadFile("x", 1000)
	assert.ErrorContains(t, err, "the device reports an error")
}
