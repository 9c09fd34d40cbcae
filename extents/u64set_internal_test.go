package extents

import (
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// TestU64Set checks the chunked ordered set against a sorted slice over
// random inserts, deletes and seeks, with chunk splits and merges forced by
// a narrow key range and many operations.
func TestU64Set(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var s u64set
		var ref []uint64
		keys := rapid.Uint64Range(0, uint64(rapid.IntRange(10, 3000).Draw(t, "span")))
		for range rapid.IntRange(0, 2000).Draw(t, "ops") {
			x := keys.Draw(t, "x")
			i, found := slices.BinarySearch(ref, x)
			switch rapid.IntRange(0, 3).Draw(t, "op") {
			case 0, 1:
				if s.insert(x) == found {
					t.Fatalf("insert(%d) disagrees", x)
				}
				if !found {
					ref = slices.Insert(ref, i, x)
				}
			case 2:
				if s.delete(x) != found {
					t.Fatalf("delete(%d) disagrees", x)
				}
				if found {
					ref = slices.Delete(ref, i, i+1)
				}
			case 3:
				c, ok := s.seekGE(x)
				if ok != (i < len(ref)) || ok && s.at(c) != ref[i] {
					t.Fatalf("seekGE(%d)", x)
				}
				j, _ := slices.BinarySearch(ref, x+1)
				c, ok = s.seekLE(x)
				if ok != (j > 0) || ok && s.at(c) != ref[j-1] {
					t.Fatalf("seekLE(%d)", x)
				}
			}
		}
		var got []uint64
		s.all(func(x uint64) bool { got = append(got, x); return true })
		if !slices.Equal(got, ref) || s.len() != len(ref) {
			t.Fatalf("contents differ: %d vs %d keys", len(got), len(ref))
		}
		for i, c := range s.chunks {
			if len(c) == 0 || len(c) > chunkMax {
				t.Fatalf("chunk %d has %d keys", i, len(c))
			}
		}
		// Walk backwards with prev from the max.
		if len(ref) > 0 {
			c, _ := s.seekLE(^uint64(0))
			for i := len(ref) - 1; i >= 0; i-- {
				if s.at(c) != ref[i] {
					t.Fatalf("prev walk at %d", i)
				}
				c, _ = s.prev(c)
			}
		}
	})
}

// TestFreeRuns checks the word-at-a-time run scanner against a bit-by-bit
// scan of random bitmaps with long runs.
func TestFreeRuns(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		nbits := uint32(rapid.IntRange(1, 700).Draw(t, "nbits"))
		bm := make([]uint64, bitmapWords(nbits))
		for b := uint32(0); b < nbits; {
			n := uint32(rapid.IntRange(1, 150).Draw(t, "run"))
			n = min(n, nbits-b)
			if rapid.Bool().Draw(t, "set") {
				setRange(bm, b, n)
			}
			b += n
		}
		if pad := uint32(len(bm))*64 - nbits; pad > 0 {
			setRange(bm, nbits, pad)
		}
		var want, got [][2]uint32
		var start uint32
		in := false
		for b := uint32(0); b <= nbits; b++ {
			free := b < nbits && !allSet(bm, b, 1)
			if free && !in {
				start, in = b, true
			} else if !free && in {
				want, in = append(want, [2]uint32{start, b - start}), false
			}
		}
		freeRuns(bm, func(off, n uint32) { got = append(got, [2]uint32{off, n}) })
		if !slices.Equal(got, want) {
			t.Fatalf("runs %v, want %v", got, want)
		}
	})
}

// TestU64SetLarge checks splits and merges at scale: 20000 keys inserted
// and mostly deleted in a fixed pseudo-random order, compared with a
// sorted slice, and the chunk fill bounds held throughout.
func TestU64SetLarge(t *testing.T) {
	var s u64set
	keys := make([]uint64, 20000)
	for i := range keys {
		keys[i] = uint64(i) * 7919 % 100003
	}
	for _, k := range keys {
		s.insert(k)
	}
	if len(s.chunks) < 20000/chunkMax {
		t.Fatalf("%d chunks for 20000 keys", len(s.chunks))
	}
	for _, k := range keys[:19000] {
		if !s.delete(k) {
			t.Fatalf("delete(%d)", k)
		}
	}
	ref := slices.Sorted(slices.Values(keys[19000:]))
	var got []uint64
	s.all(func(x uint64) bool { got = append(got, x); return true })
	if !slices.Equal(got, ref) {
		t.Fatal("contents differ after deletes")
	}
	for i, c := range s.chunks {
		if len(c) == 0 || len(c) > chunkMax {
			t.Fatalf("chunk %d has %d keys", i, len(c))
		}
	}
}

// TestSortByLen checks the counting sort of free runs against a plain sort,
// with runs below and above its short-run bound.
func TestSortByLen(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var runs []uint64
		off := uint32(0)
		for range rapid.IntRange(0, 300).Draw(t, "runs") {
			n := uint32(rapid.IntRange(1, 600).Draw(t, "len"))
			runs = append(runs, packLen(off, n))
			off += n + 1
		}
		want := slices.Sorted(slices.Values(runs))
		if got := sortByLen(runs); !slices.Equal(got, want) {
			t.Fatalf("sortByLen disagrees with sort")
		}
	})
}
