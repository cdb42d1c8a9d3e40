package fdt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/bulkhead-hv/bulkhead/internal/qemutest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Header field offsets (DTSpec 5.2), for patching blobs.
const (
	offMagic        = 0
	offTotalSize    = 4
	offOffStruct    = 8
	offOffStrings   = 12
	offOffMemRsvmap = 16
	offVersion      = 20
	offLastComp     = 24
	offSizeStrings  = 32
	offSizeStruct   = 36
)

func getU32(b []byte, off uint32) uint32 { return binary.BigEndian.Uint32(b[off:]) }

func putU32(b []byte, off, v uint32) { binary.BigEndian.PutUint32(b[off:], v) }

// patched returns a copy of blob with the 32-bit big-endian word at off
// replaced by v.
func patched(blob []byte, off, v uint32) []byte {
	out := append([]byte(nil), blob...)
	putU32(out, off, v)
	return out
}

// structOff is where the structure block starts in blob.
func structOff(blob []byte) uint32 { return getU32(blob, offOffStruct) }

func mustBytes(t testing.TB, b *Builder) []byte {
	t.Helper()
	blob, err := b.Bytes()
	require.NoError(t, err)
	return blob
}

// sampleTree is a small but varied tree: root cells 2/2, memory with two
// ranges, /cpus with cells 1/0, /chosen, a PL011 with a string-list
// compatible, a bus with cells 1/1, a bus relying on the DTSpec default
// cells (2/1) and one reservation.
func sampleTree(t testing.TB) []byte {
	t.Helper()
	var b Builder
	b.Reserve(Range{Addr: 0x48000000, Size: 0x100000})
	b.Reserve(Range{Addr: 0x1_0000_0000, Size: 0x2000})
	b.BeginNode("")
	b.PropU32("#address-cells", 2)
	b.PropU32("#size-cells", 2)
	b.PropStrings("model", "acme test board")
	b.PropStrings("compatible", "acme,board", "acme,generic")

	b.BeginNode("memory@40000000")
	b.PropStrings("device_type", "memory")
	b.PropU64("reg", 0x40000000, 0x20000000, 0x1_0000_0000, 0x4000_0000)
	b.EndNode()

	b.BeginNode("cpus")
	b.PropU32("#address-cells", 1)
	b.PropU32("#size-cells", 0)
	b.BeginNode("cpu@0")
	b.PropStrings("device_type", "cpu")
	b.PropStrings("compatible", "arm,cortex-a57")
	b.PropU32("reg", 0)
	b.EndNode()
	b.BeginNode("cpu@100")
	b.PropStrings("device_type", "cpu")
	b.PropStrings("compatible", "arm,cortex-a57")
	b.PropU32("reg", 0x100)
	b.EndNode()
	b.EndNode()

	b.BeginNode("chosen")
	b.PropStrings("bootargs", "console=ttyAMA0 quiet")
	b.PropStrings("stdout-path", "/uart@9000000:115200n8")
	b.EndNode()

	b.BeginNode("uart@9000000")
	b.PropStrings("compatible", "arm,pl011", "arm,primecell")
	b.PropU64("reg", 0x9000000, 0x1000)
	b.Prop("raw", []byte{1, 2, 3})
	b.Prop("empty", nil)
	b.EndNode()

	b.BeginNode("soc")
	b.PropU32("#address-cells", 1)
	b.PropU32("#size-cells", 1)
	b.BeginNode("timer@1000")
	b.PropStrings("compatible", "acme,timer")
	b.PropU32("reg", 0x1000, 0x100, 0x2000, 0x80)
	b.EndNode()
	b.BeginNode("wide")
	b.PropU32("#address-cells", 3)
	b.BeginNode("dev@0")
	b.PropU32("reg", 0, 0, 0, 0)
	b.EndNode()
	b.EndNode()
	b.EndNode()

	b.BeginNode("bus") // no cells properties: children use 2 and 1
	b.BeginNode("dev@120000000")
	b.PropU32("reg", 0x1, 0x2000_0000, 0x1000)
	b.EndNode()
	b.BeginNode("wrap@0")
	b.PropU32("reg", 0xffffffff, 0xfffff000, 0x2000)
	b.EndNode()
	b.BeginNode("noreg")
	b.EndNode()
	b.EndNode()

	b.EndNode()
	return mustBytes(t, &b)
}

