//go:build tamago

package qemuvirt

import (
	"sync/atomic"
	"unsafe"
	_ "unsafe"
)

// PL011 registers (Arm PrimeCell UART (PL011) TRM, 3.2 "Summary of registers").
const (
	UARTDR    = 0x000
	UARTFR    = 0x018
	UARTCR    = 0x030
	FR_TXFF   = 1 << 5 // transmit FIFO full
	CR_UARTEN = 1 << 0
	CR_TXE    = 1 << 8
	CR_RXE    = 1 << 9
)

var (
	uartBase uint64
	// Output before the device tree names the console waits here.
	early  [4096]byte
	earlyN int
)

func mmio32(addr uint64) *uint32 { return (*uint32)(unsafe.Pointer(uintptr(addr))) }

//go:nosplit
func putc(c byte) {
	if uartBase == 0 {
		if earlyN < len(early) {
			early[earlyN] = c
			earlyN++
		}
		return
	}
	for atomic.LoadUint32(mmio32(uartBase+UARTFR))&FR_TXFF != 0 {
	}
	atomic.StoreUint32(mmio32(uartBase+UARTDR), uint32(c))
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

func startConsole(base uint64) {
	cr := mmio32(base + UARTCR)
	atomic.StoreUint32(cr, atomic.LoadUint32(cr)|CR_UARTEN|CR_TXE|CR_RXE)
	uartBase = base
	for i := 0; i < earlyN; i++ {
		putc(early[i])
	}
	earlyN = 0
}
