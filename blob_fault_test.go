package cowdb_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/cowdb/cowdb"
	"github.com/cowdb/cowdb/vfs"
)

// faultOpts are the options of the blob fault tests, on fs.
func faultOpts(fs vfs.FS) *cowdb.Options {
	o := memOpts(fs)
	o.WALSegmentSize = 1 << 20
	return o
}

// blobFaultStore is a store on an ErrorFS with one blob and its model.
type blobFaultStore struct {
	mem *vfs.MemFS
	efs *vfs.ErrorFS
	db  *cowdb.DB
	b   *cowdb.Blob
	m   blobModel
	rng *rand.Rand
}

// newBlobFaultStore opens a store holding blob "b" with some content,
// written back in part (a checkpoint) and in part still dirty pages.
func newBlobFaultStore(t *testing.T) *blobFaultStore {
	t.Helper()
	s := &blobFaultStore{mem: vfs.NewMem(), rng: rand.New(rand.NewPCG(6, 6))}
	s.efs = vfs.WithErrors(s.mem, nil)
	db, err := cowdb.Open("/db", faultOpts(s.efs))
	if err != nil {
		t.Fatal(err)
	}
	s.db = db
	if s.b, err = db.CreateBlob([]byte("b")); err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct{ off, n int }{{0, 64 << 10}, {70000, 30000}, {5, 100}} {
		if err := s.write(int64(w.off), w.n); err != nil {
			t.Fatal(err)
		}
		if w.off == 70000 {
			if err := db.Checkpoint(); err != nil {
				t.Fatal(err)
			}
		}
	}
	return s
}

// write writes n random bytes at off, updating the model if it worked.
func (s *blobFaultStore) write(off int64, n int) error {
	data := randBytes(s.rng, n)
	if _, err := s.b.WriteAt(data, off); err != nil {
		return err
	}
	s.m.writeAt(data, off)
	return nil
}

// dataWrites are the writes that write the data file at once: aligned
// ones, and unaligned ones above 64 KiB (their aligned middle).
var dataWrites = []struct {
	name string
	off  int64
	n    int
}{
	{"aligned", 8192, 8 * 4096},
	{"aligned, growing", 30 * 4096, 16 * 4096},
	{"unaligned, split", 1000, 200 << 10},
}

// TestBlobDataWriteFault fails the data file's write under each kind of
// WriteAt that writes data at once: the WriteAt must fail with the I/O
// error and leave the blob as it was; once the device recovers the same
// write works, and the store checkpoints, closes, reopens with every
// acknowledged byte and leaks no block.
func TestBlobDataWriteFault(t *testing.T) {
	s := newBlobFaultStore(t)
	defer func() { s.db.Close() }()
	for _, w := range dataWrites {
		fault := &vfs.Fault{Kind: vfs.OpWrite, Path: "/db/data", Index: 1}
		s.efs.SetInjector(fault)
		err := s.write(w.off, w.n)
		s.efs.SetInjector(nil)
		if fault.Fired() != 1 || !errors.Is(err, vfs.ErrIO) {
			t.Fatalf("%s: WriteAt with a failing data write = %v (faults fired %d), want an I/O error", w.name, err, fault.Fired())
		}
		if err := checkBlob(s.b, s.m, s.rng); err != nil {
			t.Fatalf("%s: after the failed WriteAt: %v", w.name, err)
		}
		if err := s.write(w.off, w.n); err != nil {
			t.Fatalf("%s: WriteAt once the device recovered: %v", w.name, err)
		}
		if err := checkBlob(s.b, s.m, s.rng); err != nil {
			t.Fatalf("%s: after the retried WriteAt: %v", w.name, err)
		}
	}
	s.closeAndVerify(t)
}

