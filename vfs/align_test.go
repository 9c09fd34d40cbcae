package vfs_test

import (
	"testing"
	"unsafe"

	"github.com/cowdb/cowdb/vfs"
)

// TestAlignedBuf checks that AlignedBuf returns zeroed buffers of the asked
// length that start on an Alignment boundary and whose capacity is rounded
// up to whole blocks, for sizes around the block boundaries; and that
// IsAligned judges length and address.
func TestAlignedBuf(t *testing.T) {
	for _, n := range []int{0, 1, 511, 4095, 4096, 4097, 3 * 4096, 1 << 20} {
		for range 8 { // several allocations, since any one may happen to be aligned
			b := vfs.AlignedBuf(n)
			if len(b) != n {
				t.Fatalf("AlignedBuf(%d): len %d", n, len(b))
			}
			if want := (n + vfs.Alignment - 1) / vfs.Alignment * vfs.Alignment; cap(b) != want {
				t.Fatalf("AlignedBuf(%d): cap %d, want %d", n, cap(b), want)
			}
			if full := b[:cap(b)]; len(full) > 0 && uintptr(unsafe.Pointer(&full[0]))%vfs.Alignment != 0 {
				t.Fatalf("AlignedBuf(%d) starts at %p", n, &full[0])
			}
			for i, c := range b {
				if c != 0 {
					t.Fatalf("AlignedBuf(%d)[%d] = %d", n, i, c)
				}
			}
			if got, want := vfs.IsAligned(b), n%vfs.Alignment == 0; got != want {
				t.Fatalf("IsAligned(AlignedBuf(%d)) = %v", n, got)
			}
		}
	}
	b := vfs.AlignedBuf(2 * vfs.Alignment)
	if vfs.IsAligned(b[1 : 1+vfs.Alignment]) {
		t.Fatal("IsAligned accepted a misaligned address")
	}
}
