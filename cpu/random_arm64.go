//go:build tamago

package cpu

// HasRNDR reports FEAT_RNG (ID_AA64ISAR0_EL1.RNDR).
func HasRNDR() bool { return (ReadIDAA64ISAR0()>>60)&0xf != 0 }

// Random64 returns a random number from RNDR when hw is true and the
// hardware delivers; otherwise from counter jitter, which is not a real
// entropy source (callers must say so).
func Random64(hw bool) uint64 {
	if hw {
		// RNDR may fail transiently (Arm ARM D19.2, RNDR: NZCV=0b0100).
		for try := 0; try < 16; try++ {
			if v, ok := RNDR(); ok {
				return v
			}
		}
	}
	return jitter64()
}

var jitterState uint64

// jitter64 mixes counter readings taken around a data-dependent loop with
// the SplitMix64 finalizer.
func jitter64() uint64 {
	x := jitterState
	for k := 0; k < 4; k++ {
		c := ReadCNTPCT()
		for n := c & 63; n > 0; n-- {
			x += n
		}
		x ^= c + 0x9e3779b97f4a7c15
		x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
		x = (x ^ x>>27) * 0x94d049bb133111eb
		x ^= x >> 31
	}
	jitterState = x
	return x
}

// FillRandom fills b with Random64 output.
func FillRandom(b []byte, hw bool) {
	for i := 0; i < len(b); i += 8 {
		v := Random64(hw)
		for j := 0; j < 8 && i+j < len(b); j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
}
