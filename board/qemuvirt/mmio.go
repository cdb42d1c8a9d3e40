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
