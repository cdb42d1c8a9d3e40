//go:build tamago

// Command fuzz is a hostile Bulkhead guest that makes hypercalls at
// random: every function ID in and around Bulkhead's ranges and SMCCC's
// and PSCI's, with arguments random and chosen to hurt (the hypervisor's,
// the control partition's and other guests' addresses, 0, ~0, page
// boundaries plus or minus one, sizes that overflow), and probes random
// addresses outside its RAM with loads and stores, and system registers
// of random encodings. It prints how many calls
// it made and their results by code, and exits 0 if it is still standing:
// a call that breaks the hypervisor shows as an instance that fails, a
// ledger invariant that breaks as a violation in `bulkhead stats`.
//
// Its argument: bits [31:0] the number of calls (50,000 if 0), bits
// [62:32] the seed. With bit 63 set it is the victim instead: it fills 4
// MiB of its memory from the seed and checks every 200 ms that nothing has
// changed it, printing each check, until it is stopped; it exits 1 at the
// first difference.
package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"time"
	"unsafe"

	"github.com/bulkhead-hv/bulkhead/abi"
	vm "github.com/bulkhead-hv/bulkhead/board/bulkheadvm"
)

// Calls the fuzzer leaves out: each ends or suspends the caller, which
// would end the run rather than test anything (they are tested
// elsewhere).
var skip = map[uint32]bool{
	abi.EXIT:                          true,
	abi.PSCI_CPU_OFF:                  true,
	abi.PSCI_SYSTEM_OFF:               true,
	abi.PSCI_SYSTEM_RESET:             true,
	abi.PSCI_CPU_SUSPEND:              true,
	abi.PSCI_CPU_SUSPEND32:            true,
	abi.PSCI_SYSTEM_OFF | abi.SMC64:   true,
	abi.PSCI_SYSTEM_RESET | abi.SMC64: true,
	abi.PSCI_CPU_OFF | abi.SMC64:      true,
	0x8400000e:                        true, // PSCI SYSTEM_SUSPEND
	0xc400000e:                        true,
	0x84000012:                        true, // PSCI SYSTEM_RESET2
	0xc4000012:                        true,
}

// Function ID ranges: Bulkhead's (fast and yielding, SMC64 and SMC32),
// the Arm architecture calls, the vendor hypervisor queries and PSCI.
var ranges = []struct{ base, n uint32 }{
	{0xc6000000, 0x40}, {0x86000000, 0x40}, {0x46000000, 0x40},
	{0x80000000, 0x40}, {0x8000ff00, 0x100},
	{0x8600ff00, 0x100}, {0xc600ff00, 0x100},
	{0x84000000, 0x40}, {0xc4000000, 0x40},
}

// Addresses worth aiming at (QEMU virt, 1 GiB and more): the
// hypervisor's image and heap, the control partition's RAM, other
// guests' pages wherever the pool placed them, devices, and none.
var targets = []uint64{
	0x40000000, 0x40200000, 0x43ff0000, 0x44000000, 0x48000000, 0x48010000,
	0x50000000, 0x60000000, 0x7ffff000, 0x08000000, 0x080a0000, 0x09000000,
	0x09010000, 0x0a000000, 0,
}

var r *rand.Rand

// arg is a hostile argument.
func arg() uint64 {
	switch r.IntN(10) {
	case 0:
		return 0
	case 1:
		return ^uint64(0) - uint64(r.IntN(0x1001))
	case 2:
		return 1 << uint(r.IntN(64))
	case 3, 4:
		// An address worth aiming at, or a page boundary beside it.
		return targets[r.IntN(len(targets))] + uint64(r.IntN(3)-1)*uint64(r.IntN(2))
	case 5:
		// A page anywhere in the first 2 GiB of RAM, maybe off by one.
		return 0x40000000 + r.Uint64N(1<<31)&^0xfff + uint64(r.IntN(3)-1)
	case 6:
		return uint64(r.IntN(1 << 21))
	case 7:
		return uint64(r.IntN(16)) // small: indices, levels, handles
	}
	return r.Uint64()
}

// known is every function the hypervisor implements.
var known = func() []uint32 {
	ids := []uint32{abi.PSCI_VERSION, abi.PSCI_FEATURES, abi.PSCI_CPU_ON, abi.PSCI_CPU_ON32,
		abi.PSCI_AFFINITY_INFO, abi.PSCI_AFFINITY_INFO32}
	for _, c := range abi.Calls {
		ids = append(ids, c.ID)
	}
	return ids
}()

// fid is a function ID: one the hypervisor implements, one in or around
// the ranges, or anything.
func fid() uint32 {
	switch r.IntN(16) {
	case 0:
		return r.Uint32()
	case 1, 2, 3, 4, 5, 6:
		return known[r.IntN(len(known))]
	}
	g := ranges[r.IntN(len(ranges))]
	return g.base + uint32(r.IntN(int(g.n)))
}

// probe loads from or stores to an address outside the guest's own RAM
// (0x40000000-0x44000000 is left alone: its Go runtime lives there).
func probe() bool {
	var a uint64
	for {
		a = arg() &^ 7
		if a>>40 != 0 {
			a &= 1<<40 - 1
		}
		if a < 0x40000000 || a >= 0x44000000 {
			break
		}
	}
	_, esr := vm.Probe(a, r.IntN(2) == 0)
	return esr != 0
}

