//go:build tamago

package qemuvirt

import (
	"unsafe"

	"github.com/bulkhead-hv/bulkhead/mmu"
)

// Phys is physical memory as the hypervisor's identity map shows it:
// its own RAM, and the rest of RAM mapped read/write, never executable,
// so it can load, zero and inspect the pages the ledger hands around.
type Phys struct{}

func (Phys) Table(pa uint64) *[mmu.Entries]uint64 {
	return (*[mmu.Entries]uint64)(unsafe.Pointer(uintptr(pa)))
}

func (Phys) Zero(pa uint64) error {
	*(*[mmu.PageSize]byte)(unsafe.Pointer(uintptr(pa &^ (mmu.PageSize - 1)))) = [mmu.PageSize]byte{}
	return nil
}

func (Phys) Write(pa uint64, b []byte) {
	copy(unsafe.Slice((*byte)(unsafe.Pointer(uintptr(pa))), len(b)), b)
}

func (Phys) Read(pa uint64, b []byte) {
	copy(b, unsafe.Slice((*byte)(unsafe.Pointer(uintptr(pa))), len(b)))
}

// Bytes returns [pa, pa+n) of RAM for reading.
func (Phys) Bytes(pa, n uint64) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(uintptr(pa))), n)
}

// s2Pool is where the stage 2 tables of every VM live: hypervisor RAM in
// the image's bss, so the ledger counts it as the hypervisor's.
const S2PoolPages = 512

var s2PoolMem [(S2PoolPages + 1) * mmu.PageSize]byte

// S2Pool returns the page-aligned stage 2 table pool.
func S2Pool() (base uint64, pages int) {
	b := uint64(uintptr(unsafe.Pointer(&s2PoolMem[0])))
	return (b + mmu.PageSize - 1) &^ (mmu.PageSize - 1), S2PoolPages
}
