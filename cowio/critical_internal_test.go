package cowio

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cowdb/cowdb/extents"
	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/vfs"
)

// spySpace is a bump allocator that checks, on every AllocStaging, that
// the calling goroutine holds the inode's mapping lock (TryLock must fail,
// and reading the sequence counter must not race under -race), and records
// the sequence counter it saw, keyed by the first block it hands out.
type spySpace struct {
	ino    atomic.Pointer[Inode]
	next   atomic.Uint64
	calls  atomic.Int64
	mu     sync.Mutex
	seqAt  map[format.Block]uint64
	faults []string
}

func (s *spySpace) AllocStaging(n uint64, _ format.Block) ([]extents.Extent, error) {
	s.calls.Add(1)
	ino := s.ino.Load()
	if ino.mu.TryLock() {
		ino.mu.Unlock()
		s.fault("AllocStaging called without the mapping lock")
	}
	seq := ino.mu.seq // a data race unless this goroutine holds the lock
	start := format.Block(s.next.Add(n) - n)
	s.mu.Lock()
	s.seqAt[start] = seq
	s.mu.Unlock()
	return []extents.Extent{{Start: start, Len: n}}, nil
}

func (s *spySpace) ReleaseStaging([]extents.Extent) {}

func (s *spySpace) fault(msg string) {
	s.mu.Lock()
	s.faults = append(s.faults, msg)
	s.mu.Unlock()
}

// TestWriteAtOneCriticalSection checks the seed's lesson on the write path:
// writers on one inode overwrite overlapping ranges and commit them, so
// Applies on the inode run between other writers' WriteAt calls; every
// WriteAt must make exactly one AllocStaging call, holding the mapping
// lock, and the sequence counter the allocation saw must be the one its
// lookup recorded in the Remap (no Apply slipped in between).
func TestWriteAtOneCriticalSection(t *testing.T) {
	f, err := vfs.NewMem().OpenFile("data", vfs.Create|vfs.Direct)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	space := &spySpace{seqAt: map[format.Block]uint64{}}
	space.next.Store(2)
	w, err := NewWriter(f, 4096, space, nil)
	if err != nil {
		t.Fatal(err)
	}
	ino, err := NewInode(w, 1, Mapping{}, &InodeOptions{CowExtSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	space.ino.Store(ino)
	const writers, writes = 4, 200
	var lsn atomic.Uint64
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			p := vfs.AlignedBuf(3 * 4096)
			for i := range writes {
				r, err := ino.WriteAt(p, int64((g+i)%8)*4096)
				if err != nil {
					t.Error(err)
					return
				}
				space.mu.Lock()
				seq, ok := space.seqAt[r.New[0].Start]
				space.mu.Unlock()
				if !ok || seq != r.Seq {
					t.Errorf("allocation saw sequence %d (found %v), lookup %d", seq, ok, r.Seq)
				}
				if _, err := ino.Commit(r, func(*Remap) (format.LSN, error) { return format.LSN(lsn.Add(1)), nil }); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if c := space.calls.Load(); c != writers*writes {
		t.Fatalf("%d AllocStaging calls for %d writes", c, writers*writes)
	}
	for _, f := range space.faults {
		t.Error(f)
	}
	if ino.Stats().Seq != writers*writes {
		t.Fatalf("sequence %d after %d commits", ino.Stats().Seq, writers*writes)
	}
}
