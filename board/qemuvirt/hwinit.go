//go:build tamago

package qemuvirt

import (
	"runtime/goos"
	"unsafe"

	"github.com/bulkhead-hv/bulkhead/board/fdt"
	"github.com/bulkhead-hv/bulkhead/cpu"
	"github.com/bulkhead-hv/bulkhead/mmu"
)

// Runtime memory, read by cpuinit before any Go code runs.
var (
	//go:linkname ramStart runtime/goos.RamStart
	ramStart uint = RAMBase
	//go:linkname ramSize runtime/goos.RamSize
	ramSize uint = HypRAMSize
	//go:linkname ramStackOffset runtime/goos.RamStackOffset
	ramStackOffset uint = StackOffset
)

var (
	bootX0      uint64 // x0 at entry
	bootCounter uint64 // CNTPCT_EL0 at entry

	// The EL2 stage 1 tables and the pool they come from.
	hypTables mmu.Tables
	pool      mmu.StaticPool

	machine *Machine
	bootErr error
)

// Image returns where the linker placed the hypervisor's sections.
func CurrentImage() Image {
	text, rodata, noptrdata, end := cpu.ImageSymbols()
	return Image{Text: text, ROData: rodata, NoPtrData: noptrdata, End: end}
}

// hwinit0 runs before the Go heap exists: it must not allocate. With the
// MMU off every data access is Device-nGnRnE, which faults on unaligned
// access, so the MMU goes on here, as early as possible.
//
//go:linkname hwinit0 runtime/goos.Hwinit0
func hwinit0() {
	goos.Exit = exit
	timerFreq = cpu.ReadCNTFRQ()
	pool.Init(poolMem[:])

	parange := cpu.ReadIDAA64MMFR0() & 0xf
	if parange > 5 {
		parange = 5 // 52-bit output needs FEAT_LPA2 descriptors
	}
	bits := [...]int{32, 36, 40, 42, 44, 48}[parange]
	if err := hypTables.Init(&pool, bits); err != nil {
		earlyFatal(err)
	}
	if err := MapHypervisor(&hypTables, CurrentImage()); err != nil {
		earlyFatal(err)
	}
	if !cpu.InstallVectors(RAMBase + HypRAMSize) {
		earlyFatal(errVectorAlign)
	}
	cpu.EnableMMU(mmu.MAIR, mmu.TCREL2(bits, parange), hypTables.Root())
}

// earlyFatal stops a boot that cannot build its own memory map: a build
// defect that host tests of the layout exist to catch. No console is known
// yet, so the message waits in the early buffer and the machine powers off.
func earlyFatal(err error) {
	// LayoutError.Error concatenates, which needs the heap; its text does not.
	msg := ""
	if le, ok := err.(*LayoutError); ok {
		msg = le.What
	} else {
		msg = err.Error() // the mmu package's errors are static strings
	}
	print("bulkhead: fatal: building the EL2 map: ", msg, "\n")
	exit(3)
}

var errVectorAlign = &LayoutError{"exception vector table is not 2 KiB aligned"}

