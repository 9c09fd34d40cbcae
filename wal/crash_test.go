package wal_test

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/wal"
)

var long = flag.Bool("long", false, "run the long crash suites")

// history is the model a crash test checks the log against: what was
// appended at each LSN, which LSNs were acknowledged durable, and the
// checkpoint LSN replay starts from.
type history struct {
	appended map[format.LSN][]byte
	acked    format.LSN // every LSN up to this was acknowledged
	ckpt     format.LSN // replay starts here (a durable checkpoint in the model)
}

func newHistory() *history { return &history{appended: map[format.LSN][]byte{}, ckpt: 1} }

// run drives a single-goroutine workload of n records on l: commits, some
// appends synced later, and a recycle every 7 records as if a checkpoint
// covered everything acknowledged. It stops at the first error.
func (h *history) run(l *wal.Log, n int, salt int) error {
	for i := range n {
		p := fmt.Appendf(nil, "salt %d record %d ", salt, i)
		p = append(p, payloadFor(i+salt)...)
		var lsn format.LSN
		var err error
		if i%4 == 3 {
			if lsn, err = l.Append(p, 0); err == nil {
				h.appended[lsn] = p
				err = l.Sync(lsn)
			}
		} else {
			lsn, err = l.Commit(p, wal.NeedsDataSync*wal.RecordFlags(i%2))
			if err == nil || lsn != 0 {
				h.appended[lsn] = p
			}
		}
		if err != nil {
			return err
		}
		h.acked = lsn
		if i%7 == 6 {
			h.ckpt = h.acked + 1
			if err := l.Recycle(h.ckpt); err != nil {
				return err
			}
		}
	}
	return nil
}

// check verifies a replay after a crash: it starts at the checkpoint, is
// continuous, holds every acknowledged record, and every record it holds
// is byte for byte what was appended at that LSN (so nothing is partly
// visible). It then trims the model to what survived.
func (h *history) check(t tb, got []record, what string) {
	t.Helper()
	for i, r := range got {
		if r.lsn != h.ckpt+format.LSN(i) {
			t.Fatalf("%s: record %d has LSN %d, want %d", what, i, r.lsn, h.ckpt+format.LSN(i))
		}
		if want, ok := h.appended[r.lsn]; !ok || !bytes.Equal(want, r.payload) {
			t.Fatalf("%s: LSN %d replayed %q, appended %q", what, r.lsn, r.payload, want)
		}
	}
	end := h.ckpt + format.LSN(len(got)) - 1
	if end < h.acked {
		t.Fatalf("%s: replay ends at LSN %d, LSN %d was acknowledged", what, end, h.acked)
	}
	for lsn := range h.appended {
		if lsn > end {
			delete(h.appended, lsn)
		}
	}
	h.acked = end
}

// crashRun runs one two-session crash scenario on a fresh MemFS: a workload
// with a crash after crashAt mutating operations, recovery and check, then
// a second workload crashing at a random point, recovery and check. Every
// other run keeps a random prefix of the unsynced directory changes at a
// crash, as a journaling file system may (vfs.MemFS.SetEntryJournal).
func crashRun(t *testing.T, crashAt int64, seed uint64) {
	fs := mustFS(t)
	h := newHistory()
	rng := rand.New(rand.NewPCG(seed, uint64(crashAt)))
	fs.SetEntryJournal(crashAt%2 == 0)
	fs.CrashAfter(crashAt)
	if l, got, err := openReplay(t, fs, fuzzOpts(), 1); err == nil {
		h.check(t, got, "first open")
		h.run(l, 60, 0)
		l.Close()
	}
	fs.Crash(int64(seed))
	what := fmt.Sprintf("crash after %d ops, seed %d (go test -run %s)", crashAt, seed, t.Name())
	l, got, err := openReplay(t, fs, fuzzOpts(), h.ckpt)
	if err != nil {
		t.Fatalf("%s: reopen: %v", what, err)
	}
	h.check(t, got, what)
	fs.CrashAfter(rng.Int64N(120) + 1)
	h.run(l, 40, 1000)
	l.Close()
	fs.Crash(int64(seed) + 1)
	l, got, err = openReplay(t, fs, fuzzOpts(), h.ckpt)
	if err != nil {
		t.Fatalf("%s, then second crash: reopen: %v", what, err)
	}
	h.check(t, got, what+", then second crash")
	if _, err := l.Commit([]byte("still usable"), 0); err != nil {
		t.Fatalf("%s: commit after recovery: %v", what, err)
	}
	l.Close()
}

