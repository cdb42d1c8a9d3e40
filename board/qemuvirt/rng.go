//go:build tamago

package qemuvirt

import (
	_ "unsafe"

	"github.com/bulkhead-hv/bulkhead/cpu"
)

// hasRNDR is FEAT_RNG: ID_AA64ISAR0_EL1.RNDR.
var hasRNDR bool

//go:linkname initRNG runtime/goos.InitRNG
func initRNG() { hasRNDR = cpu.HasRNDR() }

// HardwareEntropy reports whether randomness comes from FEAT_RNG.
func HardwareEntropy() bool { return hasRNDR }

// getRandomData feeds the runtime and crypto/rand. Without FEAT_RNG it
// falls back to counter jitter: the banner says so loudly.
//
//go:linkname getRandomData runtime/goos.GetRandomData
func getRandomData(b []byte) { cpu.FillRandom(b, hasRNDR) }
