package hyp

import (
	"bytes"
	"debug/elf"
	"testing"
)

// fenced is physical memory that fails the test on a write outside the
// one range a load may touch.
type fenced struct {
	*fakePhys
	t      *testing.T
	lo, hi uint64
}

func (p *fenced) Write(pa uint64, b []byte) {
	if pa < p.lo || pa > p.hi || uint64(len(b)) > p.hi-pa {
		p.t.Fatalf("write of [%#x, +%#x), outside the VM's memory [%#x, %#x)", pa, len(b), p.lo, p.hi)
	}
	p.fakePhys.Write(pa, b)
}

// FuzzLoadELF: whatever image the control partition uploads, LoadELF
// either refuses it or loads it; it never panics, never writes outside
// the VM's RAM, and a load it reports done put every segment's bytes
// where its header says, zeroed to its memory size, with the entry point
// in RAM.
func FuzzLoadELF(f *testing.F) {
	f.Add(makeELF(elf.EM_AARCH64, elf.ET_EXEC, guestIPA+0x10,
		seg{paddr: guestIPA, data: []byte("TEXT0123"), memsz: 8},
		seg{paddr: guestIPA + 0x2000, data: []byte("DATA"), memsz: 0x1100},
		seg{paddr: 0x1234, data: []byte("note"), memsz: 4, ptype: elf.PT_NOTE}))
	f.Add(makeELF(elf.EM_AARCH64, elf.ET_EXEC, guestIPA, seg{paddr: guestIPA + 1<<20 - 2, data: []byte("xyz"), memsz: 3}))
	f.Add(makeELF(elf.EM_AARCH64, elf.ET_EXEC, guestIPA, seg{paddr: guestIPA, data: []byte("ab"), memsz: 1 << 20}))
	f.Add(makeELF(elf.EM_AARCH64, elf.ET_EXEC, guestIPA, seg{paddr: ^uint64(0) - 1, data: []byte("ab"), memsz: 4}))
	f.Fuzz(func(t *testing.T, image []byte) {
		r := newRig(t)
		pa := uint64(ramBase + 0x20_0000)
		vm, _ := r.guest(t, "elf", pa)
		r.h.phys = &fenced{fakePhys: r.phys, t: t, lo: pa, hi: pa + 1<<20}
		entry, err := r.h.LoadELF(vm, image)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an empty error")
			}
			return
		}
		if entry < guestIPA || entry >= guestIPA+1<<20 {
			t.Fatalf("entry point %#x outside the VM's RAM", entry)
		}
		ef, err := elf.NewFile(bytes.NewReader(image))
		if err != nil {
			t.Fatalf("loaded, but does not parse again: %v", err)
		}
		var loads []*elf.Prog
		for _, p := range ef.Progs {
			if p.Type == elf.PT_LOAD && p.Memsz > 0 {
				for _, q := range loads {
					if p.Paddr < q.Paddr+q.Memsz && q.Paddr < p.Paddr+p.Memsz {
						return // overlapping segments: the last one wins, checked no further
					}
				}
				loads = append(loads, p)
			}
		}
		for _, p := range loads {
			want := make([]byte, p.Memsz)
			if _, err := p.ReadAt(want[:p.Filesz], 0); err != nil && p.Filesz > 0 {
				t.Fatal(err)
			}
			got := make([]byte, p.Memsz)
			for i := range got {
				ipa := p.Paddr + uint64(i)
				got[i] = r.phys.read(pa + ipa - guestIPA)
			}
			if !bytes.Equal(want, got) {
				t.Fatalf("segment [%#x, +%#x) not loaded as its file says", p.Paddr, p.Memsz)
			}
		}
	})
}
