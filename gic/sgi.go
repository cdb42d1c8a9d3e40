package gic

// SGI1R is the ICC_SGI1R_EL1 value that sends SGI intid to the one CPU
// with affinity mpidr: Aff3, Aff2 and Aff1 as they are, Aff0 as the range
// selector RS (Aff0 / 16) and a target list bit (Aff0 % 16).
//
//go:nosplit
func SGI1R(intid uint32, mpidr uint64) uint64 {
	aff0 := mpidr & 0xff
	return (mpidr>>32&0xff)<<48 | (mpidr>>16&0xff)<<32 | (aff0>>4)<<44 |
		uint64(intid&0xf)<<24 | (mpidr>>8&0xff)<<16 | 1<<(aff0&0xf)
}
