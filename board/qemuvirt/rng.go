//go:build tamago

package qemuvirt

import (
	_ "unsafe"

	"github.com/bulkhead-hv/bulkhead/cpu"
)

// hasRNDR is FEAT_RNG: ID_AA64ISAR0_EL1.RNDR.
var hasRNDR bool

//go:linkname initRNG runtime/goos.InitRNG
func initRNG() {
	hasRNDR = (cpu.ReadIDAA64ISAR0()>>60)&0xf != 0
}

// HardwareEntropy reports whether randomness comes from FEAT_RNG.
func HardwareEntropy() bool { return hasRNDR }

// getRandomData feeds the runtime and crypto/rand. Without FEAT_RNG it
// falls back to counter jitter, which is not a real entropy source: the
// banner says so loudly.
//
//go:linkname getRandomData runtime/goos.GetRandomData
func getRandomData(b []byte) {
	for i := 0; i < len(b); i += 8 {
		v := random64()
		for j := 0; j < 8 && i+j < len(b); j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
}

func random64() uint64 {
	if hasRNDR {
		// RNDR may fail transiently (Arm ARM D19.2, RNDR: NZCV=0b0100).
		for try := 0; try < 16; try++ {
			if v, ok := cpu.RNDR(); ok {
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
		c := cpu.ReadCNTPCT()
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
