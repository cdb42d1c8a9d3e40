//go:build tamago && fuzzcontrol

// The management-call fuzzer: a control partition that, once its guests
// are started, makes management calls at random (build tag fuzzcontrol,
// image bulkhead-control-fuzz.elf, boot argument fuzz=calls:seed). The
// calls come from a partition less trusted than EL2, so every one of them,
// whatever its arguments, must leave the hypervisor standing and the
// proofs' invariants true; after each batch it asks VM_STATS for the
// machine's figures, which runs the hypervisor's check, and at the end it
// destroys what it made and stops the first guest (a victim that checks
// its memory), so the run ends at the ledger's boot figures.
package main

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"

	"github.com/bulkhead-hv/bulkhead/abi"
	vm "github.com/bulkhead-hv/bulkhead/board/bulkheadvm"
)

func init() { afterStart = fuzzManagement }

// Management calls it leaves out: VM_WAIT blocks until a VM stops, and
// EXIT would end the run.
var fuzzSkip = map[uint32]bool{abi.VM_WAIT: true, abi.EXIT: true}

func fuzzManagement(c *control) {
	if len(c.guests) == 0 || c.guests[0].boot.Arg>>63 == 0 {
		fmt.Printf("control-fuzz: the first guest must be the victim (the fuzz guest, argument bit 63 set)\n")
		os.Exit(1)
	}
	calls, seed := int(uint32(c.guests[0].boot.Arg)), c.guests[0].boot.Arg>>32&0x7fffffff
	victim := c.guests[0].handle
	r := rand.New(rand.NewPCG(seed, 0x636f_6e74_726f_6c21))
	scratch := pageBuffer()
	ids := []uint32{}
	for _, k := range abi.Calls {
		if !k.Guest && !fuzzSkip[k.ID] {
			ids = append(ids, k.ID)
		}
	}
	// Handles: of no VM (0-2 never are), the victim's, and those
	// VM_CREATE returned, most recent first (some destroyed since).
	made := []uint64{victim}
	handles := func() uint64 {
		if r.IntN(4) == 0 {
			return uint64(r.IntN(4))
		}
		return made[r.IntN(len(made))]
	}
	arg := func() uint64 {
		var a uint64
		switch r.IntN(9) {
		case 0:
			a = 0
		case 1:
			a = ^uint64(0) - uint64(r.IntN(0x1001))
		case 2:
			a = 1 << uint(r.IntN(64))
		case 3:
			a = handles()
		case 4:
			// The hypervisor's RAM, the pool (other guests' pages), the
			// devices, by the page, maybe off by one.
			a = []uint64{0x40000000, 0x44000000, 0x50000000, 0x7ffff000, 0x09000000}[r.IntN(5)] +
				uint64(r.IntN(64))<<12 + uint64(r.IntN(3)-1)
		case 5:
			a = 0x40000000 + r.Uint64N(1<<30)&^0xfff
		case 6:
			a = uint64(r.IntN(1<<22)) &^ 0xfff // IPAs and sizes
		case 7:
			a = uint64(r.IntN(8))
		default:
			a = r.Uint64()
		}
		// Not its own runtime's memory: handing that away (VM_DONATE) or
		// having it overwritten (VM_CONSOLE_READ, VM_STATS) would be the
		// partition shooting itself, not the hypervisor failing. The top
		// of the pool, which no guest of this run is placed in, instead.
		if a >= vm.RAMBase && a < vm.RAMBase+vm.RAMSize {
			a = vm.PoolEnd - 1<<20 + a&0xfffff
		}
		return a
	}
	results := map[string]int{}
	n := 0
	for n < calls {
		for i := 0; i < 1000 && n < calls; i++ {
			fid := ids[r.IntN(len(ids))]
			var x [7]uint64
			for j := range x {
				x[j] = arg()
			}
			if r.IntN(4) != 0 {
				x[0] = handles() // most calls name a VM, to get past the first check
			}
			if r.IntN(3) == 0 {
				// Plausible arguments, to get past the checks of form and
				// reach those of ownership and state.
				for j := 1; j < len(x); j++ {
					x[j] = []uint64{vm.PoolEnd - 1<<20 + uint64(r.IntN(256))<<12, 0x40000000 + uint64(r.IntN(8192))<<12,
						uint64(1+r.IntN(16)) << 12, uint64(r.IntN(8)), 34}[r.IntN(5)]
				}
			}
			if fid == abi.VM_CREATE && r.IntN(2) == 0 {
				x[0], x[1] = uint64('f')|uint64('0'+r.IntN(10))<<8, 0 // a name it may take
			}
			if (fid == abi.VM_STOP || fid == abi.VM_DESTROY) && x[0] == victim {
				continue // the victim runs to the end
			}
			code, h := call(fid, x[:]...)
			n++
			if fid == abi.VM_CREATE && code == abi.SUCCESS {
				made = append(made, h)
				if len(made) > 16 {
					made = append(made[:1], made[2:]...)
				}
			}
			results[codeName(code)]++
		}
		for _, g := range c.guests {
			g.drain(c.console) // the victim's checks, as they come
		}
		if v := machineViolations(scratch); v != 0 {
			fmt.Printf("control-fuzz: after %d calls the hypervisor found %d invariant violations\n", n, v)
			os.Exit(1)
		}
	}
	// Destroy what it made; stop the victim, whose console the loop drains.
	destroyed := 0
	for h := uint64(3); h < 4096; h++ {
		if h == victim {
			continue
		}
		call(abi.VM_STOP, h, 0)
		if code, _ := call(abi.VM_DESTROY, h); code == abi.SUCCESS {
			destroyed++
		}
	}
	call(abi.VM_STOP, victim, abi.StatusStopped)
	out := ""
	for _, k := range []string{"SUCCESS", "NOT_SUPPORTED", "INVALID_PARAMETER", "DENIED", "NO_MEMORY", "BUSY", "other"} {
		out += fmt.Sprintf(" %s %d", k, results[k])
	}
	fmt.Printf("control-fuzz: seed %d: %d management calls, %d invariant checks, 0 violations; destroyed %d VMs it made; results:%s\n",
		seed, n, (n+999)/1000, destroyed, out)
}

// machineViolations asks for the machine's figures, which has the
// hypervisor check its invariants, and returns the violations it counts.
func machineViolations(buf []byte) uint64 {
	if code, _ := call(abi.VM_STATS, 0, addr(buf)); code != abi.SUCCESS {
		fmt.Printf("control-fuzz: VM_STATS: %d\n", code)
		os.Exit(1)
	}
	return binary.LittleEndian.Uint64(buf[8*abi.MachineViolations:])
}

func codeName(c int64) string {
	if n := abi.CodeName(c); n != "" {
		return n
	}
	return "other"
}
