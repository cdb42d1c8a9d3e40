//go:build tamago

// Command control is Bulkhead's control partition: a TamaGo program at EL1
// in its own stage 2 compartment, holding every page of RAM the hypervisor
// does not keep (at IPA = PA). It reaches the hypervisor only through the
// management hypercalls (docs/abi.md). For now it starts the guests the
// boot loader left in its memory, waits for each to stop and destroys it,
// and shows that what it gave away is out of its reach.
//
// The hypervisor starts it with x0 = the address of a page holding the
// guestN= boot arguments, NUL-terminated.
package main

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"unsafe"

	"github.com/bulkhead-hv/bulkhead/abi"
	vm "github.com/bulkhead-hv/bulkhead/board/bulkheadvm"
	"github.com/bulkhead-hv/bulkhead/cpu"
	"github.com/bulkhead-hv/bulkhead/hyp"
)

func mem(pa, n uint64) []byte { return unsafe.Slice((*byte)(unsafe.Pointer(uintptr(pa))), n) }

func call(fid uint32, args ...uint64) (int64, uint64) {
	r0, r1 := vm.Hypercall(fid, args...)
	return int64(r0), r1
}

type guest struct {
	spec   hyp.GuestSpec
	handle uint64
	pa     uint64
	done   bool
}

func main() {
	info := vm.Arg()
	fmt.Printf("control partition at EL1: runtime %d MiB at %#x, pool [%#x, %#x)\n",
		vm.RAMSize>>20, vm.RAMBase, vm.PoolBase, vm.PoolEnd)
	args := map[string]string{}
	if info != 0 {
		text := mem(info, 4096)
		if i := bytes.IndexByte(text, 0); i >= 0 {
			text = text[:i]
		}
		for _, f := range strings.Fields(string(text)) {
			k, v, _ := strings.Cut(f, "=")
			args[k] = v
		}
	}
	specs, err := hyp.ParseGuestSpecs(args)
	if err != nil {
		fmt.Printf("control: %v\n", err)
		os.Exit(1)
	}

	// The hypervisor's memory was never the control partition's.
	probe("hypervisor-text", 0x40200000)

	avoid := []hyp.Region{{PA: vm.RAMBase, Size: vm.RAMSize}, {PA: info &^ 0xfff, Size: 4096}}
	for _, s := range specs {
		avoid = append(avoid, hyp.Region{PA: s.Image, Size: s.ImageSize})
	}
	placer = hyp.NewPlacer(vm.PoolBase, vm.PoolEnd, avoid)
	var guests []*guest
	for _, s := range specs {
		g, err := start(s, mem(s.Image, s.ImageSize))
		if err != nil {
			fmt.Printf("control: %s: %v\n", s.Name, err)
			os.Exit(1)
		}
		guests = append(guests, g)
		// Given away: its first page is out of reach now.
		probe("donated-to-"+s.Name, g.pa)
	}

	ch := openChannel()
	if ch != nil {
		ch.send(map[string]any{"event": "ready", "version": abi.VersionMajor*1000 + abi.VersionMinor, "guests": len(guests)})
	}
	status := 0
	live := len(guests)
	shutdown := false
	for live > 0 || (ch != nil && !shutdown) {
		if ch != nil {
			for _, req := range ch.requests() {
				n := len(guests)
				shutdown = serve(ch, req, &guests) || shutdown
				live += len(guests) - n
			}
		}
		for _, g := range guests {
			if g.done {
				continue
			}
			_, state, exit := vm.Hypercall3(abi.VM_STATUS, g.handle)
			if state != abi.StateStopped {
				continue
			}
			g.done = true
			live--
			st := int32(exit)
			code, pages := call(abi.VM_DESTROY, g.handle)
			if code != abi.SUCCESS {
				fmt.Printf("control: VM_DESTROY %d: %d\n", g.handle, code)
				status = 1
				continue
			}
			// The pages are back, zeroed.
			if b := mem(g.pa, 4096); !bytes.Equal(b, make([]byte, 4096)) {
				fmt.Printf("control: %s: a returned page is not zero\n", g.spec.Name)
				status = 1
			}
			fmt.Printf("control: %s (VM %d) stopped with status %d; destroyed, %d pages back zeroed\n", g.spec.Name, g.handle, st, pages)
			if ch != nil {
				ch.send(map[string]any{"event": "exit", "vm": g.spec.Name, "status": st})
			}
		}
		call(abi.YIELD)
	}
	fmt.Printf("control: all guests done\n")
	os.Exit(status)
}

