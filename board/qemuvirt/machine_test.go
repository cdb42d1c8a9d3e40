package qemuvirt

import (
	"errors"
	"fmt"
	"github.com/bulkhead-hv/bulkhead/internal/qemutest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-hv/bulkhead/board/fdt"
)

// virtSpec describes a QEMU-virt-like device tree; the zero value of each
// knob leaves the corresponding part out, and virtDefaults fills in a
// complete machine.
type virtSpec struct {
	Memory     map[string][]uint64 // memory node name -> reg (address, size pairs)
	MemOrder   []string            // order of the memory nodes in the tree
	NoCPUsNode bool
	CPUs       []uint64 // MPIDRs; /cpus uses 2 address cells when one exceeds 32 bits
	NoChosen   bool
	StdoutPath string
	Bootargs   *string
	UARTs      []uint64 // PL011 base addresses, in tree order
	GICCompat  string
	GICReg     []uint64
	GICRegions *uint32 // #redistributor-regions; nil leaves it out
	NoPSCI     bool
	PSCIMethod string // "" leaves method out
}

func strp(s string) *string { return &s }

func u32p(v uint32) *uint32 { return &v }

func virtDefaults() virtSpec {
	return virtSpec{
		Memory:     map[string][]uint64{"memory@40000000": {0x40000000, 0x40000000}},
		MemOrder:   []string{"memory@40000000"},
		CPUs:       []uint64{0, 1},
		StdoutPath: "/pl011@9000000",
		Bootargs:   strp("exit=semihosting"),
		UARTs:      []uint64{0x9000000},
		GICCompat:  "arm,gic-v3",
		GICReg:     []uint64{0x8000000, 0x10000, 0x80a0000, 0xf60000},
		PSCIMethod: "smc",
	}
}

func (s virtSpec) build(t *testing.T) []byte {
	t.Helper()
	var b fdt.Builder
	b.BeginNode("")
	b.PropU32("#address-cells", 2)
	b.PropU32("#size-cells", 2)
	b.PropStrings("model", "test,virt")
	b.PropStrings("compatible", "linux,dummy-virt")

	if !s.NoPSCI {
		b.BeginNode("psci")
		b.PropStrings("compatible", "arm,psci-1.0", "arm,psci-0.2", "arm,psci")
		if s.PSCIMethod != "" {
			b.PropStrings("method", s.PSCIMethod)
		}
		b.EndNode()
	}
	for _, name := range s.MemOrder {
		b.BeginNode(name)
		b.PropU64("reg", s.Memory[name]...)
		b.PropStrings("device_type", "memory")
		b.EndNode()
	}
	// Not memory: a reg but no device_type "memory".
	b.BeginNode("flash@0")
	b.PropU64("reg", 0, 0x4000000)
	b.PropStrings("compatible", "cfi-flash")
	b.EndNode()

	b.BeginNode("pl031@9010000")
	b.PropU64("reg", 0x9010000, 0x1000)
	b.PropStrings("compatible", "arm,pl031", "arm,primecell")
	b.EndNode()
	for _, a := range s.UARTs {
		b.BeginNode(fmt.Sprintf("pl011@%x", a))
		b.PropU64("reg", a, 0x1000)
		b.PropStrings("compatible", "arm,pl011", "arm,primecell")
		b.EndNode()
	}
	if s.GICCompat != "" {
		b.BeginNode("intc@8000000")
		b.PropStrings("compatible", s.GICCompat)
		if s.GICRegions != nil {
			b.PropU32("#redistributor-regions", *s.GICRegions)
		}
		b.PropU64("reg", s.GICReg...)
		b.PropU32("interrupts", 1, 9, 4) // maintenance: PPI 9
		b.PropU32("#address-cells", 2)
		b.PropU32("#size-cells", 2)
		b.BeginNode("its@8080000")
		b.PropStrings("compatible", "arm,gic-v3-its")
		b.PropU64("reg", 0x8080000, 0x20000)
		b.EndNode()
		b.EndNode()
	}
	b.BeginNode("timer")
	b.PropStrings("compatible", "arm,armv8-timer", "arm,armv7-timer")
	b.PropU32("interrupts", 1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4)
	b.EndNode()
	if !s.NoCPUsNode {
		wide := false
		for _, m := range s.CPUs {
			wide = wide || m > 0xffffffff
		}
		b.BeginNode("cpus")
		if wide {
			b.PropU32("#address-cells", 2)
		} else {
			b.PropU32("#address-cells", 1)
		}
		b.PropU32("#size-cells", 0)
		b.BeginNode("cpu-map") // no device_type: not a CPU
		b.BeginNode("socket0")
		b.EndNode()
		b.EndNode()
		for _, m := range s.CPUs {
			b.BeginNode(fmt.Sprintf("cpu@%x", m))
			if wide {
				b.PropU64("reg", m)
			} else {
				b.PropU32("reg", uint32(m))
			}
			b.PropStrings("enable-method", "psci")
			b.PropStrings("device_type", "cpu")
			b.EndNode()
		}
		b.EndNode()
	}
	if !s.NoChosen {
		b.BeginNode("chosen")
		if s.Bootargs != nil {
			b.PropStrings("bootargs", *s.Bootargs)
		}
		if s.StdoutPath != "" {
			b.PropStrings("stdout-path", s.StdoutPath)
		}
		b.EndNode()
	}
	b.EndNode()
	blob, err := b.Bytes()
	require.NoError(t, err)
	return blob
}

