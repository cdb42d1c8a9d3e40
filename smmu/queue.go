package smmu

import "fmt"

// Commands (IHI 0070, 4 "Commands"): 16 bytes, the opcode in bits [7:0].
const (
	CmdSize = 16

	CMD_CFGI_STE      = 0x03
	CMD_CFGI_ALL      = 0x04
	CMD_TLBI_NH_ASID  = 0x11
	CMD_TLBI_NH_VA    = 0x12
	CMD_TLBI_EL2_ALL  = 0x20
	CMD_TLBI_NSNH_ALL = 0x30
	CMD_SYNC          = 0x46

	cmdSIDShift  = 32
	cmdASIDShift = 48
	cmdLeaf      = 1 << 0
	cmdRangeAll  = 31 // CMD_CFGI_ALL: Range 31 covers every stream
)

func cfgiSTE(sid uint32) [2]uint64 {
	return [2]uint64{CMD_CFGI_STE | uint64(sid)<<cmdSIDShift, cmdLeaf}
}
func cfgiAll() [2]uint64 { return [2]uint64{CMD_CFGI_ALL, cmdRangeAll} }
func tlbiASID(asid uint16) [2]uint64 {
	return [2]uint64{CMD_TLBI_NH_ASID | uint64(asid)<<cmdASIDShift}
}

// tlbiVA invalidates va in asid, walk caches included (Leaf 0): the entry
// removed may have been a table.
func tlbiVA(asid uint16, va uint64) [2]uint64 {
	return [2]uint64{CMD_TLBI_NH_VA | uint64(asid)<<cmdASIDShift, va &^ 0xfff}
}
func tlbiNSNHAll() [2]uint64 { return [2]uint64{CMD_TLBI_NSNH_ALL} }
func tlbiEL2All() [2]uint64  { return [2]uint64{CMD_TLBI_EL2_ALL} }

// cmdSync completes when every command before it has (CS = SIG_NONE: the
// driver polls CMDQ_CONS).
func cmdSync() [2]uint64 { return [2]uint64{CMD_SYNC} }

// Event records (7.3 "Event records"): 32 bytes.
const (
	EventSize = 32

	EVT_F_UUT             = 0x01
	EVT_C_BAD_STREAMID    = 0x02
	EVT_F_STE_FETCH       = 0x03
	EVT_C_BAD_STE         = 0x04
	EVT_F_STREAM_DISABLED = 0x06
	EVT_F_TRANS_FORBIDDEN = 0x07
	EVT_C_BAD_SUBSTREAMID = 0x08
	EVT_F_CD_FETCH        = 0x09
	EVT_C_BAD_CD          = 0x0a
	EVT_F_WALK_EABT       = 0x0b
	EVT_F_TRANSLATION     = 0x10
	EVT_F_ADDR_SIZE       = 0x11
	EVT_F_ACCESS          = 0x12
	EVT_F_PERMISSION      = 0x13

	evtRnW = 1 << 35 // in the second doubleword: the access was a read
)

var eventNames = map[uint8]string{
	EVT_F_UUT: "F_UUT", EVT_C_BAD_STREAMID: "C_BAD_STREAMID", EVT_F_STE_FETCH: "F_STE_FETCH",
	EVT_C_BAD_STE: "C_BAD_STE", EVT_F_STREAM_DISABLED: "F_STREAM_DISABLED",
	EVT_F_TRANS_FORBIDDEN: "F_TRANSL_FORBIDDEN", EVT_C_BAD_SUBSTREAMID: "C_BAD_SUBSTREAMID",
	EVT_F_CD_FETCH: "F_CD_FETCH", EVT_C_BAD_CD: "C_BAD_CD", EVT_F_WALK_EABT: "F_WALK_EABT",
	EVT_F_TRANSLATION: "F_TRANSLATION", EVT_F_ADDR_SIZE: "F_ADDR_SIZE", EVT_F_ACCESS: "F_ACCESS",
	EVT_F_PERMISSION: "F_PERMISSION",
}

// Event is one fault or configuration error the SMMU recorded.
type Event struct {
	Type   uint8
	Stream uint32
	// Addr is the input address of a translation fault (F_TRANSLATION to
	// F_PERMISSION, F_UUT, F_TRANSL_FORBIDDEN), else 0.
	Addr uint64
	Read bool // a translation fault's access was a read
}

func decodeEvent(r [4]uint64) Event {
	e := Event{Type: uint8(r[0]), Stream: uint32(r[0] >> 32)}
	switch e.Type {
	case EVT_F_UUT, EVT_F_TRANS_FORBIDDEN, EVT_F_WALK_EABT, EVT_F_TRANSLATION, EVT_F_ADDR_SIZE, EVT_F_ACCESS, EVT_F_PERMISSION:
		e.Addr = r[2]
		e.Read = r[1]&evtRnW != 0
	}
	return e
}

func (e Event) String() string {
	name, ok := eventNames[e.Type]
	if !ok {
		name = fmt.Sprintf("event %#x", e.Type)
	}
	if e.Addr == 0 && e.Type < EVT_F_WALK_EABT && e.Type != EVT_F_UUT && e.Type != EVT_F_TRANS_FORBIDDEN {
		return fmt.Sprintf("%s, stream %#x", name, e.Stream)
	}
	access := "write"
	if e.Read {
		access = "read"
	}
	return fmt.Sprintf("%s, stream %#x, %s at %#x", name, e.Stream, access, e.Addr)
}
