package cowdb_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cowdb/cowdb"
	"github.com/cowdb/cowdb/vfs"
)

// The blob benchmarks (DESIGN §7) measure cowdb and a raw baseline in the
// same run, on the OS file system in the benchmark's temp directory, and
// report both rates and their ratio (cowdb / raw): on a shared machine the
// absolute figures drift from run to run, the ratio much less, the more so
// as the two sides take turns (per op for ingest, in slices of ops for the
// others) so both see the same load. The raw baseline is the same I/O
// pattern done the cheapest way the device allows: O_DIRECT pread, pwrite
// and fdatasync on a golang.org/x/sys/unix descriptor of a preallocated
// file beside the store. Run them with an explicit -benchtime, e.g.
//
//	go test -run '^$' -bench 'BlobIngest' -benchtime=3x -count=3 .
//	go test -run '^$' -bench 'BlobIngest' -benchtime=1x . -blob.ingest-mib=1024
//	go test -run '^$' -bench 'BlobRandomOverwrite' -benchtime=4000x -count=3 .
//	go test -run '^$' -bench 'BlobSmallUnaligned' -benchtime=2000x -count=3 .
//	go test -run '^$' -bench 'BlobRandomRead' -benchtime=10000x -count=3 .
//
// Device bytes ("wa", written per user byte) come from write_bytes in
// /proc/self/io: the bytes this process caused to be sent to storage, its
// O_DIRECT writes and the page-cache writeback it dirtied, from every
// goroutine. The file system's own journal, written by the kernel's jbd2
// thread, is not counted, for cowdb or for the raw baseline.

var blobIngestMiB = flag.Int("blob.ingest-mib", 256, "BenchmarkBlobIngest: MiB ingested per op, in 32 MiB blobs (the issue's figure is 1024)")

const (
	benchBlock         = 4096
	rawChunk           = 8 << 20 // the raw baselines' sequential write size
	ingestBlobSize     = 32 << 20
	overwriteBlobSize  = 256 << 20
	overwriteSyncEvery = 16
	smallBlobSize      = 64 << 20
	readBlobSize       = 256 << 20
	hotSetSize         = 16 << 20
)

// io.Copy into a Blob calls Blob.ReadFrom only when the source has no
// WriteTo method (bytes.Reader has one, which would write through
// Blob.Write): so the ingest source is a patternReader, a bare io.Reader.
var (
	_ io.ReaderFrom = (*cowdb.Blob)(nil)
	_ io.Reader     = (*patternReader)(nil)
)

// patternReader yields n bytes by cycling through data, and is only an
// io.Reader. It adds the time spent in Read to *spent, if set: the copy
// into the caller's buffer that the raw baseline does not make.
type patternReader struct {
	data  []byte
	n     int64
	off   int
	spent *time.Duration
}

func (r *patternReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	if r.spent != nil {
		defer func(t time.Time) { *r.spent += time.Since(t) }(time.Now())
	}
	p = p[:min(int64(len(p)), r.n)]
	done := 0
	for done < len(p) {
		c := copy(p[done:], r.data[r.off:])
		done += c
		r.off = (r.off + c) % len(r.data)
	}
	r.n -= int64(done)
	return done, nil
}

// randomAligned returns n pseudo-random bytes, the same for the same seed,
// in a buffer fit for direct I/O.
func randomAligned(n int, seed uint64) []byte {
	p := vfs.AlignedBuf(n)
	var s [32]byte
	s[0] = byte(seed)
	rand.NewChaCha8(s).Read(p)
	return p
}

