//go:build tamago

package qemuvirt

import (
	"sync/atomic"
	"unsafe"
	_ "unsafe"

	"github.com/bulkhead-hv/bulkhead/uart"
)

var (
	// console is the UART the machine description names, once hwinit1
	// has found it.
	console uart.Console
	// Output before that waits here.
	early  [4096]byte
	earlyN int
)

// uartBus is the console's register access through the EL2 map. Nothing
// here grows the stack: panics print through it.
type uartBus struct{}

//go:nosplit
func (uartBus) Read8(a uint64) uint8 { return *(*uint8)(unsafe.Pointer(uintptr(a))) }

//go:nosplit
func (uartBus) Write8(a uint64, v uint8) { *(*uint8)(unsafe.Pointer(uintptr(a))) = v }

//go:nosplit
func (uartBus) Read32(a uint64) uint32 {
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(uintptr(a))))
}

//go:nosplit
func (uartBus) Write32(a uint64, v uint32) {
	atomic.StoreUint32((*uint32)(unsafe.Pointer(uintptr(a))), v)
}

//go:nosplit
func putc(c byte) {
	if console == nil {
		if earlyN < len(early) {
			early[earlyN] = c
			earlyN++
		}
		return
	}
	console.Putc(c)
}

// printk is the runtime's console: every print, panic and os.Stdout write
// ends here. The serial line wants CR LF.
//
//go:linkname printk runtime/goos.Printk
//go:nosplit
func printk(c byte) {
	if c == '\n' {
		putc('\r')
	}
	putc(c)
}

// startConsole starts the machine's UART as the console, and prints what
// waited for it.
func startConsole(m *Machine) {
	if m.UART.Size == 0 {
		return
	}
	var c uart.Console = &uart.PL011{Bus: uartBus{}, Base: m.UART.Addr}
	if m.UARTKind == UART16550 {
		if u, err := uart.New16550(uartBus{}, m.UART.Addr, m.UARTAccessSize); err == nil {
			c = u
		}
	}
	c.Init()
	console = c
	for i := 0; i < earlyN; i++ {
		putc(early[i])
	}
	earlyN = 0
}
