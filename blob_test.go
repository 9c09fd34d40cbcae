package cowdb_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/cowdb/cowdb"
	"github.com/cowdb/cowdb/vfs"
)

// blobModel is what a blob must hold: its bytes, with the size their
// length.
type blobModel []byte

// writeAt applies a WriteAt of p at off, growing with zeros (an empty p
// changes nothing).
func (m *blobModel) writeAt(p []byte, off int64) {
	if len(p) == 0 {
		return
	}
	if end := off + int64(len(p)); end > int64(len(*m)) {
		*m = append(*m, make([]byte, end-int64(len(*m)))...)
	}
	copy((*m)[off:], p)
}

// truncate applies a Truncate to size: growing reads zeros.
func (m *blobModel) truncate(size int64) {
	if size <= int64(len(*m)) {
		*m = (*m)[:size]
		return
	}
	*m = append(*m, make([]byte, size-int64(len(*m)))...)
}

// randBytes returns n random bytes drawn from rng (through ChaCha8, fast
// under -race).
func randBytes(rng *rand.Rand, n int) []byte {
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], rng.Uint64())
	p := make([]byte, n)
	rand.NewChaCha8(seed).Read(p)
	return p
}

// checkBlob compares the blob with its model: Size, the whole content, and
// a few random ranges, some running past the end; rng may be nil.
func checkBlob(b *cowdb.Blob, want []byte, rng *rand.Rand) error {
	if got := b.Size(); got != int64(len(want)) {
		return fmt.Errorf("Size = %d, want %d", got, len(want))
	}
	if err := checkRange(b, want, 0, len(want)+1); err != nil {
		return err
	}
	for range 3 {
		if rng == nil {
			break
		}
		off := rng.IntN(len(want) + 10)
		if err := checkRange(b, want, off, rng.IntN(70000)+1); err != nil {
			return err
		}
	}
	return nil
}

