package cowdb

import (
	"math/rand/v2"
	"testing"

	"github.com/cowdb/cowdb/cowio"
	"github.com/cowdb/cowdb/internal/format"
)

// TestPageSetCounters drives a pageSet with random pages, covers and
// prunes, and checks after every step that its running counters (dirty
// blocks, bytes held) equal what its histories hold, and that an inode
// without history is forgotten.
func TestPageSetCounters(t *testing.T) {
	const bs = 4096
	rng := rand.New(rand.NewPCG(1, 2))
	var s pageSet
	lsn := format.LSN(0)
	for step := range 5000 {
		lsn++
		id := format.InodeID(1 + rng.IntN(3))
		fb := cowio.FileBlock(rng.IntN(8))
		var ops []pageOp
		switch rng.IntN(4) {
		case 0, 1:
			off := rng.IntN(bs)
			ops = append(ops, pageOp{id: id, fb: fb, p: patched(nil, make([]byte, 1+rng.IntN(bs-off)), off, bs)})
		case 2:
			ops = append(ops, pageOp{id: id, fb: fb, end: fb + cowio.FileBlock(1+rng.IntN(4))})
		case 3:
			s.prune(lsn - format.LSN(rng.IntN(10)))
		}
		s.apply(ops, lsn)
		var dirty, bytes int64
		for iid, st := range s.inodes {
			if len(st.mu.blocks) == 0 && st.users == 0 {
				t.Fatalf("step %d: inode %d kept without history", step, iid)
			}
			n := 0
			for _, evs := range st.mu.blocks {
				if evs[len(evs)-1].p != nil {
					n++
				}
				for _, ev := range evs {
					bytes += ev.p.size()
				}
			}
			if n != st.mu.dirty {
				t.Fatalf("step %d: inode %d counts %d dirty blocks, holds %d", step, iid, st.mu.dirty, n)
			}
			dirty += int64(n)
		}
		if gotD, gotB := s.stats(); gotD != dirty || gotB != bytes {
			t.Fatalf("step %d: stats (%d dirty, %d bytes), histories hold (%d, %d)", step, gotD, gotB, dirty, bytes)
		}
	}
}
