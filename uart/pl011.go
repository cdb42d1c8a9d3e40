package uart

// PL011 registers (Arm PrimeCell UART (PL011) TRM, 3.2 "Summary of
// registers"). The SBSA generic UART has the same DR and FR.
const (
	UARTDR    = 0x000
	UARTFR    = 0x018
	UARTCR    = 0x030
	UARTIMSC  = 0x038
	FR_RXFE   = 1 << 4 // receive FIFO empty
	FR_TXFF   = 1 << 5 // transmit FIFO full
	CR_UARTEN = 1 << 0
	CR_TXE    = 1 << 8
	CR_RXE    = 1 << 9
)

// PL011 is an Arm PL011, or an SBSA generic UART, with 32-bit registers.
type PL011 struct {
	Bus  Bus
	Base uint64
}

// Init enables the UART, transmitter and receiver, with its interrupts
// masked: the console is polled. (The SBSA generic UART has no CR: the
// write is ignored there, and it is enabled already.)
func (u *PL011) Init() {
	u.Bus.Write32(u.Base+UARTIMSC, 0)
	u.Bus.Write32(u.Base+UARTCR, u.Bus.Read32(u.Base+UARTCR)|CR_UARTEN|CR_TXE|CR_RXE)
}

// Putc is nosplit, like what it calls on a hypervisor's bus: the
// runtime's print, panics included, ends here.
//
//go:nosplit
func (u *PL011) Putc(c byte) {
	for i := 0; i < spinLimit && u.Bus.Read32(u.Base+UARTFR)&FR_TXFF != 0; i++ {
	}
	u.Bus.Write32(u.Base+UARTDR, uint32(c))
}

func (u *PL011) Getc() (byte, bool) {
	if u.Bus.Read32(u.Base+UARTFR)&FR_RXFE != 0 {
		return 0, false
	}
	return byte(u.Bus.Read32(u.Base + UARTDR)), true
}
