package cowio_test

import (
	"bytes"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"pgregory.net/rapid"

	"github.com/cowdb/cowdb/cowio"
	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/vfs"
)

// holey builds a value with holes: it writes data with WriteNew on
// fragmented space, then spreads the resulting entries out along the value,
// leaving holes before, between and after them, and returns the Writer,
// the Mapping, the value's size and its expected content (zeros in holes,
// and for a size that cuts an entry, only the bytes before the size).
func holey(t testing.TB, kind fsKind, seed uint64) (*cowio.Writer, cowio.Mapping, []byte) {
	rng := rand.New(rand.NewPCG(seed, 11))
	space := newFakeSpace(4096, 1+uint64(rng.IntN(4)))
	w := newWriter(t, openData(t, kind), space, &cowio.Options{IOSize: 2 * bs})
	data := randBytes(rng, 12*bs)
	m, err := w.WriteNew(data, 0)
	if err != nil {
		t.Fatal(err)
	}
	space.commit(t, m)
	var spread cowio.Mapping
	var model []byte
	fb := cowio.FileBlock(rng.IntN(3))
	for _, e := range m.Entries {
		model = append(model, make([]byte, (int(fb)-len(model)/bs)*bs)...)
		model = append(model, data[int(e.FileBlock)*bs:int(e.FileEnd())*bs]...)
		e.FileBlock = fb
		spread.Entries = append(spread.Entries, e)
		fb = e.FileEnd() + cowio.FileBlock(rng.IntN(3))
	}
	// The size ends in a trailing hole, at the end of the data, or inside it.
	size := len(model) + rng.IntN(3*bs) - bs
	model = append(model, make([]byte, max(0, size-len(model)))...)
	return w, spread, model[:size]
}

// TestReadAtOffsets reads a value with holes at every interesting offset
// (around each block and entry boundary and the size) with many lengths and
// buffer alignments, against the model, on MemFS and real files.
func TestReadAtOffsets(t *testing.T) {
	for _, kind := range []fsKind{onMem, onOS} {
		for seed := range uint64(4) {
			w, m, model := holey(t, kind, seed)
			size := int64(len(model))
			var offs []int64
			for o := int64(0); o <= size+bs; o += bs {
				offs = append(offs, o-1, o, o+1)
			}
			offs = append(offs, size-1, size, size+1)
			lens := []int{0, 1, bs - 1, bs, bs + 1, 3*bs + 5, len(model) + 1}
			for _, off := range offs {
				for _, n := range lens {
					for _, aligned := range []bool{false, true} {
						checkReadAt(t, w, m, model, off, n, aligned)
					}
				}
			}
		}
	}
}

// checkReadAt reads n bytes at off and compares with what io.ReaderAt
// semantics over model require.
func checkReadAt(t *testing.T, w *cowio.Writer, m cowio.Mapping, model []byte, off int64, n int, aligned bool) {
	t.Helper()
	p := make([]byte, n+1)[1:] // unaligned
	if aligned {
		p = vfs.AlignedBuf(n)
	}
	for i := range p {
		p[i] = 0xAA // garbage that holes must overwrite
	}
	got, err := w.ReadAt(m, int64(len(model)), p, off)
	switch {
	case off < 0:
		if !errors.Is(err, cowio.ErrInvalidOffset) {
			t.Fatalf("ReadAt(off %d) = %v, want ErrInvalidOffset", off, err)
		}
		return
	case off >= int64(len(model)):
		if got != 0 || err != io.EOF {
			t.Fatalf("ReadAt(off %d) at end of %d-byte value = %d, %v", off, len(model), got, err)
		}
		return
	}
	want := min(n, len(model)-int(off))
	var wantErr error
	if want < n {
		wantErr = io.EOF
	}
	if got != want || err != wantErr {
		t.Fatalf("ReadAt(%d bytes at %d) of %d-byte value = %d, %v; want %d, %v", n, off, len(model), got, err, want, wantErr)
	}
	if !bytes.Equal(p[:got], model[off:off+int64(got)]) {
		t.Fatalf("ReadAt(%d bytes at %d, aligned %v) returned wrong bytes", n, off, aligned)
	}
}

