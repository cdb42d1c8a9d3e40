package pci

import (
	"errors"
	"testing"

	"github.com/bulkhead-hv/bulkhead/pci/pcitest"
)

const ecam = 0x40_1000_0000

func TestScanAndAssign(t *testing.T) {
	host := pcitest.NewFunc(0, 0, 0x1b36, 0x0008)
	blk := pcitest.NewFunc(2, 0, 0x1af4, 0x1001)
	blk.SetBAR(1, 4<<10, false)
	blk.SetBAR(4, 16<<10, true)
	multi := pcitest.NewFunc(3, 0, 0x8086, 0x1234)
	multi.Regs[HeaderType/4] = HeaderTypeMultiFunction << 16
	multi2 := pcitest.NewFunc(3, 5, 0x8086, 0x1235)
	single := pcitest.NewFunc(4, 0, 0x8086, 0x1236)
	ghost := pcitest.NewFunc(4, 1, 0x8086, 0x1237) // function 0 is not multi-function
	bridge := pcitest.NewFunc(5, 0, 0x1b36, 0x000c)
	bridge.Regs[HeaderType/4] = 1 << 16 // header layout 1
	space := &pcitest.Space{Base: ecam, Funcs: []*pcitest.Func{host, blk, multi, multi2, single, ghost, bridge}}

	fs := Scan(space, ecam)
	var got []string
	for _, f := range fs {
		got = append(got, f.String())
	}
	want := []string{"00:00.0 [1b36:0008]", "00:02.0 [1af4:1001]", "00:03.0 [8086:1234]", "00:03.5 [8086:1235]", "00:04.0 [8086:1236]", "00:05.0 [1b36:000c]"}
	if len(got) != len(want) {
		t.Fatalf("scan: %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("function %d: %s, want %s", i, got[i], want[i])
		}
	}
	if !fs[5].Bridge || fs[1].Bridge {
		t.Errorf("bridge flags wrong")
	}
	if err := fs[5].AssignBARs(&Window{Base: 0x1000_0000, Size: 1 << 20}); err == nil {
		t.Errorf("a bridge's BARs were assigned")
	}
	if fs[1].RequesterID() != 0x10 || fs[3].RequesterID() != 0x1d {
		t.Errorf("requester IDs %#x %#x", fs[1].RequesterID(), fs[3].RequesterID())
	}

	// Firmware left memory decoding on: sizing turns it off first.
	blk.Regs[Command/4] = CommandMemorySpace
	w := &Window{Base: 0x1000_0000, Size: 1 << 20}
	if err := fs[1].AssignBARs(w); err != nil {
		t.Fatal(err)
	}
	if space.SizedDecoding != 0 {
		t.Errorf("%d BARs sized with memory decoding on", space.SizedDecoding)
	}
	f := fs[1]
	if f.BAR[1] != 0x1000_0000 || f.BARSize[1] != 4<<10 {
		t.Errorf("BAR 1 at %#x, %#x bytes", f.BAR[1], f.BARSize[1])
	}
	// 64-bit, naturally aligned after the 4 KiB one.
	if f.BAR[4] != 0x1000_4000 || f.BARSize[4] != 16<<10 || f.BAR[5] != 0 {
		t.Errorf("BAR 4 at %#x, %#x bytes; BAR 5 %#x", f.BAR[4], f.BARSize[4], f.BAR[5])
	}
	if blk.Regs[BAR0/4+4]&^0xf != 0x1000_4000 || blk.Regs[BAR0/4+5] != 0 {
		t.Errorf("BAR 4 registers %#x %#x", blk.Regs[BAR0/4+4], blk.Regs[BAR0/4+5])
	}
	if blk.Regs[Command/4]&(CommandMemorySpace|CommandBusMaster) != CommandMemorySpace|CommandBusMaster {
		t.Errorf("command %#x: decoding and bus mastering off", blk.Regs[Command/4])
	}

	big := pcitest.NewFunc(6, 0, 0x1af4, 0x1000)
	big.SetBAR(0, 2<<20, false)
	space.Funcs = append(space.Funcs, big)
	fs = Scan(space, ecam)
	if err := fs[len(fs)-1].AssignBARs(w); !errors.Is(err, ErrWindow) {
		t.Errorf("a BAR larger than what is left: %v", err)
	}
	if big.Regs[BAR0/4] != 0 || big.Regs[Command/4]&(CommandMemorySpace|CommandBusMaster) != 0 {
		t.Errorf("after the window ran out: BAR 0 %#x, command %#x", big.Regs[BAR0/4], big.Regs[Command/4])
	}
	// A 64-bit BAR of 8 GiB fits no 32-bit window; its upper half is
	// put back too.
	huge := pcitest.NewFunc(7, 0, 0x1af4, 0x1000)
	huge.SetBAR(2, 8<<30, true)
	space.Funcs = append(space.Funcs, huge)
	fs = Scan(space, ecam)
	if err := fs[len(fs)-1].AssignBARs(&Window{Base: 0x1000_0000, Size: 0x2eff_0000}); !errors.Is(err, ErrWindow) {
		t.Errorf("an 8 GiB BAR: %v", err)
	}
	if huge.Regs[BAR2/4] != 2<<1 || huge.Regs[BAR3/4] != 0 {
		t.Errorf("an 8 GiB BAR left at %#x:%#x", huge.Regs[BAR3/4], huge.Regs[BAR2/4])
	}
	// The same in a window above 4 GiB, aligned to its size.
	fs = Scan(space, ecam)
	f = fs[len(fs)-1]
	if err := f.AssignBARs(&Window{Base: 0x80_4000_0000, Size: 0x80_0000_0000}); err != nil {
		t.Fatal(err)
	}
	if f.BAR[2] != 0x82_0000_0000 || f.BARSize[2] != 8<<30 || huge.Regs[BAR3/4] != 0x82 || huge.Regs[BAR2/4]&^0xf != 0 {
		t.Errorf("an 8 GiB BAR at %#x (%#x:%#x)", f.BAR[2], huge.Regs[BAR3/4], huge.Regs[BAR2/4])
	}
}

func TestCapabilities(t *testing.T) {
	f := pcitest.NewFunc(1, 0, 0x1af4, 0x1041)
	f.Cap(0x40, 0x11)
	f.Cap(0x84, 0x09, 0x0100)
	f.Cap(0x70, 0x09)
	space := &pcitest.Space{Base: ecam, Funcs: []*pcitest.Func{f}}
	caps, err := Scan(space, ecam)[0].Capabilities()
	if err != nil || len(caps) != 3 || caps[0] != 0x40 || caps[1] != 0x84 || caps[2] != 0x70 {
		t.Fatalf("capabilities %#x, %v", caps, err)
	}
	// A loop: the last points back at the first.
	f.Regs[0x70/4] = f.Regs[0x70/4]&^0xff00 | 0x40<<8
	if _, err := Scan(space, ecam)[0].Capabilities(); !errors.Is(err, ErrCaps) {
		t.Errorf("a looping list: %v", err)
	}
	// A pointer into the header.
	f.Regs[0x70/4] = f.Regs[0x70/4]&^0xff00 | 0x10<<8
	if _, err := Scan(space, ecam)[0].Capabilities(); !errors.Is(err, ErrCaps) {
		t.Errorf("a pointer into the header: %v", err)
	}
}
