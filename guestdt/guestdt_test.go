package guestdt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-hv/bulkhead/board/fdt"
)

const ramBase = 0x40000000

func linuxGuest(cpus int) Config {
	return Config{
		RAMBase: ramBase, RAMSize: 256 << 20, CPUs: cpus,
		Bootargs:    "console=ttyAMA0 earlycon rdinit=/init",
		InitrdStart: 0x4f000000, InitrdEnd: 0x4f123456,
	}
}

func cells(vs ...uint32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	return b
}

func u64s(vs ...uint64) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	return b
}

func parse(t *testing.T, c Config) *fdt.Tree {
	t.Helper()
	blob, err := Build(c)
	require.NoError(t, err)
	tree, err := fdt.Parse(blob)
	require.NoError(t, err)
	return tree
}

func node(t *testing.T, tree *fdt.Tree, path string) *fdt.Node {
	t.Helper()
	n := tree.Find(path)
	require.NotNil(t, n, "no %s", path)
	require.Equal(t, path, n.Path(), "found by its full name")
	return n
}

func prop(t *testing.T, n *fdt.Node, name string) []byte {
	t.Helper()
	v, ok := n.Prop(name)
	require.True(t, ok, "%s has no %s", n.Path(), name)
	return v
}

func strs(t *testing.T, n *fdt.Node, name string) []string {
	t.Helper()
	s, err := n.Strings(name)
	require.NoError(t, err)
	return s
}

func u32(t *testing.T, n *fdt.Node, name string) uint32 {
	t.Helper()
	v, err := n.U32(name)
	require.NoError(t, err)
	return v
}