// checkRange reads n bytes at off and checks them, and the io.ReaderAt
// contract (a short read, and only a short read, reports io.EOF).
func checkRange(b *cowdb.Blob, want []byte, off, n int) error {
	p := make([]byte, n)
	got, err := b.ReadAt(p, int64(off))
	wantN := max(0, min(n, len(want)-off))
	if got != wantN || (got < n) != (err == io.EOF) || err != nil && err != io.EOF {
		return fmt.Errorf("ReadAt(%d bytes at %d) of a %d-byte blob = %d, %v; want %d", n, off, len(want), got, err, wantN)
	}
	if wantN > 0 && !bytes.Equal(p[:got], want[off:off+got]) {
		return fmt.Errorf("ReadAt(%d bytes at %d): bytes differ from byte %d on", n, off, firstDiff(p[:got], want[off:off+got])+off)
	}
	return nil
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// blobModelConfig is one set of options the model test runs under.
type blobModelConfig struct {
	name             string
	blockSize        int
	cacheSize        int64 // 1 MiB: writeback under pressure past 256 KiB of pages
	deferredWriteMax int
	walSegment       int64 // 256 KiB: records of at most 64 KiB
}

var blobModelConfigs = []blobModelConfig{
	{"pressure-smalllog", 4096, 1 << 20, -1, 256 << 10},
	{"deferred-aligned", 4096, 1 << 20, 16 << 10, 1 << 20},
	{"roomy", 4096, 64 << 20, 64 << 10, 4 << 20},
	{"block8k", 8192, 1 << 20, 8192, 1 << 20},
	{"block64k-smalllog", 65536, 1 << 20, 0, 256 << 10},
}

func (c blobModelConfig) opts(fs vfs.FS) *cowdb.Options {
	o := memOpts(fs)
	o.BlockSize = c.blockSize
	o.GroupSize = max(o.GroupSize, 64*int64(c.blockSize))
	o.InitialSize = o.GroupSize
	o.CacheSize = c.cacheSize
	o.DeferredWriteMax = c.deferredWriteMax
	o.WALSegmentSize = c.walSegment
	return o
}

// TestBlobModel drives three blobs with random WriteAt (aligned, unaligned,
// 1-byte, up to a few MiB, across holes and overlapping), Truncate down to
// unaligned sizes and back up, streamed Write and Read after Seek,
// checkpoints and reopens, under options that force writeback under memory
// pressure or not, and compares every blob with a []byte model after each
// step (Size, whole content, random ranges, Get). A failing sequence is
// shrunk, and printed with its config and seed: rerun with
// -run 'TestBlobModel/<config>/seed=<n>'.
func TestBlobModel(t *testing.T) {
	seeds, nOps := 2, 150
	switch {
	case *long:
		seeds, nOps = 10, 600
	case raceEnabled():
		seeds = 1
	}
	for _, c := range blobModelConfigs {
		for s := range seeds {
			seed := uint64(s + 1)
			t.Run(fmt.Sprintf("%s/seed=%d", c.name, seed), func(t *testing.T) {
				ops := genBlobOps(rand.New(rand.NewPCG(seed, 11)), int64(c.blockSize), 3, nOps)
				if err := runBlobOps(c, ops, seed); err != nil {
					t.Fatalf("%v\nshrunk to:\n%s", err, shrinkBlobOps(c, ops, seed))
				}
			})
		}
	}
}

// raceEnabled reports whether the test binary was built with -race, which
// makes the sequential model and crash tests several times slower: they
// then run fewer cases (the concurrent test runs in full).
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// blobOpKind says what a blobOp does.
type blobOpKind int

const (
	opWriteAt    blobOpKind = iota // WriteAt of n bytes at off
	opTruncate                     // Truncate(off)
	opStream                       // Seek(off), Write of each of pieces, Sync if sync
	opRead                         // Seek to off (from the end if fromEnd), Read n bytes (-1: to EOF)
	opCheckpoint                   // DB.Checkpoint
	opGet                          // DB.Get of the blob
	opReopen                       // close everything, reopen
)

// blobOp is one step of the model test, drawn ahead of the run so that a
// failing sequence can be replayed and shrunk.
type blobOp struct {
	kind    blobOpKind
	blob    int
	off     int64
	n       int
	pieces  []int
	sync    bool
	fromEnd bool
	data    uint64 // seeds the bytes written
}

func (op blobOp) String() string {
	switch op.kind {
	case opWriteAt:
		return fmt.Sprintf("blob %d: WriteAt(%d bytes at %d)", op.blob, op.n, op.off)
	case opTruncate:
		return fmt.Sprintf("blob %d: Truncate(%d)", op.blob, op.off)
	case opStream:
		return fmt.Sprintf("blob %d: Seek(%d), Write %v, sync %v", op.blob, op.off, op.pieces, op.sync)
	case opRead:
		return fmt.Sprintf("blob %d: Seek(%d, fromEnd %v), Read %d", op.blob, op.off, op.fromEnd, op.n)
	case opCheckpoint:
		return "Checkpoint"
	case opGet:
		return fmt.Sprintf("blob %d: Get", op.blob)
	}
	return "reopen"
}

// opBytes returns the n bytes op writes (its piece k for a stream).
func opBytes(op blobOp, k, n int) []byte {
	return randBytes(rand.New(rand.NewPCG(op.data, uint64(k))), n)
}

// genBlobOps draws n steps over nBlobs blobs, following their sizes.
func genBlobOps(rng *rand.Rand, bs int64, nBlobs, n int) []blobOp {
	sizes := make([]int64, nBlobs)
	ops := make([]blobOp, 0, n)
	for range n {
		i := rng.IntN(nBlobs)
		size := sizes[i]
		op := blobOp{blob: i, data: rng.Uint64()}
		switch p := rng.IntN(100); {
		case p < 70:
			op.kind = opWriteAt
			op.off, op.n = randSpan(rng, bs, size)
			if size > 6<<20 { // keep blobs at a few MiB
				op.off %= 1 << 20
			}
			sizes[i] = max(size, op.off+int64(op.n))
		case p < 78:
			op.kind, op.off = opTruncate, rng.Int64N(size+1)
			switch rng.IntN(6) {
			case 0, 1:
				op.off = size + rng.Int64N(300<<10)
			case 2:
				op.off = size // changes nothing
			}
			sizes[i] = op.off
		case p < 86:
			op.kind, op.off, op.sync = opStream, rng.Int64N(size+5000), rng.IntN(2) == 0
			end := op.off
			for range 1 + rng.IntN(5) {
				k := 1 + rng.IntN(3000)
				if rng.IntN(4) == 0 {
					k = rng.IntN(600 << 10)
				}
				op.pieces = append(op.pieces, k)
				end += int64(k)
			}
			sizes[i] = max(size, end)
		case p < 92:
			op.kind, op.off, op.fromEnd, op.n = opRead, rng.Int64N(size+100), rng.IntN(2) == 0, rng.IntN(200000)
			if rng.IntN(3) == 0 {
				op.n = -1
			}
		case p < 96:
			op.kind = opCheckpoint
		case p < 98:
			op.kind = opGet
		default:
			op.kind = opReopen
		}
		ops = append(ops, op)
	}
	return ops
}

// randSpan returns a random write, of every kind the data path tells
// apart, on a blob of the given size.
func randSpan(rng *rand.Rand, bs, size int64) (off int64, n int) {
	switch p := rng.IntN(100); {
	case p < 25: // aligned, 4 to 64 KiB, sometimes 1 MiB (at least a block)
		n := int64(1+rng.IntN(16)) << 12
		if rng.IntN(8) == 0 {
			n = 1 << 20
		}
		return rng.Int64N(80) << 12 / bs * bs, int(max(bs, n/bs*bs))
	case p < 35: // one byte
		return rng.Int64N(size + 2*bs), 1
	case p < 60: // small unaligned
		return rng.Int64N(size + 2*bs), 2 + rng.IntN(5000)
	case p < 75: // around the deferred limit of 64 KiB
		return rng.Int64N(size + bs), 64<<10 - 2 + rng.IntN(4)
	case p < 84: // medium unaligned, split above 64 KiB
		return rng.Int64N(size + bs), 1 + rng.IntN(200<<10)
	case p < 85: // nothing
		return rng.Int64N(size + bs), 0
	case p < 90: // several MiB
		return rng.Int64N(1 << 20), 1<<20 + rng.IntN(3<<20)
	default: // past the end, leaving a hole
		return size + 1 + rng.Int64N(1<<20), 1 + rng.IntN(20000)
	}
}

// blobRun is the state of one model run.
type blobRun struct {
	c      blobModelConfig
	fs     *vfs.MemFS
	db     *cowdb.DB
	keys   []string
	blobs  []*cowdb.Blob
	models []blobModel
}

// runBlobOps runs ops on a new store, checking the blob each op touched
// after it, and everything at the end; it returns the first failure.
func runBlobOps(c blobModelConfig, ops []blobOp, seed uint64) (err error) {
	r := &blobRun{c: c, fs: vfs.NewMem(), keys: []string{"a", "b", "c"}}
	if err := r.open(); err != nil {
		return err
	}
	defer func() {
		if p := recover(); p != nil {
			// The store may hold its locks: leave it unclosed.
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
			return
		}
		if cerr := r.db.Close(); err == nil && cerr != nil && !errors.Is(cerr, cowdb.ErrClosed) {
			err = cerr
		}
	}()
	for _, k := range r.keys {
		b, err := r.db.CreateBlob([]byte(k))
		if err != nil {
			return err
		}
		r.blobs = append(r.blobs, b)
		r.models = append(r.models, nil)
	}
	rng := rand.New(rand.NewPCG(seed, 12))
	for step, op := range ops {
		err := r.do(op)
		if err == nil {
			err = checkBlob(r.blobs[op.blob], r.models[op.blob], rng)
		}
		if err != nil {
			return fmt.Errorf("step %d, %v: %w", step, op, err)
		}
	}
	return r.finish()
}

// finish reopens the store, checks every blob through Get, closes it and
// checks the persisted allocation.
func (r *blobRun) finish() error {
	if err := r.reopen(); err != nil {
		return err
	}
	for i, k := range r.keys {
		v, err := r.db.Get([]byte(k))
		if err != nil || !bytes.Equal(v, r.models[i]) {
			return fmt.Errorf("Get(%s) at the end: %d bytes, %v; want %d bytes", k, len(v), err, len(r.models[i]))
		}
	}
	st := r.db.Stats()
	if err := r.db.Close(); err != nil {
		return err
	}
	if st.StagingBlocks != 0 {
		return fmt.Errorf("%d staging blocks left after the run", st.StagingBlocks)
	}
	return cowdb.CheckPersisted(r.fs, "/db")
}

func (r *blobRun) open() error {
	db, err := cowdb.Open("/db", r.c.opts(r.fs))
	r.db = db
	return err
}

// reopen closes every handle and the store, opens it again and reopens
// the blobs; the old handles must then say ErrClosed.
func (r *blobRun) reopen() error {
	for _, b := range r.blobs {
		if err := b.Close(); err != nil {
			return err
		}
	}
	if err := r.db.Close(); err != nil {
		return err
	}
	if _, err := r.blobs[0].ReadAt(make([]byte, 1), 0); !errors.Is(err, cowdb.ErrClosed) {
		return fmt.Errorf("ReadAt on a handle of a closed store = %v, want ErrClosed", err)
	}
	if err := r.open(); err != nil {
		return err
	}
	for i, k := range r.keys {
		b, err := r.db.OpenBlob([]byte(k))
		if err != nil {
			return err
		}
		r.blobs[i] = b
	}
	return nil
}

// do performs op on the store and on the model.
func (r *blobRun) do(op blobOp) error {
	b, m := r.blobs[op.blob], &r.models[op.blob]
	switch op.kind {
	case opWriteAt:
		data := opBytes(op, 0, op.n)
		m.writeAt(data, op.off)
		_, err := b.WriteAt(data, op.off)
		return err
	case opTruncate:
		m.truncate(op.off)
		return b.Truncate(op.off)
	case opStream:
		return r.stream(op)
	case opRead:
		return r.readStream(op)
	case opCheckpoint:
		return r.db.Checkpoint()
	case opGet:
		v, err := r.db.Get([]byte(r.keys[op.blob]))
		if err == nil && !bytes.Equal(v, *m) {
			err = fmt.Errorf("Get returned %d bytes, want %d, differing at %d", len(v), len(*m), firstDiff(v, *m))
		}
		return err
	}
	return r.reopen()
}

// stream seeks and writes the pieces with Write, checking Size counts the
// buffered bytes; the check that follows reads them (flushing).
func (r *blobRun) stream(op blobOp) error {
	b, m := r.blobs[op.blob], &r.models[op.blob]
	if _, err := b.Seek(op.off, io.SeekStart); err != nil {
		return err
	}
	pos := op.off
	for k, n := range op.pieces {
		data := opBytes(op, k, n)
		m.writeAt(data, pos)
		if got, err := b.Write(data); err != nil || got != n {
			return fmt.Errorf("Write(%d bytes) = %d, %v", n, got, err)
		}
		pos += int64(n)
		if got := b.Size(); got != int64(len(*m)) {
			return fmt.Errorf("Size with buffered writes = %d, want %d", got, len(*m))
		}
	}
	if op.sync {
		return b.Sync()
	}
	return nil
}

// readStream seeks and reads with Read, to io.EOF or op.n bytes.
func (r *blobRun) readStream(op blobOp) error {
	b, m := r.blobs[op.blob], r.models[op.blob]
	pos, whence, at := op.off, io.SeekStart, op.off
	if op.fromEnd {
		whence, at = io.SeekEnd, pos-int64(len(m))
	}
	if got, err := b.Seek(at, whence); err != nil || got != pos {
		return fmt.Errorf("Seek(%d, %d) = %d, %v; want %d", at, whence, got, err, pos)
	}
	want := m[min(pos, int64(len(m))):]
	var src io.Reader = b
	if op.n >= 0 && op.n < len(want) {
		want = want[:op.n]
		src = io.LimitReader(b, int64(op.n))
	}
	got, err := io.ReadAll(src)
	if err == nil && !bytes.Equal(got, want) {
		err = fmt.Errorf("Read got %d bytes, want %d, differing at %d", len(got), len(want), firstDiff(got, want))
	}
	return err
}

// shrinkBlobOps removes ops from a failing sequence while it still fails
// (within a bounded number of runs) and returns the failure of the shortest
// sequence found, with its ops.
func shrinkBlobOps(c blobModelConfig, ops []blobOp, seed uint64) string {
	return shrink(ops, func(ops []blobOp) error { return runBlobOps(c, ops, seed) }, 400)
}

// TestBlobConcurrent writes several blobs at once, one goroutine per blob
// keeping its own model, while readers check the ranges nobody writes
// byte for byte and, in a zone written only by whole-block aligned writes
// of one repeated byte, that no block is ever seen half written; a
// goroutine checkpoints meanwhile. Meant for -race.
func TestBlobConcurrent(t *testing.T) {
	fs := vfs.NewMem()
	o := memOpts(fs)
	o.DeferredWriteMax = 8192
	db, err := cowdb.Open("/db", o)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { db.Close() }()
	const nBlobs, stable, zone, rounds = 3, 40000, 32 * 4096, 120
	blobs, models := make([]*cowdb.Blob, nBlobs), make([]blobModel, nBlobs)
	stableData := make([][]byte, nBlobs)
	rng := rand.New(rand.NewPCG(3, 3))
	for i := range blobs {
		if blobs[i], err = db.CreateBlob([]byte(fmt.Sprintf("blob%d", i))); err != nil {
			t.Fatal(err)
		}
		stableData[i] = randBytes(rng, stable)
		models[i].writeAt(stableData[i], 0)
		models[i].writeAt(bytes.Repeat([]byte{1}, zone), stable)
		if _, err := blobs[i].WriteAt(models[i], 0); err != nil {
			t.Fatal(err)
		}
	}
	var writers, others sync.WaitGroup
	done := make(chan struct{})
	for i := range blobs {
		writers.Go(func() {
			concurrentWriter(t, blobs[i], &models[i], uint64(i), stable, zone, rounds)
		})
	}
	for r := range 3 {
		others.Go(func() { concurrentReader(t, blobs, stableData, stable, zone, uint64(r), done) })
	}
	others.Go(func() { checkpointUntil(t, db, done) })
	writers.Wait()
	close(done)
	others.Wait()
	if t.Failed() {
		return
	}
	for i, b := range blobs {
		if err := checkBlob(b, models[i], nil); err != nil {
			t.Fatalf("blob%d after the run: %v", i, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = mustOpen(t, fs, "/db")
	got, err := readBlobState(db)
	if err != nil {
		t.Fatal(err)
	}
	want := blobState{}
	for i, m := range models {
		want[fmt.Sprintf("blob%d", i)] = m
	}
	if err := checkBlobState(want, nil, got); err != nil {
		t.Fatalf("after reopen: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cowdb.CheckPersisted(fs, "/db"); err != nil {
		t.Fatal(err)
	}
}

// checkpointUntil checkpoints db over and over until done is closed.
func checkpointUntil(t *testing.T, db *cowdb.DB, done chan struct{}) {
	for {
		select {
		case <-done:
			return
		default:
		}
		if err := db.Checkpoint(); err != nil {
			t.Errorf("Checkpoint: %v", err)
			return
		}
	}
}

// concurrentWriter writes blob b: whole blocks of one repeated byte in
// [stable, stable+zone), anything past that (WriteAt, Truncate, Write).
func concurrentWriter(t *testing.T, b *cowdb.Blob, m *blobModel, seed uint64, stable, zone int64, rounds int) {
	rng := rand.New(rand.NewPCG(seed, 5))
	free := stable + zone
	for range rounds {
		var err error
		switch p := rng.IntN(10); {
		case p < 4:
			nb := 1 + rng.Int64N(6)
			off := stable + rng.Int64N(zone/4096-nb+1)*4096
			data := bytes.Repeat([]byte{byte(1 + rng.IntN(255))}, int(nb*4096))
			m.writeAt(data, off)
			_, err = b.WriteAt(data, off)
		case p < 8:
			off := free + rng.Int64N(300<<10)
			data := randBytes(rng, 1+rng.IntN(70000))
			m.writeAt(data, off)
			_, err = b.WriteAt(data, off)
		case p < 9:
			size := free + rng.Int64N(int64(len(*m))-free+1)
			m.truncate(size)
			err = b.Truncate(size)
		default:
			off := free + rng.Int64N(100<<10)
			data := randBytes(rng, 1+rng.IntN(20000))
			m.writeAt(data, off)
			if _, err = b.Seek(off, io.SeekStart); err == nil {
				_, err = b.Write(data)
			}
			if err == nil {
				err = b.Sync()
			}
		}
		if err != nil {
			t.Errorf("writer %d: %v", seed, err)
			return
		}
	}
	if err := checkBlob(b, *m, rng); err != nil {
		t.Errorf("writer %d, own blob at the end: %v", seed, err)
	}
}

// concurrentReader reads random blobs until done: the stable prefix must
// read as written, each block of the aligned zone must hold one repeated
// byte, and reads past it must not fail.
func concurrentReader(t *testing.T, blobs []*cowdb.Blob, stableData [][]byte, stable, zone int64, seed uint64, done chan struct{}) {
	rng := rand.New(rand.NewPCG(seed, 9))
	for reads := 0; ; reads++ {
		select {
		case <-done:
			return
		default:
		}
		i := rng.IntN(len(blobs))
		b := blobs[i]
		off, n := rng.IntN(int(stable)), 1+rng.IntN(30000)
		if err := checkRange(b, stableData[i][:min(int(stable), off+n)], off, min(n, int(stable)-off)); err != nil {
			t.Errorf("reader, blob%d stable range: %v", i, err)
			return
		}
		nb := 1 + rng.Int64N(8)
		zoff := stable + rng.Int64N(zone/4096-nb+1)*4096
		p := make([]byte, nb*4096)
		if _, err := b.ReadAt(p, zoff); err != nil {
			t.Errorf("reader, blob%d zone at %d: %v", i, zoff, err)
			return
		}
		for k := 0; k < len(p); k += 4096 {
			blk := p[k : k+4096]
			if blk[0] == 0 || bytes.Count(blk, blk[:1]) != 4096 {
				t.Errorf("reader, blob%d: block at %d is torn or zero (first byte %d, last %d)", i, zoff+int64(k), blk[0], blk[4095])
				return
			}
		}
		if _, err := b.ReadAt(make([]byte, 50000), stable+zone+rng.Int64N(200<<10)); err != nil && err != io.EOF {
			t.Errorf("reader, blob%d past the zone: %v", i, err)
			return
		}
	}
}

// TestBlobIOTest runs testing/iotest.TestReader over blobs, as io.Reader
// (Read, ReadAt, Seek) and through io.NewSectionReader: a blob of an
// unaligned size with dirty pages in it, then the same after a
// checkpoint wrote them back, and an empty one.
func TestBlobIOTest(t *testing.T) {
	db := mustOpen(t, vfs.NewMem(), "/db")
	defer db.Close()
	rng := rand.New(rand.NewPCG(8, 8))
	b, err := db.CreateBlob([]byte("b"))
	if err != nil {
		t.Fatal(err)
	}
	var m blobModel
	for _, w := range []struct{ off, n int }{{0, 3 * 4096}, {100, 7}, {5000, 9000}, {16001, 2345}, {30000, 1}} {
		data := randBytes(rng, w.n)
		m.writeAt(data, int64(w.off))
		if _, err := b.WriteAt(data, int64(w.off)); err != nil {
			t.Fatal(err)
		}
	}
	empty, err := db.CreateBlob([]byte("empty"))
	if err != nil {
		t.Fatal(err)
	}
	for _, stage := range []string{"dirty", "written back"} {
		if stage == "written back" {
			if err := db.Checkpoint(); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range []struct {
			b    *cowdb.Blob
			want []byte
		}{{b, m}, {empty, nil}} {
			if _, err := c.b.Seek(0, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			if err := iotest.TestReader(c.b, c.want); err != nil {
				t.Errorf("%s, %d bytes, Blob: %v", stage, len(c.want), err)
			}
			if err := iotest.TestReader(io.NewSectionReader(c.b, 0, c.b.Size()), c.want); err != nil {
				t.Errorf("%s, %d bytes, SectionReader: %v", stage, len(c.want), err)
			}
		}
	}
}

// TestBlobSizeAfterBufferedWrite checks Size and Seek(0, io.SeekEnd) after
// a buffered Write was flushed and the blob then shrank below where that
// Write began: the flushed buffer must not count any more.
func TestBlobSizeAfterBufferedWrite(t *testing.T) {
	db := mustOpen(t, vfs.NewMem(), "/db")
	defer db.Close()
	b, err := db.CreateBlob([]byte("b"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Seek(100, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := b.Truncate(10); err != nil { // flushes the Write, then shrinks
		t.Fatal(err)
	}
	if got := b.Size(); got != 10 {
		t.Errorf("Size after Truncate(10) = %d, want 10", got)
	}
	if got, err := b.Seek(0, io.SeekEnd); err != nil || got != 10 {
		t.Errorf("Seek(0, io.SeekEnd) = %d, %v; want 10", got, err)
	}
}

// TestBlobWriteFitsSmallLog checks that blob writes within the documented
// bounds work with the log at its smallest segment size (256 KiB, whose
// records hold at most 64 KiB), with 4 KiB and 64 KiB blocks: 1 byte, an
// unaligned 64 KiB (logged whole as dirty pages, or split), an aligned
// 8 MiB WriteAt (its record names a checksum per block; the bound at this
// segment size is about 16 MiB), and a streamed Write of 20 MiB (not
// bounded: it flushes in pieces).
func TestBlobWriteFitsSmallLog(t *testing.T) {
	for _, bs := range []int{4096, 65536} {
		o := memOpts(vfs.NewMem()) // WALSegmentSize 256 KiB
		o.BlockSize, o.GroupSize, o.InitialSize = bs, 64*int64(bs), 64*int64(bs)
		db, err := cowdb.Open("/db", o)
		if err != nil {
			t.Fatal(err)
		}
		b, err := db.CreateBlob([]byte("b"))
		if err != nil {
			t.Fatal(err)
		}
		var m blobModel
		for _, w := range []struct {
			off int64
			n   int
		}{{3, 1}, {1, 64 << 10}, {int64(bs), 8 << 20}} {
			data := bytes.Repeat([]byte{byte(w.n + 1)}, w.n)
			m.writeAt(data, w.off)
			if _, err := b.WriteAt(data, w.off); err != nil {
				t.Errorf("BlockSize %d: WriteAt(%d bytes at %d): %v", bs, w.n, w.off, err)
			}
		}
		data := bytes.Repeat([]byte{5}, 20<<20)
		m.writeAt(data, 7)
		err = writeAtPos(b, 7)
		if err == nil {
			_, err = b.Write(data[1:])
		}
		if err == nil {
			err = b.Sync()
		}
		if err != nil {
			t.Errorf("BlockSize %d: streamed Write of 20 MiB: %v", bs, err)
		}
		if err := checkBlob(b, m, nil); err != nil && !t.Failed() {
			t.Errorf("BlockSize %d: %v", bs, err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBlobLimits checks the offset and size bounds: negative offsets and
// sizes are ErrInvalidOffset, anything past MaxBlobSize or longer than
// MaxWriteSize is ErrValueTooLarge, and refused calls change nothing, nor
// do zero-byte writes, even past the end.
func TestBlobLimits(t *testing.T) {
	db := mustOpen(t, vfs.NewMem(), "/db")
	defer db.Close()
	b, err := db.CreateBlob([]byte("b"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.WriteAt([]byte("hello"), 0); err != nil {
		t.Fatal(err)
	}
	one := []byte{1}
	_, errReadAt := b.ReadAt(one, -1)
	_, errWriteAt := b.WriteAt(one, -1)
	_, errWriteAt0 := b.WriteAt(nil, -1)
	_, errSeek := b.Seek(-1, io.SeekStart)
	_, errSeekCur := b.Seek(-1, io.SeekCurrent)
	_, errSeekEnd := b.Seek(-6, io.SeekEnd)
	_, errWhence := b.Seek(0, 7)
	_, errPast := b.WriteAt(one, cowdb.MaxBlobSize)
	_, errHuge := b.WriteAt(make([]byte, cowdb.MaxWriteSize+1), 0) // never touched
	for name, c := range map[string]struct{ err, want error }{
		"ReadAt(-1)":                  {errReadAt, cowdb.ErrInvalidOffset},
		"WriteAt(-1)":                 {errWriteAt, cowdb.ErrInvalidOffset},
		"WriteAt(nil, -1)":            {errWriteAt0, cowdb.ErrInvalidOffset},
		"Truncate(-1)":                {b.Truncate(-1), cowdb.ErrInvalidOffset},
		"Seek(-1, SeekStart)":         {errSeek, cowdb.ErrInvalidOffset},
		"Seek(-1, SeekCurrent)":       {errSeekCur, cowdb.ErrInvalidOffset},
		"Seek(-6, SeekEnd)":           {errSeekEnd, cowdb.ErrInvalidOffset},
		"Seek(0, 7)":                  {errWhence, cowdb.ErrInvalidOffset},
		"WriteAt at MaxBlobSize":      {errPast, cowdb.ErrValueTooLarge},
		"WriteAt past MaxWriteSize":   {errHuge, cowdb.ErrValueTooLarge},
		"Truncate(MaxBlobSize+1)":     {b.Truncate(cowdb.MaxBlobSize + 1), cowdb.ErrValueTooLarge},
		"Write at MaxBlobSize (Seek)": {writeAtPos(b, cowdb.MaxBlobSize), cowdb.ErrValueTooLarge},
	} {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s = %v, want %v", name, c.err, c.want)
		}
	}
	if err := checkBlob(b, []byte("hello"), nil); err != nil {
		t.Fatalf("after refused calls: %v", err)
	}
	// A zero-byte write changes nothing, even past the end.
	for _, off := range []int64{0, 3, 5, 1 << 20} {
		if n, err := b.WriteAt(nil, off); n != 0 || err != nil {
			t.Fatalf("WriteAt(nil, %d) = %d, %v", off, n, err)
		}
	}
	if err := checkBlob(b, []byte("hello"), nil); err != nil {
		t.Fatalf("after zero-byte writes: %v", err)
	}
}

// TestBlobLastByte writes the last byte a blob may hold (at MaxBlobSize-1)
// and reads it back; Get then refuses the whole value as too large, and
// the blob checkpoints, stays at MaxBlobSize on Truncate to it, and
// shrinks back.
func TestBlobLastByte(t *testing.T) {
	db := mustOpen(t, vfs.NewMem(), "/db")
	defer db.Close()
	b, err := db.CreateBlob([]byte("b"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.WriteAt([]byte("hello"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := b.WriteAt([]byte{9}, cowdb.MaxBlobSize-1); err != nil {
		t.Fatalf("WriteAt of the last byte: %v", err)
	}
	if b.Size() != cowdb.MaxBlobSize {
		t.Fatalf("Size = %d, want MaxBlobSize", b.Size())
	}
	p := make([]byte, 4)
	if n, err := b.ReadAt(p, cowdb.MaxBlobSize-3); n != 3 || err != io.EOF || !bytes.Equal(p[:3], []byte{0, 0, 9}) {
		t.Fatalf("ReadAt of the last bytes = %d, %v, %v", n, err, p)
	}
	if _, err := db.Get([]byte("b")); !errors.Is(err, cowdb.ErrValueTooLarge) {
		t.Fatalf("Get of a 1 TiB blob = %v, want ErrValueTooLarge", err)
	}
	if err := db.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if err := b.Truncate(cowdb.MaxBlobSize); err != nil {
		t.Fatal(err)
	}
	if err := b.Truncate(5); err != nil {
		t.Fatal(err)
	}
	if err := checkBlob(b, []byte("hello"), nil); err != nil {
		t.Fatalf("after shrinking back: %v", err)
	}
}

// writeAtPos seeks to pos and writes one byte (5) there with Write.
func writeAtPos(b *cowdb.Blob, pos int64) error {
	if _, err := b.Seek(pos, io.SeekStart); err != nil {
		return err
	}
	_, err := b.Write([]byte{5})
	return err
}

// blobCalls runs every Blob method but the buffered writes (Write,
// ReadFrom) and Close once, and returns their errors by name (Size has
// none: it must return 0).
func blobCalls(b *cowdb.Blob) map[string]error {
	p := make([]byte, 4)
	calls := map[string]error{}
	_, calls["ReadAt"] = b.ReadAt(p, 0)
	_, calls["WriteAt"] = b.WriteAt(p, 0)
	calls["Truncate"] = b.Truncate(1)
	_, calls["Read"] = b.Read(p)
	_, calls["WriteTo"] = b.WriteTo(io.Discard)
	_, calls["Seek(SeekEnd)"] = b.Seek(0, io.SeekEnd)
	calls["Sync"] = b.Sync()
	if b.Size() != 0 {
		calls["Size"] = fmt.Errorf("Size = %d, want 0", b.Size())
	}
	return calls
}

// TestBlobStale checks that a handle goes stale, for every call, once its
// key is deleted or replaced by Put or CreateBlob, and that a stale handle
// never writes into the key's new value; the buffered writes (Write,
// ReadFrom) may report it at the flush (Sync, Close) instead, and their
// bytes never resurrect a deleted key.
func TestBlobStale(t *testing.T) {
	db := mustOpen(t, vfs.NewMem(), "/db")
	defer db.Close()
	key := []byte("k")
	for name, replace := range map[string]func() error{
		"Delete":     func() error { return db.Delete(key) },
		"Put inline": func() error { return db.Put(key, []byte("new")) },
		"Put large":  func() error { return db.Put(key, bytes.Repeat([]byte("n"), 10000)) },
		"CreateBlob": func() error { _, err := db.CreateBlob(key); return err },
	} {
		b, err := db.CreateBlob(key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.WriteAt(bytes.Repeat([]byte("o"), 9000), 1); err != nil {
			t.Fatal(err)
		}
		if err := replace(); err != nil {
			t.Fatal(err)
		}
		after, errAfter := db.Get(key)
		for call, err := range blobCalls(b) {
			if !errors.Is(err, cowdb.ErrStale) {
				t.Errorf("after %s: %s = %v, want ErrStale", name, call, err)
			}
		}
		for call, write := range map[string]func() error{
			"Write":    func() error { return firstErr(b.Write([]byte("late"))) },
			"ReadFrom": func() error { return firstErr(b.ReadFrom(bytes.NewReader([]byte("late")))) },
		} {
			if err := write(); err != nil && !errors.Is(err, cowdb.ErrStale) {
				t.Errorf("after %s: %s = %v, want nil or ErrStale", name, call, err)
			} else if err := b.Sync(); !errors.Is(err, cowdb.ErrStale) {
				t.Errorf("after %s: Sync after %s = %v, want ErrStale", name, call, err)
			}
		}
		if err := b.Close(); err != nil && !errors.Is(err, cowdb.ErrStale) {
			t.Errorf("after %s: Close of a stale handle = %v", name, err)
		}
		if now, err := db.Get(key); !bytes.Equal(now, after) || !errors.Is(err, errAfter) && err != errAfter {
			t.Errorf("after %s: the stale handle changed the new value: %q, %v; want %q, %v", name, now, err, after, errAfter)
		}
	}
}

// TestBlobClosed checks ErrClosed: every call on a closed handle, Close
// again returning nil, and handles, OpenBlob and CreateBlob once the DB is
// closed.
func TestBlobClosed(t *testing.T) {
	db := mustOpen(t, vfs.NewMem(), "/db")
	b, err := db.CreateBlob([]byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := db.OpenBlob([]byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.WriteAt([]byte("data"), 0); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	calls := blobCalls(b)
	calls["Write"] = firstErr(b.Write([]byte("x")))
	calls["ReadFrom"] = firstErr(b.ReadFrom(bytes.NewReader([]byte("x"))))
	for call, err := range calls {
		if !errors.Is(err, cowdb.ErrClosed) {
			t.Errorf("closed handle: %s = %v, want ErrClosed", call, err)
		}
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if err := checkBlob(other, []byte("data"), nil); err != nil {
		t.Fatalf("another handle after Close of the first: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for call, err := range blobCalls(other) {
		if !errors.Is(err, cowdb.ErrClosed) {
			t.Errorf("handle of a closed DB: %s = %v, want ErrClosed", call, err)
		}
	}
	if _, err := db.OpenBlob([]byte("k")); !errors.Is(err, cowdb.ErrClosed) {
		t.Errorf("OpenBlob on a closed DB = %v", err)
	}
	if _, err := db.CreateBlob([]byte("k")); !errors.Is(err, cowdb.ErrClosed) {
		t.Errorf("CreateBlob on a closed DB = %v", err)
	}
	if err := other.Close(); err != nil {
		t.Errorf("Close of a handle of a closed DB = %v", err)
	}
}

// TestBlobReadOnly checks ErrReadOnly for the writes of a handle from
// Item.Open and of every handle of a ReadOnly store, while reads work; the
// ReadOnly store opens on an image whose blob is still in the log as
// deferred writes (replayed in memory).
func TestBlobReadOnly(t *testing.T) {
	fs := vfs.NewMem()
	db := mustOpen(t, fs, "/db")
	b, err := db.CreateBlob([]byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	var m blobModel
	for _, w := range []struct{ off, n int }{{0, 8192}, {100, 33}, {9000, 5}} {
		data := bytes.Repeat([]byte{byte(w.n)}, w.n)
		m.writeAt(data, int64(w.off))
		if _, err := b.WriteAt(data, int64(w.off)); err != nil {
			t.Fatal(err)
		}
	}
	checkReadOnly := func(what string, h *cowdb.Blob) {
		t.Helper()
		if err := checkBlob(h, m, nil); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		for call, err := range map[string]error{
			"WriteAt":  firstErr(h.WriteAt([]byte("x"), 0)),
			"Truncate": h.Truncate(0),
			"Write":    firstErr(h.Write([]byte("x"))),
			"ReadFrom": firstErr(h.ReadFrom(bytes.NewReader([]byte("x")))),
		} {
			if !errors.Is(err, cowdb.ErrReadOnly) {
				t.Errorf("%s: %s = %v, want ErrReadOnly", what, call, err)
			}
		}
		if err := checkBlob(h, m, nil); err != nil {
			t.Fatalf("%s, after refused writes: %v", what, err)
		}
		if err := h.Close(); err != nil {
			t.Errorf("%s: Close = %v", what, err)
		}
	}
	for it, err := range db.Scan(nil, nil) {
		if err != nil {
			t.Fatal(err)
		}
		h, err := it.Open()
		if err != nil {
			t.Fatal(err)
		}
		checkReadOnly("Item.Open", h)
	}
	image := fs.CloneDurable() // SyncAlways: the writes are in the log only
	ro := memOpts(image)
	ro.ReadOnly = true
	rdb, err := cowdb.Open("/db", ro)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	h, err := rdb.OpenBlob([]byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	checkReadOnly("ReadOnly store", h)
	if _, err := rdb.CreateBlob([]byte("k2")); !errors.Is(err, cowdb.ErrReadOnly) {
		t.Errorf("CreateBlob on a ReadOnly store = %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func firstErr[T any](_ T, err error) error { return err }

// TestBlobFromValue checks that a value Put inline, or Put large, opens as
// a blob with its bytes, and that writing it turns it into a blob holding
// the patched bytes, which Get then returns, also after reopening; and that
// OpenBlob of a missing key is ErrNotFound.
func TestBlobFromValue(t *testing.T) {
	fs := vfs.NewMem()
	db := mustOpen(t, fs, "/db")
	if _, err := db.OpenBlob([]byte("missing")); !errors.Is(err, cowdb.ErrNotFound) {
		t.Fatalf("OpenBlob of a missing key = %v, want ErrNotFound", err)
	}
	models := map[string]blobModel{
		"inline": []byte("hello, world"),
		"empty":  {},
		"large":  bytes.Repeat([]byte("0123456789"), 2000),
	}
	for k, v := range models {
		if err := db.Put([]byte(k), v); err != nil {
			t.Fatal(err)
		}
		b, err := db.OpenBlob([]byte(k))
		if err != nil {
			t.Fatal(err)
		}
		if err := checkBlob(b, v, nil); err != nil {
			t.Fatalf("%s before writing: %v", k, err)
		}
		for _, w := range []struct {
			off  int64
			data string
		}{{3, "XY"}, {int64(len(v)) + 5, "tail"}, {0, "A"}} {
			m := models[k]
			m.writeAt([]byte(w.data), w.off)
			models[k] = m
			if _, err := b.WriteAt([]byte(w.data), w.off); err != nil {
				t.Fatalf("%s: WriteAt: %v", k, err)
			}
		}
		if err := checkBlob(b, models[k], nil); err != nil {
			t.Fatalf("%s after writing: %v", k, err)
		}
		if got, err := db.Get([]byte(k)); err != nil || !bytes.Equal(got, models[k]) {
			t.Fatalf("%s: Get = %q, %v; want %q", k, got, err, models[k])
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = mustOpen(t, fs, "/db")
	defer db.Close()
	for k, m := range models {
		if got, err := db.Get([]byte(k)); err != nil || !bytes.Equal(got, m) {
			t.Fatalf("%s after reopen: Get = %q, %v; want %q", k, got, err, m)
		}
	}
}

// TestBlobCopy checks io.Copy of a few MiB into a blob (through ReadFrom,
// from a reader that is not an io.WriterTo) and out of it (WriteTo), from
// the start and from a Seek position, and that the copied bytes are
// durable at Close; then Truncate(0) and growing back reads zeros.
func TestBlobCopy(t *testing.T) {
	fs := vfs.NewMem()
	db := mustOpen(t, fs, "/db")
	data := randBytes(rand.New(rand.NewPCG(4, 4)), 5<<20+123)
	b, err := db.CreateBlob([]byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := io.Copy(b, iotest.HalfReader(bytes.NewReader(data))); err != nil || n != int64(len(data)) {
		t.Fatalf("io.Copy in = %d, %v", n, err)
	}
	if b.Size() != int64(len(data)) {
		t.Fatalf("Size after io.Copy = %d", b.Size())
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	image := fs.CloneDurable() // what a crash now would keep
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = mustOpen(t, image, "/db")
	defer db.Close()
	b, err = db.OpenBlob([]byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	for _, pos := range []int64{0, 3<<20 + 7, int64(len(data))} {
		if _, err := b.Seek(pos, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if n, err := io.Copy(&out, b); err != nil || n != int64(len(data))-pos || !bytes.Equal(out.Bytes(), data[pos:]) {
			t.Fatalf("io.Copy out from %d = %d, %v (equal %v)", pos, n, err, bytes.Equal(out.Bytes(), data[pos:]))
		}
	}
	if err := b.Truncate(0); err != nil {
		t.Fatal(err)
	}
	if err := checkBlob(b, nil, nil); err != nil {
		t.Fatalf("after Truncate(0): %v", err)
	}
	if got, err := db.Get([]byte("k")); err != nil || len(got) != 0 {
		t.Fatalf("Get after Truncate(0) = %d bytes, %v", len(got), err)
	}
	if err := b.Truncate(10000); err != nil {
		t.Fatal(err)
	}
	if err := checkBlob(b, make([]byte, 10000), nil); err != nil {
		t.Fatalf("grown back from 0: %v", err)
	}
}

// TestBlobTruncateToSameSize checks that Truncate to the blob's current
// size, which changes nothing, succeeds right after a write to the blob
// (aligned or deferred) and after another Truncate.
func TestBlobTruncateToSameSize(t *testing.T) {
	db := mustOpen(t, vfs.NewMem(), "/db")
	defer db.Close()
	b, err := db.CreateBlob([]byte("b"))
	if err != nil {
		t.Fatal(err)
	}
	var m blobModel
	for _, w := range []struct{ off, n int }{{0, 4096}, {10, 100}, {8192, 8192}} {
		data := bytes.Repeat([]byte{byte(w.n)}, w.n)
		m.writeAt(data, int64(w.off))
		if _, err := b.WriteAt(data, int64(w.off)); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if err := b.Truncate(int64(len(m))); err != nil {
				t.Errorf("Truncate(%d) of a %d-byte blob after WriteAt(%d bytes at %d): %v", len(m), len(m), w.n, w.off, err)
			}
		}
	}
	if err := checkBlob(b, m, nil); err != nil {
		t.Fatal(err)
	}
}

// TestBlobReplaceDirtyOnly deletes or replaces (Delete, Put, CreateBlob) a
// blob whose bytes are still only dirty pages, in a store that has held no
// extent since it was opened, then checkpoints: the pages must be dropped
// with their value, not written back as extents of an inode no key names,
// so emptying the store leaves only a new store's blocks committed.
func TestBlobReplaceDirtyOnly(t *testing.T) {
	for name, replace := range map[string]func(*cowdb.DB, []byte) error{
		"Delete":     func(db *cowdb.DB, k []byte) error { return db.Delete(k) },
		"Put":        func(db *cowdb.DB, k []byte) error { return db.Put(k, []byte("v")) },
		"CreateBlob": func(db *cowdb.DB, k []byte) error { _, err := db.CreateBlob(k); return err },
	} {
		for _, n := range []int{0, 100, 58481} {
			fs := vfs.NewMem()
			db := mustOpen(t, fs, "/db")
			b, err := db.CreateBlob([]byte("x"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.WriteAt(bytes.Repeat([]byte{1}, n), 1); err != nil {
				t.Fatal(err)
			}
			if err := replace(db, []byte("x")); err != nil {
				t.Fatal(err)
			}
			if err := db.Checkpoint(); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if err := checkEmptied(fs, memOpts(fs)); err != nil {
				t.Errorf("%s of a blob of %d bytes in dirty pages: %v", name, n, err)
			}
		}
	}
}

// TestBlobWriteInsideBigBlock writes, with 64 KiB blocks and the smallest
// log (whose records hold 64 KiB, so only 16 KiB may be logged as dirty
// pages), unaligned writes larger than 16 KiB that start and end inside
// one block, or in two neighbouring blocks without covering either: they
// have no aligned middle to send to new blocks, and must still work.
func TestBlobWriteInsideBigBlock(t *testing.T) {
	o := memOpts(vfs.NewMem()) // WALSegmentSize 256 KiB
	o.BlockSize, o.GroupSize, o.InitialSize = 65536, 64*65536, 64*65536
	db, err := cowdb.Open("/db", o)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	b, err := db.CreateBlob([]byte("b"))
	if err != nil {
		t.Fatal(err)
	}
	var m blobModel
	for _, w := range []struct {
		off int64
		n   int
	}{{4492, 26131}, {70000, 60000}, {40000, 50000}} {
		data := bytes.Repeat([]byte{byte(w.n)}, w.n)
		_, err := writeNoPanic(b, data, w.off)
		if err != nil {
			t.Errorf("WriteAt(%d bytes at %d): %v", w.n, w.off, err)
			continue
		}
		m.writeAt(data, w.off)
	}
	if err := checkBlob(b, m, nil); err != nil {
		t.Fatal(err)
	}
}

// writeNoPanic is b.WriteAt, with a panic turned into an error.
func writeNoPanic(b *cowdb.Blob, p []byte, off int64) (n int, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return b.WriteAt(p, off)
}

// TestBlobTruncateInsideBigBlock shrinks a blob to a few bytes into its
// first block with 64 KiB blocks and the smallest log (records of at most
// 64 KiB): the rest of that block must read as zeros when the blob grows
// again, however that is logged, whether the block is a dirty page or
// written back.
func TestBlobTruncateInsideBigBlock(t *testing.T) {
	o := memOpts(vfs.NewMem()) // WALSegmentSize 256 KiB
	o.BlockSize, o.GroupSize, o.InitialSize = 65536, 64*65536, 64*65536
	db, err := cowdb.Open("/db", o)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, checkpoint := range []bool{false, true} {
		b, err := db.CreateBlob([]byte("b"))
		if err != nil {
			t.Fatal(err)
		}
		m := blobModel(bytes.Repeat([]byte{9}, 18972))
		if _, err := b.WriteAt(m, 0); err != nil {
			t.Fatal(err)
		}
		if checkpoint {
			if err := db.Checkpoint(); err != nil {
				t.Fatal(err)
			}
		}
		for _, size := range []int64{6, 70000} {
			m.truncate(size)
			if err := b.Truncate(size); err != nil {
				t.Errorf("checkpointed %v: Truncate(%d): %v", checkpoint, size, err)
				break
			}
		}
		if err := checkBlob(b, m, nil); err != nil && !t.Failed() {
			t.Errorf("checkpointed %v: %v", checkpoint, err)
		}
	}
}
