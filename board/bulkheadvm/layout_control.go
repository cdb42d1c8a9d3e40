//go:build control

package bulkheadvm

// The control partition's memory. It sees every page it owns at IPA = PA:
// on QEMU virt with 1 GiB, all RAM above the hypervisor's 64 MiB. Its Go
// runtime lives in 128 MiB of that, up to the boot loader's images at
// 0x50000000 (Go's crypto alone has 32 MiB of bss, the FIPS entropy
// source's scratch buffer); the rest, its pool, holds those images and
// the memory it gives to guests.
const (
	RAMBase  = 0x48000000
	RAMSize  = 128 << 20
	TextBase = RAMBase + 0x10000
	PoolBase = 0x44000000
	PoolEnd  = 0x80000000
)
