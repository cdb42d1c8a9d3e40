package cpu

// Hex formats v as 0x followed by 16 hex digits, without fmt: for reports
// made where fmt cannot run (before the heap, or in a fault handler).
func Hex(v uint64) string {
	const digits = "0123456789abcdef"
	var b [18]byte
	b[0], b[1] = '0', 'x'
	for i := 0; i < 16; i++ {
		b[17-i] = digits[v&0xf]
		v >>= 4
	}
	return string(b[:])
}
