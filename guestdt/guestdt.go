// Package guestdt builds the flattened device tree a guest boots with. It
// describes the virtual machine Bulkhead gives every guest, at the
// addresses of QEMU's virt machine, so that a kernel built for QEMU virt
// (Linux's generic arm64 "linux,dummy-virt" machine) finds its RAM, vCPUs,
// PSCI, timer, GICv3 and console where it expects them.
package guestdt

import (
	"fmt"
	"strings"

	"github.com/bulkhead-hv/bulkhead/board/fdt"
	"github.com/bulkhead-hv/bulkhead/hyp"
	"github.com/bulkhead-hv/bulkhead/hyp/vgic"
	"github.com/bulkhead-hv/bulkhead/hyp/vuart"
	"github.com/bulkhead-hv/bulkhead/vdev/pl031"
)

// The guest's interrupt controller, as hyp/vgic emulates it.
const (
	DistBase     = vgic.DistBase
	DistSize     = vgic.DistSize
	RedistBase   = vgic.RedistBase
	RedistStride = vgic.RedistStride // one RD_base and one SGI_base frame per vCPU
)

// The guest's console, the PL011 the hypervisor emulates (hyp/vuart) at
// QEMU virt's address and interrupt.
const (
	UARTBase  = vuart.Base
	UARTSize  = vuart.Size
	UARTIntID = vuart.IntID // SPI 1
	// UARTClock is the frequency of the fixed clock the PL011 node names.
	UARTClock = 24000000
)

// The guest's real-time clock, a PL031 at QEMU virt's address, which the
// control partition emulates (VM_MMIO_MAP).
const (
	RTCBase  = 0x09010000
	RTCSize  = pl031.Size
	RTCIntID = 34 // SPI 2
)

// The guest's virtio-mmio transports (VIRTIO 1.2, 4.2), which the control
// partition emulates with the hypervisor mediating their queues: in QEMU
// virt's virtio range and with its interrupts, but a page apart, as the
// control partition maps devices a page at a time.
const (
	VirtioBase   = 0x0a000000
	VirtioStride = 0x1000
	VirtioSize   = 0x200
	VirtioIntID  = 48 // SPI 16, for the first; one more for each next
	MaxVirtio    = 16
)

// VirtioAddr returns the base of the guest's virtio-mmio transport i and
// its interrupt's INTID.
func VirtioAddr(i int) (base uint64, intid uint32) {
	return VirtioBase + VirtioStride*uint64(i), VirtioIntID + uint32(i)
}

// Generic timer PPIs, numbered as device trees number PPIs: the INTID is
// FirstPPI + n.
const (
	FirstPPI           = 16
	PPISecurePhysTimer = 13 // CNTPS
	PPIPhysTimer       = 14 // CNTP, non-secure
	PPIVirtTimer       = 11 // CNTV
	PPIHypTimer        = 10 // CNTHP
)

// Limits of the inputs.
const (
	// MaxCPUs is the most vCPUs a guest can have.
	MaxCPUs = hyp.MaxVCPUs
	// MaxBootargs is the longest command line: arm64 Linux keeps 2048
	// bytes including the terminating NUL (COMMAND_LINE_SIZE).
	MaxBootargs = 2047
	// RAMAlign is the alignment of guest RAM's base and size, the block
	// size stage 2 and the kernel's placement work in.
	RAMAlign = 2 << 20
)

// PSCIMethod is the PSCI conduit guests are told to use: the hypervisor
// answers PSCI function IDs over HVC beside its own calls, and Linux then
// makes its other SMCCC calls the same way (docs/abi.md, "Guest PSCI").
const PSCIMethod = "hvc"

// DefaultModel is the /model of a tree whose Config names none.
const DefaultModel = "Bulkhead VM"

// Device tree interrupt specifier cells for the GIC (the arm,gic-v3
// binding): <type number flags>.
const (
	gicSPI           = 0
	gicPPI           = 1
	irqTypeLevelHigh = 4
)

// Phandles of the nodes others refer to.
const (
	gicPhandle   = 1
	clockPhandle = 2
)

