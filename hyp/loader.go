package hyp

import (
	"bytes"
	"debug/elf"
	"fmt"

	"github.com/bulkhead-hv/bulkhead/mmu"
)

// LoadELF copies a guest's ELF image into its memory and returns the entry
// point. Every loadable segment must lie in the VM's RAM; memory a segment
// does not fill from the file is zeroed. The image is untrusted input.
func (h *Hyp) LoadELF(vm *VM, image []byte) (entry uint64, err error) {
	f, err := elf.NewFile(bytes.NewReader(image))
	if err != nil {
		return 0, fmt.Errorf("not an ELF image: %w", err)
	}
	if f.Class != elf.ELFCLASS64 || f.Data != elf.ELFDATA2LSB || f.Machine != elf.EM_AARCH64 {
		return 0, fmt.Errorf("ELF image is %v %v %v, want ELFCLASS64 ELFDATA2LSB EM_AARCH64", f.Class, f.Data, f.Machine)
	}
	if f.Type != elf.ET_EXEC {
		return 0, fmt.Errorf("ELF image is %v, want an executable (ET_EXEC)", f.Type)
	}
	loaded := false
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Memsz == 0 {
			continue
		}
		if p.Filesz > p.Memsz {
			return 0, fmt.Errorf("ELF segment at %#x: file size %#x exceeds memory size %#x", p.Paddr, p.Filesz, p.Memsz)
		}
		if p.Paddr+p.Memsz < p.Paddr || !vm.contains(p.Paddr, p.Memsz) {
			return 0, fmt.Errorf("ELF segment [%#x, +%#x) lies outside the VM's memory", p.Paddr, p.Memsz)
		}
		if p.Filesz > 0 && (p.Off > uint64(len(image)) || p.Filesz > uint64(len(image))-p.Off) {
			return 0, fmt.Errorf("ELF segment at %#x: file bytes [%#x, +%#x) past the image's %d", p.Paddr, p.Off, p.Filesz, len(image))
		}
		// Copied from the image as it lies, and the rest, its bss,
		// zeroed in place: nothing of a segment is allocated here. Go's
		// crypto alone has a 32 MiB bss (the FIPS entropy source's
		// scratch buffer), more than the hypervisor's heap has to spare,
		// and a restart of the control partition must not need room.
		if p.Filesz > 0 {
			h.writeGuest(vm, p.Paddr, image[p.Off:p.Off+p.Filesz])
		}
		h.zeroGuest(vm, p.Paddr+p.Filesz, p.Memsz-p.Filesz)
		loaded = true
	}
	if !loaded {
		return 0, fmt.Errorf("ELF image has no loadable segment")
	}
	if !vm.contains(f.Entry, 4) {
		return 0, fmt.Errorf("ELF entry point %#x lies outside the VM's memory", f.Entry)
	}
	return f.Entry, nil
}

func (vm *VM) contains(ipa, size uint64) bool {
	_, ok := vm.find(ipa, size)
	return ok
}

// writeGuest copies data to guest memory at ipa, page by page through the
// VM's regions.
func (h *Hyp) writeGuest(vm *VM, ipa uint64, data []byte) {
	for len(data) > 0 {
		pa, _ := vm.IPAToPA(ipa)
		n := mmu.PageSize - ipa%mmu.PageSize
		if n > uint64(len(data)) {
			n = uint64(len(data))
		}
		h.phys.Write(pa, data[:n])
		ipa += n
		data = data[n:]
	}
}

// zeroGuest zeroes n bytes of guest memory at ipa: the partial pages at
// either end by writing, the pages between whole.
func (h *Hyp) zeroGuest(vm *VM, ipa, n uint64) {
	var zeros [mmu.PageSize]byte
	for n > 0 {
		pa, _ := vm.IPAToPA(ipa)
		k := min(mmu.PageSize-ipa%mmu.PageSize, n)
		if k == mmu.PageSize {
			h.phys.Zero(pa)
		} else {
			h.phys.Write(pa, zeros[:k])
		}
		ipa += k
		n -= k
	}
}

// ZeroRAM clears all of a VM's memory (before loading into pages that held
// the control partition's data).
func (h *Hyp) ZeroRAM(vm *VM) error {
	for _, r := range vm.RAM {
		for pa := r.PA; pa < r.PA+r.Size; pa += mmu.PageSize {
			if err := h.phys.Zero(pa); err != nil {
				return err
			}
		}
	}
	return nil
}
