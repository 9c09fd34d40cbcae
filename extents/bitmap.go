package extents

import "math/bits"

// Bitmaps in memory are []uint64 words, bit i of the AG in word i/64 at bit
// i%64. That is the on-disk LSB-first byte order read as little-endian
// words, so converting is a word copy.

func bitmapWords(nbits uint32) int { return int((uint64(nbits) + 63) / 64) }

// wordMask returns the mask of bits [lo, hi) of one word, 0 <= lo < hi <= 64.
func wordMask(lo, hi uint32) uint64 {
	m := ^uint64(0) << lo
	if hi < 64 {
		m &= (1 << hi) - 1
	}
	return m
}

// forWords calls f(word index, mask) for the words covering bits [off, off+n).
func forWords(off, n uint32, f func(w int, m uint64) bool) bool {
	end := off + n
	for w := off / 64; uint64(w)*64 < uint64(end); w++ {
		lo, hi := uint32(0), uint32(64)
		if w == off/64 {
			lo = off % 64
		}
		if (w+1)*64 > end {
			hi = end - w*64
		}
		if !f(int(w), wordMask(lo, hi)) {
			return false
		}
	}
	return true
}

func setRange(bm []uint64, off, n uint32) {
	forWords(off, n, func(w int, m uint64) bool { bm[w] |= m; return true })
}

func clearRange(bm []uint64, off, n uint32) {
	forWords(off, n, func(w int, m uint64) bool { bm[w] &^= m; return true })
}

func allSet(bm []uint64, off, n uint32) bool {
	return forWords(off, n, func(w int, m uint64) bool { return bm[w]&m == m })
}

func countSet(bm []uint64, off, n uint32) uint32 {
	var c int
	forWords(off, n, func(w int, m uint64) bool { c += bits.OnesCount64(bm[w] & m); return true })
	return uint32(c)
}

// freeRuns calls emit for every maximal run of clear bits in bm, reading a
// word at a time: all-ones and all-zero words cost one comparison, mixed
// words one TrailingZeros per run boundary. Bits past the AG (padding in
// the last word) must be set.
func freeRuns(bm []uint64, emit func(off, n uint32)) {
	inRun := false
	var start uint32
	for wi, w := range bm {
		base := uint32(wi) * 64
		switch w {
		case ^uint64(0):
			if inRun {
				emit(start, base-start)
				inRun = false
			}
			continue
		case 0:
			if !inRun {
				start, inRun = base, true
			}
			continue
		}
		for b := uint32(0); b < 64; {
			if inRun {
				rest := w >> b // set bits end the run
				if rest == 0 {
					break
				}
				t := uint32(bits.TrailingZeros64(rest))
				emit(start, base+b+t-start)
				inRun = false
				b += t
			} else {
				rest := ^w >> b // clear bits start a run
				if rest == 0 {
					break
				}
				t := uint32(bits.TrailingZeros64(rest))
				start, inRun = base+b+t, true
				b += t
			}
		}
	}
	if inRun {
		emit(start, uint32(len(bm))*64-start)
	}
}
