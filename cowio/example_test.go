package cowio_test

import (
	"fmt"
	"sync"

	"github.com/cowdb/cowdb/cowio"
	"github.com/cowdb/cowdb/extents"
	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/vfs"
)

// bumpSpace is the smallest Space: it hands out blocks from 2 on and never
// reuses them. The store's Space draws on its extents.Allocator instead.
type bumpSpace struct {
	mu   sync.Mutex
	next format.Block
}

func (s *bumpSpace) AllocStaging(n uint64, _ format.Block) ([]extents.Extent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := extents.Extent{Start: s.next, Len: n}
	s.next += format.Block(n)
	return []extents.Extent{e}, nil
}

func (s *bumpSpace) ReleaseStaging([]extents.Extent) {}

// Example writes a value into new blocks of a data file opened for direct
// I/O and reads part of it back, verified against the block checksums.
func Example() {
	f, err := vfs.NewMem().OpenFile("data", vfs.Create|vfs.Direct)
	if err != nil {
		panic(err)
	}
	defer f.Close()
	w, err := cowio.NewWriter(f, 4096, &bumpSpace{next: 2}, nil)
	if err != nil {
		panic(err)
	}
	value := []byte("hello, copy-on-write world")
	m, err := w.WriteNew(value, format.NoBlock)
	if err != nil {
		panic(err)
	}
	// The store would now flush the data file, log the remap and commit
	// m.Extents().
	fmt.Println("extents:", m.Extents(), "checksums:", len(m.Entries[0].Sums))
	p := make([]byte, 14)
	n, err := w.ReadAt(m, int64(len(value)), p, 7)
	fmt.Printf("%q %v\n", p[:n], err)
	// Output:
	// extents: [[2,+1)] checksums: 1
	// "copy-on-write " <nil>
}

// ExampleInode overwrites the middle block of a three-block blob: WriteAt
// puts the new data in a new block and returns the Remap; the store logs
// it and Commit applies it, returning the old block, which loses its
// reference.
func ExampleInode() {
	f, err := vfs.NewMem().OpenFile("data", vfs.Create|vfs.Direct)
	if err != nil {
		panic(err)
	}
	defer f.Close()
	w, err := cowio.NewWriter(f, 4096, &bumpSpace{next: 2}, nil)
	if err != nil {
		panic(err)
	}
	blob := make([]byte, 3*4096)
	m, err := w.WriteNew(blob, format.NoBlock)
	if err != nil {
		panic(err)
	}
	ino, err := cowio.NewInode(w, 42, m, &cowio.InodeOptions{CowExtSize: 1})
	if err != nil {
		panic(err)
	}
	p := vfs.AlignedBuf(4096)
	copy(p, "new middle")
	r, err := ino.WriteAt(p, 4096)
	if err != nil {
		panic(err)
	}
	old, err := ino.Commit(r, func(r *cowio.Remap) (format.LSN, error) {
		// The store appends a log record of r (data durable first) here
		// and returns its LSN.
		return 1, nil
	})
	fmt.Println("new:", cowio.Mapping{Entries: r.New}.Extents(), "old:", old, "err:", err)
	fmt.Println("mapping:", ino.Mapping().Extents())
	got := make([]byte, 10)
	_, err = ino.ReadAt(int64(len(blob)), got, 4096)
	fmt.Printf("%q %v\n", got, err)
	// Output:
	// new: [[5,+1)] old: [[3,+1)] err: <nil>
	// mapping: [[2,+1) [5,+1) [4,+1)]
	// "new middle" <nil>
}