func TestTree(t *testing.T) {
	tree := parse(t, linuxGuest(4))
	root := tree.Root
	assert.Empty(t, tree.Reserved)
	assert.Equal(t, uint32(2), u32(t, root, "#address-cells"))
	assert.Equal(t, uint32(2), u32(t, root, "#size-cells"))
	assert.Equal(t, []string{"linux,dummy-virt"}, strs(t, root, "compatible"))
	assert.Equal(t, []string{"Bulkhead VM"}, strs(t, root, "model"))
	gic := node(t, tree, "/intc@8000000")
	assert.Equal(t, u32(t, gic, "phandle"), u32(t, root, "interrupt-parent"))
	var names []string
	for _, c := range root.Children {
		names = append(names, c.Name)
	}
	assert.ElementsMatch(t, []string{"aliases", "chosen", "memory@40000000", "cpus", "psci", "timer",
		"intc@8000000", "pl011@9000000", "pl031@9010000", "apb-pclk"}, names)

	mem := node(t, tree, "/memory@40000000")
	assert.Equal(t, []string{"memory"}, strs(t, mem, "device_type"))
	reg, err := mem.Reg()
	require.NoError(t, err)
	assert.Equal(t, []fdt.Range{{Addr: ramBase, Size: 256 << 20}}, reg)

	cpus := node(t, tree, "/cpus")
	assert.Equal(t, uint32(1), u32(t, cpus, "#address-cells"))
	assert.Equal(t, uint32(0), u32(t, cpus, "#size-cells"))
	require.Len(t, cpus.Children, 4)
	for i, cpu := range cpus.Children {
		assert.Equal(t, fmt.Sprintf("cpu@%d", i), cpu.Name)
		assert.Equal(t, []string{"cpu"}, strs(t, cpu, "device_type"))
		assert.Equal(t, []string{"arm,armv8"}, strs(t, cpu, "compatible"))
		assert.Equal(t, uint32(i), u32(t, cpu, "reg"), "MPIDR Aff0")
		assert.Equal(t, []string{"psci"}, strs(t, cpu, "enable-method"))
	}

	psci := node(t, tree, "/psci")
	assert.Equal(t, []string{"arm,psci-1.0", "arm,psci-0.2"}, strs(t, psci, "compatible"))
	assert.Equal(t, []string{"hvc"}, strs(t, psci, "method"))

	timer := node(t, tree, "/timer")
	assert.Equal(t, []string{"arm,armv8-timer"}, strs(t, timer, "compatible"))
	assert.Equal(t, cells(1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4), prop(t, timer, "interrupts"))
	assert.Empty(t, prop(t, timer, "always-on"))

	assert.Equal(t, []string{"arm,gic-v3"}, strs(t, gic, "compatible"))
	assert.Equal(t, uint32(3), u32(t, gic, "#interrupt-cells"))
	assert.Equal(t, uint32(2), u32(t, gic, "#address-cells"))
	assert.Equal(t, uint32(2), u32(t, gic, "#size-cells"))
	assert.Empty(t, prop(t, gic, "ranges"))
	assert.Empty(t, prop(t, gic, "interrupt-controller"))
	reg, err = gic.Reg()
	require.NoError(t, err)
	assert.Equal(t, []fdt.Range{{Addr: 0x08000000, Size: 0x10000}, {Addr: 0x080a0000, Size: 4 * 0x20000}}, reg)

	uart := node(t, tree, "/pl011@9000000")
	assert.Equal(t, []string{"arm,pl011", "arm,primecell"}, strs(t, uart, "compatible"))
	reg, err = uart.Reg()
	require.NoError(t, err)
	assert.Equal(t, []fdt.Range{{Addr: 0x09000000, Size: 0x1000}}, reg)
	assert.Equal(t, cells(0, 1, 4), prop(t, uart, "interrupts"), "SPI 1 (INTID 33), level high")
	assert.Equal(t, []string{"uartclk", "apb_pclk"}, strs(t, uart, "clock-names"))

	clk := node(t, tree, "/apb-pclk")
	ph := u32(t, clk, "phandle")
	assert.NotEqual(t, u32(t, gic, "phandle"), ph)
	assert.Equal(t, cells(ph, ph), prop(t, uart, "clocks"))

	rtc := node(t, tree, "/pl031@9010000")
	assert.Equal(t, []string{"arm,pl031", "arm,primecell"}, strs(t, rtc, "compatible"))
	reg, err = rtc.Reg()
	require.NoError(t, err)
	assert.Equal(t, []fdt.Range{{Addr: 0x09010000, Size: 0x1000}}, reg)
	assert.Equal(t, cells(0, 2, 4), prop(t, rtc, "interrupts"), "SPI 2 (INTID 34), level high")
	assert.Equal(t, cells(ph), prop(t, rtc, "clocks"))
	assert.Equal(t, []string{"fixed-clock"}, strs(t, clk, "compatible"))
	assert.Equal(t, uint32(0), u32(t, clk, "#clock-cells"))
	assert.Equal(t, uint32(24000000), u32(t, clk, "clock-frequency"))
	assert.Equal(t, []string{"clk24mhz"}, strs(t, clk, "clock-output-names"))

	chosen := node(t, tree, "/chosen")
	assert.Equal(t, []string{"console=ttyAMA0 earlycon rdinit=/init"}, strs(t, chosen, "bootargs"))
	assert.Equal(t, []string{"/pl011@9000000"}, strs(t, chosen, "stdout-path"))
	assert.Equal(t, u64s(0x4f000000), prop(t, chosen, "linux,initrd-start"))
	assert.Equal(t, u64s(0x4f123456), prop(t, chosen, "linux,initrd-end"))

	assert.Equal(t, []string{"/pl011@9000000"}, strs(t, node(t, tree, "/aliases"), "serial0"))
	assert.Equal(t, uart, tree.Find("/pl011@9000000"), "the alias and stdout-path name the UART")
}