func TestParseMachine(t *testing.T) {
	s := virtDefaults()
	// Memory nodes out of address order, one with two ranges, one with an
	// empty range that is dropped.
	s.Memory = map[string][]uint64{
		"memory@100000000": {0x1_0000_0000, 0x1000_0000, 0x2_0000_0000, 0},
		"memory@80000000":  {0x80000000, 0x40000000},
		"memory@40000000":  {0x40000000, 0x40000000},
		"memory@c0000000":  {0xc0000000, 0x8000000, 0x1_8000_0000, 0x100000},
	}
	s.MemOrder = []string{"memory@100000000", "memory@80000000", "memory@c0000000", "memory@40000000"}
	s.CPUs = []uint64{0x0, 0x1, 0x100, 0x1_0000_0000}
	s.StdoutPath = "/pl011@9000000:115200n8"
	s.UARTs = []uint64{0x9040000, 0x9000000} // the console is not the first PL011
	s.GICRegions = u32p(2)
	s.GICReg = []uint64{
		0x8000000, 0x10000, // GICD
		0x80a0000, 0xf60000, // GICR 0
		0x40_0000_0000, 0x400_0000, // GICR 1
		0x8010000, 0x10000, // GICC and friends follow and are not redistributors
		0x8030000, 0x10000,
	}
	s.Bootargs = strp("exit=semihosting crashtest=null-read")

	m, err := ParseMachine(s.build(t))
	require.NoError(t, err)
	assert.Equal(t, "test,virt", m.Model)
	assert.Equal(t, []fdt.Range{
		{Addr: 0x40000000, Size: 0x40000000},
		{Addr: 0x80000000, Size: 0x40000000},
		{Addr: 0xc0000000, Size: 0x8000000},
		{Addr: 0x1_0000_0000, Size: 0x1000_0000},
		{Addr: 0x1_8000_0000, Size: 0x100000},
	}, m.RAM)
	assert.Equal(t, uint64(2<<30+0x8000000+0x1000_0000+0x100000), m.RAMSize())
	assert.Equal(t, []uint64{0x0, 0x1, 0x100, 0x1_0000_0000}, m.CPUs)
	assert.Equal(t, fdt.Range{Addr: 0x9000000, Size: 0x1000}, m.UART)
	assert.Equal(t, fdt.Range{Addr: 0x8000000, Size: 0x10000}, m.GICD)
	assert.Equal(t, []fdt.Range{{Addr: 0x80a0000, Size: 0xf60000}, {Addr: 0x40_0000_0000, Size: 0x400_0000}}, m.GICR)
	assert.Equal(t, "smc", m.PSCI)
	assert.Equal(t, "exit=semihosting crashtest=null-read", m.Bootargs)
	assert.True(t, m.Contains(RAMBase, RAMBase+HypRAMSize))
}

