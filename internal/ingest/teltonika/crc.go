package teltonika

// crcTable is CRC-16/IBM by byte.
var crcTable = func() (t [256]uint16) {
	for i := range t {
		c := uint16(i)
		for range 8 {
			if c&1 != 0 {
				c = c>>1 ^ 0xA001
			} else {
				c >>= 1
			}
		}
		t[i] = c
	}
	return t
}()

// CRC16 is CRC-16/IBM (also called CRC-16/ARC): polynomial 0x8005
// reflected, initial value 0, no final XOR, as Teltonika packets carry it.
func CRC16(b []byte) uint16 {
	var c uint16
	for _, x := range b {
		c = c>>8 ^ crcTable[byte(c)^x]
	}
	return c
}
