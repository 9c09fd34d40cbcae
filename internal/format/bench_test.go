package format_test

import (
	"testing"

	"github.com/cowdb/cowdb/internal/format"
)

// The benchmarks below measure the decoders open runs once per superblock
// copy and once per AG bitmap copy. BenchmarkChecksumBaseline hashes the
// same number of bytes, so each decoder can be read as a ratio to the cost
// of the checksum it cannot avoid.

func benchBitmapCopy(b *testing.B) []byte {
	bm := format.NewAGBitmap(1, 0, 1, 32768) // a 128 MiB AG of 4 KiB blocks
	for i := uint32(0); i < 32768; i += 3 {
		bm.SetAllocated(i, true)
	}
	return bm.Encode(4096)
}

func BenchmarkChecksumBaseline4K(b *testing.B) {
	buf := benchBitmapCopy(b)[:format.AGBitmapHeaderSize+4096]
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		format.Checksum(buf)
	}
}

func BenchmarkDecodeAGBitmap32768(b *testing.B) {
	buf := benchBitmapCopy(b)
	b.SetBytes(int64(format.AGBitmapHeaderSize + 4096))
	for b.Loop() {
		if _, err := format.DecodeAGBitmap(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPickSuperblock(b *testing.B) {
	var disk [2][]byte
	for e := range format.Epoch(2) {
		sb := sampleSuperblock()
		sb.Epoch = e
		disk[e] = sb.Encode(4096)
	}
	for b.Loop() {
		if _, _, err := format.PickSuperblock(disk); err != nil {
			b.Fatal(err)
		}
	}
}
