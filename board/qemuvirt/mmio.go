//go:build tamago

package qemuvirt

import (
	"sync/atomic"
	"unsafe"
)

// MMIO reads device registers mapped by the hypervisor's stage 1 map.
type MMIO struct{}

func (MMIO) Read32(addr uint64) uint32 {
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(uintptr(addr))))
}

func (MMIO) Read64(addr uint64) uint64 {
	return atomic.LoadUint64((*uint64)(unsafe.Pointer(uintptr(addr))))
}

func (MMIO) Write32(addr uint64, v uint32) {
	atomic.StoreUint32((*uint32)(unsafe.Pointer(uintptr(addr))), v)
}

func (MMIO) Write64(addr uint64, v uint64) {
	atomic.StoreUint64((*uint64)(unsafe.Pointer(uintptr(addr))), v)
}
