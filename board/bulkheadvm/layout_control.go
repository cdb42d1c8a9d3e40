//go:build control

package bulkheadvm

// The control partition's memory. It sees every page it owns at IPA = PA:
// on QEMU virt with 1 GiB, all RAM above the hypervisor's 64 MiB. Its Go
// runtime lives in 64 MiB of that; the rest, its pool, holds the images
// the boot loader left and the memory it gives to guests.
const (
	RAMBase  = 0x48000000
	RAMSize  = 64 << 20
	TextBase = RAMBase + 0x10000
	PoolBase = 0x44000000
	PoolEnd  = 0x80000000
)
