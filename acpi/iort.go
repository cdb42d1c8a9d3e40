package acpi

// IORT is the IO Remapping Table (Arm DEN 0049E.e): how the IDs of
// devices' transactions reach SMMUs and ITSs. Bulkhead reads the node
// graph and the SMMUv3 nodes for confining DMA; the other node kinds are
// listed with their mappings only.
type IORT struct {
	Header
	Nodes []IORTNode
}

// IORT node types (Table 4 "Node types").
const (
	IORTITSGroup       = 0
	IORTNamedComponent = 1
	IORTRootComplex    = 2
	IORTSMMUv1v2       = 3
	IORTSMMUv3         = 4
	IORTPMCG           = 5
	IORTRMR            = 6
)

// IORTNode is one node (3.1 "IORT node header").
type IORTNode struct {
	Type, Revision uint8
	ID             uint32 // the node's Identifier (revision 3 tables on)
	Offset         uint32 // from the table's start: how mappings name it
	Mappings       []IDMapping
	// ITSIDs are an ITS group's ITSs (the MADT's ITS IDs).
	ITSIDs []uint32
	// Segment is a root complex's PCI segment number.
	Segment uint32
	// SMMUv3 is set for an SMMUv3 node.
	SMMUv3 *SMMUv3
}

// IDMapping maps input IDs [InputBase, InputBase+NumIDs] to output IDs
// from OutputBase, in node Nodes[Output] (3.4 "ID mappings"; NumIDs is
// the count minus one, as the table has it).
type IDMapping struct {
	InputBase, NumIDs, OutputBase uint32
	Output                        int
	Single                        bool // Flags bit 0: one ID, the device's own
}

// SMMUv3 is an SMMUv3 node's description (3.1.1.5).
type SMMUv3 struct {
	Base  uint64
	Model uint32
	// COHACC: the SMMU's own accesses (tables, queues) are coherent.
	COHACC bool
	// The GSIVs of its wired interrupts (0 where it uses MSIs).
	Event, PRI, GERR, Sync uint32
}

const (
	iortNodeHeader = 16
	iortMapping    = 20
	// An SMMUv3 node holds its interrupts up to Sync GSIV (revision 1).
	iortSMMUv3Length = 60
	iortRCLength     = 32
)

// ParseIORT reads an IORT.
func ParseIORT(b []byte) (*IORT, error) {
	t, err := parseTable(b, "IORT", HeaderSize+12, "Reserved")
	if err != nil {
		return nil, err
	}
	count, first := t.u32(36, "Number of IORT Nodes"), t.u32(40, "Offset to Array of IORT Nodes")
	if t.err != nil {
		return nil, t.err
	}
	if uint64(first) < HeaderSize+12 || uint64(first) > uint64(len(t.b)) {
		return nil, errf("IORT", "Offset to Array of IORT Nodes", "%d, outside the table's %d bytes", first, len(t.b))
	}
	// Each node takes at least its header: a count the table cannot hold
	// is refused before anything is allocated for it.
	if uint64(count)*iortNodeHeader > uint64(len(t.b))-uint64(first) {
		return nil, errf("IORT", "Number of IORT Nodes", "%d nodes do not fit in %d bytes", count, len(t.b)-int(first))
	}
	r := &IORT{Header: t.Header}
	index := map[uint32]int{} // node offsets, which mappings name, to indices
	var refs [][]uint32       // each node's mappings' output references
	off := int(first)
	for i := 0; i < int(count); i++ {
		if off+iortNodeHeader > len(t.b) {
			return nil, errf("IORT", "node", "node %d at offset %d: its header runs past the table's end (%d)", i, off, len(t.b))
		}
		n := int(t.u16(off+1, "node Length"))
		if n < iortNodeHeader || off+n > len(t.b) {
			return nil, errf("IORT", "node Length", "node %d at offset %d: length %d runs past the table's end (%d) or is too short", i, off, n, len(t.b))
		}
		node := IORTNode{Type: t.b[off], Revision: t.b[off+3], ID: t.u32(off+4, "Identifier"), Offset: uint32(off)}
		maps, mapOff := t.u32(off+8, "Number of ID mappings"), t.u32(off+12, "Reference to ID Array")
		if maps > 0 && (uint64(mapOff) < iortNodeHeader || uint64(mapOff)+uint64(maps)*iortMapping > uint64(n)) {
			return nil, errf("IORT", "Reference to ID Array", "node %d: %d mappings at %d run past its %d bytes", i, maps, mapOff, n)
		}
		need := func(min int, what string) error {
			if n < min {
				return errf("IORT", what, "node %d: length %d, want at least %d", i, n, min)
			}
			return nil
		}
		switch node.Type {
		case IORTITSGroup:
			if err := need(20, "Number of ITSs"); err != nil {
				return nil, err
			}
			k := t.u32(off+16, "Number of ITSs")
			if uint64(k)*4 > uint64(n-20) {
				return nil, errf("IORT", "Number of ITSs", "node %d: %d ITS IDs do not fit in its %d bytes", i, k, n)
			}
			for j := 0; j < int(k); j++ {
				node.ITSIDs = append(node.ITSIDs, t.u32(off+20+4*j, "GIC ITS Identifier"))
			}
		case IORTRootComplex:
			if err := need(iortRCLength, "PCI Segment number"); err != nil {
				return nil, err
			}
			node.Segment = t.u32(off+28, "PCI Segment number")
		case IORTSMMUv3:
			if err := need(iortSMMUv3Length, "SMMUv3 node"); err != nil {
				return nil, err
			}
			node.SMMUv3 = &SMMUv3{Base: t.u64(off+16, "Base Address"), COHACC: t.u32(off+24, "SMMUv3 Flags")&1 != 0,
				Model: t.u32(off+40, "Model"), Event: t.u32(off+44, "Event"), PRI: t.u32(off+48, "PRI"),
				GERR: t.u32(off+52, "GERR"), Sync: t.u32(off+56, "Sync")}
		}
		var out []uint32
		for j := 0; j < int(maps); j++ {
			m := off + int(mapOff) + j*iortMapping
			node.Mappings = append(node.Mappings, IDMapping{InputBase: t.u32(m, "Input base"), NumIDs: t.u32(m+4, "Number of IDs"),
				OutputBase: t.u32(m+8, "Output base"), Single: t.u32(m+16, "Flags")&1 != 0})
			out = append(out, t.u32(m+12, "Output reference"))
		}
		refs = append(refs, out)
		index[uint32(off)] = len(r.Nodes)
		r.Nodes = append(r.Nodes, node)
		off += n
	}
	if t.err != nil {
		return nil, t.err
	}
	// Output references are offsets of nodes: resolved to their index.
	for i, out := range refs {
		for j, ref := range out {
			k, ok := index[ref]
			if !ok {
				return nil, errf("IORT", "Output reference", "node %d, mapping %d: offset %d is no node's", i, j, ref)
			}
			r.Nodes[i].Mappings[j].Output = k
		}
	}
	return r, nil
}