// blobBenchOpen opens (creating) the store in dir with o's fields and a
// silent logger, closed when b ends.
func blobBenchOpen(b *testing.B, dir string, o cowdb.Options) *cowdb.DB {
	b.Helper()
	o.Logger = slog.New(slog.DiscardHandler)
	db, err := cowdb.Open(dir, &o)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

// fillBlob creates the blob key holding size bytes of data (repeated),
// written in aligned chunks, then makes it durable and checkpoints, so the
// timed part starts from a clean store with an empty log.
func fillBlob(b *testing.B, db *cowdb.DB, key string, size int64, data []byte) *cowdb.Blob {
	b.Helper()
	blob, err := db.CreateBlob([]byte(key))
	if err != nil {
		b.Fatal(err)
	}
	for off := int64(0); off < size; off += int64(len(data)) {
		if _, err := blob.WriteAt(data[:min(int64(len(data)), size-off)], off); err != nil {
			b.Fatal(err)
		}
	}
	if err := db.Sync(); err != nil {
		b.Fatal(err)
	}
	if err := db.Checkpoint(); err != nil {
		b.Fatal(err)
	}
	return blob
}

// rawCreate creates the raw baseline's file name of size bytes and returns
// an O_DIRECT descriptor of it, which the caller closes. With data, every
// block is written (data repeated) so that later writes overwrite
// initialized blocks in place; without, the file is only fallocated, as
// the store's data file is before its blocks are first written. The file
// is synced either way. It skips b where the file system has no O_DIRECT.
func rawCreate(b *testing.B, name string, size int64, data []byte) int {
	b.Helper()
	fd, err := unix.Open(name, unix.O_RDWR|unix.O_CREAT|unix.O_DIRECT|unix.O_CLOEXEC, 0o644)
	if err == unix.EINVAL {
		b.Skipf("no O_DIRECT in %s: %v", filepath.Dir(name), err)
	}
	if err != nil {
		b.Fatal(err)
	}
	err = unix.Fallocate(fd, 0, 0, size)
	if err == nil && data != nil {
		err = rawWriteSeq(fd, 0, size, data)
	}
	if err == nil {
		err = unix.Fdatasync(fd)
	}
	if err != nil {
		unix.Close(fd)
		b.Fatalf("preparing %s: %v", name, err)
	}
	return fd
}

// rawCreateKept is rawCreate with the descriptor closed when b ends.
func rawCreateKept(b *testing.B, name string, size int64, data []byte) int {
	fd := rawCreate(b, name, size, data)
	b.Cleanup(func() { unix.Close(fd) })
	return fd
}

// rawWriteSeq writes size bytes of data (repeated) from offset off in
// len(data)-byte direct writes, without syncing.
func rawWriteSeq(fd int, off, size int64, data []byte) error {
	for end := off + size; off < end; off += int64(len(data)) {
		p := data[:min(int64(len(data)), end-off)]
		if n, err := unix.Pwrite(fd, p, off); err != nil || n != len(p) {
			return fmt.Errorf("pwrite at %d: %d of %d bytes: %v", off, n, len(p), err)
		}
	}
	return nil
}

// deviceWrites returns write_bytes from /proc/self/io, or -1 if the kernel
// does not account it.
func deviceWrites(b *testing.B) int64 {
	b.Helper()
	text, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	for line := range bytes.Lines(text) {
		if v, ok := bytes.CutPrefix(line, []byte("write_bytes:")); ok {
			n, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
			if err != nil {
				b.Fatalf("/proc/self/io: %q: %v", line, err)
			}
			return n
		}
	}
	return -1
}

// reportWA reports the device bytes written per user byte between two
// deviceWrites readings, under unit, unless either reading failed.
func reportWA(b *testing.B, from, to int64, userBytes int64, unit string) {
	if from < 0 || to < 0 || userBytes == 0 {
		return
	}
	b.ReportMetric(float64(to-from)/float64(userBytes), unit)
}

// reportRates reports cowdb's and the raw baseline's rates of n ops in
// the given times, and their ratio.
func reportRates(b *testing.B, unit string, n float64, db, raw time.Duration) {
	dbRate, rawRate := n/db.Seconds(), n/raw.Seconds()
	b.ReportMetric(dbRate, "cowdb-"+unit)
	b.ReportMetric(rawRate, "raw-"+unit)
	b.ReportMetric(dbRate/rawRate, "ratio")
}

// BenchmarkBlobIngest: one op streams -blob.ingest-mib MiB (default 256)
// into a new store as 32 MiB blobs, each through io.Copy (so
// Blob.ReadFrom) and Close, which makes it durable; the raw baseline
// writes as many bytes sequentially into a fallocated file in 8 MiB direct
// writes and fdatasyncs once at the end. The two take turns, 32 MiB each.
// Each op uses fresh files, made and removed outside the timings; ns/op is
// cowdb's alone. Beside the rates it reports the shares of cowdb's time
// spent copying the source into the blob's buffer (src-share, inside
// io.Copy's reads) and in Blob.Close (close-share: the last chunk's write
// and the syncs), and the device bytes written while cowdb ingested per
// byte ingested (wa).
func BenchmarkBlobIngest(b *testing.B) {
	blobs := (int64(*blobIngestMiB) << 20) / ingestBlobSize
	if blobs < 1 {
		b.Fatalf("-blob.ingest-mib=%d: at least one %d MiB blob", *blobIngestMiB, ingestBlobSize>>20)
	}
	total := blobs * ingestBlobSize
	data := randomAligned(rawChunk, 1)
	var in ingestRun
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		db := blobBenchOpen(b, filepath.Join(dir, "db"), cowdb.Options{})
		// A new store zero-fills its first log segment in the background
		// after Open; the first write waits for it. Wait here, so that the
		// timing is of ingest into an open store.
		if err := db.Put([]byte("ready"), nil); err != nil {
			b.Fatal(err)
		}
		fd := rawCreate(b, filepath.Join(dir, "raw"), total, nil)
		b.StartTimer()
		for i := range blobs {
			in.blob(b, db, fmt.Appendf(nil, "ingest-%03d", i), data)
			b.StopTimer()
			in.raw(b, fd, i*ingestBlobSize, data, i == blobs-1)
			b.StartTimer()
		}
		b.StopTimer()
		unix.Close(fd)
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
		if err := os.RemoveAll(dir); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	reportRates(b, "MB/s", float64(in.bytes)/1e6, in.dbTime, in.rawTime)
	b.ReportMetric(in.srcTime.Seconds()/in.dbTime.Seconds(), "src-share")
	b.ReportMetric(in.closeTime.Seconds()/in.dbTime.Seconds(), "close-share")
	if in.devBytes >= 0 {
		b.ReportMetric(float64(in.devBytes)/float64(in.bytes), "wa")
	}
}

// ingestRun adds up BenchmarkBlobIngest's figures.
type ingestRun struct {
	bytes                               int64 // ingested by cowdb
	devBytes                            int64 // written to the device meanwhile; -1 if unknown
	dbTime, rawTime, srcTime, closeTime time.Duration
}

// blob ingests one blob under key and makes it durable.
func (in *ingestRun) blob(b *testing.B, db *cowdb.DB, key, data []byte) {
	w0, start := deviceWrites(b), time.Now()
	blob, err := db.CreateBlob(key)
	if err != nil {
		b.Fatal(err)
	}
	src := &patternReader{data: data, n: ingestBlobSize, spent: &in.srcTime}
	if n, err := io.Copy(blob, src); err != nil || n != ingestBlobSize {
		b.Fatalf("io.Copy: %d of %d bytes: %v", n, ingestBlobSize, err)
	}
	t := time.Now()
	if err := blob.Close(); err != nil {
		b.Fatal(err)
	}
	in.closeTime += time.Since(t)
	in.dbTime += time.Since(start)
	in.bytes += ingestBlobSize
	if w1 := deviceWrites(b); w0 < 0 || w1 < 0 || in.devBytes < 0 {
		in.devBytes = -1
	} else {
		in.devBytes += w1 - w0
	}
}

// raw writes the baseline's next 32 MiB at off, then, if last, syncs.
func (in *ingestRun) raw(b *testing.B, fd int, off int64, data []byte, last bool) {
	start := time.Now()
	err := rawWriteSeq(fd, off, ingestBlobSize, data)
	if err == nil && last {
		err = unix.Fdatasync(fd)
	}
	if err != nil {
		b.Fatal(err)
	}
	in.rawTime += time.Since(start)
}

// rawSlice is how many raw baseline ops the write benchmarks run each time
// cowdb has done as many, so both sides see the same machine load; a
// multiple of overwriteSyncEvery.
const rawSlice = 256

// rawSide is the raw baseline of a write benchmark, run in slices between
// cowdb's ops: its ops, time and the device bytes written while it ran.
type rawSide struct {
	b     *testing.B
	do    func(i int) // raw op i
	ops   int
	time  time.Duration
	bytes int64
}

// run does k more raw ops with the benchmark timer stopped (when timed),
// adding to the side's time and device bytes.
func (r *rawSide) run(k int, timed bool) {
	if timed {
		r.b.StopTimer()
		defer r.b.StartTimer()
	}
	w0, t0 := deviceWrites(r.b), time.Now()
	for range k {
		r.do(r.ops)
		r.ops++
	}
	r.time += time.Since(t0)
	if w1 := deviceWrites(r.b); w0 >= 0 && w1 >= 0 {
		r.bytes += w1 - w0
	}
}

// BenchmarkBlobRandomOverwrite: one op is a 4 KiB aligned WriteAt at a
// random block of a 256 MiB blob (written and checkpointed beforehand),
// under SyncNever with DB.Sync every 16 writes; the baseline overwrites
// 4 KiB in place in a written 256 MiB file with fdatasync every 16 writes,
// in slices of rawSlice ops between cowdb's. The cowdb timing and its
// device bytes ("wa" per user byte; raw slices' bytes subtracted) include a
// final Sync and a Checkpoint after the loop, so the metadata the writes
// dirtied (and, under deferred=4096, the writeback of the dirty pages) is
// paid for; cp-share is that tail's share of cowdb's time. The metrics are
// steadier with a larger -benchtime (e.g. 4000x). The deferred=4096 variant sets DeferredWriteMax so these
// writes take the logged dirty-page route instead of going to new blocks.
func BenchmarkBlobRandomOverwrite(b *testing.B) {
	// DeferredWriteMax -1: every aligned write to new blocks (0 would be
	// the default, 4096).
	for _, dmax := range []int{-1, benchBlock} {
		b.Run(fmt.Sprintf("deferred=%d", max(dmax, 0)), func(b *testing.B) {
			benchRandomOverwrite(b, dmax)
		})
	}
}

func benchRandomOverwrite(b *testing.B, deferredMax int) {
	dir := b.TempDir()
	data := randomAligned(rawChunk, 2)
	db := blobBenchOpen(b, filepath.Join(dir, "db"), cowdb.Options{Sync: cowdb.SyncNever, DeferredWriteMax: deferredMax})
	blob := fillBlob(b, db, "overwrite", overwriteBlobSize, data)
	fd := rawCreateKept(b, filepath.Join(dir, "raw"), overwriteBlobSize, data)
	buf, rawBuf := vfs.AlignedBuf(benchBlock), vfs.AlignedBuf(benchBlock)
	copy(buf, data)
	copy(rawBuf, data)
	const blocks = overwriteBlobSize / benchBlock
	rawRand := rand.New(rand.NewPCG(3, 4))
	raw := &rawSide{b: b, do: func(i int) {
		if _, err := unix.Pwrite(fd, rawBuf, rawRand.Int64N(blocks)*benchBlock); err != nil {
			b.Fatal(err)
		}
		if (i+1)%overwriteSyncEvery == 0 {
			if err := unix.Fdatasync(fd); err != nil {
				b.Fatal(err)
			}
		}
	}}

	r := rand.New(rand.NewPCG(3, 4))
	n := 0
	w0, start := deviceWrites(b), time.Now()
	for b.Loop() {
		buf[0] = byte(n)
		if _, err := blob.WriteAt(buf, r.Int64N(blocks)*benchBlock); err != nil {
			b.Fatal(err)
		}
		if n++; n%overwriteSyncEvery == 0 {
			if err := db.Sync(); err != nil {
				b.Fatal(err)
			}
		}
		if n%rawSlice == 0 {
			raw.run(rawSlice, true)
		}
	}
	tail := time.Now()
	if err := db.Sync(); err != nil {
		b.Fatal(err)
	}
	if err := db.Checkpoint(); err != nil {
		b.Fatal(err)
	}
	dbTime, dbBytes := time.Since(start)-raw.time, deviceWrites(b)-w0-raw.bytes
	b.ReportMetric(time.Since(tail).Seconds()/dbTime.Seconds(), "cp-share")
	raw.run(n-raw.ops, false)
	t := time.Now()
	if err := unix.Fdatasync(fd); err != nil {
		b.Fatal(err)
	}
	raw.time += time.Since(t)

	reportRates(b, "ops/s", float64(n), dbTime, raw.time)
	if w0 >= 0 {
		b.ReportMetric(float64(dbBytes)/float64(n*benchBlock), "wa")
		b.ReportMetric(float64(raw.bytes)/float64(n*benchBlock), "raw-wa")
	}
}

// BenchmarkBlobSmallUnaligned: one op is a WriteAt durable on return
// (SyncAlways) into a 64 MiB blob; the baseline is a 4 KiB direct pwrite
// plus fdatasync at a random block of a written 64 MiB file, the least a
// durable small write can cost, run in slices between cowdb's ops. The
// 100B variants write 100 bytes at a random unaligned offset, the 4KiB
// variants 4 KiB at a random block. As in BenchmarkBlobRandomOverwrite,
// cowdb's timing and device bytes include a Checkpoint after the loop
// (cp-share: its share of cowdb's time).
// Under deferred=4096 (DeferredWriteMax) the aligned 4 KiB writes are
// logged as dirty pages; 100-byte writes take that route either way, so
// their two variants are a control.
func BenchmarkBlobSmallUnaligned(b *testing.B) {
	for _, size := range []int{100, benchBlock} {
		for _, dmax := range []int{-1, benchBlock} {
			name := fmt.Sprintf("%dB/deferred=%d", size, max(dmax, 0))
			if size == benchBlock {
				name = fmt.Sprintf("4KiB-aligned/deferred=%d", max(dmax, 0))
			}
			b.Run(name, func(b *testing.B) { benchSmallWrites(b, size, dmax) })
		}
	}
}

func benchSmallWrites(b *testing.B, size, deferredMax int) {
	dir := b.TempDir()
	data := randomAligned(rawChunk, 3)
	db := blobBenchOpen(b, filepath.Join(dir, "db"), cowdb.Options{DeferredWriteMax: deferredMax})
	blob := fillBlob(b, db, "small", smallBlobSize, data)
	fd := rawCreateKept(b, filepath.Join(dir, "raw"), smallBlobSize, data)
	buf, rawBuf := vfs.AlignedBuf(benchBlock), vfs.AlignedBuf(benchBlock)
	copy(buf, data)
	copy(rawBuf, data)
	const blocks = smallBlobSize / benchBlock
	rawRand := rand.New(rand.NewPCG(7, 8))
	raw := &rawSide{b: b, do: func(int) {
		if _, err := unix.Pwrite(fd, rawBuf, rawRand.Int64N(blocks)*benchBlock); err != nil {
			b.Fatal(err)
		}
		if err := unix.Fdatasync(fd); err != nil {
			b.Fatal(err)
		}
	}}

	r := rand.New(rand.NewPCG(5, 6))
	n := 0
	w0, start := deviceWrites(b), time.Now()
	for b.Loop() {
		off := r.Int64N(blocks) * benchBlock
		if size%benchBlock != 0 {
			off = 1 + r.Int64N(smallBlobSize-int64(size)-1)
			if off%benchBlock == 0 {
				off++
			}
		}
		buf[0] = byte(n)
		if _, err := blob.WriteAt(buf[:size], off); err != nil {
			b.Fatal(err)
		}
		if n++; n%rawSlice == 0 {
			raw.run(rawSlice, true)
		}
	}
	tail := time.Now()
	if err := db.Checkpoint(); err != nil {
		b.Fatal(err)
	}
	dbTime, dbBytes := time.Since(start)-raw.time, deviceWrites(b)-w0-raw.bytes
	b.ReportMetric(time.Since(tail).Seconds()/dbTime.Seconds(), "cp-share")
	raw.run(n-raw.ops, false)

	reportRates(b, "ops/s", float64(n), dbTime, raw.time)
	if w0 >= 0 {
		b.ReportMetric(float64(dbBytes)/float64(n*size), "wa")
		b.ReportMetric(float64(dbBytes)/float64(n), "dev-B/op")
		b.ReportMetric(float64(raw.bytes)/float64(n), "raw-dev-B/op")
	}
}

// BenchmarkBlobRandomRead: one op is a 4 KiB ReadAt at a random block, from
// 1 or 4 goroutines at once, of a 256 MiB blob; the baseline is a 4 KiB
// direct pread of a 256 MiB file from as many goroutines, run after each
// slice of cowdb's ops for as long as that slice took. Three cache setups:
// cold, the smallest CacheSize (1 MiB), so nearly every data read goes to
// the device and the mapping's B-tree nodes compete with data blocks for
// the cache; cold16M, a 16 MiB CacheSize, where data reads still miss but
// the nodes stay cached; and hot, a 16 MiB working set under a 128 MiB
// CacheSize after two warm-up passes over it (the baseline reads the same
// 16 MiB, from the device). cache-hit-ratio counts B-tree nodes and data
// blocks alike; node-reads/op the B-tree nodes read from the device. The
// store is opened ReadOnly once per sub-benchmark and kept across its b.N
// rounds.
func BenchmarkBlobRandomRead(b *testing.B) {
	dir := b.TempDir()
	dbDir := filepath.Join(dir, "db")
	data := randomAligned(rawChunk, 4)
	db := blobBenchOpen(b, dbDir, cowdb.Options{})
	fillBlob(b, db, "read", readBlobSize, data)
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	fd := rawCreateKept(b, filepath.Join(dir, "raw"), readBlobSize, data)
	modes := []struct {
		name       string
		cache, set int64
	}{{"cold", 1 << 20, readBlobSize}, {"cold16M", 16 << 20, readBlobSize}, {"hot", 128 << 20, hotSetSize}}
	for _, m := range modes {
		for _, readers := range []int{1, 4} {
			rb := &readBench{dir: dbDir, cache: m.cache, set: m.set, readers: readers, fd: fd}
			b.Run(fmt.Sprintf("%s/readers=%d", m.name, readers), rb.run)
			if rb.db != nil {
				rb.db.Close()
			}
		}
	}
}

// readBench is one sub-benchmark of BenchmarkBlobRandomRead, holding its
// store open across rounds.
type readBench struct {
	dir        string
	cache, set int64
	readers    int
	fd         int
	db         *cowdb.DB
	blob       *cowdb.Blob
}

// open opens the store on the first round, and warms the cache when the
// working set fits in it.
func (rb *readBench) open(b *testing.B) {
	if rb.db != nil {
		return
	}
	var err error
	rb.db, err = cowdb.Open(rb.dir, &cowdb.Options{ReadOnly: true, CacheSize: rb.cache, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	if rb.blob, err = rb.db.OpenBlob([]byte("read")); err != nil {
		b.Fatal(err)
	}
	if rb.set < rb.cache {
		buf := make([]byte, benchBlock)
		for range 2 {
			for off := int64(0); off < rb.set; off += benchBlock {
				if _, err := rb.blob.ReadAt(buf, off); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
}

// readSliceTime is about how long each slice of cowdb reads runs before
// the baseline's turn.
const readSliceTime = 50 * time.Millisecond

func (rb *readBench) run(b *testing.B) {
	rb.open(b)
	dbRead := func(p []byte, off int64) error {
		_, err := rb.blob.ReadAt(p, off)
		return err
	}
	rawRead := func(p []byte, off int64) error {
		_, err := unix.Pread(rb.fd, p, off)
		return err
	}
	before := rb.db.Stats()
	var dbTime, rawTime time.Duration
	rawOps, slice, seed := 0, 64, uint64(0)
	b.ResetTimer()
	for left := b.N; left > 0; {
		k := min(left, slice)
		seed++
		t := time.Now()
		if _, err := readersDo(rb.readers, k, time.Time{}, rb.set, seed, dbRead); err != nil {
			b.Fatal(err)
		}
		d := time.Since(t)
		dbTime += d
		left -= k
		slice = max(64, int(float64(k)*float64(readSliceTime)/float64(max(d, 1))))
		b.StopTimer()
		t = time.Now()
		done, err := readersDo(rb.readers, math.MaxInt, t.Add(d), rb.set, seed, rawRead)
		if err != nil {
			b.Fatal(err)
		}
		rawTime += time.Since(t)
		rawOps += done
		b.StartTimer()
	}
	b.StopTimer()
	after := rb.db.Stats()
	b.ReportMetric(float64(b.N)/dbTime.Seconds(), "cowdb-ops/s")
	b.ReportMetric(float64(rawOps)/rawTime.Seconds(), "raw-ops/s")
	b.ReportMetric(float64(b.N)/dbTime.Seconds()/(float64(rawOps)/rawTime.Seconds()), "ratio")
	hits, misses := after.CacheHits-before.CacheHits, after.CacheMisses-before.CacheMisses
	b.ReportMetric(float64(hits)/float64(max(1, hits+misses)), "cache-hit-ratio")
	b.ReportMetric(float64(after.BlockReads-before.BlockReads)/float64(b.N), "node-reads/op")
}

// readersDo makes up to n calls of read, each of a 4 KiB aligned buffer at
// a random block below set, from readers goroutines at once, stopping
// early at deadline unless it is zero. It returns how many calls it made
// and the first error.
func readersDo(readers, n int, deadline time.Time, set int64, seed uint64, read func(p []byte, off int64) error) (int, error) {
	var left, done atomic.Int64
	left.Store(int64(n))
	var wg sync.WaitGroup
	errs := make([]error, readers)
	for g := range readers {
		wg.Go(func() {
			buf := vfs.AlignedBuf(benchBlock)
			r := rand.New(rand.NewPCG(seed, uint64(g)))
			for left.Add(-1) >= 0 {
				if err := read(buf, r.Int64N(set/benchBlock)*benchBlock); err != nil {
					errs[g] = err
					return
				}
				done.Add(1)
				if !deadline.IsZero() && time.Now().After(deadline) {
					return
				}
			}
		})
	}
	wg.Wait()
	return int(done.Load()), errors.Join(errs...)
}
