package extents

// u64set is an ordered set of uint64 keys kept as a list of sorted chunks of
// at most chunkMax keys: a two-level B-tree. Finding a key is a binary
// search over the chunks' last keys and then inside one chunk; inserting or
// deleting moves at most chunkMax keys and the chunk headers. An AG of 2^15
// blocks holds at most 2^14 free extents, so both levels stay small, and a
// key costs 8 bytes plus slack (chunks are kept at least a quarter full).
//
// The AG free-extent indexes pack an extent into one key: (offset<<32 |
// length) by start, (length<<32 | offset) by length, so both order
// correctly as plain integers.
type u64set struct {
	chunks [][]uint64 // each sorted and non-empty; chunks ordered
	n      int
}

const (
	chunkMax   = 256          // keys per chunk at most
	chunkFill  = chunkMax / 4 // a chunk under this merges with its successor
	chunkBuild = chunkMax * 3 / 4
)

// cursor names a key of a u64set by chunk and index; valid until the next
// change to the set.
type cursor struct{ ci, i int }

func (s *u64set) len() int { return s.n }

// chunkFor returns the index of the first chunk whose last key is >= x, or
// the last chunk if there is none. s must not be empty.
func (s *u64set) chunkFor(x uint64) int {
	lo, hi := 0, len(s.chunks)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		c := s.chunks[m]
		if c[len(c)-1] < x {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == len(s.chunks) {
		lo--
	}
	return lo
}

// lowerBound returns the index of the first key >= x in c (len(c) if none).
func lowerBound(c []uint64, x uint64) int {
	lo, hi := 0, len(c)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if c[m] < x {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// insert adds x; it reports false (and changes nothing) if x is present.
func (s *u64set) insert(x uint64) bool {
	if len(s.chunks) == 0 {
		c := make([]uint64, 1, 8)
		c[0] = x
		s.chunks = append(s.chunks, c)
		s.n = 1
		return true
	}
	ci := s.chunkFor(x)
	c := s.chunks[ci]
	i := lowerBound(c, x)
	if i < len(c) && c[i] == x {
		return false
	}
	if len(c) == chunkMax {
		// Split into two halves and insert into the one that covers x.
		h := chunkMax / 2
		right := make([]uint64, chunkMax-h, chunkMax)
		copy(right, c[h:])
		c = c[:h]
		s.chunks = append(s.chunks, nil)
		copy(s.chunks[ci+2:], s.chunks[ci+1:])
		s.chunks[ci], s.chunks[ci+1] = c, right
		if i > h {
			ci, c, i = ci+1, right, i-h
		}
	}
	if len(c) == cap(c) {
		nc := make([]uint64, len(c), min(2*cap(c), chunkMax))
		copy(nc, c)
		c = nc
	}
	c = c[:len(c)+1]
	copy(c[i+1:], c[i:])
	c[i] = x
	s.chunks[ci] = c
	s.n++
	return true
}

// delete removes x; it reports false if x is absent.
func (s *u64set) delete(x uint64) bool {
	if len(s.chunks) == 0 {
		return false
	}
	ci := s.chunkFor(x)
	c := s.chunks[ci]
	i := lowerBound(c, x)
	if i == len(c) || c[i] != x {
		return false
	}
	copy(c[i:], c[i+1:])
	c = c[:len(c)-1]
	s.chunks[ci] = c
	s.n--
	switch {
	case len(c) == 0:
		copy(s.chunks[ci:], s.chunks[ci+1:])
		s.chunks[len(s.chunks)-1] = nil
		s.chunks = s.chunks[:len(s.chunks)-1]
	case len(c) < chunkFill && ci+1 < len(s.chunks) && len(c)+len(s.chunks[ci+1]) <= chunkBuild:
		s.chunks[ci] = append(c, s.chunks[ci+1]...)
		copy(s.chunks[ci+1:], s.chunks[ci+2:])
		s.chunks[len(s.chunks)-1] = nil
		s.chunks = s.chunks[:len(s.chunks)-1]
	}
	return true
}

// seekGE returns a cursor at the smallest key >= x.
func (s *u64set) seekGE(x uint64) (cursor, bool) {
	if len(s.chunks) == 0 {
		return cursor{}, false
	}
	ci := s.chunkFor(x)
	i := lowerBound(s.chunks[ci], x)
	if i == len(s.chunks[ci]) {
		return cursor{}, false // x is above every key
	}
	return cursor{ci, i}, true
}

// seekLE returns a cursor at the largest key <= x.
func (s *u64set) seekLE(x uint64) (cursor, bool) {
	if len(s.chunks) == 0 {
		return cursor{}, false
	}
	ci := s.chunkFor(x)
	c := s.chunks[ci]
	i := lowerBound(c, x)
	if i < len(c) && c[i] == x {
		return cursor{ci, i}, true
	}
	return s.prev(cursor{ci, i})
}

func (s *u64set) at(c cursor) uint64 { return s.chunks[c.ci][c.i] }

func (s *u64set) next(c cursor) (cursor, bool) {
	c.i++
	if c.i < len(s.chunks[c.ci]) {
		return c, true
	}
	if c.ci+1 < len(s.chunks) {
		return cursor{c.ci + 1, 0}, true
	}
	return cursor{}, false
}

func (s *u64set) prev(c cursor) (cursor, bool) {
	if c.i > 0 {
		return cursor{c.ci, c.i - 1}, true
	}
	if c.ci > 0 {
		return cursor{c.ci - 1, len(s.chunks[c.ci-1]) - 1}, true
	}
	return cursor{}, false
}

// max returns the largest key.
func (s *u64set) max() (uint64, bool) {
	if len(s.chunks) == 0 {
		return 0, false
	}
	c := s.chunks[len(s.chunks)-1]
	return c[len(c)-1], true
}

// appendMax adds x, which must be above every key: the bulk-build path used
// when loading, which fills chunks three quarters full.
func (s *u64set) appendMax(x uint64) {
	if k := len(s.chunks); k > 0 {
		c := s.chunks[k-1]
		if c[len(c)-1] >= x {
			panic("cowdb: assertion failed: u64set.appendMax out of order")
		}
		if len(c) < chunkBuild {
			s.chunks[k-1] = append(c, x)
			s.n++
			return
		}
	}
	c := make([]uint64, 1, 4) // append grows it, at most to chunkMax
	c[0] = x
	s.chunks = append(s.chunks, c)
	s.n++
}

// all calls f on every key in order until f returns false.
func (s *u64set) all(f func(uint64) bool) {
	for _, c := range s.chunks {
		for _, x := range c {
			if !f(x) {
				return
			}
		}
	}
}