func TestRoundTrip(t *testing.T) {
	blob := sampleTree(t)
	tr, err := Parse(blob)
	require.NoError(t, err)

	// Header as the builder wrote it.
	assert.Equal(t, uint32(Magic), tr.Header.Magic)
	assert.Equal(t, uint32(len(blob)), tr.Header.TotalSize)
	assert.Equal(t, uint32(17), tr.Header.Version)
	assert.Equal(t, uint32(16), tr.Header.LastCompVersion)
	assert.Zero(t, structOff(blob)%4)
	h, err := ReadHeader(blob)
	require.NoError(t, err)
	assert.Equal(t, tr.Header, h)

	assert.Equal(t, []Range{{0x48000000, 0x100000}, {0x1_0000_0000, 0x2000}}, tr.Reserved)

	// Tree shape, in order.
	var paths []string
	tr.Walk(func(n *Node) { paths = append(paths, n.Path()) })
	assert.Equal(t, []string{
		"/", "/memory@40000000", "/cpus", "/cpus/cpu@0", "/cpus/cpu@100", "/chosen",
		"/uart@9000000", "/soc", "/soc/timer@1000", "/soc/wide", "/soc/wide/dev@0",
		"/bus", "/bus/dev@120000000", "/bus/wrap@0", "/bus/noreg",
	}, paths)

	// Find and Child, with and without unit addresses.
	root := tr.Root
	assert.Equal(t, "", root.Name)
	assert.Nil(t, root.Parent)
	assert.Same(t, root, tr.Find("/"))
	mem := tr.Find("/memory@40000000")
	require.NotNil(t, mem)
	assert.Equal(t, "memory@40000000", mem.Name)
	assert.Equal(t, "/memory@40000000", mem.Path())
	assert.Same(t, root, mem.Parent)
	assert.Same(t, mem, tr.Find("/memory"))
	assert.Same(t, mem, root.Child("memory"))
	assert.Same(t, mem, root.Child("memory@40000000"))
	assert.Nil(t, root.Child("memory@80000000"))
	assert.Nil(t, root.Child("mem"))

	cpus := tr.Find("/cpus")
	require.NotNil(t, cpus)
	require.Len(t, cpus.Children, 2)
	cpu1 := tr.Find("/cpus/cpu@100")
	require.NotNil(t, cpu1)
	assert.Same(t, cpus.Children[1], cpu1)
	assert.Equal(t, "/cpus/cpu@100", cpu1.Path())
	assert.Same(t, cpus, cpu1.Parent)
	assert.Same(t, cpus.Children[0], tr.Find("/cpus/cpu"), "without a unit address the first match wins")
	assert.Same(t, cpus.Children[0], cpus.Child("cpu"))
	assert.Same(t, cpu1, tr.Find("//cpus//cpu@100/"), "empty path components are ignored")
	assert.Equal(t, "/soc/wide/dev@0", tr.Find("/soc/wide/dev@0").Path())
	assert.Nil(t, tr.Find("cpus"), "relative paths are not found")
	assert.Nil(t, tr.Find(""))
	assert.Nil(t, tr.Find("/cpus/cpu@2"))
	assert.Nil(t, tr.Find("/nope"))
	assert.Nil(t, tr.Find("/nope/cpu@0"))

	// U32.
	ac, err := cpus.U32("#address-cells")
	require.NoError(t, err)
	assert.Equal(t, uint32(1), ac)
	reg, err := cpu1.U32("reg")
	require.NoError(t, err)
	assert.Equal(t, uint32(0x100), reg)
	_, err = cpus.U32("#interrupt-cells")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `/cpus has no "#interrupt-cells" property`)
	_, err = mem.U32("reg")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"reg" is 32 bytes, want one 4-byte cell`)

	// Prop.
	raw, ok := tr.Find("/uart").Prop("raw")
	assert.True(t, ok)
	assert.Equal(t, []byte{1, 2, 3}, raw)
	empty, ok := tr.Find("/uart").Prop("empty")
	assert.True(t, ok)
	assert.Empty(t, empty)
	_, ok = tr.Find("/uart").Prop("missing")
	assert.False(t, ok)

	// Strings and String.
	list, err := root.Strings("compatible")
	require.NoError(t, err)
	assert.Equal(t, []string{"acme,board", "acme,generic"}, list)
	s, err := root.String("compatible")
	require.NoError(t, err)
	assert.Equal(t, "acme,board", s)
	model, err := root.String("model")
	require.NoError(t, err)
	assert.Equal(t, "acme test board", model)
	chosen := tr.Find("/chosen")
	require.NotNil(t, chosen)
	bootargs, err := chosen.String("bootargs")
	require.NoError(t, err)
	assert.Equal(t, "console=ttyAMA0 quiet", bootargs)
	stdout, err := chosen.String("stdout-path")
	require.NoError(t, err)
	assert.Equal(t, "/uart@9000000:115200n8", stdout)
	_, err = tr.Find("/uart").Strings("raw")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `/uart@9000000: "raw" is not a NUL-terminated string list`)
	_, err = tr.Find("/uart").String("empty")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not a NUL-terminated string list")
	_, err = chosen.String("missing")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `/chosen has no "missing" property`)

	// Compatible and FindCompatible.
	uart := tr.Find("/uart@9000000")
	require.NotNil(t, uart)
	assert.True(t, uart.Compatible("arm,pl011"))
	assert.True(t, uart.Compatible("arm,primecell"))
	assert.False(t, uart.Compatible("arm,pl01"), "no prefix match")
	assert.False(t, uart.Compatible("arm,pl011,"), "no partial match")
	assert.False(t, chosen.Compatible("arm,pl011"), "no compatible property")
	assert.Equal(t, []*Node{uart}, tr.FindCompatible("arm,pl011"))
	assert.Equal(t, []*Node{cpus.Children[0], cpu1}, tr.FindCompatible("arm,cortex-a57"))
	assert.Equal(t, []*Node{root}, tr.FindCompatible("acme,generic"))
	assert.Empty(t, tr.FindCompatible("arm,gic-v3"))

	// Reg with the cells of each parent.
	regs, err := mem.Reg() // 2/2
	require.NoError(t, err)
	assert.Equal(t, []Range{{0x40000000, 0x20000000}, {0x1_0000_0000, 0x4000_0000}}, regs)
	assert.Equal(t, uint64(0x60000000), regs[0].End())
	assert.Equal(t, "[0x40000000-0x60000000)", regs[0].String())
	regs, err = cpu1.Reg() // 1/0
	require.NoError(t, err)
	assert.Equal(t, []Range{{0x100, 0}}, regs)
	regs, err = tr.Find("/soc/timer@1000").Reg() // 1/1
	require.NoError(t, err)
	assert.Equal(t, []Range{{0x1000, 0x100}, {0x2000, 0x80}}, regs)
	regs, err = tr.Find("/bus/dev@120000000").Reg() // defaults 2/1
	require.NoError(t, err)
	assert.Equal(t, []Range{{0x1_2000_0000, 0x1000}}, regs)

	_, err = tr.Find("/bus/wrap@0").Reg()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "/bus/wrap@0: reg range 0xfffffffffffff000+0x2000 wraps around")
	_, err = tr.Find("/bus/noreg").Reg()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "/bus/noreg has no reg property")
	_, err = tr.Find("/soc/wide/dev@0").Reg()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "/soc/wide: #address-cells = 3, at most 2 supported")
}

// A reg property whose length is not a multiple of the entry size, or is
// empty, is rejected with the cell counts in the message.
func TestRegBadLength(t *testing.T) {
	var b Builder
	b.BeginNode("")
	b.PropU32("#address-cells", 2)
	b.PropU32("#size-cells", 2)
	b.BeginNode("odd@0")
	b.PropU32("reg", 0, 0x1000, 0) // 12 bytes, entries are 16
	b.EndNode()
	b.BeginNode("empty@0")
	b.Prop("reg", nil)
	b.EndNode()
	b.BeginNode("cells")
	b.PropU32("#address-cells", 0)
	b.PropU32("#size-cells", 0)
	b.BeginNode("zero")
	b.Prop("reg", nil)
	b.EndNode()
	b.EndNode()
	b.BeginNode("badcells")
	b.Prop("#size-cells", []byte{0, 1}) // not one cell
	b.BeginNode("dev")
	b.PropU32("reg", 0, 0, 0)
	b.EndNode()
	b.EndNode()
	b.EndNode()
	tr, err := Parse(mustBytes(t, &b))
	require.NoError(t, err)

	_, err = tr.Find("/odd@0").Reg()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "/odd@0: reg is 12 bytes, not a multiple of 16 (#address-cells 2, #size-cells 2)")
	_, err = tr.Find("/empty@0").Reg()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "/empty@0: reg is 0 bytes")
	_, err = tr.Find("/cells/zero").Reg()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "#address-cells 0, #size-cells 0")
	_, err = tr.Find("/badcells/dev").Reg()
	require.Error(t, err)
	assert.Contains(t, err.Error(), `/badcells: "#size-cells" is 2 bytes`)
}

func TestQEMUDeviceTree(t *testing.T) {
	blob := qemutest.DumpDTB(t, "1G", 2)
	tr, err := Parse(blob)
	require.NoError(t, err)

	mem := tr.Find("/memory")
	require.NotNil(t, mem)
	dt, err := mem.String("device_type")
	require.NoError(t, err)
	assert.Equal(t, "memory", dt)
	regs, err := mem.Reg()
	require.NoError(t, err)
	assert.Equal(t, []Range{{0x40000000, 0x40000000}}, regs)

	cpus := tr.Find("/cpus")
	require.NotNil(t, cpus)
	var mpidrs []uint64
	for _, c := range cpus.Children {
		if dt, _ := c.String("device_type"); dt == "cpu" {
			r, err := c.Reg()
			require.NoError(t, err)
			require.Len(t, r, 1)
			mpidrs = append(mpidrs, r[0].Addr)
		}
	}
	assert.Equal(t, []uint64{0, 1}, mpidrs)
	assert.NotNil(t, tr.Find("/cpus/cpu@1"))

	uarts := tr.FindCompatible("arm,pl011")
	require.NotEmpty(t, uarts)
	regs, err = uarts[0].Reg()
	require.NoError(t, err)
	assert.Equal(t, Range{0x9000000, 0x1000}, regs[0])

	gics := tr.FindCompatible("arm,gic-v3")
	require.Len(t, gics, 1)
	regs, err = gics[0].Reg()
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(regs), 2)
	assert.Equal(t, Range{0x8000000, 0x10000}, regs[0])

	psci := tr.Find("/psci")
	require.NotNil(t, psci)
	method, err := psci.String("method")
	require.NoError(t, err)
	assert.Equal(t, "smc", method)
	assert.True(t, psci.Compatible("arm,psci-0.2"))

	chosen := tr.Find("/chosen")
	require.NotNil(t, chosen)
	bootargs, err := chosen.String("bootargs")
	require.NoError(t, err)
	assert.Equal(t, "a=b", bootargs)
	stdout, err := chosen.String("stdout-path")
	require.NoError(t, err)
	assert.Same(t, uarts[0], tr.Find(stdout))
}

// Every proper prefix of a valid blob is an error, never a panic, and never
// a tree.
func TestTruncations(t *testing.T) {
	blob := sampleTree(t)
	for n := 0; n < len(blob); n++ {
		tr, err := Parse(blob[:n])
		require.Error(t, err, "prefix of %d bytes", n)
		require.Nil(t, tr)
		if n < headerSize {
			assert.Contains(t, err.Error(), "shorter than the 40-byte header", "prefix of %d bytes", n)
		} else {
			assert.Contains(t, err.Error(), fmt.Sprintf("totalsize %d does not fit the %d bytes available", len(blob), n))
		}
	}

	// The same truncations with totalsize rewritten to match: now the
	// blocks themselves no longer fit.
	for n := headerSize; n < len(blob); n++ {
		b := patched(blob[:n], offTotalSize, uint32(n))
		tr, err := Parse(b)
		require.Error(t, err, "blob cut to %d bytes", n)
		require.Nil(t, tr)
		assert.Regexp(t, `(memory reservation|structure|strings) block`, err.Error(), "blob cut to %d bytes", n)
	}

	// A structure block cut short loses its END token at least.
	size := getU32(blob, offSizeStruct)
	for n := uint32(0); n < size; n++ {
		_, err := Parse(patched(blob, offSizeStruct, n))
		require.Error(t, err, "structure block of %d bytes", n)
		assert.Contains(t, err.Error(), "fdt: at offset 0x", "structure block of %d bytes", n)
	}

	// A strings block cut short loses the NUL of its last name at least.
	size = getU32(blob, offSizeStrings)
	for n := uint32(0); n < size; n++ {
		_, err := Parse(patched(blob, offSizeStrings, n))
		require.Error(t, err, "strings block of %d bytes", n)
		assert.Contains(t, err.Error(), "property name (strings offset", "strings block of %d bytes", n)
	}
}

// endNodeOffsets returns the offsets of the END_NODE tokens of a
// Builder-made structure block without properties and with 1-3 character
// node names, where every word is a token or a padded name.
func endNodeOffsets(t *testing.T, blob []byte) []uint32 {
	t.Helper()
	var out []uint32
	s, size := structOff(blob), getU32(blob, offSizeStruct)
	for off := s; off < s+size; off += 4 {
		if getU32(blob, off) == tokenEndNode {
			out = append(out, off)
		}
	}
	return out
}

func TestMalformed(t *testing.T) {
	blob := sampleTree(t)
	total := uint32(len(blob))
	so := structOff(blob)

	// root { a { b { } } }: BEGIN "" | BEGIN "a" | BEGIN "b" | END_NODE x3 | END,
	// each BEGIN_NODE with its padded name 8 bytes.
	var nb Builder
	nb.BeginNode("")
	nb.BeginNode("a")
	nb.BeginNode("b")
	nb.EndNode()
	nb.EndNode()
	nb.EndNode()
	nested := mustBytes(t, &nb)
	nso := structOff(nested)
	ends := endNodeOffsets(t, nested)
	require.Len(t, ends, 3)

	// root { p = <1>; }: BEGIN "" (8 bytes) | PROP len nameoff value | END_NODE | END.
	var pb Builder
	pb.BeginNode("")
	pb.PropU32("p", 1)
	pb.EndNode()
	withProp := mustBytes(t, &pb)
	pso := structOff(withProp)
	require.Equal(t, uint32(tokenProp), getU32(withProp, pso+8))

	noMissingEnd := append([]byte(nil), nested...)
	for _, off := range ends {
		putU32(noMissingEnd, off, tokenNop)
	}

	tests := []struct {
		name string
		blob []byte
		want string
	}{
		{"totalsize beyond the buffer", patched(blob, offTotalSize, total+1),
			fmt.Sprintf("totalsize %d does not fit the %d bytes available", total+1, total)},
		{"totalsize below the header", patched(blob, offTotalSize, 39), "totalsize 39 does not fit"},
		{"newer format", patched(blob, offLastComp, 17), "compatible down to 17) is newer than supported version 16"},
		{"structure block beyond the blob", patched(blob, offOffStruct, total-4), "structure block [0x"},
		{"structure block size overflows", patched(blob, offSizeStruct, 0xffffffff), "lies outside the"},
		{"strings block beyond the blob", patched(blob, offOffStrings, total-1), "strings block [0x"},
		{"strings block size overflows", patched(blob, offSizeStrings, 0xfffffffc), "strings block"},
		{"unaligned structure block", patched(blob, offOffStruct, so+1),
			fmt.Sprintf("structure block offset %#x is not 4-byte aligned", so+1)},
		{"reservations run off the end", patched(blob, offOffMemRsvmap, total-8),
			"memory reservation block runs past the end of the blob at entry 0"},
		{"reservation offset huge", patched(blob, offOffMemRsvmap, 0xfffffff8), "memory reservation block"},
		{"unknown token", patched(blob, so, 7), fmt.Sprintf("at offset %#x: unknown token 0x7", so)},
		{"END_NODE first", patched(blob, so, tokenEndNode),
			fmt.Sprintf("at offset %#x: END_NODE without a matching BEGIN_NODE", so)},
		{"END first", patched(blob, so, tokenEnd), fmt.Sprintf("at offset %#x: END before any node", so)},
		{"END_NODE after the root closed", patched(patched(withProp, pso+8, tokenEndNode), pso+12, tokenEndNode),
			fmt.Sprintf("at offset %#x: END_NODE without a matching BEGIN_NODE", pso+12)},
		{"second root", patched(patched(nested, nso+8, tokenEndNode), nso+12, tokenBeginNode),
			fmt.Sprintf(`at offset %#x: second root node ""`, nso+12)},
		{"property outside any node", patched(patched(withProp, pso+8, tokenEndNode), pso+12, tokenProp),
			fmt.Sprintf("at offset %#x: property outside any node", pso+12)},
		{"property name beyond the strings block", patched(withProp, pso+16, 0x1000),
			"property name (strings offset 0x1000) starts beyond its block"},
		{"property value past the structure block", patched(withProp, pso+12, 0xfffffff0),
			"property value of 4294967280 bytes runs past the structure block"},
		{"missing END_NODE", noMissingEnd,
			fmt.Sprintf(`at offset %#x: END inside node "/a/b" (missing END_NODE)`, nso+36)},
		{"node name not terminated", patched(patched(nested, offSizeStruct, 14), nso+12, 0x61616161),
			"node name is not NUL-terminated"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := Parse(tc.blob)
			require.Error(t, err)
			assert.Nil(t, tr)
			assert.Contains(t, err.Error(), tc.want)
			assert.True(t, strings.HasPrefix(err.Error(), "fdt: "), "error %q lacks the package prefix", err)
		})
	}

	// The unpatched inputs are valid, so the errors above come from the
	// patches.
	for _, b := range [][]byte{blob, nested, withProp} {
		_, err := Parse(b)
		require.NoError(t, err)
	}
}