// hwinit1 runs once the heap works: it reads the machine description (the
// device tree, or what the UEFI firmware handed over), maps the devices it
// names and starts the console.
//
//go:linkname hwinit1 runtime/goos.Hwinit1
func hwinit1() {
	var err error
	if efiSystemTable != 0 {
		machine, err = uefiMachine()
	} else {
		var blob []byte
		if blob, err = findDeviceTree(); err == nil {
			machine, err = ParseMachine(blob)
		}
	}
	if err == nil {
		err = checkMachine(machine)
	}
	if err != nil {
		bootErr = err
		// Without a usable description there may be no console to say so:
		// fall back to the virt board's PL011 for this one report, also
		// when the console named lies in RAM.
		if machine == nil || machine.UART.Size == 0 || DevicesOutsideRAM(machine, []fdt.Range{machine.UART}) != nil {
			machine = &Machine{UART: fdt.Range{Addr: fallbackUART, Size: mmu.PageSize}, UARTKind: UARTPL011}
		}
	}
	if err := MapDevice(&hypTables, machine.UART.Addr, machine.UART.Size); err != nil {
		if bootErr == nil {
			bootErr = err
		}
		machine.UART = fdt.Range{} // no console: output waits in the early buffer
	}
	cpu.InvalidateTLB()
	startConsole(machine)
	if bootErr != nil {
		return
	}
	devices := append([]fdt.Range{machine.GICD}, machine.GICR...)
	if machine.FwCfg.Size != 0 {
		devices = append(devices, machine.FwCfg) // where the control partition may come from
	}
	if len(machine.SMMU) > 0 {
		devices = append(devices, machine.SMMU[0]) // the hypervisor's to drive (cmd/hyp)
		if len(machine.ECAM) > 0 {
			// The root bus's configuration space, where the hypervisor
			// stops the functions' DMA when the control partition that
			// drove them crashed.
			devices = append(devices, fdt.Range{Addr: machine.ECAM[0].Addr, Size: 1 << 20})
		}
	}
	for _, r := range devices {
		if err := MapDevice(&hypTables, r.Addr, r.Size); err != nil {
			bootErr = err
			return
		}
	}
	// The virtio-mmio transports, which the control partition drives: the
	// hypervisor only resets them when it restarts a crashed control
	// partition (cmd/hyp). Several share a page; each page once.
	mapped := map[uint64]bool{}
	for _, r := range machine.Virtio {
		for pa := r.Addr &^ (mmu.PageSize - 1); pa < r.End(); pa += mmu.PageSize {
			if !mapped[pa] {
				if err := MapDevice(&hypTables, pa, mmu.PageSize); err != nil {
					bootErr = err
					return
				}
				mapped[pa] = true
			}
		}
	}
	// The rest of RAM, read/write and never executable: the hypervisor
	// loads, zeroes and inspects pages there as the ledger moves them.
	for _, r := range machine.RAM {
		if err := MapOtherRAM(&hypTables, r); err != nil {
			bootErr = err
			return
		}
	}
	cpu.InvalidateTLB()
	semihosting = BootArgs(machine.Bootargs)["exit"] == "semihosting"
}

// fallbackUART is QEMU virt's PL011, used only to report a device tree
// that names no console.
const fallbackUART = 0x09000000

func findDeviceTree() ([]byte, error) {
	for _, addr := range []uint64{bootX0, RAMBase} {
		if addr < RAMBase || addr+64 > TextBase || addr%8 != 0 {
			continue
		}
		hdr := unsafe.Slice((*byte)(unsafe.Pointer(uintptr(addr))), 64)
		h, err := fdt.ReadHeader(hdr)
		if err != nil && h.Magic != fdt.Magic {
			continue
		}
		if addr+uint64(h.TotalSize) > TextBase {
			return nil, &LayoutError{"device tree at " + cpu.Hex(addr) + " extends into the hypervisor image"}
		}
		return unsafe.Slice((*byte)(unsafe.Pointer(uintptr(addr))), h.TotalSize), nil
	}
	return nil, fdt.ErrNotFDT
}

// Boot returns the machine the device tree describes, or why it cannot be
// used.
func Boot() (*Machine, error) { return machine, bootErr }

// BootCounter is CNTPCT_EL0 when the image started.
func BootCounter() uint64 { return bootCounter }

// DeviceTreeAddr is where the device tree was found.
func HypTables() *mmu.Tables { return &hypTables }

// The EL2 stage 1 tables come from an array in the image's bss, which the
// loader zeroed.
const poolTables = 96

var poolMem [(poolTables + 1) * mmu.PageSize]byte

// TablePages reports the pool's use: pages taken and capacity.
func TablePages() (used, total int) { return pool.Used(), pool.Total() }
