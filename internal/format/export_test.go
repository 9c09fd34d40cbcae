package format

import "encoding/binary"

// ResignSuperblock recomputes the checksum of an encoded superblock in
// place, so a test can plant a bad field behind a good checksum.
func ResignSuperblock(b []byte) {
	binary.LittleEndian.PutUint64(b[sbOffChecksum:], Checksum(b[:sbOffChecksum]))
}

// ResignAGBitmap recomputes the checksum of an encoded AG bitmap copy in
// place; it trusts the nbits field.
func ResignAGBitmap(b []byte) {
	n := AGBitmapBytes(binary.LittleEndian.Uint32(b[32:]))
	binary.LittleEndian.PutUint64(b[agbOffChecksum:], agBitmapSum(b[:agbOffChecksum], b[AGBitmapHeaderSize:AGBitmapHeaderSize+n]))
}