func TestBadMagic(t *testing.T) {
	blob := patched(sampleTree(t), offMagic, 0xedfe0dd0) // little-endian magic
	_, err := Parse(blob)
	require.Error(t, err)
	assert.True(t, errors.Is(err, ErrNotFDT), "%v does not wrap ErrNotFDT", err)
	assert.Contains(t, err.Error(), "found 0xedfe0dd0, want 0xd00dfeed")

	h, err := ReadHeader(blob)
	assert.ErrorIs(t, err, ErrNotFDT)
	assert.Equal(t, uint32(0xedfe0dd0), h.Magic, "the header is returned so callers can tell no FDT from a bad one")

	_, err = Parse(make([]byte, 64))
	assert.ErrorIs(t, err, ErrNotFDT)
	_, err = Parse([]byte("not a device tree at all, but long enough for a header"))
	assert.ErrorIs(t, err, ErrNotFDT)

	// Other errors are not ErrNotFDT.
	_, err = Parse(patched(sampleTree(t), offTotalSize, 1<<20))
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrNotFDT)
}

// Trailing bytes past totalsize are ignored, and a blob whose version
// fields are older than the builder's still parses.
func TestParseTolerates(t *testing.T) {
	blob := sampleTree(t)
	tr, err := Parse(append(append([]byte(nil), blob...), 0xff, 0xff, 0xff, 0xff))
	require.NoError(t, err)
	assert.NotNil(t, tr.Find("/chosen"))

	tr, err = Parse(patched(patched(blob, offVersion, 16), offLastComp, 2))
	require.NoError(t, err)
	assert.Equal(t, uint32(16), tr.Header.Version)

	// NOPs between tokens are skipped.
	var b Builder
	b.BeginNode("")
	b.BeginNode("a")
	b.EndNode()
	b.EndNode()
	blob = mustBytes(t, &b)
	so := structOff(blob)
	// BEGIN "" | BEGIN "a" | END_NODE | END_NODE | END: replace the child
	// by two NOPs and its END_NODE by a third.
	blob = patched(patched(patched(blob, so+8, tokenNop), so+12, tokenNop), so+16, tokenNop)
	tr, err = Parse(blob)
	require.NoError(t, err)
	assert.Empty(t, tr.Root.Children)
}

