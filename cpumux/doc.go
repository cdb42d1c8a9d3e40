// Package cpumux runs several of the Go runtime's Ms on one CPU, so that
// every CPU of the machine can run Go (docs/architecture.md, "CPUs").
//
// TamaGo's runtime gives each M a CPU of its own (goos.Task) and has an M
// that waits spin where it is. The EL2 kernel needs more: each CPU's
// scheduler loop is a goroutine locked to an M that stays on its CPU, and
// when the collector stops the world, or a loop blocks, the runtime starts
// further Ms that must run somewhere. Here every CPU has a ring of threads
// (Ms, and an idle thread of its own), switched cooperatively: an M gives
// its CPU away only where the runtime waits (semasleep, osyield, usleep,
// through the hooks cmd/mkoverlay adds to the runtime) or where the kernel
// asks (Yield, Wait). A thread that is switched to checks again what it
// waits for; the idle thread runs once every other thread on its CPU has
// given way, and puts the CPU to sleep (WFI) until an interrupt, a wake-up
// from another CPU or the earliest deadline, which the EL1 physical timer
// (unused by guests, whose accesses to it are RAZ/WI) brings.
//
// New Ms start on the boot CPU; a loop's M moves to its CPU with MoveTo.
// The ring logic is pure Go (ring.go) and runs under go test.
package cpumux