// closeAndVerify checkpoints, closes and reopens the store and checks the
// blob, the DESIGN §6 invariant, and that emptying the store frees every
// block.
func (s *blobFaultStore) closeAndVerify(t *testing.T) {
	t.Helper()
	if err := s.db.Checkpoint(); err != nil {
		t.Fatalf("Checkpoint: %v", err)
	}
	if err := s.db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := cowdb.CheckPersisted(s.mem, "/db"); err != nil {
		t.Fatal(err)
	}
	db, err := cowdb.Open("/db", faultOpts(s.mem))
	if err != nil {
		t.Fatal(err)
	}
	s.db = db
	if got, err := db.Get([]byte("b")); err != nil || !bytes.Equal(got, s.m) {
		t.Fatalf("after reopen: %d bytes, %v; want %d bytes (first difference at %d)", len(got), err, len(s.m), firstDiff(got, s.m))
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := checkEmptied(s.mem, faultOpts(s.mem)); err != nil {
		t.Fatal(err)
	}
}

// TestBlobWritebackFault fails the data write of a writeback: the
// checkpoint that runs it fails, but the dirty pages stay, so the blob
// reads as written; once the device recovers, writes and the next
// checkpoint work and nothing is lost or leaked.
func TestBlobWritebackFault(t *testing.T) {
	s := newBlobFaultStore(t)
	defer func() { s.db.Close() }()
	for _, w := range []struct{ off, n int }{{10, 3}, {9000, 20000}, {200000, 1}} {
		if err := s.write(int64(w.off), w.n); err != nil {
			t.Fatal(err)
		}
	}
	fault := &vfs.Fault{Kind: vfs.OpWrite, Path: "/db/data", Index: 1}
	s.efs.SetInjector(fault)
	err := s.db.Checkpoint()
	s.efs.SetInjector(nil)
	if fault.Fired() != 1 || !errors.Is(err, vfs.ErrIO) {
		t.Fatalf("Checkpoint with a failing writeback = %v (faults fired %d), want an I/O error", err, fault.Fired())
	}
	if err := checkBlob(s.b, s.m, s.rng); err != nil {
		t.Fatalf("after the failed writeback: %v", err)
	}
	if err := s.write(3, 5000); err != nil {
		t.Fatalf("WriteAt after the failed writeback: %v", err)
	}
	if err := checkBlob(s.b, s.m, s.rng); err != nil {
		t.Fatal(err)
	}
	s.closeAndVerify(t)
}

// TestBlobDataSyncFault fails the data file's flush that must precede the
// log record of an aligned write: the log has failed (fsyncgate), so that
// write and every later one fail while reads keep working; reopened on the
// recovered device, the store holds every acknowledged byte and the failed
// write whole or not at all, and leaks nothing.
func TestBlobDataSyncFault(t *testing.T) {
	s := newBlobFaultStore(t)
	defer func() { s.db.Close() }()
	fault := &vfs.Fault{Kind: vfs.OpSync, Path: "/db/data", Index: 1}
	s.efs.SetInjector(fault)
	data := randBytes(s.rng, 8*4096)
	_, err := s.b.WriteAt(data, 4096)
	s.efs.SetInjector(nil)
	if fault.Fired() != 1 || !errors.Is(err, vfs.ErrIO) {
		t.Fatalf("WriteAt with a failing data flush = %v (faults fired %d), want an I/O error", err, fault.Fired())
	}
	if err := s.write(0, 10); !errors.Is(err, vfs.ErrIO) {
		t.Fatalf("WriteAt after the failed flush = %v, want the failure", err)
	}
	got := make([]byte, len(s.m))
	if _, err := s.b.ReadAt(got, 0); err != nil {
		t.Fatalf("ReadAt after the failed flush: %v", err)
	}
	s.db.Close()
	applied := blobModel(bytes.Clone(s.m))
	applied.writeAt(data, 4096)
	state := blobState{"b": s.m}
	pending := &blobPending{key: "b", val: applied}
	verifyBlobsRecovered(t, s.mem, s.mem, faultOpts(s.mem), state, pending, "data flush fault")
}

// TestBlobNoSpace fills a store bounded by MaxSize with random blob
// writes of every kind until WriteAt fails with ErrNoSpace, then goes on
// writing while full: each write and checkpoint either works or fails
// with ErrNoSpace, a failed write leaving the blob as it was. The store
// must stay usable: it closes, reopens with every acknowledged byte, and
// once another value is deleted the writes that failed succeed. Emptying
// it then frees every block: nothing staged or leaked.
func TestBlobNoSpace(t *testing.T) {
	fs := vfs.NewMem()
	o := faultOpts(fs)
	o.MaxSize = 2 << 20
	db, err := cowdb.Open("/db", o)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if db != nil {
			db.Close()
		}
	}()
	if err := db.Put([]byte("filler"), bytes.Repeat([]byte{7}, 600<<10)); err != nil {
		t.Fatal(err)
	}
	b, err := db.CreateBlob([]byte("b"))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	var m blobModel
	failed := writeUntilFull(t, db, b, &m, rng)
	if err := checkBlob(b, m, rng); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("Close of the full store: %v", err)
	}
	if db, err = cowdb.Open("/db", o); err != nil {
		t.Fatalf("reopening the full store: %v", err)
	}
	if b, err = db.OpenBlob([]byte("b")); err != nil {
		t.Fatal(err)
	}
	if err := checkBlob(b, m, rng); err != nil {
		t.Fatalf("after reopening: %v", err)
	}
	if err := db.Delete([]byte("filler")); err != nil {
		t.Fatalf("Delete when full: %v", err)
	}
	for _, op := range failed[:min(len(failed), 3)] {
		data := opBytes(op, 0, op.n)
		if _, err := b.WriteAt(data, op.off); err != nil {
			t.Fatalf("%v after freeing space: %v", op, err)
		}
		m.writeAt(data, op.off)
	}
	if err := checkBlob(b, m, rng); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cowdb.CheckPersisted(fs, "/db"); err != nil {
		t.Fatal(err)
	}
	if err := checkEmptied(fs, o); err != nil {
		t.Fatal(err)
	}
}