func nestedBlob(t testing.TB, depth int) []byte {
	var b Builder
	for i := 0; i < depth; i++ {
		if i == 0 {
			b.BeginNode("")
		} else {
			b.BeginNode(fmt.Sprintf("n%d", i))
		}
	}
	for i := 0; i < depth; i++ {
		b.EndNode()
	}
	return mustBytes(t, &b)
}

func TestDepthLimit(t *testing.T) {
	// The root and 63 levels below it: 64 nodes deep is the limit.
	tr, err := Parse(nestedBlob(t, maxDepth))
	require.NoError(t, err)
	n := tr.Root
	for len(n.Children) > 0 {
		n = n.Children[0]
	}
	assert.Equal(t, "n63", n.Name)
	assert.Same(t, n, tr.Find(n.Path()))

	// Every BEGIN_NODE with its padded name is 8 bytes: the 65th starts
	// 64*8 bytes into the structure block.
	blob := nestedBlob(t, maxDepth+1)
	_, err = Parse(blob)
	require.Error(t, err)
	assert.Contains(t, err.Error(), fmt.Sprintf("at offset %#x: nodes nested deeper than 64", structOff(blob)+64*8))

	_, err = Parse(nestedBlob(t, 1000))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "nodes nested deeper than 64")
}

func TestBuilderErrors(t *testing.T) {
	t.Run("unclosed node", func(t *testing.T) {
		var b Builder
		b.BeginNode("")
		b.BeginNode("a")
		b.EndNode()
		blob, err := b.Bytes()
		require.Error(t, err)
		assert.Nil(t, blob)
		assert.Contains(t, err.Error(), "1 node(s) left open")
	})
	t.Run("EndNode without open node", func(t *testing.T) {
		var b Builder
		b.BeginNode("")
		b.EndNode()
		b.EndNode()
		blob, err := b.Bytes()
		require.Error(t, err)
		assert.Nil(t, blob)
		assert.Contains(t, err.Error(), "EndNode without an open node")
	})
	t.Run("second root", func(t *testing.T) {
		var b Builder
		b.BeginNode("")
		b.EndNode()
		b.BeginNode("other")
		b.EndNode()
		blob, err := b.Bytes()
		require.Error(t, err)
		assert.Nil(t, blob)
		assert.Contains(t, err.Error(), `second root node "other"`)
	})
	t.Run("property outside any node", func(t *testing.T) {
		var b Builder
		b.PropU32("early", 1)
		b.BeginNode("")
		b.EndNode()
		_, err := b.Bytes()
		require.Error(t, err)
		assert.Contains(t, err.Error(), `property "early" outside any node`)
	})
	t.Run("first error wins", func(t *testing.T) {
		var b Builder
		b.EndNode()
		b.BeginNode("")
		b.BeginNode("x")
		_, err := b.Bytes()
		require.Error(t, err)
		assert.Contains(t, err.Error(), "EndNode without an open node")
	})
}

