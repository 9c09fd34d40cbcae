package wal_test

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/vfs"
	"github.com/cowdb/cowdb/wal"
)

const (
	testDir   = "db/wal"
	testStore = 0xC0DB
)

// smallOpts gives segments of 16 KiB so a few dozen records roll segments.
func smallOpts() wal.Options {
	return wal.Options{StoreID: testStore, SegmentSize: 16 << 10, MaxRecordSize: 2000, MaxSegments: 16}
}

// record is what replay returned for one LSN.
type record struct {
	lsn     format.LSN
	payload []byte
}

// openReplay opens the log at testDir and replays it from from.
func openReplay(t tb, fs vfs.FS, opts wal.Options, from format.LSN) (*wal.Log, []record, error) {
	t.Helper()
	l, err := wal.Open(fs, testDir, opts)
	if err != nil {
		return nil, nil, err
	}
	var got []record
	err = l.Replay(from, func(lsn format.LSN, p []byte) error {
		got = append(got, record{lsn, bytes.Clone(p)})
		return nil
	})
	if err != nil {
		l.Close()
		return nil, nil, err
	}
	return l, got, nil
}

// payloadFor returns a deterministic payload for the i-th record of a test,
// of a length that varies so frames straddle blocks.
func payloadFor(i int) []byte {
	n := (i*37)%700 + 1
	if i%11 == 0 {
		n = 0
	}
	return bytes.Repeat([]byte{byte(i), byte(i >> 8)}, n)[:n]
}

func mustFS(t tb) *vfs.MemFS {
	fs := vfs.NewMem()
	if err := fs.MkdirAll("db"); err != nil {
		t.Fatal(err)
	}
	if err := fs.SyncDir("/"); err != nil {
		t.Fatal(err)
	}
	return fs
}

func checkRecords(t tb, got []record, from format.LSN, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("replayed %d records, want %d", len(got), len(want))
	}
	for i, r := range got {
		if r.lsn != from+format.LSN(i) {
			t.Fatalf("record %d has LSN %d, want %d", i, r.lsn, from+format.LSN(i))
		}
		if !bytes.Equal(r.payload, want[i]) {
			t.Fatalf("record LSN %d payload differs", r.lsn)
		}
	}
}

