//go:build !control

package bulkheadvm

// A guest's memory: what the hypervisor donates at minimum, at QEMU virt's
// RAM address. Its pool is its RAM.
const (
	RAMBase  = 0x40000000
	RAMSize  = 16 << 20
	TextBase = RAMBase + 0x10000
	PoolBase = RAMBase
	PoolEnd  = RAMBase + RAMSize
)
