package btree

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/cowdb/cowdb/internal/format"
)

// memStore is the BlockStore of the tests: blocks and counts in maps, with
// every misuse (a count below zero, a read of a freed block, a value
// reference on a freed extent) reported as an error, which the tests fail
// on.
type memStore struct {
	mu     sync.Mutex // ReadNode runs concurrently with the writer
	blocks map[format.Block][]byte
	counts map[format.Block]uint64 // allocated, not yet freed
	next   format.Block

	extents map[uint64]int64 // extent id -> count; 0 = freed
	nextExt uint64

	reads, writes, allocs int
}

func newMemStore() *memStore {
	return &memStore{
		blocks:  map[format.Block][]byte{},
		counts:  map[format.Block]uint64{},
		next:    2, // 0 and 1 are the superblocks
		extents: map[uint64]int64{},
		nextExt: 1,
	}
}

func (s *memStore) ReadNode(b format.Block, buf []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	data, ok := s.blocks[b]
	if _, live := s.counts[b]; !ok || !live {
		return fmt.Errorf("memstore: read of block %d, which is not allocated", b)
	}
	copy(buf, data)
	return nil
}

func (s *memStore) AllocNode() (format.Block, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.allocs++
	b := s.next
	s.next++
	s.counts[b] = 1
	return b, nil
}

func (s *memStore) WriteNode(b format.Block, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	if _, ok := s.counts[b]; !ok {
		return fmt.Errorf("memstore: write of unallocated block %d", b)
	}
	if _, ok := s.blocks[b]; ok {
		return fmt.Errorf("memstore: block %d written twice", b)
	}
	s.blocks[b] = data
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
	c, ok := s.counts[b]
	if !ok || c == 0 {
		return fmt.Errorf("memstore: increment of dead block %d", b)
	}
	s.counts[b] = c + 1
	return nil
}

func (s *memStore) DecNode(b format.Block) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.counts[b]
	if !ok || c == 0 {
		return 0, fmt.Errorf("memstore: decrement of dead block %d", b)
	}
	s.counts[b] = c - 1
	return c - 1, nil
}

func (s *memStore) FreeNode(b format.Block) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.counts[b]; !ok || c != 0 {
		return fmt.Errorf("memstore: free of block %d with count %d", b, c)
	}
	delete(s.counts, b)
	delete(s.blocks, b)
	return nil
}

// Values naming an extent are 'E' + 8-byte extent id (+ anything).
func extentOf(v []byte) (uint64, bool) {
	if len(v) < 9 || v[0] != 'E' {
		return 0, false
	}
	return binary.BigEndian.Uint64(v[1:]), true
}

func extentValue(id uint64, pad int) []byte {
	v := append([]byte{'E'}, binary.BigEndian.AppendUint64(nil, id)...)
	return append(v, make([]byte, pad)...)
}

func (s *memStore) AdjustValue(_ TreeKind, _, v []byte, delta int) error {
	id, ok := extentOf(v)
	if !ok {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.extents[id]
	if c <= 0 {
		return fmt.Errorf("memstore: adjust %+d of freed extent %d", delta, id)
	}
	s.extents[id] = c + int64(delta)
	return nil
}

// newExtent allocates an extent with count 1, held by the caller.
func (s *memStore) newExtent() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.nextExt
	s.nextExt++
	s.extents[id] = 1
	return id
}

// incExtent adds the caller's reference to a live extent (a clone).
func (s *memStore) incExtent(id uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.extents[id]++
}
