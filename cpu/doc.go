// Package cpu is Bulkhead's Armv8-A CPU layer: system register access,
// feature discovery from the ID registers, exception syndrome decoding and
// the EL2 exception vectors.
//
// The decoding logic is pure Go and runs on the host under go test; only the
// files ending in _arm64.s/_arm64.go touch the hardware.
package cpu
