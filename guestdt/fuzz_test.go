package guestdt

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bulkhead-hv/bulkhead/board/fdt"
)

// FuzzBuild: whatever a run request asks for (RAM, vCPUs, command line,
// initrd placement) and whatever model name a caller gives, Build either
// refuses it, as Validate does, or makes a tree that board/fdt parses
// back with those values in it.
func FuzzBuild(f *testing.F) {
	c := linuxGuest(2)
	f.Add(c.RAMBase, c.RAMSize, c.CPUs, c.Bootargs, c.Model, c.InitrdStart, c.InitrdEnd)
	f.Add(uint64(ramBase), uint64(2<<20), 1, "", "", uint64(0), uint64(0))
	f.Add(uint64(ramBase), uint64(1<<30), MaxCPUs, "console=ttyAMA0 root=/dev/vda \"quoted\" -- init args", "acme,vm", uint64(ramBase+0x1000), uint64(ramBase+0x2000))
	f.Fuzz(func(t *testing.T, ramBase, ramSize uint64, cpus int, bootargs, model string, initrdStart, initrdEnd uint64) {
		c := Config{RAMBase: ramBase, RAMSize: ramSize, CPUs: cpus, Bootargs: bootargs, Model: model,
			InitrdStart: initrdStart, InitrdEnd: initrdEnd}
		blob, err := Build(c)
		if verr := c.Validate(); verr != nil || err != nil {
			require.Equal(t, verr, err, "Build refuses what Validate refuses, with its words")
			require.Nil(t, blob)
			return
		}
		tree, err := fdt.Parse(blob)
		require.NoError(t, err)

		want := model
		if want == "" {
			want = DefaultModel
		}
		got, err := tree.Root.String("model")
		require.NoError(t, err)
		require.Equal(t, want, got)

		chosen := tree.Find("/chosen")
		require.NotNil(t, chosen)
		if v, ok := chosen.Prop("bootargs"); bootargs == "" {
			require.False(t, ok, "an empty command line is left out")
		} else {
			require.Equal(t, bootargs+"\x00", string(v))
		}
		_, hasInitrd := chosen.Prop("linux,initrd-start")
		require.Equal(t, initrdEnd != 0, hasInitrd)
		if hasInitrd {
			start, _ := chosen.Prop("linux,initrd-start")
			end, _ := chosen.Prop("linux,initrd-end")
			require.Equal(t, u64s(initrdStart), start)
			require.Equal(t, u64s(initrdEnd), end)
		}

		mem := tree.Find(fmt.Sprintf("/memory@%x", ramBase))
		require.NotNil(t, mem)
		reg, err := mem.Reg()
		require.NoError(t, err)
		require.Equal(t, []fdt.Range{{Addr: ramBase, Size: ramSize}}, reg)

		cpusNode := tree.Find("/cpus")
		require.NotNil(t, cpusNode)
		require.Len(t, cpusNode.Children, cpus)
		for i, n := range cpusNode.Children {
			r, err := n.Reg()
			require.NoError(t, err)
			require.Equal(t, []fdt.Range{{Addr: uint64(i)}}, r, "cpu@%x's MPIDR", i)
		}
		intc := tree.Find(fmt.Sprintf("/intc@%x", DistBase))
		require.NotNil(t, intc)
		r, err := intc.Reg()
		require.NoError(t, err)
		require.Equal(t, []fdt.Range{{Addr: DistBase, Size: DistSize}, {Addr: RedistBase, Size: RedistStride * uint64(cpus)}}, r)
	})
}
