package hyp

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/bulkhead-hv/bulkhead/mmu"
)

// GuestSpec is a guest to start at boot: until the control partition
// exists, images come from memory a boot loader filled (QEMU's
// -device loader), named on the command line as
// guestN=NAME:IMAGE_ADDR:IMAGE_SIZE[:ARG[:MEM[:CPUS[:PCPU]]]]. Every vCPU
// starts at the image's entry point with x0 = ARG; the guest tells them
// apart by MPIDR_EL1. PCPU pins every vCPU to that physical CPU (make
// bench measures a vCPU on CPU 1 so); without it they are placed as the
// control partition's are.
type GuestSpec struct {
	Key       string // the boot argument, e.g. "guest0"
	Name      string
	Image     uint64 // physical address of the ELF image
	ImageSize uint64
	Arg       uint64 // passed in x0
	Mem       uint64 // guest RAM, default DefaultGuestMem
	CPUs      int    // vCPUs, default 1
	PCPU      int    // the physical CPU they are pinned to, plus one (0: placed)
}

// MaxPCPUs bounds the physical CPUs a boot guest may be pinned to (as
// vcpu.MaxCPUs bounds the CPUs the hypervisor runs guests on).
const MaxPCPUs = 64

// MaxVCPUs bounds a guest's vCPUs (16 fits one SGI target list).
const MaxVCPUs = 16

// DefaultGuestMem is a guest's RAM when the spec gives none.
const DefaultGuestMem = 16 << 20

// GuestIPA is where guest RAM starts, as on QEMU virt.
const GuestIPA = 0x40000000

// ParseGuestSpecs reads every guestN= boot argument, in N order.
func ParseGuestSpecs(args map[string]string) ([]GuestSpec, error) {
	var out []GuestSpec
	names := map[string]bool{}
	for k, v := range args {
		if !strings.HasPrefix(k, "guest") {
			continue
		}
		if _, err := strconv.Atoi(k[len("guest"):]); err != nil {
			return nil, fmt.Errorf("boot argument %q: want guest0, guest1, ...", k)
		}
		f := strings.Split(v, ":")
		if len(f) < 3 || len(f) > 7 {
			return nil, fmt.Errorf("boot argument %s=%q: want NAME:IMAGE_ADDR:IMAGE_SIZE[:ARG[:MEM[:CPUS[:PCPU]]]]", k, v)
		}
		s := GuestSpec{Key: k, Name: f[0], Mem: DefaultGuestMem}
		if s.Name == "" || names[s.Name] {
			return nil, fmt.Errorf("boot argument %s: guest name %q is empty or used twice", k, s.Name)
		}
		names[s.Name] = true
		var err error
		var cpus uint64 = 1
		pcpu := ^uint64(0)
		nums := []*uint64{&s.Image, &s.ImageSize, &s.Arg, &s.Mem, &cpus, &pcpu}
		for i, field := range f[1:] {
			if *nums[i], err = strconv.ParseUint(field, 0, 64); err != nil {
				return nil, fmt.Errorf("boot argument %s: field %d %q is not a number", k, i+2, field)
			}
		}
		if s.ImageSize == 0 || s.Image%8 != 0 {
			return nil, fmt.Errorf("boot argument %s: image must be 8-byte aligned and not empty", k)
		}
		if cpus < 1 || cpus > MaxVCPUs {
			return nil, fmt.Errorf("boot argument %s: %d vCPUs: want 1 to %d", k, cpus, MaxVCPUs)
		}
		s.CPUs = int(cpus)
		if pcpu != ^uint64(0) {
			if pcpu >= MaxPCPUs {
				return nil, fmt.Errorf("boot argument %s: physical CPU %d: want 0 to %d", k, pcpu, MaxPCPUs-1)
			}
			s.PCPU = int(pcpu) + 1
		}
		if s.Mem == 0 || s.Mem%(2<<20) != 0 {
			return nil, fmt.Errorf("boot argument %s: memory %#x is not a positive multiple of 2 MiB", k, s.Mem)
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		a, _ := strconv.Atoi(out[i].Key[5:])
		b, _ := strconv.Atoi(out[j].Key[5:])
		return a < b
	})
	return out, nil
}

// Placer hands out physical RAM for guests from the control partition's
// range, 2 MiB aligned so stage 2 can use blocks, never overlapping the
// ranges it must avoid (the images waiting to be loaded) or what it
// handed out and was not given back. It takes the lowest range that fits.
type Placer struct {
	start, end uint64
	avoid      []Region
	used       []Region
}

// NewPlacer places in [start, end) avoiding the given PA ranges.
func NewPlacer(start, end uint64, avoid []Region) *Placer {
	return &Placer{start: start, end: end, avoid: avoid}
}

// Place returns the PA of size bytes of free RAM.
func (p *Placer) Place(size uint64) (uint64, error) {
	const align = 2 << 20
	pa := (p.start + align - 1) &^ (align - 1)
	for {
		moved := false
		for _, a := range append(p.avoid[:len(p.avoid):len(p.avoid)], p.used...) {
			if pa < a.PA+a.Size && a.PA < pa+size {
				pa = (a.PA + a.Size + align - 1) &^ (align - 1)
				moved = true
			}
		}
		if !moved {
			break
		}
	}
	if pa+size > p.end || pa+size < pa {
		return 0, fmt.Errorf("no %d MiB of free RAM left for a guest", size>>20)
	}
	p.used = append(p.used, Region{PA: pa, Size: size})
	return pa, nil
}

// Claim marks [pa, pa+size) as handed out, as Place would have: memory
// that holds a VM the caller did not place (a restarted control
// partition's predecessor's), until Free(pa).
func (p *Placer) Claim(pa, size uint64) {
	p.used = append(p.used, Region{PA: pa, Size: size})
}

// Free gives back what Place returned (or Claim marked) at pa.
func (p *Placer) Free(pa uint64) {
	for i, r := range p.used {
		if r.PA == pa {
			p.used = append(p.used[:i], p.used[i+1:]...)
			return
		}
	}
}

// StartGuest creates a VM from a spec: RAM placed and donated, zeroed,
// the image loaded, one vCPU at its entry point.
func (h *Hyp) StartGuest(s GuestSpec, image []byte, pa uint64) (*VM, error) {
	vm, err := h.CreateVM(s.Name)
	if err != nil {
		return nil, err
	}
	vm.Echo = true // no control partition drains its console
	fail := func(err error) (*VM, error) {
		vm.State = Stopped
		h.DestroyVM(vm)
		return nil, fmt.Errorf("guest %s: %w", s.Name, err)
	}
	if err := h.Donate(vm, pa, GuestIPA, s.Mem, mmu.Read|mmu.Write|mmu.Exec); err != nil {
		return fail(err)
	}
	if err := h.ZeroRAM(vm); err != nil {
		return fail(err)
	}
	entry, err := h.LoadELF(vm, image)
	if err != nil {
		return fail(err)
	}
	cpus := s.CPUs
	if cpus == 0 {
		cpus = 1
	}
	if s.PCPU > len(h.pcpus) {
		return fail(fmt.Errorf("physical CPU %d: the hypervisor runs guests on %d", s.PCPU-1, len(h.pcpus)))
	}
	for i := 0; i < cpus; i++ {
		v := h.AddVCPU(vm, entry, s.Arg)
		if s.PCPU > 0 {
			v.home = s.PCPU - 1
		}
	}
	if err := h.StartDevices(vm); err != nil {
		return fail(err)
	}
	h.announce(vm)
	return vm, nil
}