// Property names are stored once in the strings block.
func TestBuilderSharesNames(t *testing.T) {
	var b Builder
	b.BeginNode("")
	b.PropU32("reg", 1)
	b.BeginNode("a")
	b.PropU32("reg", 2)
	b.EndNode()
	b.EndNode()
	blob := mustBytes(t, &b)
	assert.Equal(t, uint32(len("reg")+1), getU32(blob, offSizeStrings))
	tr, err := Parse(blob)
	require.NoError(t, err)
	v, err := tr.Find("/a").U32("reg")
	require.NoError(t, err)
	assert.Equal(t, uint32(2), v)
}

// pathFindable reports whether Find can be expected to return n for
// n.Path(): every node on the way has a non-empty name without '/' that no
// sibling shares.
func pathFindable(n *Node) bool {
	for ; n.Parent != nil; n = n.Parent {
		if n.Name == "" || strings.Contains(n.Name, "/") {
			return false
		}
		for _, s := range n.Parent.Children {
			if s != n && s.Name == n.Name {
				return false
			}
		}
	}
	return true
}

func FuzzParse(f *testing.F) {
	blob := sampleTree(f)
	f.Add(blob)
	f.Add(blob[:len(blob)/2])
	f.Add(patched(blob, offTotalSize, uint32(len(blob)/2)))
	f.Add(nestedBlob(f, 3))
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := Parse(data)
		if err != nil {
			require.Nil(t, tr)
			require.NotEmpty(t, err.Error())
			return
		}
		require.NotNil(t, tr.Root)
		require.Same(t, tr.Root, tr.Find("/"))
		nodes := 0
		tr.Walk(func(n *Node) {
			nodes++
			// The accessors must not panic on whatever the blob holds.
			_, _ = n.Reg()
			_, _ = n.Strings("compatible")
			_, _ = n.U32("#address-cells")
			_ = n.Compatible("arm,pl011")
			if pathFindable(n) {
				require.Same(t, n, tr.Find(n.Path()), "node %q", n.Path())
			}
		})
		require.Positive(t, nodes)

		// What Parse read, Builder writes back to a blob that parses to
		// the same tree: nothing Parse accepts is lost or altered.
		var b Builder
		for _, r := range tr.Reserved {
			b.Reserve(r)
		}
		rebuild(&b, tr.Root)
		blob, err := b.Bytes()
		require.NoError(t, err)
		again, err := Parse(blob)
		require.NoError(t, err)
		require.Equal(t, tr.Reserved, again.Reserved)
		sameTree(t, tr.Root, again.Root)
	})
}

// rebuild writes n and its subtree with b.
func rebuild(b *Builder, n *Node) {
	b.BeginNode(n.Name)
	for _, p := range n.Props {
		b.Prop(p.Name, p.Value)
	}
	for _, c := range n.Children {
		rebuild(b, c)
	}
	b.EndNode()
}

// sameTree checks that two subtrees hold the same names, properties (in
// order, values byte for byte) and children.
func sameTree(t *testing.T, want, got *Node) {
	t.Helper()
	require.Equal(t, want.Name, got.Name)
	require.Equal(t, len(want.Props), len(got.Props), "properties of %q", want.Path())
	for i, p := range want.Props {
		require.Equal(t, p.Name, got.Props[i].Name, "in %q", want.Path())
		require.Equal(t, string(p.Value), string(got.Props[i].Value), "%q of %q", p.Name, want.Path())
	}
	require.Equal(t, len(want.Children), len(got.Children), "children of %q", want.Path())
	for i, c := range want.Children {
		sameTree(t, c, got.Children[i])
	}
}
