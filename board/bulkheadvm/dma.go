//go:build tamago

package bulkheadvm

import (
	"sync/atomic"
	"unsafe"
)

// MMIO reaches device registers, mapped as device memory by Map.
type MMIO struct{}

func (MMIO) Read32(addr uint64) uint32 {
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(uintptr(addr))))
}

func (MMIO) Write32(addr uint64, v uint32) {
	atomic.StoreUint32((*uint32)(unsafe.Pointer(uintptr(addr))), v)
}

// Narrow accesses, for registers that a device decodes by width (virtio
// over PCI's common configuration, VIRTIO 1.2 4.1.3.1).
func (MMIO) Read8(addr uint64) uint8       { return read8(addr) }
func (MMIO) Read16(addr uint64) uint16     { return read16(addr) }
func (MMIO) Write8(addr uint64, v uint8)   { write8(addr, v) }
func (MMIO) Write16(addr uint64, v uint16) { write16(addr, v) }

func read8(addr uint64) uint8
func read16(addr uint64) uint16
func write8(addr uint64, v uint8)
func write16(addr uint64, v uint16)

// DMA hands out memory a device can reach: the guest's stage 1 map is the
// identity, so a buffer's address is its IPA, which for the control
// partition is also its physical address. Buffers live as long as DMA.
type DMA struct{ keep [][]byte }

func (d *DMA) Alloc(n int) ([]byte, uint64) {
	b := make([]byte, n+64)
	off := (64 - uintptr(unsafe.Pointer(&b[0]))%64) % 64
	b = b[off : off+uintptr(n)]
	d.keep = append(d.keep, b)
	return b, uint64(uintptr(unsafe.Pointer(&b[0])))
}

func dmb()

func (*DMA) Barrier() { dmb() }