func TestParseMachineDefaults(t *testing.T) {
	m, err := ParseMachine(virtDefaults().build(t))
	require.NoError(t, err)
	assert.Equal(t, []fdt.Range{{Addr: 0x40000000, Size: 0x40000000}}, m.RAM)
	assert.Equal(t, []uint64{0, 1}, m.CPUs)
	assert.Equal(t, fdt.Range{Addr: 0x9000000, Size: 0x1000}, m.UART)
	// Without #redistributor-regions there is one redistributor region.
	assert.Equal(t, []fdt.Range{{Addr: 0x80a0000, Size: 0xf60000}}, m.GICR)
	assert.Equal(t, "exit=semihosting", m.Bootargs)

	s := virtDefaults()
	s.PSCIMethod = "hvc"
	m, err = ParseMachine(s.build(t))
	require.NoError(t, err)
	assert.Equal(t, "hvc", m.PSCI)
}

// Without /chosen/stdout-path the console is the first PL011 in the tree.
func TestParseMachineUARTFallback(t *testing.T) {
	s := virtDefaults()
	s.StdoutPath = ""
	s.UARTs = []uint64{0x9040000, 0x9000000}
	m, err := ParseMachine(s.build(t))
	require.NoError(t, err)
	assert.Equal(t, fdt.Range{Addr: 0x9040000, Size: 0x1000}, m.UART)
	assert.Equal(t, "exit=semihosting", m.Bootargs)

	// No /chosen at all: the same console, and no boot arguments.
	s.NoChosen = true
	m, err = ParseMachine(s.build(t))
	require.NoError(t, err)
	assert.Equal(t, fdt.Range{Addr: 0x9040000, Size: 0x1000}, m.UART)
	assert.Equal(t, "", m.Bootargs)
}

