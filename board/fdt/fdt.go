// Package fdt reads and writes flattened device trees (the Devicetree
// Specification v0.4, chapter 5, "Flattened Devicetree (DTB) Format").
//
// Bulkhead learns its machine (memory, CPUs, console, interrupt controller,
// PSCI conduit) from the tree firmware or QEMU passes, and builds trees for
// its guests. Every malformed input is reported with what is wrong and where.
package fdt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Header layout (DTSpec 5.2).
const (
	Magic          = 0xd00dfeed
	headerSize     = 40
	tokenBeginNode = 0x1
	tokenEndNode   = 0x2
	tokenProp      = 0x3
	tokenNop       = 0x4
	tokenEnd       = 0x9
	maxDepth       = 64
	// lastCompatVersion is the oldest format version this reader accepts.
	lastCompatVersion = 16
)

// ErrNotFDT means the blob does not start with the FDT magic number.
var ErrNotFDT = errors.New("fdt: bad magic: not a flattened device tree")

// Header is the fixed header at the start of a blob.
type Header struct {
	Magic, TotalSize, OffStruct, OffStrings, OffMemRsvmap uint32
	Version, LastCompVersion, BootCPUIDPhys               uint32
	SizeStrings, SizeStruct                               uint32
}

// ReadHeader decodes and checks the header of blob b.
func ReadHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < headerSize {
		return h, fmt.Errorf("fdt: blob of %d bytes is shorter than the %d-byte header", len(b), headerSize)
	}
	be := binary.BigEndian
	h = Header{
		Magic: be.Uint32(b[0:]), TotalSize: be.Uint32(b[4:]), OffStruct: be.Uint32(b[8:]),
		OffStrings: be.Uint32(b[12:]), OffMemRsvmap: be.Uint32(b[16:]), Version: be.Uint32(b[20:]),
		LastCompVersion: be.Uint32(b[24:]), BootCPUIDPhys: be.Uint32(b[28:]),
		SizeStrings: be.Uint32(b[32:]), SizeStruct: be.Uint32(b[36:]),
	}
	if h.Magic != Magic {
		return h, fmt.Errorf("%w (found 0x%08x, want 0x%08x)", ErrNotFDT, h.Magic, uint32(Magic))
	}
	if h.TotalSize < headerSize || uint64(h.TotalSize) > uint64(len(b)) {
		return h, fmt.Errorf("fdt: header totalsize %d does not fit the %d bytes available", h.TotalSize, len(b))
	}
	if h.LastCompVersion > lastCompatVersion {
		return h, fmt.Errorf("fdt: format version %d (compatible down to %d) is newer than supported version %d",
			h.Version, h.LastCompVersion, lastCompatVersion)
	}
	if uint64(h.OffStruct)+uint64(h.SizeStruct) > uint64(h.TotalSize) {
		return h, fmt.Errorf("fdt: structure block [%#x, +%#x) lies outside the %d-byte blob", h.OffStruct, h.SizeStruct, h.TotalSize)
	}
	if uint64(h.OffStrings)+uint64(h.SizeStrings) > uint64(h.TotalSize) {
		return h, fmt.Errorf("fdt: strings block [%#x, +%#x) lies outside the %d-byte blob", h.OffStrings, h.SizeStrings, h.TotalSize)
	}
	if h.OffStruct%4 != 0 {
		return h, fmt.Errorf("fdt: structure block offset %#x is not 4-byte aligned", h.OffStruct)
	}
	return h, nil
}

// Property is a named value.
type Property struct {
	Name  string
	Value []byte
}

// Node is a device tree node.
type Node struct {
	Name     string // with unit address, e.g. "memory@40000000"
	Props    []Property
	Children []*Node
	Parent   *Node
}

// Tree is a parsed device tree.
type Tree struct {
	Header Header
	Root   *Node
	// Reserved lists the memory reservation block entries.
	Reserved []Range
}

// Range is a physical address range from a reg property or reservation.
type Range struct {
	Addr, Size uint64
}

// End returns the first address after the range.
func (r Range) End() uint64 { return r.Addr + r.Size }

func (r Range) String() string { return fmt.Sprintf("[%#x-%#x)", r.Addr, r.End()) }