// Each virtio-mmio transport has a node of its own page, in order, with
// its level-sensitive SPI.
func TestVirtioNodes(t *testing.T) {
	c := linuxGuest(1)
	c.Virtio = 2
	tree := parse(t, c)
	for i, name := range []string{"/virtio_mmio@a000000", "/virtio_mmio@a001000"} {
		n := node(t, tree, name)
		assert.Equal(t, []string{"virtio,mmio"}, strs(t, n, "compatible"))
		reg, err := n.Reg()
		require.NoError(t, err)
		assert.Equal(t, []fdt.Range{{Addr: 0x0a000000 + 0x1000*uint64(i), Size: 0x200}}, reg)
		assert.Equal(t, cells(0, 16+uint32(i), 4), prop(t, n, "interrupts"), "SPI 16+i, level high")
		assert.Empty(t, prop(t, n, "dma-coherent"))
	}
	assert.Nil(t, tree.Find("/virtio_mmio@a002000"))
	c.Virtio = MaxVirtio + 1
	_, err := Build(c)
	assert.ErrorContains(t, err, "guestdt: 17 virtio devices: at most 16")
}

func TestMinimalTree(t *testing.T) {
	tree := parse(t, Config{RAMBase: 0x80000000, RAMSize: 2 << 20, CPUs: 1, Model: "test box"})
	assert.Equal(t, []string{"test box"}, strs(t, tree.Root, "model"))
	mem := node(t, tree, "/memory@80000000")
	reg, err := mem.Reg()
	require.NoError(t, err)
	assert.Equal(t, []fdt.Range{{Addr: 0x80000000, Size: 2 << 20}}, reg)
	require.Len(t, node(t, tree, "/cpus").Children, 1)
	chosen := node(t, tree, "/chosen")
	for _, p := range []string{"bootargs", "linux,initrd-start", "linux,initrd-end"} {
		_, ok := chosen.Prop(p)
		assert.False(t, ok, "no %s without one", p)
	}
	assert.Equal(t, []string{"/pl011@9000000"}, strs(t, chosen, "stdout-path"))
}

func TestRedistributorsPerCPU(t *testing.T) {
	for cpus := 1; cpus <= MaxCPUs; cpus++ {
		tree := parse(t, linuxGuest(cpus))
		reg, err := node(t, tree, "/intc@8000000").Reg()
		require.NoError(t, err)
		assert.Equal(t, fdt.Range{Addr: RedistBase, Size: uint64(cpus) * RedistStride}, reg[1])
		assert.Len(t, node(t, tree, "/cpus").Children, cpus)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no vCPUs", func(c *Config) { c.CPUs = 0 }, "guestdt: 0 vCPUs: want 1 to 16"},
		{"too many vCPUs", func(c *Config) { c.CPUs = 17 }, "guestdt: 17 vCPUs: want 1 to 16"},
		{"no RAM", func(c *Config) { c.RAMSize = 0 }, "guestdt: the guest has no RAM"},
		{"RAM base unaligned", func(c *Config) { c.RAMBase += 0x1000 }, "guestdt: guest RAM [0x40001000-0x50001000) is not 2 MiB aligned"},
		{"RAM size unaligned", func(c *Config) { c.RAMSize += 0x1000 }, "is not 2 MiB aligned"},
		{"RAM wraps", func(c *Config) { c.RAMBase = 0xffffffffffe00000 }, "wraps around the address space"},
		{"RAM over the GIC", func(c *Config) { c.RAMBase = 0 }, "guestdt: guest RAM [0x0-0x10000000) overlaps the device at [0x8000000-0x8010000)"},
		{"RAM over the virtio transports", func(c *Config) { c.RAMBase, c.RAMSize = 0x0a000000, 2<<20; c.InitrdStart, c.InitrdEnd = 0, 0 }, "overlaps the device at [0xa000000-0xa010000)"},
		{"RAM over the UART", func(c *Config) { c.RAMBase, c.RAMSize = 0x09000000, 2<<20; c.InitrdStart, c.InitrdEnd = 0, 0 }, "overlaps the device at [0x9000000-0x9001000)"},
		{"RAM over the redistributors", func(c *Config) {
			c.RAMBase, c.RAMSize, c.CPUs = 0x08200000, 2<<20, 16
			c.InitrdStart, c.InitrdEnd = 0, 0
		}, "overlaps the device at [0x80a0000-0x82a0000)"},
		{"initrd empty", func(c *Config) { c.InitrdEnd = c.InitrdStart }, "guestdt: initrd [0x4f000000-0x4f000000) is empty or reversed"},
		{"initrd reversed", func(c *Config) { c.InitrdStart, c.InitrdEnd = 0x4f000000, 0x4e000000 }, "is empty or reversed"},
		{"initrd end only", func(c *Config) { c.InitrdStart = 0 }, "lies outside guest RAM"},
		{"initrd below RAM", func(c *Config) { c.InitrdStart = ramBase - 0x1000 }, "guestdt: initrd [0x3ffff000-0x4f123456) lies outside guest RAM [0x40000000-0x50000000)"},
		{"initrd past RAM", func(c *Config) { c.InitrdEnd = 0x50000001 }, "lies outside guest RAM"},
		{"NUL in bootargs", func(c *Config) { c.Bootargs = "a\x00b" }, "guestdt: the kernel command line contains a NUL byte"},
		{"long bootargs", func(c *Config) { c.Bootargs = strings.Repeat("x", 2048) }, "guestdt: the kernel command line is 2048 bytes, at most 2047 fit"},
		{"NUL in model", func(c *Config) { c.Model = "a\x00" }, "the model name contains a NUL byte"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := linuxGuest(2)
			tc.edit(&c)
			blob, err := Build(c)
			require.ErrorContains(t, err, tc.want)
			assert.True(t, strings.HasPrefix(err.Error(), "guestdt: "), err.Error())
			assert.Nil(t, blob)
		})
	}

	c := linuxGuest(MaxCPUs)
	c.Bootargs = strings.Repeat("x", MaxBootargs)
	c.InitrdStart, c.InitrdEnd = ramBase, ramBase+256<<20
	require.NoError(t, c.Validate(), "limits are inclusive")
}