// TestReadAtIOTest runs testing/iotest.TestReader over a section reader of
// a value with holes, which checks Read, ReadAt and Seek behaviour
// together.
func TestReadAtIOTest(t *testing.T) {
	for seed := range uint64(4) {
		w, m, model := holey(t, onMem, seed)
		r := io.NewSectionReader(valueReader{w, m, int64(len(model))}, 0, int64(len(model)))
		if err := iotest.TestReader(r, model); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
}

// TestReadAtHoles checks that an empty mapping reads as zeros of any size,
// so a grown or sparse value needs no blocks.
func TestReadAtHoles(t *testing.T) {
	w := newWriter(t, openData(t, onMem), newFakeSpace(16, 0), nil)
	p := bytes.Repeat([]byte{1}, 3*bs+7)
	n, err := w.ReadAt(cowio.Mapping{}, 1<<40, p, 1<<39+3)
	if n != len(p) || err != nil || !bytes.Equal(p, make([]byte, len(p))) {
		t.Fatalf("ReadAt of a hole = %d, %v", n, err)
	}
	for _, size := range []int64{-1, cowio.ReadSizeMax + 1, math.MaxInt64} {
		if _, err := w.ReadAt(cowio.Mapping{}, size, p, 0); !errors.Is(err, cowio.ErrInvalidSize) {
			t.Fatalf("ReadAt with size %d = %v, want ErrInvalidSize", size, err)
		}
	}
	n, err = w.ReadAt(cowio.Mapping{}, cowio.ReadSizeMax, p, cowio.ReadSizeMax-2)
	if n != 2 || err != io.EOF || !bytes.Equal(p[:2], []byte{0, 0}) {
		t.Fatalf("ReadAt at the largest size = %d, %v", n, err)
	}
}

// flipByte flips one byte of the data file at byte offset at, through a
// second, buffered handle on the same MemFS file.
func flipByte(t *testing.T, fs *vfs.MemFS, at int64) {
	f, err := fs.OpenFile("data", vfs.ReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x10
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}

// TestReadAtCorruptBlock flips a byte in each block of a value in turn and
// checks that every read covering it fails with ErrCorrupt naming the file
// block and the data block, counting only the correct bytes before it,
// while reads that avoid it still succeed.
func TestReadAtCorruptBlock(t *testing.T) {
	fs := vfs.NewMem()
	f, err := fs.OpenFile("data", vfs.Create|vfs.Direct)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	space := newFakeSpace(256, 2)
	w := newWriter(t, f, space, &cowio.Options{IOSize: 2 * bs})
	p := randBytes(rand.New(rand.NewPCG(5, 5)), 7*bs+100)
	m, err := w.WriteNew(p, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range m.Entries {
		for j := range e.Len {
			fb, phys := int64(e.FileBlock)+int64(j), int64(e.Start)+int64(j)
			flipByte(t, fs, phys*bs+int64(j*97%bs))
			got := make([]byte, len(p))
			n, err := w.ReadAt(m, int64(len(p)), got, 0)
			if !errors.Is(err, format.ErrCorrupt) || !errors.Is(err, format.ErrBadChecksum) {
				t.Fatalf("corrupt file block %d: ReadAt = %d, %v; want ErrCorrupt", fb, n, err)
			}
			if want := "file block " + strconv.FormatInt(fb, 10) + " at data block " + strconv.FormatInt(phys, 10); !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q does not name %q", err, want)
			}
			if n > int(fb)*bs || !bytes.Equal(got[:n], p[:n]) {
				t.Fatalf("corrupt file block %d: ReadAt counted %d bytes, or wrong ones", fb, n)
			}
			// The blocks before the damaged one still read.
			if n, err := w.ReadAt(m, int64(len(p)), got[:fb*bs], 0); n != int(fb)*bs || err != nil {
				t.Fatalf("read before corrupt block %d = %d, %v", fb, n, err)
			}
			flipByte(t, fs, phys*bs+int64(j*97%bs)) // repair
		}
	}
	readAll(t, w, m, p)
}

// TestReadAtPastEndOfFile checks that a mapping pointing past the end of
// the data file is reported as corruption, not as the end of the value.
func TestReadAtPastEndOfFile(t *testing.T) {
	w := newWriter(t, openData(t, onMem), newFakeSpace(16, 0), nil)
	m := cowio.Mapping{Entries: []cowio.Entry{{FileBlock: 0, Start: 100, Len: 2}}}
	n, err := w.ReadAt(m, 2*bs, make([]byte, 2*bs), 0)
	if n != 0 || !errors.Is(err, format.ErrCorrupt) {
		t.Fatalf("ReadAt past the file = %d, %v; want ErrCorrupt", n, err)
	}
}

// TestReadAtIOError fails each I/O of a six-piece read in turn and checks
// that ReadAt returns the error wrapped, naming the file block, with a count
// of correct bytes that stops at that block.
func TestReadAtIOError(t *testing.T) {
	efs := vfs.WithErrors(vfs.NewMem(), nil)
	f, err := efs.OpenFile("data", vfs.Create|vfs.Direct)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := newWriter(t, f, newFakeSpace(256, 0), &cowio.Options{IOSize: bs, InFlight: 1})
	p := randBytes(rand.New(rand.NewPCG(9, 9)), 6*bs)
	m, err := w.WriteNew(p, 0)
	if err != nil {
		t.Fatal(err)
	}
	for k := int64(1); k <= 6; k++ {
		efs.SetInjector(&vfs.Fault{Kind: vfs.OpRead, Index: k})
		got := make([]byte, len(p))
		n, err := w.ReadAt(m, int64(len(p)), got, 0)
		// Pieces run concurrently, so the k-th I/O may be any piece; the
		// count must stop exactly at the piece that failed.
		if !errors.Is(err, vfs.ErrIO) || n%bs != 0 || n >= len(p) || !bytes.Equal(got[:n], p[:n]) ||
			!strings.Contains(err.Error(), "file block "+strconv.Itoa(n/bs)+" ") {
			t.Fatalf("read fault on I/O %d: ReadAt = %d, %v", k, n, err)
		}
	}
}

// TestBadMappingNeverPanics feeds ReadAt arbitrary mappings (unordered,
// overlapping, empty, huge, with block 0 and checksums of the wrong count)
// and requires a clean result: success, ErrBadMapping or another
// corruption error, never a panic; and Validate agrees that a mapping it
// accepts reads without ErrBadMapping.
func TestBadMappingNeverPanics(t *testing.T) {
	w := newWriter(t, openData(t, onMem), newFakeSpace(16, 0), &cowio.Options{IOSize: 2 * bs})
	rapid.Check(t, func(rt *rapid.T) {
		gen := rapid.Uint64Range(0, 20)
		var m cowio.Mapping
		for range rapid.IntRange(0, 5).Draw(rt, "entries") {
			e := cowio.Entry{
				FileBlock: cowio.FileBlock(gen.Draw(rt, "fb")),
				Start:     format.Block(gen.Draw(rt, "start")),
				Len:       gen.Draw(rt, "len"),
			}
			if rapid.Bool().Draw(rt, "huge") {
				e.Len = ^uint64(0) - gen.Draw(rt, "less")
			}
			if rapid.Bool().Draw(rt, "sums") {
				e.Sums = make([]uint64, rapid.IntRange(0, 20).Draw(rt, "nsums"))
			}
			m.Entries = append(m.Entries, e)
		}
		size := rapid.Int64Range(0, 30*bs).Draw(rt, "size")
		off := rapid.Int64Range(0, 30*bs).Draw(rt, "off")
		if rapid.Bool().Draw(rt, "far") { // near the largest value
			size = cowio.ReadSizeMax - rapid.Int64Range(0, 30*bs).Draw(rt, "below")
			off += size - 20*bs
		}
		p := make([]byte, rapid.IntRange(0, 8*bs).Draw(rt, "n"))
		_, err := w.ReadAt(m, size, p, off)
		if err != nil && err != io.EOF && !errors.Is(err, format.ErrCorrupt) {
			rt.Fatalf("ReadAt = %v", err)
		}
		if m.Validate(bs) == nil && errors.Is(err, cowio.ErrBadMapping) {
			rt.Fatalf("Validate accepted a mapping ReadAt refused: %v", err)
		}
	})
}
