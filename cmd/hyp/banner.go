//go:build tamago

package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/bulkhead-hv/bulkhead/board/fdt"
	"github.com/bulkhead-hv/bulkhead/board/qemuvirt"
	"github.com/bulkhead-hv/bulkhead/cpu"
	"github.com/bulkhead-hv/bulkhead/gic"
)

func printBanner(w io.Writer, m *qemuvirt.Machine) {
	id := cpu.IDRegs{
		MIDR: cpu.ReadMIDR(), MPIDR: cpu.ReadMPIDR(),
		PFR0: cpu.ReadIDAA64PFR0(), ISAR0: cpu.ReadIDAA64ISAR0(),
		MMFR0: cpu.ReadIDAA64MMFR0(), MMFR1: cpu.ReadIDAA64MMFR1(),
		CurrentEL: cpu.ReadCurrentEL(),
	}
	f := cpu.Decode(id)
	freq := qemuvirt.TimerFrequency()

	fmt.Fprintf(w, "\nBulkhead %s: EL2 hypervisor\n", version)
	fmt.Fprintf(w, "CurrentEL: EL%d\n", f.EL)
	fmt.Fprintf(w, "CPU: %s, %d CPU(s) in the %s\n", cpu.MIDR(id.MIDR), len(m.CPUs), qemuvirt.Source())
	fmt.Fprintf(w, "features: %s\n", f)
	if !qemuvirt.HardwareEntropy() {
		fmt.Fprintf(w, "WARNING: ********************************************************************\n")
		fmt.Fprintf(w, "WARNING: no hardware entropy source (FEAT_RNG absent): random numbers come\n")
		fmt.Fprintf(w, "WARNING: from timer jitter and are NOT fit for keys or secrets.\n")
		fmt.Fprintf(w, "WARNING: ********************************************************************\n")
	}
	if m.Model != "" {
		fmt.Fprintf(w, "machine: %s\n", m.Model)
	}
	fmt.Fprintf(w, "RAM: %d MiB", m.RAMSize()>>20)
	for _, r := range m.RAM {
		fmt.Fprintf(w, " %s", r)
	}
	fmt.Fprintf(w, "\n")
	fmt.Fprintf(w, "devices: %s UART %s, GICv3 distributor %s, redistributors", m.UARTKind, m.UART, m.GICD)
	for _, r := range m.GICR {
		fmt.Fprintf(w, " %s", r)
	}
	fmt.Fprintf(w, ", PSCI via %s\n", m.PSCI)
	fmt.Fprintf(w, "timers: EL2 physical PPI %d, virtual PPI %d; GIC maintenance PPI %d\n", m.TimerHyp, m.TimerVirt, m.GICMaintenance)
	smmu := ranges(m.SMMU)
	fmt.Fprintf(w, "PCIe ECAM: %s; SMMUv3: %s\n", ranges(m.ECAM), smmu)
	var gicr []gic.Region
	for _, r := range m.GICR {
		gicr = append(gicr, gic.Region{Addr: r.Addr, Size: r.Size})
	}
	if info, err := gic.Discover(qemuvirt.MMIO{}, m.GICD.Addr, gicr); err != nil {
		fmt.Fprintf(w, "GIC: %v\n", err)
	} else {
		fmt.Fprintf(w, "GIC: %s\n", info)
	}

	fmt.Fprintf(w, "memory map (EL2 stage 1, identity):\n")
	regs, err := qemuvirt.Layout(qemuvirt.CurrentImage())
	if err != nil {
		fmt.Fprintf(w, "  %v\n", err)
	}
	for _, r := range regs {
		fmt.Fprintf(w, "  %s\n", r)
	}
	used, total := qemuvirt.TablePages()
	fmt.Fprintf(w, "  page tables: %d of %d pages, root at %#x\n", used, total, qemuvirt.HypTables().Root())
	fmt.Fprintf(w, "  rest of RAM: rw- normal, never executable (pages the ledger moves between compartments)\n")

	now := cpu.ReadCNTPCT()
	start := qemuvirt.BootCounter()
	fmt.Fprintf(w, "boot time: %s since reset, %s since image entry (counter at %d Hz)\n",
		ticks(now, freq), ticks(now-start, freq), freq)
}

func ranges(rs []fdt.Range) string {
	if len(rs) == 0 {
		return "none"
	}
	var out []string
	for _, r := range rs {
		out = append(out, r.String())
	}
	return strings.Join(out, " ")
}

func ticks(t, freq uint64) string {
	if freq == 0 {
		return "unknown"
	}
	us := t * 1000000 / freq
	return fmt.Sprintf("%d.%03d ms", us/1000, us%1000)
}
