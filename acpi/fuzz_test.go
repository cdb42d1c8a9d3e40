package acpi

import (
	"errors"
	"path/filepath"
	"testing"
)

// Any bytes, as any of the tables and as the whole of the firmware's
// tables behind an RSDP and XSDT, are read or refused with an *Error:
// never a panic, never a read past their end; what is read holds
// together (a MADT has its distributor and a CPU, every IORT mapping
// leads to a node). The seeds are the committed fixtures.
func FuzzParse(f *testing.F) {
	for _, glob := range []string{"testdata/qemu-virt/*.dat", "testdata/iasl/*.aml"} {
		paths, _ := filepath.Glob(glob)
		for _, p := range paths {
			f.Add(fixture(f, p[len("testdata/"):]))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		check := func(err error) {
			var e *Error
			if err != nil && !errors.As(err, &e) {
				t.Fatalf("not an *acpi.Error: %v", err)
			}
		}
		_, err := ParseFADT(b)
		check(err)
		m, err := ParseMADT(b)
		check(err)
		if err == nil && (!m.GICD.Found || len(m.GICC) == 0) {
			t.Fatalf("a MADT without its distributor or CPUs was read")
		}
		_, err = ParseGTDT(b)
		check(err)
		_, err = ParseSPCR(b)
		check(err)
		_, err = ParseMCFG(b)
		check(err)
		r, err := ParseIORT(b)
		check(err)
		if err == nil {
			for _, n := range r.Nodes {
				for _, mp := range n.Mappings {
					if mp.Output < 0 || mp.Output >= len(r.Nodes) {
						t.Fatalf("a mapping leads to node %d of %d", mp.Output, len(r.Nodes))
					}
				}
			}
		}
		if len(b) >= HeaderSize {
			// As the one table behind an XSDT, and as the XSDT itself.
			_, err = Parse(machine(b), 0x1000)
			check(err)
			mm := machine()
			mm[0x2000] = b
			_, err = Parse(mm, 0x1000)
			check(err)
		}
	})
}
