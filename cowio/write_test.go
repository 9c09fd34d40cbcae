package cowio_test

import (
	"errors"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/cowdb/cowdb/cowio"
	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/vfs"
)

// TestWriteNewRoundTrip writes values of awkward sizes (empty, one byte,
// around a block, several I/O sizes) on MemFS and on real files with
// O_DIRECT, from aligned buffers (written as they are) and unaligned ones
// (copied), with contiguous and deliberately fragmented space, and checks
// that each Mapping covers the value with the right checksums and reads
// back byte for byte.
func TestWriteNewRoundTrip(t *testing.T) {
	sizes := []int{0, 1, bs - 1, bs, bs + 1, 3*bs + 17, 64 << 10, 1 << 20, 1<<20 + 1, 5<<20 + 123}
	for _, kind := range []fsKind{onMem, onOS} {
		for _, maxRun := range []uint64{0, 3} {
			t.Run(string(kind)+"/maxRun="+strconv.Itoa(int(maxRun)), func(t *testing.T) {
				f := openData(t, kind)
				space := newFakeSpace(8192, maxRun)
				w := newWriter(t, f, space, &cowio.Options{IOSize: 256 << 10})
				rng := rand.New(rand.NewPCG(1, uint64(maxRun)))
				for i, size := range sizes {
					p := placed(randBytes(rng, size), i%2 == 0)
					m, err := w.WriteNew(p, 2)
					if err != nil {
						t.Fatalf("WriteNew(%d bytes): %v", size, err)
					}
					checkMapping(t, m, p)
					if maxRun != 0 && m.Blocks() > maxRun && len(m.Entries) < 2 {
						t.Fatalf("fragmented space gave %d entries for %d blocks", len(m.Entries), m.Blocks())
					}
					space.commit(t, m)
					readAll(t, w, m, p)
				}
				if n := space.count(stStaging); n != 0 {
					t.Fatalf("%d blocks left staging", n)
				}
				space.check(t)
			})
		}
	}
}

// TestWriteNewEmpty checks that an empty value allocates nothing.
func TestWriteNewEmpty(t *testing.T) {
	space := newFakeSpace(64, 0)
	w := newWriter(t, openData(t, onMem), space, nil)
	m, err := w.WriteNew(nil, 0)
	if err != nil || len(m.Entries) != 0 {
		t.Fatalf("WriteNew(nil) = %v, %v", m, err)
	}
	if space.count(stFree) != 62 {
		t.Fatal("an empty write allocated blocks")
	}
}

// TestWriteNewNoSpace checks that a Space that cannot allocate makes
// WriteNew fail with ErrNoSpace, having changed nothing, and that the
// Space's own error stays visible.
func TestWriteNewNoSpace(t *testing.T) {
	space := newFakeSpace(16, 0)
	f := openData(t, onMem)
	w := newWriter(t, f, space, nil)
	_, err := w.WriteNew(make([]byte, 15*bs), 0)
	if !errors.Is(err, cowio.ErrNoSpace) {
		t.Fatalf("WriteNew past the space = %v, want ErrNoSpace", err)
	}
	if space.count(stFree) != 14 {
		t.Fatal("a failed allocation left blocks allocated")
	}
	if fi, _ := f.Stat(); fi.Size != 0 {
		t.Fatalf("a failed allocation wrote %d bytes", fi.Size)
	}
	other := errors.New("store closed")
	space.failNext = other
	if _, err := w.WriteNew([]byte("x"), 0); !errors.Is(err, other) {
		t.Fatalf("WriteNew hid the Space's error: %v", err)
	}
}

// TestNewWriterOptions checks that every bad block size and option is
// refused with ErrInvalidOptions and that good ones are accepted.
func TestNewWriterOptions(t *testing.T) {
	f := openData(t, onMem)
	space := newFakeSpace(16, 0)
	bad := []struct {
		bs   int
		opts cowio.Options
	}{
		{0, cowio.Options{}}, {512, cowio.Options{}}, {3 * 4096, cowio.Options{}}, {1 << 20, cowio.Options{}},
		{bs, cowio.Options{IOSize: bs + 1}}, {bs, cowio.Options{IOSize: -bs}},
		{bs, cowio.Options{IOSize: cowio.IOSizeMax + bs}}, {bs, cowio.Options{InFlight: -1}},
		{bs, cowio.Options{InFlight: cowio.InFlightMax + 1}},
	}
	for _, c := range bad {
		if _, err := cowio.NewWriter(f, c.bs, space, &c.opts); !errors.Is(err, cowio.ErrInvalidOptions) {
			t.Errorf("NewWriter(block size %d, %+v) = %v, want ErrInvalidOptions", c.bs, c.opts, err)
		}
	}
	if _, err := cowio.NewWriter(nil, bs, space, nil); !errors.Is(err, cowio.ErrInvalidOptions) {
		t.Errorf("NewWriter(nil file) = %v", err)
	}
	for _, size := range []int{cowio.BlockSizeMin, 16 << 10, cowio.BlockSizeMax} {
		w, err := cowio.NewWriter(f, size, space, &cowio.Options{IOSize: size, InFlight: cowio.InFlightMax})
		if err != nil || w.BlockSize() != size {
			t.Errorf("NewWriter(block size %d) = %v", size, err)
		}
	}
}

// TestWriteNewBlockSizes checks round trips at block sizes above 4 KiB,
// where a block is several direct I/O units.
func TestWriteNewBlockSizes(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for _, size := range []int{8 << 10, 64 << 10} {
		space := newFakeSpace(256, 2)
		w, err := cowio.NewWriter(openData(t, onMem), size, space, &cowio.Options{IOSize: 2 * size})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{1, size - 1, size, 5*size + 3} {
			p := randBytes(rng, n)
			m, err := w.WriteNew(p, format.NoBlock)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]byte, n)
			if k, err := w.ReadAt(m, int64(n), got, 0); k != n || err != nil || string(got) != string(p) {
				t.Fatalf("block size %d, %d bytes: ReadAt = %d, %v (equal %v)", size, n, k, err, string(got) == string(p))
			}
		}
	}
}

// TestWriteNewBuffered checks that a file opened without direct I/O works
// the same (the fallback of DirectIOAuto).
func TestWriteNewBuffered(t *testing.T) {
	fs := vfs.NewMem()
	f, err := fs.OpenFile("data", vfs.Create)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	space := newFakeSpace(64, 0)
	w := newWriter(t, f, space, nil)
	p := randBytes(rand.New(rand.NewPCG(3, 3)), 5*bs+9)
	m, err := w.WriteNew(p, 0)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, w, m, p)
	// An unaligned destination is read straight into on a buffered file.
	got := make([]byte, 2*bs+1)
	if n, err := w.ReadAt(m, int64(len(p)), got[1:], bs); n != 2*bs || err != nil || string(got[1:]) != string(p[bs:3*bs]) {
		t.Fatalf("unaligned ReadAt = %d, %v", n, err)
	}
}

// placed returns a copy of p at an address aligned for direct I/O, or at
// one that is not.
func placed(p []byte, aligned bool) []byte {
	if aligned {
		q := vfs.AlignedBuf(len(p))
		copy(q, p)
		return q
	}
	q := vfs.AlignedBuf(len(p) + 1)[1:]
	copy(q, p)
	return q
}
