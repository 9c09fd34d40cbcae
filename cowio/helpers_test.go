package cowio_test

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"

	"github.com/cowdb/cowdb/cowio"
	"github.com/cowdb/cowdb/extents"
	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/vfs"
)

const bs = 4096 // block size of every test Writer

// fakeSpace is a deliberately simple Space: a bitmap of free blocks from
// block 2 on (blocks 0 and 1 stand for the superblocks), handing out the
// first free blocks at or after the goal. With maxRun > 0 no extent is
// longer than maxRun blocks and the next one starts one block further, so
// a value is forced into many extents with gaps between them. It tracks
// the state of every block so a test can check that nothing leaks.
type fakeSpace struct {
	mu       sync.Mutex
	state    []blockState // indexed by block
	maxRun   uint64       // 0: unlimited
	failNext error        // returned once by the next AllocStaging
	errs     []string     // contract violations seen
	lastExts []extents.Extent
}

type blockState uint8

const (
	stFree blockState = iota
	stHeader
	stStaging
	stCommitted
)

func newFakeSpace(blocks uint64, maxRun uint64) *fakeSpace {
	s := &fakeSpace{state: make([]blockState, blocks), maxRun: maxRun}
	s.state[0], s.state[1] = stHeader, stHeader
	return s
}

func (s *fakeSpace) AllocStaging(n uint64, goal format.Block) ([]extents.Extent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.failNext; err != nil {
		s.failNext = nil
		return nil, err
	}
	if uint64(s.countLocked(stFree)) < n {
		return nil, fmt.Errorf("fake space: %d blocks wanted: %w", n, cowio.ErrNoSpace)
	}
	var out []extents.Extent
	b := uint64(goal)
	for left := n; left > 0; {
		if b >= uint64(len(s.state)) {
			b = 0
		}
		if s.state[b] != stFree {
			b++
			continue
		}
		e := extents.Extent{Start: format.Block(b)}
		for b < uint64(len(s.state)) && s.state[b] == stFree && e.Len < left && (s.maxRun == 0 || e.Len < s.maxRun) {
			s.state[b] = stStaging
			e.Len++
			b++
		}
		out = append(out, e)
		left -= e.Len
		if s.maxRun != 0 {
			b++ // leave a gap, so the next extent is not contiguous
		}
	}
	s.lastExts = out
	return out, nil
}

func (s *fakeSpace) ReleaseStaging(exts []extents.Extent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range exts {
		for b := e.Start; b < e.Start+format.Block(e.Len); b++ {
			if s.state[b] != stStaging {
				s.errs = append(s.errs, fmt.Sprintf("release of block %d in state %d", b, s.state[b]))
				continue
			}
			s.state[b] = stFree
		}
	}
}

// commit plays the store's part after a successful WriteNew.
func (s *fakeSpace) commit(t tester, m cowio.Mapping) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range m.Entries {
		for b := e.Start; b < e.Start+format.Block(e.Len); b++ {
			if s.state[b] != stStaging {
				t.Errorf("committing block %d in state %d", b, s.state[b])
			}
			s.state[b] = stCommitted
		}
	}
}

func (s *fakeSpace) countLocked(st blockState) int {
	c := 0
	for _, x := range s.state {
		if x == st {
			c++
		}
	}
	return c
}

func (s *fakeSpace) count(st blockState) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.countLocked(st)
}

// snapshot returns a copy of the block states.
func (s *fakeSpace) snapshot() []blockState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]blockState(nil), s.state...)
}

// check fails t if the Space saw a contract violation.
func (s *fakeSpace) check(t tester) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.errs {
		t.Errorf("%s", e)
	}
}

// tester is what the helpers need of a *testing.T or a *rapid.T.
type tester interface {
	Cleanup(func())
	Errorf(format string, args ...any)
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
}

// fsKind names a file system a test runs on.
type fsKind string

const (
	onMem fsKind = "mem"
	onOS  fsKind = "os"
)

// openData opens a data file on kind, for direct I/O.
func openData(t tester, kind fsKind) vfs.File {
	var fs vfs.FS
	name := "data"
	switch kind {
	case onMem:
		fs = vfs.NewMem()
	case onOS:
		fs = vfs.OS
		tt, ok := t.(testing.TB)
		if !ok {
			t.Fatal("real files need a *testing.T")
		}
		name = filepath.Join(tt.TempDir(), "data")
	}
	f, fellBack, err := vfs.OpenDirect(fs, name, vfs.Create, vfs.DirectIOAuto)
	if err != nil {
		t.Fatal(err)
	}
	if fellBack {
		t.Logf("%s: direct I/O refused, running buffered", kind)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func newWriter(t tester, f vfs.File, space cowio.Space, opts *cowio.Options) *cowio.Writer {
	w, err := cowio.NewWriter(f, bs, space, opts)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// randBytes returns n pseudo-random bytes from rng.
func randBytes(rng *rand.Rand, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(rng.Uint32())
	}
	return p
}

// valueReader adapts one value to io.ReaderAt.
type valueReader struct {
	w    *cowio.Writer
	m    cowio.Mapping
	size int64
}

func (r valueReader) ReadAt(p []byte, off int64) (int, error) { return r.w.ReadAt(r.m, r.size, p, off) }

// checkMapping checks that m lays out p from file block 0 in whole blocks
// and that its checksums are those of p's blocks, zero-padded.
func checkMapping(t tester, m cowio.Mapping, p []byte) {
	want := (uint64(len(p)) + bs - 1) / bs
	if got := m.Blocks(); got != want {
		t.Fatalf("mapping has %d blocks, want %d", got, want)
	}
	if err := m.Validate(bs); err != nil {
		t.Fatal(err)
	}
	var fb cowio.FileBlock
	for _, e := range m.Entries {
		if e.FileBlock != fb {
			t.Fatalf("entry at file block %d, want %d", e.FileBlock, fb)
		}
		for j, sum := range e.Sums {
			block := make([]byte, bs)
			copy(block, p[min(len(p), (int(fb)+j)*bs):])
			if sum != format.Checksum(block) {
				t.Fatalf("checksum of file block %d is wrong", int(fb)+j)
			}
		}
		fb = e.FileEnd()
	}
}

// readAll reads the whole value with ReadAt, into a buffer one byte too
// long (so io.EOF is due), and fails t unless it reads back p.
func readAll(t testing.TB, w *cowio.Writer, m cowio.Mapping, p []byte) {
	t.Helper()
	got := make([]byte, len(p)+1)
	n, err := w.ReadAt(m, int64(len(p)), got, 0)
	if n != len(p) || err != io.EOF {
		t.Fatalf("ReadAt of a %d-byte value = %d, %v; want %d, io.EOF", len(p), n, err, len(p))
	}
	if !bytes.Equal(got[:n], p) {
		t.Fatalf("ReadAt returned different bytes for a %d-byte value", len(p))
	}
}
