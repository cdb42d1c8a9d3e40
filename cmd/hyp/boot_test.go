//go:build !tamago

package main

import (
	"debug/elf"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-hv/bulkhead/board/qemuvirt"
	"github.com/bulkhead-hv/bulkhead/internal/qemutest"
	"github.com/bulkhead-hv/bulkhead/mmu"
)

func hypImage(t testing.TB) string {
	return filepath.Join(qemutest.ImageDir(t), "bulkhead-hyp.elf")
}

func crashImage(t *testing.T) string {
	return filepath.Join(qemutest.ImageDir(t), "bulkhead-hyp-crashtest.elf")
}

func TestBootBanner(t *testing.T) {
	r := qemutest.Boot(t, qemutest.Machine{Image: hypImage(t)})
	r.Contains(t,
		"Bulkhead ", "CurrentEL: EL2\n",
		"RAM: 1024 MiB [0x40000000-0x80000000)",
		"1 CPU(s) in the device tree",
		"PSCI via smc",
		"GIC: GICv3, SPIs 32-",
		"1 redistributor(s)",
		"bulkhead: no guests given (guestN= boot arguments); powering off",
		"bulkhead: exit status 0",
	)
	feat, ok := r.Line("features: ")
	if !ok {
		t.Fatalf("no features line")
	}
	for _, f := range []string{"VHE", "VMID16", "PA=", "RNG", "PAN", "GICv3-sysreg"} {
		if !strings.Contains(feat, f) {
			t.Errorf("features line %q does not report %s", feat, f)
		}
	}
	if r.ExitCode != 0 {
		t.Errorf("QEMU exit status %d, want 0", r.ExitCode)
	}
	// The memory map in the banner is W^X and leaves the guards unmapped.
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^  0x[0-9a-f]+-0x[0-9a-f]+ r-x  normal   text$`),
		regexp.MustCompile(`(?m)^  0x[0-9a-f]+-0x[0-9a-f]+ r--  normal   read-only data$`),
		regexp.MustCompile(`(?m)^  0x[0-9a-f]+-0x[0-9a-f]+ rw-  normal   data, bss$`),
		regexp.MustCompile(`(?m)^  0x[0-9a-f]+-0x[0-9a-f]+ ---  unmapped guard$`),
		regexp.MustCompile(`(?m)^  0x[0-9a-f]+-0x[0-9a-f]+ rw-  normal   exception stack$`),
		regexp.MustCompile(`(?m)^boot time: \d+\.\d{3} ms since reset`),
	} {
		if !want.MatchString(r.Console) {
			t.Errorf("console has no line matching %s", want)
		}
	}
	if strings.Contains(r.Console, "rwx") {
		t.Errorf("a region is writable and executable")
	}
}

// Memory and CPU count come from the device tree, not from constants.
func TestBootReadsDeviceTree(t *testing.T) {
	r := qemutest.Boot(t, qemutest.Machine{Image: hypImage(t), Mem: "2G", SMP: 3})
	r.Contains(t, "RAM: 2048 MiB [0x40000000-0xc0000000)", "3 CPU(s) in the device tree",
		"3 redistributor(s)", "bulkhead: exit status 0")
}

// Every CPU the device tree lists joins the hypervisor at EL2 with its own
// exception stack, per-CPU pointer and redistributor.
func TestSecondaryCPUsComeUp(t *testing.T) {
	r := qemutest.Boot(t, qemutest.Machine{Image: hypImage(t), SMP: 4})
	r.Contains(t, "4 CPU(s) in the device tree", "bulkhead: 4 of 4 CPU(s) up at EL2", "bulkhead: exit status 0")
	stacks := map[string]bool{}
	for i := 1; i < 4; i++ {
		line, ok := r.Line(fmt.Sprintf("bulkhead: CPU %d (MPIDR %#x) up at EL2: exception stack at ", i, i))
		if !ok {
			t.Errorf("CPU %d did not report itself up", i)
			continue
		}
		if !strings.Contains(line, fmt.Sprintf("TPIDR_EL2 %d, redistributor awake", i)) {
			t.Errorf("CPU %d: %q", i, line)
		}
		stack := strings.Fields(strings.SplitAfter(line, "exception stack at ")[1])[0]
		if stacks[stack] {
			t.Errorf("CPU %d shares exception stack %s", i, stack)
		}
		stacks[stack] = true
	}
}

// A CPU without FEAT_RNG boots, and says loudly that it has no entropy.
func TestBootWithoutHardwareRNG(t *testing.T) {
	r := qemutest.Boot(t, qemutest.Machine{Image: hypImage(t), CPU: "neoverse-n1"})
	r.Contains(t, "Arm Neoverse N1", "RNG-", "WARNING: no hardware entropy source", "bulkhead: exit status 0")
}

func TestBootWarnsOfUnknownArgument(t *testing.T) {
	r := qemutest.Boot(t, qemutest.Machine{Image: hypImage(t), Append: "frobnicate=1"})
	r.Contains(t, `bulkhead: warning: ignoring unknown boot argument "frobnicate"`, "bulkhead: exit status 0")
}

// Without EL2 the kernel refuses to run and powers the machine off rather
// than hang or fall back to EL1.
func TestBootRefusesEL1(t *testing.T) {
	r := qemutest.Boot(t, qemutest.Machine{Image: hypImage(t), NoEL2: true})
	if r.TimedOut {
		t.Fatalf("machine hung instead of powering off")
	}
	if strings.Contains(r.Console, "CurrentEL") {
		t.Errorf("kernel ran at EL1")
	}
}

// The production image does not contain the crash tests.
func TestProductionImageIgnoresCrashTest(t *testing.T) {
	r := qemutest.Boot(t, qemutest.Machine{Image: hypImage(t), Append: "crashtest=null-read"})
	r.Contains(t, "crashtest=null-read ignored", "bulkhead: exit status 0")
}

func TestCrashReports(t *testing.T) {
	for _, tc := range []struct {
		name, fn string
		want     []string
	}{
		{"null-read", "main.crashNullRead", []string{
			"EC 0x25 (Data Abort taken without a change in Exception level): Translation fault",
			", read", "FAR  0x0000000000000000 (valid)", "ldr x0, [x0]"}},
		{"text-write", "main.crashTextWrite", []string{
			"EC 0x25 (Data Abort taken without a change in Exception level): Permission fault, level 3, write"}},
		{"rodata-write", "main.crashRodataWrite", []string{
			"EC 0x25 (Data Abort taken without a change in Exception level): Permission fault, level 3, write", "strb"}},
		{"brk", "main.brk", []string{"EC 0x3c (BRK in AArch64)", "brk #0x0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := qemutest.Boot(t, qemutest.Machine{Image: crashImage(t), Append: "crashtest=" + tc.name})
			r.Contains(t, "*** BULKHEAD EL2 EXCEPTION ***", "*** END OF EXCEPTION REPORT ***",
				"exception: Synchronous, current EL with SP_EL0", "cpu: 0 (MPIDR 0x0)", "bulkhead: exit status 70")
			r.Contains(t, tc.want...)
			elr, ok := r.Line("ELR  ")
			if !ok || !strings.Contains(elr, " "+tc.fn+" at github.com/bulkhead-hv/bulkhead/cmd/hyp/crashtest") {
				t.Errorf("ELR line %q does not name %s and its source file", elr, tc.fn)
			}
			for i := 0; i <= 29; i++ {
				if !regexp.MustCompile(`\bx` + strconv.Itoa(i) + ` +0x[0-9a-f]{16}\b`).MatchString(r.Console) {
					t.Errorf("report lacks register x%d", i)
				}
			}
			if !strings.Contains(r.Console, "  #2 ") || !strings.Contains(r.Console, "main.main at") {
				t.Errorf("backtrace does not reach main.main")
			}
			if r.ExitCode != 70 {
				t.Errorf("QEMU exit status %d, want 70", r.ExitCode)
			}
		})
	}
}

// A fault inside the exception handler is reported from the nested vector.
func TestCrashInsideHandler(t *testing.T) {
	r := qemutest.Boot(t, qemutest.Machine{Image: crashImage(t), Append: "crashtest=nested"})
	r.Contains(t, "*** BULKHEAD EL2 EXCEPTION ***", "exception: Synchronous, current EL with SP_ELx",
		"taken inside the exception handler", "Translation fault", "*** END OF EXCEPTION REPORT ***",
		"bulkhead: exit status 70")
	if r.ExitCode != 70 {
		t.Errorf("QEMU exit status %d, want 70", r.ExitCode)
	}
}

// A handler that keeps faulting ends in a power-off, not a hang.
func TestDoubleFaultPowersOff(t *testing.T) {
	r := qemutest.Boot(t, qemutest.Machine{Image: crashImage(t), Append: "crashtest=double-fault", Timeout: 30 * time.Second})
	if r.TimedOut {
		t.Fatalf("machine hung")
	}
	r.Contains(t, "bulkhead: crashtest double-fault")
	if strings.Contains(r.Console, "END OF EXCEPTION REPORT") || strings.Contains(r.Console, "did not fault") {
		t.Errorf("unexpected output after the double fault")
	}
}

// Every section of the real image falls in a region whose permissions fit:
// code only in text, writable data only in rw- regions.
func TestImageSectionsFitTheMap(t *testing.T) {
	for _, image := range []string{hypImage(t), crashImage(t)} {
		f, err := elf.Open(image)
		if err != nil {
			t.Fatal(err)
		}
		syms, err := f.Symbols()
		if err != nil {
			t.Fatal(err)
		}
		addr := map[string]uint64{}
		for _, s := range syms {
			addr[s.Name] = s.Value
		}
		img := qemuvirt.Image{Text: addr["runtime.text"], ROData: addr["runtime.rodata"],
			NoPtrData: addr["runtime.noptrdata"], End: addr["runtime.end"]}
		regs, err := qemuvirt.Layout(img)
		if err != nil {
			t.Fatalf("%s: %v", image, err)
		}
		for _, s := range f.Sections {
			if s.Flags&elf.SHF_ALLOC == 0 || s.Size == 0 {
				continue
			}
			var reg *qemuvirt.Region
			for i := range regs {
				if s.Addr >= regs[i].Start && s.Addr+s.Size <= regs[i].End {
					reg = &regs[i]
				}
			}
			if reg == nil {
				t.Errorf("%s: section %s [%#x,+%#x) is not inside one region", image, s.Name, s.Addr, s.Size)
				continue
			}
			var need mmu.Perm = mmu.Read
			if s.Flags&elf.SHF_WRITE != 0 {
				need |= mmu.Write
			}
			if s.Flags&elf.SHF_EXECINSTR != 0 {
				need |= mmu.Exec
			}
			if reg.Perm != need {
				t.Errorf("%s: section %s needs %s but sits in %q (%s)", image, s.Name, need, reg.Name, reg.Perm)
			}
		}
		f.Close()
	}
}

func efiImage(t testing.TB) string {
	return filepath.Join(qemutest.ImageDir(t), "bulkhead-hyp.efi")
}

// Under UEFI firmware (AAVMF) on a Graviton-class CPU, the EFI image
// finds the machine through ACPI (the IORT's SMMU and the MCFG's ECAM
// too), takes its RAM from the memory map with
// the firmware's runtime and ACPI memory left out, starts every CPU the
// MADT lists and powers off when asked through its load options.
func TestUEFIBootACPI(t *testing.T) {
	r := qemutest.Boot(t, qemutest.Machine{Image: efiImage(t), Firmware: qemutest.UEFIFirmware,
		CPU: "neoverse-n1", SMP: 8, Mem: "4G", Timeout: 120 * time.Second, Extra: []string{"-machine", "iommu=smmuv3"}})
	r.Contains(t, "8 CPU(s) in the ACPI tables from UEFI", "machine: ACPI, OEM BOCHS",
		"devices: PL011 UART [0x9000000-0x9001000), GICv3 distributor [0x8000000-0x8010000)",
		"timers: EL2 physical PPI 26, virtual PPI 27; GIC maintenance PPI 25",
		"PCIe ECAM: [0x4010000000-0x4020000000); SMMUv3: [0x9050000-0x9070000)",
		"bulkhead: 8 of 8 CPU(s) up at EL2", "bulkhead: exit status 0")
	ram, ok := r.Line("RAM: ")
	require.True(t, ok)
	ranges := strings.Count(ram, "[")
	assert.Greater(t, ranges, 1, "the firmware's runtime and ACPI memory are holes in RAM: %s", ram)
	assert.Contains(t, ram, "[0x40000000-", "RAM above 4 GiB and below, from the memory map")
	assert.Equal(t, 0, r.ExitCode)
}

// With ACPI off, the firmware hands over a device tree: the same boot,
// but the RAM is still the memory map's.
func TestUEFIBootDeviceTree(t *testing.T) {
	r := qemutest.Boot(t, qemutest.Machine{Image: efiImage(t), Firmware: qemutest.UEFIFirmware, NoACPI: true,
		SMP: 2, Mem: "4G", Timeout: 120 * time.Second})
	r.Contains(t, "2 CPU(s) in the device tree from UEFI", "bulkhead: 2 of 2 CPU(s) up at EL2", "bulkhead: exit status 0")
	ram, ok := r.Line("RAM: ")
	require.True(t, ok)
	assert.NotContains(t, ram, "RAM: 4096 MiB [0x40000000-0x140000000)", "the device tree's memory node is not the word on free RAM")
}

// Started at EL1 (virtualization off), the EFI image says why on the
// firmware's console and returns to the firmware rather than run.
func TestUEFIRefusesEL1(t *testing.T) {
	in := qemutest.Start(t, qemutest.Machine{Image: efiImage(t), Firmware: qemutest.UEFIFirmware, NoEL2: true,
		Timeout: 60 * time.Second})
	if !in.WaitFor("returning EFI_UNSUPPORTED") {
		t.Fatalf("no refusal on the firmware console:\n%s", in.Console())
	}
	assert.Contains(t, in.Console(), "the firmware started the hypervisor at EL1, not EL2")
	assert.NotContains(t, in.Console(), "CurrentEL", "the hypervisor did not run")
}