// TestCommitReplay commits records across several segments, reopens, and
// checks Replay returns exactly them in LSN order, from 1 and from the
// middle, and that appending continues the LSN sequence after a reopen.
func TestCommitReplay(t *testing.T) {
	fs := mustFS(t)
	l, got, err := openReplay(t, fs, smallOpts(), 0)
	if err != nil || len(got) != 0 {
		t.Fatalf("fresh log: %v, %d records", err, len(got))
	}
	var want [][]byte
	for i := range 100 {
		p := payloadFor(i)
		lsn, err := l.Commit(p, 0)
		if err != nil {
			t.Fatal(err)
		}
		if lsn != format.LSN(i+1) {
			t.Fatalf("commit %d got LSN %d", i, lsn)
		}
		want = append(want, p)
	}
	if st := l.Stats(); st.Segments < 3 || st.Records != 100 || st.Groups != 100 {
		t.Fatalf("stats %+v: want >= 3 segments, 100 records and groups", st)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, from := range []format.LSN{1, 50, 100, 101} {
		l, got, err := openReplay(t, fs, smallOpts(), from)
		if err != nil {
			t.Fatalf("replay from %d: %v", from, err)
		}
		checkRecords(t, got, from, want[from-1:])
		l.Close()
	}
	l, _, err = openReplay(t, fs, smallOpts(), 1)
	if err != nil {
		t.Fatal(err)
	}
	for i := 100; i < 130; i++ {
		p := payloadFor(i)
		if lsn, err := l.Commit(p, 0); err != nil || lsn != format.LSN(i+1) {
			t.Fatalf("commit after reopen: LSN %d, %v", lsn, err)
		}
		want = append(want, p)
	}
	l.Close()
	l, got, err = openReplay(t, fs, smallOpts(), 1)
	if err != nil {
		t.Fatal(err)
	}
	checkRecords(t, got, 1, want)
	l.Close()
}

// TestLimits checks the named limits: a record above MaxRecordSize is
// refused with ErrRecordTooLarge and logs nothing, and a log that needs
// more than MaxSegments fails with ErrLogFull until Recycle frees one.
func TestLimits(t *testing.T) {
	fs := mustFS(t)
	opts := smallOpts()
	opts.MaxSegments = 2
	l, _, err := openReplay(t, fs, opts, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Commit(make([]byte, opts.MaxRecordSize+1), 0); !errors.Is(err, wal.ErrRecordTooLarge) {
		t.Fatalf("oversize record: %v", err)
	}
	var last format.LSN
	for {
		lsn, err := l.Commit(make([]byte, 1500), 0)
		if errors.Is(err, wal.ErrLogFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		last = lsn
		if last > 1000 {
			t.Fatal("log never filled up")
		}
	}
	if st := l.Stats(); st.Segments != 2 || st.NextLSN != last+1 {
		t.Fatalf("after ErrLogFull: %+v, last LSN %d", st, last)
	}
	if err := l.Recycle(last + 1); err != nil {
		t.Fatal(err)
	}
	if lsn, err := l.Commit([]byte("after recycle"), 0); err != nil || lsn != last+1 {
		t.Fatalf("commit after recycle: LSN %d, %v", lsn, err)
	}
	if st := l.Stats(); st.Segments != 2 {
		t.Fatalf("recycling created a segment: %+v", st)
	}
}

// TestRecycleReplay recycles repeatedly, as checkpoints would, and checks
// the segment count stays bounded and a reopen replays exactly the records
// from the last checkpoint on, none from a recycled segment's old life.
func TestRecycleReplay(t *testing.T) {
	fs := mustFS(t)
	l, _, err := openReplay(t, fs, smallOpts(), 0)
	if err != nil {
		t.Fatal(err)
	}
	var want [][]byte
	var ckpt format.LSN = 1
	for i := range 600 {
		p := payloadFor(i)
		if _, err := l.Commit(p, 0); err != nil {
			t.Fatal(err)
		}
		want = append(want, p)
		if i%40 == 39 {
			ckpt = format.LSN(i + 1)
			if err := l.Recycle(ckpt); err != nil {
				t.Fatal(err)
			}
		}
	}
	if st := l.Stats(); st.Segments > 6 {
		t.Fatalf("%d segments for 40-record checkpoints", st.Segments)
	}
	l.Close()
	l, got, err := openReplay(t, fs, smallOpts(), ckpt)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	checkRecords(t, got, ckpt, want[ckpt-1:])
}

// TestConcurrentCommit runs many committers at once (meant for -race) and
// checks every acknowledged record is replayed with its own payload, and
// that group commit shared flushes (fewer groups than records).
func TestConcurrentCommit(t *testing.T) {
	fs := mustFS(t)
	opts := smallOpts()
	opts.SegmentSize = 256 << 10
	var dataSyncs int
	opts.BeforeFlush = func() error { dataSyncs++; return nil }
	l, _, err := openReplay(t, fs, opts, 0)
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 32, 40
	var mu sync.Mutex
	acked := map[format.LSN][]byte{}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				p := fmt.Appendf(nil, "writer %d record %d", w, i)
				lsn, err := l.Commit(p, wal.NeedsDataSync*wal.RecordFlags(i%2))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked[lsn] = p
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	st := l.Stats()
	if st.Groups >= writers*each || st.DataSyncs != int64(dataSyncs) || dataSyncs == 0 || int64(dataSyncs) > st.Groups {
		t.Fatalf("stats %+v, BeforeFlush called %d times", st, dataSyncs)
	}
	l.Close()
	l, got, err := openReplay(t, fs, opts, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if len(got) != writers*each {
		t.Fatalf("replayed %d records, want %d", len(got), writers*each)
	}
	for _, r := range got {
		if !bytes.Equal(acked[r.lsn], r.payload) {
			t.Fatalf("LSN %d: replayed %q, acknowledged %q", r.lsn, r.payload, acked[r.lsn])
		}
	}
}

// rawWrite overwrites bytes of a segment file behind the log's back and
// syncs them: simulated media damage.
func rawWrite(t tb, fs vfs.FS, name string, off int64, b []byte) {
	t.Helper()
	f, err := fs.OpenFile(path.Join(testDir, name), vfs.ReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Datasync(); err != nil {
		t.Fatal(err)
	}
}

func rawRead(t tb, fs vfs.FS, name string, off int64, n int) []byte {
	t.Helper()
	f, err := fs.OpenFile(path.Join(testDir, name), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

// commitN commits n records of 100 bytes, one group each, into a fresh log
// with the default-size segments and returns their payloads.
func commitN(t tb, fs vfs.FS, opts wal.Options, n int) [][]byte {
	t.Helper()
	l, _, err := openReplay(t, fs, opts, 0)
	if err != nil {
		t.Fatal(err)
	}
	var want [][]byte
	for i := range n {
		p := bytes.Repeat([]byte{byte('a' + i)}, 100)
		if _, err := l.Commit(p, 0); err != nil {
			t.Fatal(err)
		}
		want = append(want, p)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return want
}

// frameOff is the offset of the i-th (0-based) 100-byte record of commitN.
func frameOff(i int) int64 {
	return format.SegmentHeaderSize + int64(i*format.FrameSize(100))
}

// TestCorruptionInMiddle flips one byte of an acknowledged record followed
// by others and checks Replay refuses with ErrCorrupt naming the segment
// file and the record's offset, having yielded only the records before it.
func TestCorruptionInMiddle(t *testing.T) {
	for _, target := range []int{0, 3, 8} {
		fs := mustFS(t)
		want := commitN(t, fs, smallOpts(), 10)
		off := frameOff(target) + format.FrameHeaderSize + 5
		rawWrite(t, fs, "000001.log", off, []byte{'X'})
		l, err := wal.Open(fs, testDir, smallOpts())
		if err != nil {
			t.Fatal(err)
		}
		var n int
		err = l.Replay(1, func(lsn format.LSN, p []byte) error {
			if !bytes.Equal(p, want[lsn-1]) {
				t.Errorf("LSN %d differs", lsn)
			}
			n++
			return nil
		})
		l.Close()
		var ce *format.CorruptError
		if !errors.Is(err, format.ErrCorrupt) || !errors.As(err, &ce) {
			t.Fatalf("record %d damaged: replay returned %v", target, err)
		}
		place := fmt.Sprintf("000001.log offset %d", frameOff(target))
		if !strings.Contains(ce.Where, place) || n != target {
			t.Fatalf("record %d damaged: error %q (want place %q), %d records yielded", target, err, place, n)
		}
	}
}

// TestTornTail damages the last record (nothing durable follows it) and
// checks replay ignores it, appending continues with its LSN, and a second
// reopen sees one continuous history, with no trace of the torn record.
func TestTornTail(t *testing.T) {
	fs := mustFS(t)
	want := commitN(t, fs, smallOpts(), 10)
	rawWrite(t, fs, "000001.log", frameOff(9)+format.FrameHeaderSize, []byte("torn"))
	l, got, err := openReplay(t, fs, smallOpts(), 1)
	if err != nil {
		t.Fatal(err)
	}
	checkRecords(t, got, 1, want[:9])
	want = want[:9]
	for i := range 5 {
		p := []byte(fmt.Sprintf("after the tear %d", i))
		if lsn, err := l.Commit(p, 0); err != nil || lsn != format.LSN(10+i) {
			t.Fatalf("commit after torn tail: LSN %d, %v", lsn, err)
		}
		want = append(want, p)
	}
	l.Close()
	l, got, err = openReplay(t, fs, smallOpts(), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	checkRecords(t, got, 1, want)
}

// TestForeignAndDamagedSegment checks Open refuses a segment of another
// store (ErrForeign) and a segment whose two header slots are both damaged,
// each as ErrCorrupt naming the file.
func TestForeignAndDamagedSegment(t *testing.T) {
	fs := mustFS(t)
	commitN(t, fs, smallOpts(), 3)
	other := smallOpts()
	other.StoreID = testStore + 1
	_, err := wal.Open(fs, testDir, other)
	if !errors.Is(err, format.ErrForeign) || !errors.Is(err, format.ErrCorrupt) || !strings.Contains(err.Error(), "000001.log") {
		t.Fatalf("foreign segment: %v", err)
	}
	rawWrite(t, fs, "000001.log", 20, []byte{0xFF})
	rawWrite(t, fs, "000001.log", format.SegmentHeaderSlotStride+20, []byte{0xFF})
	_, err = wal.Open(fs, testDir, smallOpts())
	if !errors.Is(err, format.ErrCorrupt) || !strings.Contains(err.Error(), "000001.log offset 0") {
		t.Fatalf("damaged header: %v", err)
	}
}

// TestFatalFailure makes the log's fdatasync fail (the machine dies) and
// checks the failing commit and every later call return an error wrapping
// ErrFailed and the cause.
func TestFatalFailure(t *testing.T) {
	fs := mustFS(t)
	l, _, err := openReplay(t, fs, smallOpts(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Commit([]byte("first"), 0); err != nil {
		t.Fatal(err)
	}
	fs.CrashAfter(1) // the write succeeds, the fdatasync fails
	_, err = l.Commit([]byte("second"), 0)
	if !errors.Is(err, wal.ErrFailed) || !errors.Is(err, vfs.ErrIO) {
		t.Fatalf("commit on dying machine: %v", err)
	}
	fs.CrashAfter(-1)
	if _, err := l.Commit([]byte("third"), 0); !errors.Is(err, wal.ErrFailed) || !errors.Is(err, vfs.ErrIO) {
		t.Fatalf("commit after failure: %v", err)
	}
	if err := l.Sync(1); !errors.Is(err, wal.ErrFailed) {
		t.Fatalf("sync after failure: %v", err)
	}
	if err := l.Close(); !errors.Is(err, wal.ErrFailed) {
		t.Fatalf("close after failure: %v", err)
	}
}

// TestBeforeFlushFailure checks a failing data flush fails the group
// without writing it, and is fatal.
func TestBeforeFlushFailure(t *testing.T) {
	fs := mustFS(t)
	opts := smallOpts()
	boom := errors.New("data fdatasync failed")
	opts.BeforeFlush = func() error { return boom }
	l, _, err := openReplay(t, fs, opts, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Commit([]byte("no data"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Commit([]byte("maps data"), wal.NeedsDataSync); !errors.Is(err, boom) || !errors.Is(err, wal.ErrFailed) {
		t.Fatalf("commit with failing data flush: %v", err)
	}
	l.Close()
	l, got, err := openReplay(t, fs, smallOpts(), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	checkRecords(t, got, 1, [][]byte{[]byte("no data")})
}

// TestAppendSync checks the non-durable path: Append returns LSNs at once,
// Sync makes them durable in one group, and Close syncs the rest.
func TestAppendSync(t *testing.T) {
	fs := mustFS(t)
	l, _, err := openReplay(t, fs, smallOpts(), 0)
	if err != nil {
		t.Fatal(err)
	}
	var want [][]byte
	for i := range 20 {
		p := payloadFor(i)
		if _, err := l.Append(p, 0); err != nil {
			t.Fatal(err)
		}
		want = append(want, p)
	}
	if st := l.Stats(); st.DurableLSN != 0 || st.Groups != 0 {
		t.Fatalf("append wrote synchronously: %+v", st)
	}
	if err := l.Sync(10); err != nil {
		t.Fatal(err)
	}
	if st := l.Stats(); st.DurableLSN != 20 || st.Groups != 1 {
		t.Fatalf("after Sync: %+v", st)
	}
	if _, err := l.Append([]byte("closing"), 0); err != nil {
		t.Fatal(err)
	}
	want = append(want, []byte("closing"))
	l.Close()
	if _, err := l.Commit(nil, 0); !errors.Is(err, wal.ErrClosed) {
		t.Fatalf("commit after close: %v", err)
	}
	l, got, err := openReplay(t, fs, smallOpts(), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	checkRecords(t, got, 1, want)
}

// TestStaleFrameRejected checks the recycling guard directly: a frame with
// a valid checksum and exactly the next expected LSN, but the sequence
// number of another life of the segment, ends the log instead of being
// replayed as a new record.
func TestStaleFrameRejected(t *testing.T) {
	fs := mustFS(t)
	want := commitN(t, fs, smallOpts(), 3)
	stale := format.AppendFrame(nil, format.Frame{LSN: 4, Seq: 7, DurableLSN: 3, Payload: bytes.Repeat([]byte{'z'}, 100)})
	rawWrite(t, fs, "000001.log", frameOff(3), stale)
	l, got, err := openReplay(t, fs, smallOpts(), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	checkRecords(t, got, 1, want)
	if lsn, err := l.Commit([]byte("next"), 0); err != nil || lsn != 4 {
		t.Fatalf("commit after stale frame: LSN %d, %v", lsn, err)
	}
}

// TestCloseWhileCommitting closes the log while committers run (meant for
// -race): each commit either succeeds, and is then replayed, or fails with
// ErrClosed.
func TestCloseWhileCommitting(t *testing.T) {
	fs := mustFS(t)
	opts := smallOpts()
	opts.SegmentSize = 1 << 20 // room for every commit below
	l, _, err := openReplay(t, fs, opts, 0)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	acked := map[format.LSN]bool{}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				lsn, err := l.Commit(fmt.Appendf(nil, "%d/%d", w, i), 0)
				if errors.Is(err, wal.ErrClosed) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked[lsn] = true
				mu.Unlock()
			}
		})
	}
	for st := l.Stats(); st.DurableLSN < 50 && st.Records < 8*2000; st = l.Stats() {
		runtime.Gosched()
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	l, got, err := openReplay(t, fs, opts, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for lsn := range acked {
		if int(lsn) > len(got) {
			t.Fatalf("acknowledged LSN %d not replayed (%d records)", lsn, len(got))
		}
	}
}

// TestLSNGapRefused checks LSN continuity inside a segment: a frame with
// the right sequence number and a valid checksum but an LSN one too high
// is not replayed.
func TestLSNGapRefused(t *testing.T) {
	fs := mustFS(t)
	want := commitN(t, fs, smallOpts(), 3)
	gap := format.AppendFrame(nil, format.Frame{LSN: 5, Seq: 1, DurableLSN: 3, Payload: bytes.Repeat([]byte{'z'}, 100)})
	rawWrite(t, fs, "000001.log", frameOff(3), gap)
	l, got, err := openReplay(t, fs, smallOpts(), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	checkRecords(t, got, 1, want)
}

// TestCorruptionBeforeRoll damages the last record of a full segment and
// wipes every frame of the next one, so only the next segment's header
// (its durable LSN) proves the damaged record was acknowledged: replay must
// refuse with ErrCorrupt naming the first segment and the record's offset.
func TestCorruptionBeforeRoll(t *testing.T) {
	fs := mustFS(t)
	perSegment := (16<<10 - format.SegmentHeaderSize) / format.FrameSize(100)
	commitN(t, fs, smallOpts(), perSegment+2)
	rawWrite(t, fs, "000001.log", frameOff(perSegment-1)+format.FrameHeaderSize, []byte("rot"))
	rawWrite(t, fs, "000002.log", format.SegmentHeaderSize, make([]byte, 2*format.FrameSize(100)))
	_, _, err := openReplay(t, fs, smallOpts(), 1)
	var ce *format.CorruptError
	place := fmt.Sprintf("000001.log offset %d", frameOff(perSegment-1))
	if !errors.As(err, &ce) || !strings.Contains(ce.Where, place) {
		t.Fatalf("replay returned %v, want ErrCorrupt at %s", err, place)
	}
}

// TestBufferedFallback runs the log on a file system that refuses O_DIRECT
// (like tmpfs): DirectIOAuto falls back to buffered I/O and everything
// works; DirectIORequired fails the first segment creation, fatally.
func TestBufferedFallback(t *testing.T) {
	fs := mustFS(t)
	fs.SetDirectSupported(false)
	want := commitN(t, fs, smallOpts(), 5)
	l, got, err := openReplay(t, fs, smallOpts(), 1)
	if err != nil {
		t.Fatal(err)
	}
	checkRecords(t, got, 1, want)
	l.Close()
	opts := smallOpts()
	opts.DirectIO = vfs.DirectIORequired
	if _, _, err := openReplay(t, fs, opts, 1); !errors.Is(err, vfs.ErrDirectUnsupported) {
		t.Fatalf("DirectIORequired on a buffered-only FS: %v", err)
	}
}

// tb is what the test helpers need of *testing.T, *testing.F, *testing.B
// and *rapid.T.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// TestReadOnly checks a read-only log replays what is there, refuses to
// write with ErrReadOnly, and treats a missing directory as an empty log
// without creating it.
func TestReadOnly(t *testing.T) {
	fs := mustFS(t)
	ro := smallOpts()
	ro.ReadOnly = true
	l, got, err := openReplay(t, fs, ro, 1)
	if err != nil || len(got) != 0 {
		t.Fatalf("read-only open of a missing log: %v, %d records", err, len(got))
	}
	l.Close()
	if _, err := fs.Stat(testDir); !errors.Is(err, vfs.ErrNotExist) {
		t.Fatalf("read-only open created the directory: %v", err)
	}
	want := commitN(t, fs, smallOpts(), 4)
	l, got, err = openReplay(t, fs, ro, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	checkRecords(t, got, 1, want)
	if _, err := l.Commit([]byte("x"), 0); !errors.Is(err, wal.ErrReadOnly) {
		t.Fatalf("commit on read-only log: %v", err)
	}
	if err := l.Recycle(3); !errors.Is(err, wal.ErrReadOnly) {
		t.Fatalf("recycle on read-only log: %v", err)
	}
}
