package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// An instance booted as a server boots: UEFI firmware starts the EFI
// image, the machine comes from ACPI (or, with ACPI off in QEMU, from the
// device tree the firmware hands over) and the control partition from
// fw_cfg; Debian's kernel runs as a 4-vCPU guest on 4 CPUs, reaches its
// shell, runs what is typed there and powers off.
func TestLinuxUnderUEFI(t *testing.T) {
	dir := imagesDir(t)
	initrd := filepath.Join(dir, "linux", "rootfs.cpio.gz")
	for _, tc := range []struct {
		name, source string
		opts         []string
	}{
		{"ACPI", "ACPI tables from UEFI", nil},
		{"device tree", "device tree from UEFI", []string{"--qemu-opt=-machine", "--qemu-opt=acpi=off"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := upInstance(t, "uefi", append([]string{"--firmware", "uefi", "--smp", "4", "--mem", "2G"}, tc.opts...)...)
			console, err := os.ReadFile(in.Log)
			require.NoError(t, err)
			assert.Contains(t, string(console), "CPU(s) in the "+tc.source, "where the machine came from")
			assert.Contains(t, string(console), "bulkhead: 4 of 4 CPU(s) up at EL2")

			run := startCLI(t, "run", "--instance", "uefi", "--name", "k", "--cpus", "4", "--mem", "512M",
				"--initrd", initrd, "--cmdline", "console=ttyAMA0", filepath.Join(dir, "linux", "vmlinuz"))
			require.Eventually(t, func() bool { return strings.Contains(run.stdout.String(), "# ") },
				4*time.Minute, 100*time.Millisecond, "Linux reaches its shell")
			con := typeInto(t, "uefi", "k", "echo uefi guest on $(nproc) vCPUs\npoweroff -f\n")
			assert.Equal(t, 0, run.wait(t, 2*time.Minute), "run exits with the guest's status: it powered off")
			assert.Contains(t, con.wait(t), "uefi guest on 4 vCPUs")
			code, _, errs := bh("down", "--name", "uefi")
			assert.Equal(t, 0, code, errs)
		})
	}
}

func TestFirmwareFlagRefusesUnknown(t *testing.T) {
	imagesDir(t)
	code, _, stderr := bh("up", "--name", "x", "--firmware", "bios")
	assert.NotEqual(t, 0, code)
	assert.Contains(t, stderr, `--firmware "bios": want none or uefi`)
	code, _, stderr = bh("up", "--name", "x", "--firmware", "uefi", "--iommu")
	assert.NotEqual(t, 0, code)
	assert.Contains(t, stderr, "--iommu with --firmware uefi: under ACPI the hypervisor does not drive the SMMU yet")
}

// The wrong image for the boot is refused before QEMU starts, rather than
// left to time out in the firmware's shell.
func TestUnitHypervisorImageForTheFirmware(t *testing.T) {
	dir := t.TempDir()
	elf := filepath.Join(dir, "hyp.elf")
	efi := filepath.Join(dir, "hyp.efi")
	require.NoError(t, os.WriteFile(elf, []byte("\x7fELF\x02\x01\x01"), 0o644))
	require.NoError(t, os.WriteFile(efi, []byte("MZ\x00\x00PE"), 0o644))
	assert.NoError(t, checkHypervisorImage(elf, ""))
	assert.NoError(t, checkHypervisorImage(efi, "uefi"))
	assert.ErrorContains(t, checkHypervisorImage(elf, "uefi"), "not an EFI application, which --firmware uefi boots")
	assert.ErrorContains(t, checkHypervisorImage(efi, ""), "not an ELF, which QEMU loads without firmware")
}