// sysreg makes one system register access of a random encoding (Arm ARM
// C5.2: MRS and MSR, op0 2 or 3): reads of any register, writes only of
// those the hypervisor traps (debug, the PMU, the EL1 physical timer, the
// SGI registers), since a write to the guest's own live state (its MMU,
// its vectors, its virtual timer) would only break the guest. It reports
// whether it wrote and whether the access faulted.
func sysreg() (write, faulted bool) {
	op0 := uint32(2 + r.IntN(2))
	op1, crn, crm, op2 := uint32(r.IntN(8)), uint32(r.IntN(16)), uint32(r.IntN(16)), uint32(r.IntN(8))
	insn := uint32(0xd5300000) // MRS x0
	if r.IntN(4) == 0 {
		write = true
		insn = 0xd5100000 // MSR x0
		switch r.IntN(4) {
		case 0: // debug: op0 2, op1 0
			op0, op1 = 2, 0
		case 1: // PMU: op1 3, CRn 9, CRm 12-14
			op0, op1, crn, crm = 3, 3, 9, 12+uint32(r.IntN(3))
		case 2: // CNTP_TVAL, CNTP_CTL, CNTP_CVAL
			op0, op1, crn, crm, op2 = 3, 3, 14, 2, uint32(r.IntN(3))
		default: // ICC_SGI1R, ICC_ASGI1R, ICC_SGI0R
			op0, op1, crn, crm, op2 = 3, 0, 12, 11, 5+uint32(r.IntN(3))
		}
	}
	insn |= (op0-2)<<19 | op1<<16 | crn<<12 | crm<<8 | op2<<5
	_, esr := vm.Execute(insn, arg())
	return write, esr != 0
}

func main() {
	a := vm.Arg()
	seed := a >> 32 & 0x7fffffff
	r = rand.New(rand.NewPCG(seed, 0x6275_6c6b_6865_6164))
	if a>>63 == 1 {
		victim()
	}
	calls := int(uint32(a))
	if calls == 0 {
		calls = 50000
	}
	results := map[int64]int{}
	probes, faulted := 0, 0
	var reads, writes, readFaults, writeFaults int
	start := time.Now()
	for i := 0; i < calls; i++ {
		f := fid()
		if skip[f] {
			continue
		}
		var x [7]uint64
		for j := range x {
			x[j] = arg()
		}
		if f == abi.YIELD {
			x[0] %= 100 // naps of at most 100 us: the run is about calls
		}
		r0, _, _, _ := vm.Hypercall4(f, x[:]...)
		if int64(r0) > 0 {
			r0 = 1 // a value, not a code: counted together
		}
		results[int64(r0)]++
		if r.IntN(8) == 0 {
			w, f := sysreg()
			switch {
			case w:
				writes++
				writeFaults += b2i(f)
			default:
				reads++
				readFaults += b2i(f)
			}
		}
		if r.IntN(8) == 0 {
			probes++
			if probe() {
				faulted++
			}
		}
	}
	codes := make([]int64, 0, len(results))
	for c := range results {
		codes = append(codes, c)
	}
	sort.Slice(codes, func(i, j int) bool { return results[codes[i]] > results[codes[j]] })
	made := 0
	out := ""
	for _, c := range codes {
		made += results[c]
		out += fmt.Sprintf(" %s %d", name(c), results[c])
	}
	fmt.Printf("\nfuzz: seed %d: %d calls in %v; results:%s\n", seed, made, time.Since(start).Round(time.Millisecond), out)
	fmt.Printf("fuzz: %d probes outside its RAM, %d faulted\n", probes, faulted)
	fmt.Printf("fuzz: system registers: %d reads (%d faulted), %d writes of trapped ones (%d faulted)\n", reads, readFaults, writes, writeFaults)
	os.Exit(0)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func name(c int64) string {
	switch c {
	case 1:
		return "values" // PSCI_VERSION, CALL_UID and the like
	case abi.PSCI_ALREADY_ON:
		return "ALREADY_ON"
	case abi.PSCI_INVALID_ADDRESS:
		return "INVALID_ADDRESS"
	}
	if n := abi.CodeName(c); n != "" {
		return n
	}
	return fmt.Sprintf("%#x", uint64(c))
}

// victim fills its memory and checks it until it is stopped.
func victim() {
	buf := make([]uint64, 4<<20/8)
	for i := range buf {
		buf[i] = r.Uint64()
	}
	sum := func() (s uint64) {
		for _, v := range buf {
			s = s*0x100000001b3 ^ v
		}
		return s
	}
	want := sum()
	// Where it is (its IPA: the guest's map is the identity), for a test
	// that aims at it.
	fmt.Printf("victim: 4 MiB filled at %#x, checksum %#x\n", uintptr(unsafe.Pointer(&buf[0])), want)
	for n := 1; ; n++ {
		time.Sleep(200 * time.Millisecond)
		if got := sum(); got != want {
			fmt.Printf("victim: memory changed: checksum %#x, want %#x\n", got, want)
			os.Exit(1)
		}
		fmt.Printf("victim: check %d: unchanged\n", n)
	}
}
