package fdt

import (
	"encoding/binary"
	"fmt"
)

// Builder writes a flattened device tree. Nodes are opened and closed in
// order; Bytes checks that every node was closed.
type Builder struct {
	structs  []byte
	strings  []byte
	nameOffs map[string]uint32
	depth    int
	err      error
	reserved []Range
}

func (b *Builder) u32(v uint32) { b.structs = binary.BigEndian.AppendUint32(b.structs, v) }

func (b *Builder) pad() {
	for len(b.structs)%4 != 0 {
		b.structs = append(b.structs, 0)
	}
}

// Reserve adds a memory reservation block entry.
func (b *Builder) Reserve(r Range) { b.reserved = append(b.reserved, r) }

// BeginNode opens a node; the root node's name is "".
func (b *Builder) BeginNode(name string) {
	if b.depth == 0 && len(b.structs) != 0 && b.err == nil {
		b.err = fmt.Errorf("fdt: builder: second root node %q", name)
	}
	b.u32(tokenBeginNode)
	b.structs = append(b.structs, name...)
	b.structs = append(b.structs, 0)
	b.pad()
	b.depth++
}

// EndNode closes the innermost open node.
func (b *Builder) EndNode() {
	if b.depth == 0 && b.err == nil {
		b.err = fmt.Errorf("fdt: builder: EndNode without an open node")
	}
	b.u32(tokenEndNode)
	b.depth--
}

// Prop adds a raw property to the open node.
func (b *Builder) Prop(name string, value []byte) {
	if b.depth == 0 && b.err == nil {
		b.err = fmt.Errorf("fdt: builder: property %q outside any node", name)
	}
	if b.nameOffs == nil {
		b.nameOffs = map[string]uint32{}
	}
	off, ok := b.nameOffs[name]
	if !ok {
		off = uint32(len(b.strings))
		b.strings = append(append(b.strings, name...), 0)
		b.nameOffs[name] = off
	}
	b.u32(tokenProp)
	b.u32(uint32(len(value)))
	b.u32(off)
	b.structs = append(b.structs, value...)
	b.pad()
}

// PropU32 adds a property of 32-bit cells.
func (b *Builder) PropU32(name string, cells ...uint32) {
	v := make([]byte, 0, 4*len(cells))
	for _, c := range cells {
		v = binary.BigEndian.AppendUint32(v, c)
	}
	b.Prop(name, v)
}

// PropU64 adds a property of 64-bit values, each as two cells.
func (b *Builder) PropU64(name string, vals ...uint64) {
	v := make([]byte, 0, 8*len(vals))
	for _, x := range vals {
		v = binary.BigEndian.AppendUint64(v, x)
	}
	b.Prop(name, v)
}

// PropStrings adds a string or string-list property.
func (b *Builder) PropStrings(name string, s ...string) {
	var v []byte
	for _, x := range s {
		v = append(append(v, x...), 0)
	}
	b.Prop(name, v)
}

// Bytes finishes the blob (format version 17).
func (b *Builder) Bytes() ([]byte, error) {
	if b.err != nil {
		return nil, b.err
	}
	if b.depth != 0 {
		return nil, fmt.Errorf("fdt: builder: %d node(s) left open", b.depth)
	}
	rsv := uint32(headerSize)
	rsvSize := uint32(16 * (len(b.reserved) + 1))
	structOff := rsv + rsvSize
	structs := binary.BigEndian.AppendUint32(append([]byte(nil), b.structs...), tokenEnd)
	stringsOff := structOff + uint32(len(structs))
	total := stringsOff + uint32(len(b.strings))

	out := make([]byte, 0, total)
	for _, v := range []uint32{Magic, total, structOff, stringsOff, rsv, 17, 16, 0,
		uint32(len(b.strings)), uint32(len(structs))} {
		out = binary.BigEndian.AppendUint32(out, v)
	}
	for _, r := range b.reserved {
		out = binary.BigEndian.AppendUint64(out, r.Addr)
		out = binary.BigEndian.AppendUint64(out, r.Size)
	}
	out = append(out, make([]byte, 16)...)
	out = append(out, structs...)
	out = append(out, b.strings...)
	return out, nil
}
