//go:build tamago

package qemuvirt

import (
	"math/bits"
	"unsafe"

	"github.com/bulkhead-hv/bulkhead/fwcfg"
)

// FwCfg is QEMU's fw_cfg device at Base (Machine.FwCfg), for the fwcfg
// package. Its DMA register is big-endian.
type FwCfg struct{ Base uint64 }

func (f FwCfg) ReadDMA() uint64 { return bits.ReverseBytes64(MMIO{}.Read64(f.Base + fwcfg.RegDMA)) }

func (f FwCfg) StartDMA(pa uint64) { MMIO{}.Write64(f.Base+fwcfg.RegDMA, bits.ReverseBytes64(pa)) }

// Buffer is Go memory: identity-mapped, so its address is physical, and
// never moved by the collector.
func (FwCfg) Buffer(n int) ([]byte, uint64) {
	b := make([]byte, n)
	return b, uint64(uintptr(unsafe.Pointer(&b[0])))
}
