package gt06

// crcTable is CRC-16/X.25 by byte.
var crcTable = func() (t [256]uint16) {
	for i := range t {
		c := uint16(i)
		for range 8 {
			if c&1 != 0 {
				c = c>>1 ^ 0x8408
			} else {
				c >>= 1
			}
		}
		t[i] = c
	}
	return t
}()

// CRC16 is the CRC-ITU of the GT06 protocol, CRC-16/X.25: polynomial
// 0x1021 reflected, initial value 0xFFFF, final XOR 0xFFFF.
func CRC16(b []byte) uint16 {
	c := uint16(0xFFFF)
	for _, x := range b {
		c = c>>8 ^ crcTable[byte(c)^x]
	}
	return ^c
}
