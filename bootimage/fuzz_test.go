package bootimage

import (
	"bytes"
	"testing"
)

// fuzzRAM is the guest RAM FuzzParse loads into: 4 MiB at QEMU virt's
// RAM base, room for a small kernel below the device tree's 2 MiB block.
// Kept between inputs: each fills it before loading.
var fuzzRAM = make([]byte, 4*mib)

// FuzzParse: whatever a user hands the CLI as a kernel, Parse returns an
// image or an error, never panics; a plan it makes lies in RAM with its
// parts apart; and Load writes only inside the kernel's room, putting
// there what the image says.
func FuzzParse(f *testing.F) {
	f.Add(linuxImage(0, 0x10000, 2, 0x100), uint32(0))
	f.Add(linuxImage(0x80000, 0x10000, 0, 0), uint32(4096))
	f.Add(linuxImage(0, 0, 0, 0x200), uint32(0)) // legacy: no image_size
	f.Add(gz(f, linuxImage(0, 0x8000, 2, 0x1000)), uint32(0))
	f.Add(gz(f, linuxImage(0, 0x100, 0, 0x1000)), uint32(0)) // inflates past image_size
	f.Add(guestELF(), uint32(0x1000))
	f.Fuzz(func(t *testing.T, data []byte, initrd uint32) {
		im, err := Parse(data)
		if err != nil {
			if im != nil || err.Error() == "" {
				t.Fatalf("Parse: image %v with error %q", im, err)
			}
			return
		}
		switch im.Kind {
		case KindELF, KindImage, KindGzipImage:
		default:
			t.Fatalf("Parse returned kind %v", im.Kind)
		}
		// An ELF is placed where its segments say: give it RAM around
		// its lowest one, so that its loading is tried too.
		base := uint64(ramBase)
		if im.Kind == KindELF {
			base = alignDown(im.low, KernelAlign)
		}
		size := uint64(len(fuzzRAM))
		p, err := im.Plan(base, size, uint64(initrd))
		if err != nil {
			if err.Error() == "" {
				t.Fatal("Plan: empty error")
			}
			return
		}
		end := base + size
		in := func(what string, a, n uint64) {
			if a < base || a+n < a || a+n > end {
				t.Fatalf("%s [%#x, +%#x) outside RAM [%#x, %#x): %+v", what, a, n, base, end, p)
			}
		}
		in("kernel", p.KernelAddr, p.KernelSize)
		in("device tree", p.DTBAddr, DTBMaxSize)
		if overlaps(p.KernelAddr, p.KernelAddr+p.KernelSize, p.DTBAddr, p.DTBAddr+DTBMaxSize) {
			t.Fatalf("kernel and device tree overlap: %+v", p)
		}
		if initrd > 0 {
			in("initrd", p.InitrdAddr, p.InitrdSize)
			if overlaps(p.KernelAddr, p.KernelAddr+p.KernelSize, p.InitrdAddr, p.InitrdAddr+p.InitrdSize) ||
				overlaps(p.DTBAddr, p.DTBAddr+DTBMaxSize, p.InitrdAddr, p.InitrdAddr+p.InitrdSize) {
				t.Fatalf("the initrd overlaps the kernel or the device tree: %+v", p)
			}
		}

		ram := fuzzRAM
		for i := range ram {
			ram[i] = 0xaa
		}
		err = im.Load(ram, p)
		lo, hi := p.KernelAddr-base, p.KernelAddr-base+p.KernelSize
		for i, b := range ram {
			if b != 0xaa && (uint64(i) < lo || uint64(i) >= hi) {
				t.Fatalf("Load wrote byte %#x, outside the kernel's room [%#x, %#x)", i, lo, hi)
			}
		}
		if err != nil {
			if im.Kind != KindGzipImage {
				t.Fatalf("Load of a planned %v: %v", im.Kind, err)
			}
			return // a corrupt, truncated or oversized stream
		}
		room := ram[lo:hi]
		switch im.Kind {
		case KindImage:
			if !bytes.Equal(room[:len(data)], data) {
				t.Fatal("the Image is not loaded as it is")
			}
		case KindELF:
			for _, s := range im.segs {
				at := s.addr - p.KernelAddr
				if !bytes.Equal(room[at:at+s.filesz], data[s.off:s.off+s.filesz]) {
					t.Fatalf("segment at %#x: file bytes not loaded", s.addr)
				}
				for _, b := range room[at+s.filesz : at+s.memsz] {
					if b != 0 {
						t.Fatalf("segment at %#x: bss not zeroed", s.addr)
					}
				}
			}
		}
	})
}