// Config describes one guest.
type Config struct {
	// RAMBase and RAMSize give the guest's RAM; both RAMAlign aligned.
	RAMBase, RAMSize uint64
	// CPUs is the number of vCPUs, 1 to MaxCPUs; vCPU i has MPIDR
	// Aff0 = i, which its cpu@i node's reg says.
	CPUs int
	// Bootargs is the kernel command line (/chosen/bootargs); may be empty.
	Bootargs string
	// InitrdStart and InitrdEnd bound the initrd in guest RAM, end
	// exclusive as Linux reads linux,initrd-end; both 0 for none.
	InitrdStart, InitrdEnd uint64
	// Model names the machine in /model; empty means DefaultModel.
	Model string
	// Virtio is the number of virtio-mmio transports (VirtioAddr), 0 to
	// MaxVirtio; Linux numbers its disks in their order.
	Virtio int
}

// devices lists the MMIO ranges guest RAM must stay clear of.
func devices(cpus int) []fdt.Range {
	return []fdt.Range{
		{Addr: DistBase, Size: DistSize},
		{Addr: RedistBase, Size: RedistStride * uint64(cpus)},
		{Addr: UARTBase, Size: UARTSize},
		{Addr: RTCBase, Size: RTCSize},
		{Addr: VirtioBase, Size: VirtioStride * MaxVirtio},
	}
}

// Validate reports the first thing wrong with c, in words a user of the
// CLI can act on.
func (c Config) Validate() error {
	if c.CPUs < 1 || c.CPUs > MaxCPUs {
		return fmt.Errorf("guestdt: %d vCPUs: want 1 to %d", c.CPUs, MaxCPUs)
	}
	if c.Virtio < 0 || c.Virtio > MaxVirtio {
		return fmt.Errorf("guestdt: %d virtio devices: at most %d", c.Virtio, MaxVirtio)
	}
	ram := fdt.Range{Addr: c.RAMBase, Size: c.RAMSize}
	switch {
	case c.RAMSize == 0:
		return fmt.Errorf("guestdt: the guest has no RAM")
	case c.RAMBase%RAMAlign != 0 || c.RAMSize%RAMAlign != 0:
		return fmt.Errorf("guestdt: guest RAM %v is not 2 MiB aligned", ram)
	case ram.End() < c.RAMBase:
		return fmt.Errorf("guestdt: guest RAM at %#x of %#x bytes wraps around the address space", c.RAMBase, c.RAMSize)
	}
	for _, d := range devices(c.CPUs) {
		if d.Addr < ram.End() && ram.Addr < d.End() {
			return fmt.Errorf("guestdt: guest RAM %v overlaps the device at %v", ram, d)
		}
	}
	if c.InitrdStart != 0 || c.InitrdEnd != 0 {
		if c.InitrdEnd <= c.InitrdStart {
			return fmt.Errorf("guestdt: initrd [%#x-%#x) is empty or reversed", c.InitrdStart, c.InitrdEnd)
		}
		if c.InitrdStart < ram.Addr || c.InitrdEnd > ram.End() {
			return fmt.Errorf("guestdt: initrd [%#x-%#x) lies outside guest RAM %v", c.InitrdStart, c.InitrdEnd, ram)
		}
	}
	if strings.IndexByte(c.Bootargs, 0) >= 0 {
		return fmt.Errorf("guestdt: the kernel command line contains a NUL byte")
	}
	if len(c.Bootargs) > MaxBootargs {
		return fmt.Errorf("guestdt: the kernel command line is %d bytes, at most %d fit", len(c.Bootargs), MaxBootargs)
	}
	if strings.IndexByte(c.Model, 0) >= 0 {
		return fmt.Errorf("guestdt: the model name contains a NUL byte")
	}
	return nil
}