// TestCrashEveryPoint enumerates every crash point of a workload that
// commits, appends, rolls and recycles segments (so crashes land inside
// segment creation, reheadering of recycled segments and group writes),
// and for each requires that recovery keeps every acknowledged record and
// shows no unacknowledged record partly. -long adds more seeds per point.
func TestCrashEveryPoint(t *testing.T) {
	fs := mustFS(t)
	before := fs.Ops()
	l, _, err := openReplay(t, fs, fuzzOpts(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := newHistory().run(l, 60, 0); err != nil {
		t.Fatal(err)
	}
	if st := l.Stats(); st.Reused == 0 || st.Segments < 2 {
		t.Fatalf("workload does not roll and reuse segments: %+v", st)
	}
	l.Close()
	total := fs.Ops() - before
	seeds := uint64(1)
	if *long {
		seeds = 32
	}
	for k := int64(1); k <= total+1; k++ {
		for s := range seeds {
			crashRun(t, k, s+uint64(k)*100)
		}
	}
}

// TestCrashConcurrent crashes many concurrent committers at random points
// and checks every acknowledged record survives with its payload, every
// replayed record is one that was attempted, and none appears twice.
func TestCrashConcurrent(t *testing.T) {
	runs := 20
	if *long {
		runs = 2000
	}
	for seed := range uint64(runs) {
		crashConcurrent(t, seed)
	}
}

func crashConcurrent(t *testing.T, seed uint64) {
	fs := mustFS(t)
	rng := rand.New(rand.NewPCG(seed, 7))
	opts := smallOpts()
	l, _, err := openReplay(t, fs, opts, 1)
	if err != nil {
		t.Fatal(err)
	}
	fs.CrashAfter(rng.Int64N(300) + 1)
	var mu sync.Mutex
	acked := map[format.LSN][]byte{}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 30 {
				p := fmt.Appendf(nil, "w%d i%d %s", w, i, bytes.Repeat([]byte{'.'}, (w*31+i*17)%300))
				lsn, err := l.Commit(p, 0)
				if err != nil {
					return
				}
				mu.Lock()
				acked[lsn] = p
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	l.Close()
	fs.Crash(int64(seed))
	l, got, err := openReplay(t, fs, opts, 1)
	if err != nil {
		t.Fatalf("seed %d: reopen: %v", seed, err)
	}
	defer l.Close()
	seen := map[string]bool{}
	for i, r := range got {
		var w, n int
		if _, err := fmt.Sscanf(string(r.payload), "w%d i%d", &w, &n); err != nil || !bytes.HasSuffix(r.payload, bytes.Repeat([]byte{'.'}, (w*31+n*17)%300)) || seen[string(r.payload)] || r.lsn != format.LSN(i+1) {
			t.Fatalf("seed %d: LSN %d replayed %q (%v)", seed, r.lsn, r.payload, err)
		}
		seen[string(r.payload)] = true
		if p, ok := acked[r.lsn]; ok && !bytes.Equal(p, r.payload) {
			t.Fatalf("seed %d: LSN %d replayed %q, acknowledged %q", seed, r.lsn, r.payload, p)
		}
	}
	for lsn := range acked {
		if int(lsn) > len(got) {
			t.Fatalf("seed %d: acknowledged LSN %d lost (%d replayed)", seed, lsn, len(got))
		}
	}
}

// TestCrashUnsyncedGroup writes a large group (many records, several
// sectors, often rolling into a recycled segment) and crashes before or
// during its fdatasync, so the crash tears it: some sectors or frames kept,
// earlier ones lost. Recovery must treat every such tear as a torn tail
// (frames kept after a lost one never claim to be durable), keep every
// acknowledged record, and never replay a frame of a recycled segment's
// previous life.
func TestCrashUnsyncedGroup(t *testing.T) {
	seeds := int64(30)
	if *long {
		seeds = 400
	}
	for seed := range seeds {
		for dieAfter := int64(1); dieAfter <= 4; dieAfter++ {
			crashUnsyncedGroup(t, seed, dieAfter)
		}
	}
}

func crashUnsyncedGroup(t *testing.T, seed, dieAfter int64) {
	fs := mustFS(t)
	h := newHistory()
	l, _, err := openReplay(t, fs, fuzzOpts(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.run(l, 50+int(seed%13), 0); err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		p := fmt.Appendf(nil, "unsynced %d %s", i, payloadFor(i + int(seed))[:min(150, len(payloadFor(i+int(seed))))])
		lsn, err := l.Append(p, 0)
		if err != nil {
			t.Fatal(err)
		}
		h.appended[lsn] = p
	}
	fs.CrashAfter(dieAfter)
	if err := l.Sync(h.acked + 30); err == nil {
		h.acked += 30
	}
	l.Close()
	fs.Crash(seed)
	what := fmt.Sprintf("seed %d, machine dies after %d ops", seed, dieAfter)
	l, got, err := openReplay(t, fs, fuzzOpts(), h.ckpt)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	h.check(t, got, what)
	l.Close()
}