func TestParseMachineErrors(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*virtSpec)
		want   []string
	}{
		{"no memory node", func(s *virtSpec) { s.Memory, s.MemOrder = nil, nil },
			[]string{"no memory node with a non-empty reg"}},
		{"only empty memory", func(s *virtSpec) {
			s.Memory = map[string][]uint64{"memory@40000000": {0x40000000, 0}}
		}, []string{"no memory node with a non-empty reg"}},
		{"bad memory reg", func(s *virtSpec) {
			s.Memory = map[string][]uint64{"memory@40000000": {0xffff_ffff_ffff_f000, 0x2000}}
		}, []string{"/memory@40000000", "wraps around"}},
		{"no /cpus", func(s *virtSpec) { s.NoCPUsNode = true }, []string{"no /cpus node"}},
		{"no cpu nodes", func(s *virtSpec) { s.CPUs = nil }, []string{"/cpus lists no cpu node"}},
		{"stdout-path names a missing node", func(s *virtSpec) { s.StdoutPath = "/serial@1234:115200n8" },
			[]string{`/chosen/stdout-path "/serial@1234" names no node`}},
		{"console not a PL011", func(s *virtSpec) { s.StdoutPath = "/pl031@9010000" },
			[]string{`console /pl031@9010000 is not an "arm,pl011" UART`}},
		{"no console at all", func(s *virtSpec) { s.StdoutPath, s.UARTs = "", nil },
			[]string{"no console", "arm,pl011"}},
		{"no gic-v3", func(s *virtSpec) { s.GICCompat = "arm,cortex-a15-gic" },
			[]string{`no "arm,gic-v3" interrupt controller`, "gic-version=3"}},
		{"no interrupt controller", func(s *virtSpec) { s.GICCompat = "" }, []string{"gic-version=3"}},
		{"too few GIC ranges", func(s *virtSpec) { s.GICRegions = u32p(2) },
			[]string{"/intc@8000000: reg has 2 ranges, want the distributor and 2 redistributor region(s)"}},
		{"GIC distributor only", func(s *virtSpec) { s.GICReg = s.GICReg[:2] },
			[]string{"reg has 1 ranges, want the distributor and 1 redistributor region(s)"}},
		{"zero redistributor regions", func(s *virtSpec) { s.GICRegions = u32p(0) },
			[]string{"reg has 2 ranges, want the distributor and 0 redistributor region(s)"}},
		{"huge redistributor region count", func(s *virtSpec) { s.GICRegions = u32p(0xffffffff) },
			[]string{"want the distributor and 4294967295 redistributor region(s)"}},
		{"no /psci", func(s *virtSpec) { s.NoPSCI = true }, []string{"no /psci node"}},
		{"psci without method", func(s *virtSpec) { s.PSCIMethod = "" }, []string{`/psci has no "method" property`}},
		{"unknown psci method", func(s *virtSpec) { s.PSCIMethod = "svc" },
			[]string{`/psci: unknown method "svc" (want smc or hvc)`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := virtDefaults()
			tc.modify(&s)
			m, err := ParseMachine(s.build(t))
			require.Error(t, err)
			assert.Nil(t, m)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}

	// The console's address options are not part of the reported path.
	s := virtDefaults()
	s.StdoutPath = "/serial@1234:115200n8"
	_, err := ParseMachine(s.build(t))
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "115200")

	// Errors from the device tree reader come through unchanged.
	_, err = ParseMachine([]byte("definitely not a flattened device tree blob!"))
	require.Error(t, err)
	assert.True(t, errors.Is(err, fdt.ErrNotFDT))
}

func TestMachineContains(t *testing.T) {
	m := &Machine{RAM: []fdt.Range{
		{Addr: 0x40000000, Size: 0x40000000},
		{Addr: 0x80000000, Size: 0x40000000}, // adjacent to the first
		{Addr: 0x1_0000_0000, Size: 0x1000_0000},
	}}
	assert.True(t, m.Contains(0x40000000, 0x80000000), "a whole range")
	assert.True(t, m.Contains(RAMBase, RAMBase+HypRAMSize))
	assert.True(t, m.Contains(0x7ffff000, 0x80000000), "ending at a range's end")
	assert.True(t, m.Contains(0x1_0000_0000, 0x1_1000_0000))
	assert.True(t, m.Contains(0x1_0800_0000, 0x1_0800_1000))
	assert.False(t, m.Contains(0x3ffff000, 0x40001000), "starting below RAM")
	assert.False(t, m.Contains(0x7ffff000, 0x80001000), "spanning two ranges, even adjacent ones")
	assert.False(t, m.Contains(0xbffff000, 0xc0001000), "running past the end")
	assert.False(t, m.Contains(0xc0000000, 0xc0001000), "in the hole")
	assert.False(t, m.Contains(0x1_0000_0000, 0x1_1000_1000))
	assert.False(t, (&Machine{}).Contains(0, 0), "no RAM")
}