// The constants are what the hypervisor implements.
func TestConstantsMatchTheHypervisor(t *testing.T) {
	assert.Equal(t, 27, FirstPPI+PPIVirtTimer, "board/bulkheadvm: VirtualTimer")
	assert.Equal(t, 30, FirstPPI+PPIPhysTimer)
	assert.EqualValues(t, 0x08000000, DistBase)
	assert.EqualValues(t, 0x080a0000, RedistBase)
	assert.EqualValues(t, 0x20000, RedistStride)
}

// dtc, the reference compiler, decompiles the blob without a warning.
func TestDTC(t *testing.T) {
	dtc, err := exec.LookPath("dtc")
	if err != nil {
		t.Skip("dtc not installed")
	}
	for _, c := range []Config{linuxGuest(1), linuxGuest(MaxCPUs), {RAMBase: ramBase, RAMSize: 2 << 20, CPUs: 3}} {
		blob, err := Build(c)
		require.NoError(t, err)
		cmd := exec.Command(dtc, "-I", "dtb", "-O", "dts", "-o", "-", "-")
		cmd.Stdin = bytes.NewReader(blob)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err = cmd.Run()
		require.NoError(t, err, "dtc failed:\n%s\n%s", stderr.String(), stdout.String())
		require.Empty(t, stderr.String(), "dtc warned; its output:\n%s", stdout.String())
		assert.Contains(t, stdout.String(), `method = "hvc";`)
		assert.Contains(t, stdout.String(), "interrupt-controller;")
	}
}

// What Bulkhead leaves out is absent from the tree, never half there: no
// PMU node (the ID registers say no PMU), no ITS and no MSI controller
// (GICD_TYPER says no LPIs), whatever the guest's size.
func TestAbsentDevices(t *testing.T) {
	for _, cpus := range []int{1, 4, 16} {
		blob, err := Build(linuxGuest(cpus))
		require.NoError(t, err)
		for _, s := range []string{"arm,armv8-pmuv3", "arm,cortex-a", "pmu", "arm,gic-v3-its", "msi-controller", "msi-parent", "mbi"} {
			assert.False(t, bytes.Contains(blob, []byte(s)), "%d vCPUs: %q in the tree", cpus, s)
		}
	}
}
