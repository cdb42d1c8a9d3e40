//go:build tamago

package main

import (
	"fmt"
	"strconv"
	"strings"

	vm "github.com/bulkhead-hv/bulkhead/board/bulkheadvm"
	"github.com/bulkhead-hv/bulkhead/pci"
	"github.com/bulkhead-hv/bulkhead/virtio"
)

// pciFuncs are the root bus's functions when the hypervisor gave the
// control partition a PCIe host bridge behind its SMMU (boot argument
// pci=ECAM:SIZE:MEM:SIZE): the machine's devices are then those, and the
// virtio-mmio transports are not the control partition's.
var (
	pciFuncs []*pci.Function
	usePCI   bool
)

// setupPCI finds the root bus's functions and places their BARs in the
// window the hypervisor passed through.
func setupPCI(arg string) error {
	var v [4]uint64
	f := strings.Split(arg, ":")
	if len(f) != 4 {
		return fmt.Errorf("pci=%q: want ECAM:SIZE:MEM:SIZE", arg)
	}
	for i := range v {
		n, err := strconv.ParseUint(f[i], 0, 64)
		if err != nil {
			return fmt.Errorf("pci=%q: %v", arg, err)
		}
		v[i] = n
	}
	usePCI = true
	w := &pci.Window{Base: v[2], Size: v[3]}
	for _, fn := range pci.Scan(vm.MMIO{}, v[0]) {
		if fn.Bridge {
			fmt.Printf("control: PCI %v: a bridge; what is behind it is not used\n", fn)
			continue
		}
		if err := fn.AssignBARs(w); err != nil {
			fmt.Printf("control: PCI %v: %v\n", fn, err)
			continue
		}
		pciFuncs = append(pciFuncs, fn)
	}
	fmt.Printf("control: PCIe root bus at %#x: %d function(s); BARs in [%#x, %#x)\n", v[0], len(pciFuncs), v[2], v[2]+v[3])
	return nil
}

// hostDev is one of the machine's virtio devices: a PCI function or a
// virtio-mmio transport.
type hostDev struct {
	fn   *pci.Function
	base uint64
}

func (h hostDev) String() string {
	if h.fn != nil {
		return "PCI " + h.fn.String()
	}
	return fmt.Sprintf("%#x", h.base)
}

// hostDevices lists the machine's virtio devices of type id.
func hostDevices(id uint32) []hostDev {
	var out []hostDev
	if usePCI {
		for _, f := range virtio.FindPCI(pciFuncs, id) {
			out = append(out, hostDev{fn: f})
		}
		return out
	}
	for _, b := range virtio.FindAll(vm.MMIO{}, transports(), id) {
		out = append(out, hostDev{base: b})
	}
	return out
}

func (h hostDev) init(want uint64) (*virtio.Device, error) {
	if h.fn != nil {
		return virtio.InitPCI(h.fn, vm.MMIO{}, &dma, want)
	}
	return virtio.Init(vm.MMIO{}, &dma, h.base, want)
}

func (h hostDev) openBlk() (*virtio.Blk, error) {
	if h.fn != nil {
		return virtio.OpenBlkPCI(h.fn, vm.MMIO{}, &dma)
	}
	return virtio.OpenBlk(vm.MMIO{}, &dma, h.base)
}

func (h hostDev) openNet() (*virtio.Net, error) {
	if h.fn != nil {
		return virtio.OpenNetPCI(h.fn, vm.MMIO{}, &dma)
	}
	return virtio.OpenNet(vm.MMIO{}, &dma, h.base)
}