func TestParseMachineQEMU(t *testing.T) {
	m, err := ParseMachine(qemutest.DumpDTB(t, "1G", 2))
	require.NoError(t, err)
	assert.Equal(t, []fdt.Range{{Addr: 0x40000000, Size: 1 << 30}}, m.RAM)
	assert.Equal(t, uint64(1<<30), m.RAMSize())
	assert.Equal(t, []uint64{0, 1}, m.CPUs)
	assert.Equal(t, fdt.Range{Addr: 0x9000000, Size: 0x1000}, m.UART)
	assert.Equal(t, fdt.Range{Addr: 0x8000000, Size: 0x10000}, m.GICD)
	require.Len(t, m.GICR, 1)
	assert.Equal(t, uint64(0x80a0000), m.GICR[0].Addr)
	assert.GreaterOrEqual(t, m.GICR[0].Size, uint64(2*0x20000), "room for two CPUs' 128 KiB redistributor frames")
	assert.Equal(t, "smc", m.PSCI)
	assert.Equal(t, "a=b", m.Bootargs)
	assert.Equal(t, map[string]string{"a": "b"}, BootArgs(m.Bootargs))
	assert.True(t, m.Contains(RAMBase, RAMBase+HypRAMSize), "the hypervisor's RAM is in the machine's")
	assert.Equal(t, []uint32{29, 30, 27, 26, 25}, []uint32{m.TimerSecPhys, m.TimerPhys, m.TimerVirt, m.TimerHyp, m.GICMaintenance})
	require.Len(t, m.Virtio, 32, "QEMU virt's virtio-mmio transports")
	assert.Contains(t, m.Virtio, fdt.Range{Addr: 0xa000000, Size: 0x200})
	assert.Contains(t, m.Virtio, fdt.Range{Addr: 0xa003e00, Size: 0x200})
	assert.Equal(t, fdt.Range{Addr: 0x9020000, Size: 0x18}, m.FwCfg)
	assert.Equal(t, []fdt.Range{{Addr: 0x40_1000_0000, Size: 256 << 20}}, m.ECAM, "QEMU virt's high ECAM")
	assert.Empty(t, m.SMMU, "no iommu=smmuv3")
	assert.Equal(t, fdt.Range{Addr: 0x1000_0000, Size: 0x2eff_0000}, m.PCIMem, "the 32-bit BAR window")
	assert.False(t, m.PCIBehindSMMU)

	m, err = ParseMachine(qemutest.DumpDTB(t, "1G", 1, "iommu=smmuv3"))
	require.NoError(t, err)
	assert.Equal(t, []fdt.Range{{Addr: 0x905_0000, Size: 0x2_0000}}, m.SMMU)
	assert.True(t, m.PCIBehindSMMU, "iommu-map sends every requester ID to the SMMU")

	m, err = ParseMachine(qemutest.DumpDTB(t, "2G", 3))
	require.NoError(t, err)
	assert.Equal(t, uint64(2<<30), m.RAMSize())
	assert.Equal(t, []fdt.Range{{Addr: 0x40000000, Size: 2 << 30}}, m.RAM)
	assert.Equal(t, []uint64{0, 1, 2}, m.CPUs)
}

func TestBootArgs(t *testing.T) {
	tests := []struct {
		in   string
		want map[string]string
	}{
		{"exit=semihosting crashtest=null-read quiet",
			map[string]string{"exit": "semihosting", "crashtest": "null-read", "quiet": ""}},
		{"", map[string]string{}},
		{" \t\n ", map[string]string{}},
		{"root=/dev/vda opts=a=b=c k=", map[string]string{"root": "/dev/vda", "opts": "a=b=c", "k": ""}},
		{"  a=1\tb=2\n c ", map[string]string{"a": "1", "b": "2", "c": ""}},
		{"a=1 a=2", map[string]string{"a": "2"}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%q", tc.in), func(t *testing.T) {
			got := BootArgs(tc.in)
			require.NotNil(t, got)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestDevicesOutsideRAM(t *testing.T) {
	m := &Machine{RAM: []fdt.Range{{Addr: 0x40000000, Size: 0x40000000}}}
	require.NoError(t, DevicesOutsideRAM(m, []fdt.Range{{Addr: 0x9000000, Size: 0x1000}, {Addr: 0x80000000, Size: 0x1000}}))
	err := DevicesOutsideRAM(m, []fdt.Range{{Addr: 0x43ffe000, Size: 0x1000}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "overlaps RAM")
	assert.Error(t, DevicesOutsideRAM(m, []fdt.Range{{Addr: 0x3ffff000, Size: 0x2000}}), "straddling the start of RAM")
}