// Parse decodes a whole blob.
func Parse(b []byte) (*Tree, error) {
	h, err := ReadHeader(b)
	if err != nil {
		return nil, err
	}
	b = b[:h.TotalSize]
	t := &Tree{Header: h}
	if err := t.parseReservations(b); err != nil {
		return nil, err
	}
	p := parser{
		s:       b[h.OffStruct : h.OffStruct+h.SizeStruct],
		strings: b[h.OffStrings : h.OffStrings+h.SizeStrings],
		base:    h.OffStruct,
	}
	if t.Root, err = p.parse(); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *Tree) parseReservations(b []byte) error {
	off := uint64(t.Header.OffMemRsvmap)
	for i := 0; ; i++ {
		if off+16 > uint64(len(b)) {
			return fmt.Errorf("fdt: memory reservation block runs past the end of the blob at entry %d", i)
		}
		addr := binary.BigEndian.Uint64(b[off:])
		size := binary.BigEndian.Uint64(b[off+8:])
		if addr == 0 && size == 0 {
			return nil
		}
		t.Reserved = append(t.Reserved, Range{addr, size})
		off += 16
	}
}

type parser struct {
	s, strings []byte
	off        uint32
	tok        uint32 // offset of the token being decoded
	base       uint32
}

// errorf reports a problem with the data at the read position.
func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("fdt: at offset %#x: %s", p.base+p.off, fmt.Sprintf(format, args...))
}

// tokenErrorf reports a problem with the token being decoded, at its own
// offset rather than at the read position past it.
func (p *parser) tokenErrorf(format string, args ...any) error {
	return fmt.Errorf("fdt: at offset %#x: %s", p.base+p.tok, fmt.Sprintf(format, args...))
}

func (p *parser) u32() (uint32, error) {
	if uint64(p.off)+4 > uint64(len(p.s)) {
		return 0, p.errorf("structure block truncated")
	}
	v := binary.BigEndian.Uint32(p.s[p.off:])
	p.off += 4
	return v, nil
}

func (p *parser) cstring(in []byte, start uint32, what string) (string, uint32, error) {
	if uint64(start) >= uint64(len(in)) {
		return "", 0, p.errorf("%s starts beyond its block", what)
	}
	end := start
	for end < uint32(len(in)) && in[end] != 0 {
		end++
	}
	if end == uint32(len(in)) {
		return "", 0, p.errorf("%s is not NUL-terminated", what)
	}
	return string(in[start:end]), end + 1, nil
}

func align4(v uint32) uint32 { return (v + 3) &^ 3 }

func (p *parser) parse() (*Node, error) {
	var root, cur *Node
	depth := 0
	for {
		p.tok = p.off
		tok, err := p.u32()
		if err != nil {
			return nil, err
		}
		switch tok {
		case tokenNop:
		case tokenBeginNode:
			name, next, err := p.cstring(p.s, p.off, "node name")
			if err != nil {
				return nil, err
			}
			p.off = align4(next)
			if depth == 0 && root != nil {
				return nil, p.tokenErrorf("second root node %q", name)
			}
			if depth++; depth > maxDepth {
				return nil, p.tokenErrorf("nodes nested deeper than %d", maxDepth)
			}
			n := &Node{Name: name, Parent: cur}
			if cur == nil {
				root = n
			} else {
				cur.Children = append(cur.Children, n)
			}
			cur = n
		case tokenEndNode:
			if cur == nil {
				return nil, p.tokenErrorf("END_NODE without a matching BEGIN_NODE")
			}
			cur = cur.Parent
			depth--
		case tokenProp:
			if cur == nil {
				return nil, p.tokenErrorf("property outside any node")
			}
			length, err := p.u32()
			if err != nil {
				return nil, err
			}
			nameoff, err := p.u32()
			if err != nil {
				return nil, err
			}
			if uint64(p.off)+uint64(length) > uint64(len(p.s)) {
				return nil, p.errorf("property value of %d bytes runs past the structure block", length)
			}
			name, _, err := p.cstring(p.strings, nameoff, fmt.Sprintf("property name (strings offset %#x)", nameoff))
			if err != nil {
				return nil, err
			}
			cur.Props = append(cur.Props, Property{Name: name, Value: p.s[p.off : p.off+length]})
			p.off = align4(p.off + length)
		case tokenEnd:
			if root == nil {
				return nil, p.tokenErrorf("END before any node")
			}
			if cur != nil {
				return nil, p.tokenErrorf("END inside node %q (missing END_NODE)", cur.Path())
			}
			return root, nil
		default:
			return nil, p.tokenErrorf("unknown token %#x", tok)
		}
	}
}

// Path returns the node's full path, e.g. "/cpus/cpu@0".
func (n *Node) Path() string {
	if n.Parent == nil {
		return "/"
	}
	if n.Parent.Parent == nil {
		return "/" + n.Name
	}
	return n.Parent.Path() + "/" + n.Name
}

// Prop returns a property's value.
func (n *Node) Prop(name string) ([]byte, bool) {
	for _, p := range n.Props {
		if p.Name == name {
			return p.Value, true
		}
	}
	return nil, false
}