// Build returns the device tree blob for c.
func Build(c Config) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	model := c.Model
	if model == "" {
		model = DefaultModel
	}
	uart := fmt.Sprintf("/pl011@%x", UARTBase)

	var b fdt.Builder
	b.BeginNode("")
	b.PropU32("#address-cells", 2)
	b.PropU32("#size-cells", 2)
	b.PropStrings("compatible", "linux,dummy-virt")
	b.PropStrings("model", model)
	b.PropU32("interrupt-parent", gicPhandle)

	b.BeginNode("aliases")
	b.PropStrings("serial0", uart)
	b.EndNode()

	b.BeginNode("chosen")
	if c.Bootargs != "" {
		b.PropStrings("bootargs", c.Bootargs)
	}
	b.PropStrings("stdout-path", uart)
	if c.InitrdEnd != 0 {
		b.PropU64("linux,initrd-start", c.InitrdStart)
		b.PropU64("linux,initrd-end", c.InitrdEnd)
	}
	b.EndNode()

	b.BeginNode(fmt.Sprintf("memory@%x", c.RAMBase))
	b.PropStrings("device_type", "memory")
	b.PropU64("reg", c.RAMBase, c.RAMSize)
	b.EndNode()

	b.BeginNode("cpus")
	b.PropU32("#address-cells", 1)
	b.PropU32("#size-cells", 0)
	for i := 0; i < c.CPUs; i++ {
		b.BeginNode(fmt.Sprintf("cpu@%x", i))
		b.PropStrings("device_type", "cpu")
		b.PropStrings("compatible", "arm,armv8")
		b.PropU32("reg", uint32(i)) // MPIDR Aff0
		b.PropStrings("enable-method", "psci")
		b.EndNode()
	}
	b.EndNode()

	b.BeginNode("psci")
	b.PropStrings("compatible", "arm,psci-1.0", "arm,psci-0.2")
	b.PropStrings("method", PSCIMethod)
	b.EndNode()

	// Level-triggered PPIs; with a GICv3 the flags carry no CPU mask.
	b.BeginNode("timer")
	b.PropStrings("compatible", "arm,armv8-timer")
	b.PropU32("interrupts",
		gicPPI, PPISecurePhysTimer, irqTypeLevelHigh,
		gicPPI, PPIPhysTimer, irqTypeLevelHigh,
		gicPPI, PPIVirtTimer, irqTypeLevelHigh,
		gicPPI, PPIHypTimer, irqTypeLevelHigh)
	b.Prop("always-on", nil)
	b.EndNode()

	b.BeginNode(fmt.Sprintf("intc@%x", DistBase))
	b.PropStrings("compatible", "arm,gic-v3")
	b.PropU32("#interrupt-cells", 3)
	b.PropU32("#address-cells", 2)
	b.PropU32("#size-cells", 2)
	b.Prop("ranges", nil)
	b.Prop("interrupt-controller", nil)
	b.PropU64("reg", DistBase, DistSize, RedistBase, RedistStride*uint64(c.CPUs))
	b.PropU32("phandle", gicPhandle)
	b.EndNode()

	b.BeginNode(uart[1:])
	b.PropStrings("compatible", "arm,pl011", "arm,primecell")
	b.PropU64("reg", UARTBase, UARTSize)
	b.PropU32("interrupts", gicSPI, UARTIntID-vgic.FirstSPI, irqTypeLevelHigh)
	b.PropStrings("clock-names", "uartclk", "apb_pclk")
	b.PropU32("clocks", clockPhandle, clockPhandle)
	b.EndNode()

	b.BeginNode(fmt.Sprintf("pl031@%x", RTCBase))
	b.PropStrings("compatible", "arm,pl031", "arm,primecell")
	b.PropU64("reg", RTCBase, RTCSize)
	b.PropU32("interrupts", gicSPI, RTCIntID-vgic.FirstSPI, irqTypeLevelHigh)
	b.PropStrings("clock-names", "apb_pclk")
	b.PropU32("clocks", clockPhandle)
	b.EndNode()

	for i := 0; i < c.Virtio; i++ {
		base, intid := VirtioAddr(i)
		b.BeginNode(fmt.Sprintf("virtio_mmio@%x", base))
		b.PropStrings("compatible", "virtio,mmio")
		b.PropU64("reg", base, VirtioSize)
		b.PropU32("interrupts", gicSPI, intid-vgic.FirstSPI, irqTypeLevelHigh)
		b.Prop("dma-coherent", nil)
		b.EndNode()
	}

	b.BeginNode("apb-pclk")
	b.PropStrings("compatible", "fixed-clock")
	b.PropU32("#clock-cells", 0)
	b.PropU32("clock-frequency", UARTClock)
	b.PropStrings("clock-output-names", "clk24mhz")
	b.PropU32("phandle", clockPhandle)
	b.EndNode()

	b.EndNode()
	return b.Bytes()
}