// placer hands out pool memory for guests. It never takes memory back:
// destroyed guests' RAM is not reused yet.
var placer *hyp.Placer

// start loads an ELF image into pages of the pool, then gives them to a
// new VM and starts it.
func start(s hyp.GuestSpec, image []byte) (*guest, error) {
	pa, err := placer.Place(s.Mem)
	if err != nil {
		return nil, err
	}
	ram := mem(pa, s.Mem)
	clear(ram)
	f, err := elf.NewFile(bytes.NewReader(image))
	if err != nil {
		return nil, fmt.Errorf("not an ELF image: %w", err)
	}
	if f.Machine != elf.EM_AARCH64 || f.Class != elf.ELFCLASS64 {
		return nil, fmt.Errorf("not an AArch64 ELF image")
	}
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Memsz == 0 {
			continue
		}
		if p.Paddr < hyp.GuestIPA || p.Paddr+p.Memsz > hyp.GuestIPA+s.Mem || p.Filesz > p.Memsz {
			return nil, fmt.Errorf("segment at %#x does not fit the guest's %d MiB", p.Paddr, s.Mem>>20)
		}
		off := p.Paddr - hyp.GuestIPA
		if _, err := p.ReadAt(ram[off:off+p.Filesz], 0); err != nil {
			return nil, err
		}
	}
	var name [16]byte
	copy(name[:], s.Name)
	code, h := call(abi.VM_CREATE, binary.LittleEndian.Uint64(name[:]), binary.LittleEndian.Uint64(name[8:]))
	if code != abi.SUCCESS {
		return nil, fmt.Errorf("VM_CREATE: %d", code)
	}
	if code, _ := call(abi.VM_DONATE, h, pa, hyp.GuestIPA, s.Mem, abi.PermRead|abi.PermWrite|abi.PermExec); code != abi.SUCCESS {
		return nil, fmt.Errorf("VM_DONATE: %d", code)
	}
	for i := 0; i < s.CPUs; i++ {
		if code, _ := call(abi.VCPU_CREATE, h, f.Entry, s.Arg); code != abi.SUCCESS {
			return nil, fmt.Errorf("VCPU_CREATE: %d", code)
		}
	}
	if code, _ := call(abi.VM_START, h); code != abi.SUCCESS {
		return nil, fmt.Errorf("VM_START: %d", code)
	}
	fmt.Printf("control: started %s as VM %d: %d MiB at PA %#x, %d vCPU(s)\n", s.Name, h, s.Mem>>20, pa, s.CPUs)
	return &guest{spec: s, handle: h, pa: pa}, nil
}

// probe reads and writes addr and reports whether stage 2 stopped both.
func probe(name string, addr uint64) {
	for _, write := range []bool{false, true} {
		op := map[bool]string{false: "read", true: "write"}[write]
		_, esr := vm.Probe(addr, write)
		e := cpu.ESR(esr)
		fs, _ := e.FaultStatus()
		if esr != 0 && e.IsDataAbort() && fs == "Synchronous External abort" {
			fmt.Printf("control: probe %s %s %#x: blocked by stage 2\n", name, op, addr)
		} else {
			fmt.Printf("control: probe %s %s %#x: NOT BLOCKED (ESR %#x)\n", name, op, addr, esr)
		}
	}
}
