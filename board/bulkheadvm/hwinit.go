//go:build tamago

package bulkheadvm

import (
	"runtime/goos"
	"unsafe"

	"github.com/bulkhead-hv/bulkhead/abi"
	"github.com/bulkhead-hv/bulkhead/cpu"
	"github.com/bulkhead-hv/bulkhead/mmu"
)

var (
	//go:linkname ramStart runtime/goos.RamStart
	ramStart uint = RAMBase
	//go:linkname ramSize runtime/goos.RamSize
	ramSize uint = RAMSize
	//go:linkname ramStackOffset runtime/goos.RamStackOffset
	ramStackOffset uint = StackOffset

	bootArg uint64 // x0 at entry: the argument the hypervisor passed

	tables mmu.Tables
	pool   mmu.StaticPool

	timerFreq uint64
	hasRNDR   bool

	probing  uint64
	probeESR uint64
)

func hvc4(fid, a1, a2, a3, a4, a5, a6, a7 uint64) (r0, r1, r2, r3 uint64)

// hvc makes a hypercall (SMCCC: x0-x7 in, x0-x1 used out).
//
//go:nosplit
func hvc(fid, a1, a2, a3, a4, a5, a6, a7 uint64) (r0, r1 uint64) {
	r0, r1, _, _ = hvc4(fid, a1, a2, a3, a4, a5, a6, a7)
	return
}
func enableMMU(mair, tcr, ttbr0 uint64)
func readCNTVCT() uint64
func setVBAR()
func probe(addr uint64, write bool) uint64

//go:linkname hwinit0 runtime/goos.Hwinit0
func hwinit0() {
	goos.Exit = exit
	goos.Idle = idle
	timerFreq = cpu.ReadCNTFRQ()
	setVBAR()
	pool.Init(poolMem[:])
	text, rodata, noptrdata, end := cpu.ImageSymbols()
	parange := cpu.ReadIDAA64MMFR0() & 0xf
	if parange > 5 {
		parange = 5
	}
	if tables.Init(&pool, VABits) != nil || Map(&tables, Image{text, rodata, noptrdata, end}) != nil {
		exit(126)
	}
	enableMMU(mmu.MAIR, mmu.TCREL1(VABits, parange), tables.Root())
}

//go:linkname hwinit1 runtime/goos.Hwinit1
func hwinit1() {}

// idle runs when no goroutine is ready (a sleep, say): the guest gives the
// CPU back to the hypervisor rather than spin on it.
func idle(until int64) { hvc(abi.YIELD, idleNap, 0, 0, 0, 0, 0, 0) }

// idleNap is how long an idle guest lets the hypervisor keep it off its
// CPU when nothing else wants the CPU, in microseconds: its timers are
// checked at least this often.
const idleNap = 1000

// Arg is the argument the hypervisor started the guest with (x0).
func Arg() uint64 { return bootArg }

//go:linkname nanotime runtime/goos.Nanotime
//go:nosplit
func nanotime() int64 {
	f := timerFreq
	if f == 0 {
		return 0
	}
	c := readCNTVCT()
	return int64(c/f*1e9 + c%f*1e9/f)
}

//go:linkname initRNG runtime/goos.InitRNG
func initRNG() { hasRNDR = cpu.HasRNDR() }

//go:linkname getRandomData runtime/goos.GetRandomData
func getRandomData(b []byte) { cpu.FillRandom(b, hasRNDR) }

// HardwareEntropy reports whether randomness comes from FEAT_RNG.
func HardwareEntropy() bool { return hasRNDR }

// The console: bytes gather until a newline or a full hypercall's worth.
var (
	line  [abi.ConsoleChunk / 8]uint64
	lineN int
)

//go:linkname printk runtime/goos.Printk
//go:nosplit
func printk(c byte) {
	b := (*[abi.ConsoleChunk]byte)(unsafe.Pointer(&line))
	b[lineN] = c
	lineN++
	if c == '\n' || lineN == abi.ConsoleChunk {
		flush()
	}
}

//go:nosplit
func flush() {
	if lineN == 0 {
		return
	}
	hvc(abi.CONSOLE_WRITE, uint64(lineN), line[0], line[1], line[2], line[3], line[4], line[5])
	lineN = 0
	line = [abi.ConsoleChunk / 8]uint64{}
}

// exit ends the guest: main returning, os.Exit and panics all end here.
func exit(code int32) {
	flush()
	for {
		hvc(abi.EXIT, uint64(uint32(code)), 0, 0, 0, 0, 0, 0)
	}
}

// Probe makes one load (or store) at addr and reports the exception it
// caused, if any: ESR_EL1, 0 when the access went through.
func Probe(addr uint64, write bool) (value, esr uint64) {
	probeESR = 0
	value = probe(addr, write)
	esr = probeESR
	probeESR = 0
	return value, esr
}

// Hypercall4 makes a raw hypercall and returns x0-x3.
func Hypercall4(fid uint32, args ...uint64) (r0, r1, r2, r3 uint64) {
	var a [7]uint64
	copy(a[:], args)
	return hvc4(uint64(fid), a[0], a[1], a[2], a[3], a[4], a[5], a[6])
}

// Hypercall makes a raw hypercall.
func Hypercall(fid uint32, args ...uint64) (r0, r1 uint64) {
	var a [7]uint64
	copy(a[:], args)
	return hvc(uint64(fid), a[0], a[1], a[2], a[3], a[4], a[5], a[6])
}

// The guest's page tables come from an array in its bss.
const poolTables = 32

var poolMem [(poolTables + 1) * mmu.PageSize]byte

// CounterFrequency is CNTFRQ_EL0.
func CounterFrequency() uint64 { return timerFreq }
