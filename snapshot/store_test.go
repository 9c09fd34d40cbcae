package snapshot_test

import (
	"fmt"
	"sync"

	"github.com/cowdb/cowdb/btree"
	"github.com/cowdb/cowdb/internal/format"
)

// memStore is the BlockStore of these tests: node blocks and counts in
// maps. It checks the counts it is asked to change, so a test that builds
// trees the way the store does (sharing, shadowing, checkpoints) fails if
// it misuses them; value references are not tracked (Translate never
// changes a tree).
type memStore struct {
	mu     sync.Mutex // ReadNode runs concurrently with the writer
	blocks map[format.Block][]byte
	counts map[format.Block]uint64
	next   format.Block
}

func newMemStore() *memStore {
	return &memStore{blocks: map[format.Block][]byte{}, counts: map[format.Block]uint64{}, next: format.SuperblockCopies}
}

func (s *memStore) ReadNode(b format.Block, buf []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.blocks[b]
	if !ok {
		return fmt.Errorf("memstore: read of unwritten block %d", b)
	}
	copy(buf, d)
	return nil
}

func (s *memStore) AllocNode() (format.Block, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.next
	s.next++
	s.counts[b] = 1
	return b, nil
}

func (s *memStore) WriteNode(b format.Block, d []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.counts[b]; !ok {
		return fmt.Errorf("memstore: write of unallocated block %d", b)
	}
	s.blocks[b] = d
	return nil
}

func (s *memStore) NodeCount(b format.Block) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.counts[b]
	if !ok || c == 0 {
		return 0, fmt.Errorf("memstore: count of dead block %d", b)
	}
	return c, nil
}

func (s *memStore) IncNode(b format.Block) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.counts[b] == 0 {
		return fmt.Errorf("memstore: increment of dead block %d", b)
	}
	s.counts[b]++
	return nil
}

func (s *memStore) DecNode(b format.Block) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.counts[b] == 0 {
		return 0, fmt.Errorf("memstore: decrement of dead block %d", b)
	}
	s.counts[b]--
	return s.counts[b], nil
}

func (s *memStore) FreeNode(b format.Block) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.counts[b]; !ok || c != 0 {
		return fmt.Errorf("memstore: free of block %d with count %d", b, c)
	}
	delete(s.counts, b)
	// The block stays readable: an older version may still follow it.
	return nil
}

func (s *memStore) AdjustValue(btree.TreeKind, []byte, []byte, int) error { return nil }

// fataler is what the helpers need of a *testing.T or *rapid.T.
type fataler interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// namespaceKind is the tree kind the tests give namespace trees.
const namespaceKind btree.TreeKind = 1

func newForest(t fataler) *btree.Forest {
	t.Helper()
	f, err := btree.New(btree.Options{Store: newMemStore()})
	if err != nil {
		t.Fatal(err)
	}
	return f
}