// writeUntilFull writes b at random (model m) until 30 writes have failed
// with ErrNoSpace, checkpointing now and then, and returns those writes.
// Each write must work or fail with ErrNoSpace and change nothing.
func writeUntilFull(t *testing.T, db *cowdb.DB, b *cowdb.Blob, m *blobModel, rng *rand.Rand) []blobOp {
	t.Helper()
	var failed []blobOp
	for i := 0; i < 400 && len(failed) < 30; i++ {
		op := blobOp{kind: opWriteAt, data: rng.Uint64()}
		op.off, op.n = randSpan(rng, 4096, int64(len(*m)))
		op.n = min(op.n, 300<<10)
		data := opBytes(op, 0, op.n)
		_, err := b.WriteAt(data, op.off)
		switch {
		case errors.Is(err, cowdb.ErrNoSpace):
			failed = append(failed, op)
			if err := checkBlob(b, *m, rng); err != nil {
				t.Fatalf("step %d: after ErrNoSpace on %v: %v", i, op, err)
			}
		case err != nil:
			t.Fatalf("step %d, %v: %v, want nil or ErrNoSpace", i, op, err)
		default:
			m.writeAt(data, op.off)
		}
		if i%10 == 0 {
			if err := db.Checkpoint(); err != nil && !errors.Is(err, cowdb.ErrNoSpace) {
				t.Fatalf("step %d, Checkpoint: %v", i, err)
			}
		}
	}
	if len(failed) == 0 {
		t.Fatal("the store never filled")
	}
	return failed
}

// TestBlobNoSpaceDirtyPages fills a bounded store with aligned blob writes
// until ErrNoSpace, then makes one 2-byte unaligned write into a block
// the blob does not map yet. Whether that write is accepted (its page
// then needs a block at writeback) or refused with ErrNoSpace, the store
// must stay usable: Close works and the store reopens with the same
// options, holding what was acknowledged.
func TestBlobNoSpaceDirtyPages(t *testing.T) {
	fs := vfs.NewMem()
	o := faultOpts(fs)
	o.MaxSize = 2 << 20
	db, err := cowdb.Open("/db", o)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if db != nil {
			db.Close()
		}
	}()
	b, err := db.CreateBlob([]byte("b"))
	if err != nil {
		t.Fatal(err)
	}
	var m blobModel
	chunk := bytes.Repeat([]byte{1}, 64<<10)
	for {
		if _, err := b.WriteAt(chunk, int64(len(m))); err != nil {
			if !errors.Is(err, cowdb.ErrNoSpace) {
				t.Fatal(err)
			}
			break
		}
		m.writeAt(chunk, int64(len(m)))
	}
	off := int64(len(m)) + 7
	if _, err := b.WriteAt([]byte("xy"), off); err == nil {
		m.writeAt([]byte("xy"), off)
	} else if !errors.Is(err, cowdb.ErrNoSpace) {
		t.Fatalf("unaligned WriteAt when full: %v", err)
	}
	if err := db.Checkpoint(); err != nil && !errors.Is(err, cowdb.ErrNoSpace) {
		t.Fatalf("Checkpoint when full: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("Close when full: %v", err)
	}
	if db, err = cowdb.Open("/db", o); err != nil {
		t.Fatalf("reopening the full store: %v", err)
	}
	if got, err := db.Get([]byte("b")); err != nil || !bytes.Equal(got, m) {
		t.Fatalf("after reopening: %d bytes, %v; want %d bytes", len(got), err, len(m))
	}
}

// TestBlobFailedWriteChangesNothing fills a bounded store with aligned
// writes, then makes unaligned 10 KB writes into new blocks under a small
// cache, so that dirty pages pile up and the writer's own writeback runs
// out of space: each WriteAt must either succeed with its bytes in place,
// or fail and leave the blob as it was (a write reported failed must not
// have been committed).
func TestBlobFailedWriteChangesNothing(t *testing.T) {
	fs := vfs.NewMem()
	o := faultOpts(fs) // CacheSize 1 MiB: writeback past 256 KiB of pages
	o.MaxSize = 2 << 20
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
	chunk := bytes.Repeat([]byte{1}, 64<<10)
	for {
		if _, err := b.WriteAt(chunk, int64(len(m))); err != nil {
			break
		}
		m.writeAt(chunk, int64(len(m)))
	}
	for i := range 60 {
		p := bytes.Repeat([]byte{byte(i + 2)}, 10000)
		off := int64(len(m)) + 1
		_, err := b.WriteAt(p, off)
		if err == nil {
			m.writeAt(p, off)
		} else if !errors.Is(err, cowdb.ErrNoSpace) {
			t.Fatalf("write %d: %v", i, err)
		}
		if cerr := checkBlob(b, m, nil); cerr != nil {
			t.Fatalf("write %d (WriteAt(10000 bytes at %d) = %v): %v", i, off, err, cerr)
		}
	}
}