// U32 returns a single-cell property.
func (n *Node) U32(name string) (uint32, error) {
	v, ok := n.Prop(name)
	if !ok {
		return 0, fmt.Errorf("fdt: %s has no %q property", n.Path(), name)
	}
	if len(v) != 4 {
		return 0, fmt.Errorf("fdt: %s: %q is %d bytes, want one 4-byte cell", n.Path(), name, len(v))
	}
	return binary.BigEndian.Uint32(v), nil
}

// Strings returns a string-list property.
func (n *Node) Strings(name string) ([]string, error) {
	v, ok := n.Prop(name)
	if !ok {
		return nil, fmt.Errorf("fdt: %s has no %q property", n.Path(), name)
	}
	if len(v) == 0 || v[len(v)-1] != 0 {
		return nil, fmt.Errorf("fdt: %s: %q is not a NUL-terminated string list", n.Path(), name)
	}
	return strings.Split(string(v[:len(v)-1]), "\x00"), nil
}

// String returns the first string of a string property.
func (n *Node) String(name string) (string, error) {
	s, err := n.Strings(name)
	if err != nil {
		return "", err
	}
	return s[0], nil
}

// Compatible reports whether the node's compatible list contains c.
func (n *Node) Compatible(c string) bool {
	list, err := n.Strings("compatible")
	if err != nil {
		return false
	}
	for _, s := range list {
		if s == c {
			return true
		}
	}
	return false
}

// Child returns the direct child with the given name (with or without the
// unit address).
func (n *Node) Child(name string) *Node {
	for _, c := range n.Children {
		if c.Name == name {
			return c
		}
	}
	for _, c := range n.Children {
		if base, _, _ := strings.Cut(c.Name, "@"); base == name {
			return c
		}
	}
	return nil
}

// Find returns the node at an absolute path such as "/cpus" or "/chosen".
func (t *Tree) Find(path string) *Node {
	if !strings.HasPrefix(path, "/") {
		return nil
	}
	n := t.Root
	for _, part := range strings.Split(strings.Trim(path, "/"), "/") {
		if part == "" {
			continue
		}
		if n = n.Child(part); n == nil {
			return nil
		}
	}
	return n
}

// Walk calls fn for every node, parents before children.
func (t *Tree) Walk(fn func(*Node)) {
	var walk func(*Node)
	walk = func(n *Node) {
		fn(n)
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(t.Root)
}

// FindCompatible returns every node compatible with c, in tree order.
func (t *Tree) FindCompatible(c string) []*Node {
	var out []*Node
	t.Walk(func(n *Node) {
		if n.Compatible(c) {
			out = append(out, n)
		}
	})
	return out
}

// cells returns the #address-cells or #size-cells that govern n's reg
// property: its parent's value, or the DTSpec defaults (2 and 1).
func (n *Node) cells(name string, def uint32) (uint32, error) {
	if n.Parent == nil {
		return def, nil
	}
	if _, ok := n.Parent.Prop(name); !ok {
		return def, nil
	}
	v, err := n.Parent.U32(name)
	if err != nil {
		return 0, err
	}
	if v > 2 {
		return 0, fmt.Errorf("fdt: %s: %s = %d, at most 2 supported", n.Parent.Path(), name, v)
	}
	return v, nil
}

// Reg decodes the node's reg property into address ranges.
func (n *Node) Reg() ([]Range, error) {
	ac, err := n.cells("#address-cells", 2)
	if err != nil {
		return nil, err
	}
	sc, err := n.cells("#size-cells", 1)
	if err != nil {
		return nil, err
	}
	v, ok := n.Prop("reg")
	if !ok {
		return nil, fmt.Errorf("fdt: %s has no reg property", n.Path())
	}
	entry := int(ac+sc) * 4
	if entry == 0 || len(v)%entry != 0 || len(v) == 0 {
		return nil, fmt.Errorf("fdt: %s: reg is %d bytes, not a multiple of %d (#address-cells %d, #size-cells %d)",
			n.Path(), len(v), entry, ac, sc)
	}
	var out []Range
	for off := 0; off < len(v); off += entry {
		addr := readCells(v[off:], ac)
		size := readCells(v[off+int(ac)*4:], sc)
		if size != 0 && addr+size < addr {
			return nil, fmt.Errorf("fdt: %s: reg range %#x+%#x wraps around", n.Path(), addr, size)
		}
		out = append(out, Range{addr, size})
	}
	return out, nil
}

func readCells(b []byte, n uint32) uint64 {
	var v uint64
	for i := uint32(0); i < n; i++ {
		v = v<<32 | uint64(binary.BigEndian.Uint32(b[i*4:]))
	}
	return v
}
