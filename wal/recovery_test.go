package wal_test

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"testing"

	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/vfs"
	"github.com/cowdb/cowdb/wal"
)

// TestReplayAfterProcessDeath checks what happens when only the process
// dies: a group is written but its fdatasync fails (the process gives up),
// the machine lives on with those bytes unsynced in its cache, a new Log
// replays them and acknowledges new records after them, and only then the
// power fails. Every record the new Log acknowledged must survive, so
// Replay must make durable what it read before anything builds on it.
func TestReplayAfterProcessDeath(t *testing.T) {
	for seed := range int64(16) {
		mem := mustFS(t)
		efs := vfs.WithErrors(mem, nil)
		l, _, err := openReplay(t, efs, smallOpts(), 1)
		if err != nil {
			t.Fatal(err)
		}
		var want [][]byte
		for i := range 3 {
			p := payloadFor(i + 1)
			if _, err := l.Commit(p, 0); err != nil {
				t.Fatal(err)
			}
			want = append(want, p)
		}
		efs.SetInjector(&vfs.Fault{Kind: vfs.OpSync, Index: 1})
		unsynced := bytes.Repeat([]byte{'u'}, 700)
		if _, err := l.Commit(unsynced, 0); !errors.Is(err, wal.ErrFailed) {
			t.Fatalf("commit with failing fdatasync: %v", err)
		}
		l.Close()

		l, got, err := openReplay(t, mem, smallOpts(), 1)
		if err != nil {
			t.Fatal(err)
		}
		checkRecords(t, got, 1, append(want, unsynced))
		want = append(want, unsynced)
		for i := range 3 {
			p := fmt.Appendf(nil, "acknowledged after restart %d", i)
			if _, err := l.Commit(p, 0); err != nil {
				t.Fatal(err)
			}
			want = append(want, p)
		}
		l.Close()

		mem.Crash(seed)
		l, got, err = openReplay(t, mem, smallOpts(), 1)
		if err != nil {
			t.Fatalf("seed %d: power loss after the restart: %v", seed, err)
		}
		checkRecords(t, got, 1, want)
		l.Close()
	}
}

// TestReuseSegmentOfDeadProcess checks a segment file whose creation a dead
// process left half done: renamed into place but its directory entry never
// synced (the SyncDir failed). The machine lives on, so a new Log sees the
// file, and may recycle it and acknowledge records in it without creating
// (and so syncing the directory for) any other segment; a power loss after
// that must not take the file, and those records, away.
func TestReuseSegmentOfDeadProcess(t *testing.T) {
	for seed := range int64(8) {
		mem := mustFS(t)
		efs := vfs.WithErrors(mem, nil)
		l, _, err := openReplay(t, efs, smallOpts(), 1)
		if err != nil {
			t.Fatal(err)
		}
		var failed format.LSN
		for i := 0; failed == 0; i++ {
			if l.Stats().Segments == 4 {
				efs.SetInjector(&vfs.Fault{Kind: vfs.OpSyncDir, Index: 1})
			}
			lsn, err := l.Commit(payloadFor(i), 0)
			if errors.Is(err, vfs.ErrInjected) {
				failed = lsn // segment 5 renamed into place, SyncDir failed
			} else if err != nil {
				t.Fatal(err)
			}
		}
		l.Close()

		// A checkpoint covers every record before the failed one, so the
		// first four segments are free at once and get reused first.
		h := newHistory()
		h.ckpt = failed
		l, _, err = openReplay(t, mem, smallOpts(), h.ckpt)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; l.Stats().Reused < 5 || i%5 != 4; i++ {
			p := fmt.Appendf(nil, "after restart %d %s", i, payloadFor(i))
			lsn, err := l.Commit(p, 0)
			if err != nil {
				t.Fatal(err)
			}
			h.appended[lsn], h.acked = p, lsn
			if lsn > h.ckpt+10 {
				h.ckpt = lsn - 10 // a checkpoint covering all but ten records
			}
			if err := l.Recycle(h.ckpt); err != nil {
				t.Fatal(err)
			}
			if i > 1000 {
				t.Fatalf("segment 5 never reused: %+v", l.Stats())
			}
		}
		if st := l.Stats(); st.Segments != 5 {
			t.Fatalf("the restarted log created a segment: %+v", st)
		}
		l.Close()
		mem.Crash(seed)
		l, got, err := openReplay(t, mem, smallOpts(), h.ckpt)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		h.check(t, got, fmt.Sprintf("seed %d", seed))
		l.Close()
	}
}

// TestReheaderKeepsOldIdentity checks the header slot rule on segments
// reused round robin (two segments, so sequence numbers would otherwise
// come back to the same parity for the same file): every reuse must write
// the slot not holding the current header, so a write torn inside that
// slot's sector still leaves the segment a valid header.
func TestReheaderKeepsOldIdentity(t *testing.T) {
	fs := mustFS(t)
	opts := smallOpts()
	opts.MaxSegments = 2
	l, _, err := openReplay(t, fs, opts, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; l.Stats().Reused < 6; i++ {
		lsn, err := l.Commit(payloadFor(i), 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Recycle(lsn + 1); err != nil {
			t.Fatal(err)
		}
		if i > 10000 {
			t.Fatal("segments never reused")
		}
		for _, name := range []string{"000001.log", "000002.log"} {
			if _, err := fs.Stat(path.Join(testDir, name)); err != nil {
				continue
			}
			block := rawRead(t, fs, name, 0, format.SegmentHeaderSize)
			h0, err0 := format.DecodeSegmentHeader(block)
			h1, err1 := format.DecodeSegmentHeader(block[format.SegmentHeaderSlotStride:])
			if max(h0.Seq, h1.Seq) > 2 && (err0 != nil || err1 != nil || h0.Seq == h1.Seq) {
				t.Fatalf("%s after %d reuses: slot 0 %+v (%v), slot 1 %+v (%v)",
					name, l.Stats().Reused, h0, err0, h1, err1)
			}
		}
	}
	l.Close()
}

// TestCrashDuringRecovery crashes the machine at every mutating operation
// of a recovery (Open's directory work, Replay's syncs, the first commits
// after it) that follows a crash which left unsynced records behind, and
// requires the next recovery to keep every acknowledged record and the
// records of the interrupted recovery's acknowledged commits.
func TestCrashDuringRecovery(t *testing.T) {
	for k := int64(1); ; k++ {
		fs := mustFS(t)
		h := newHistory()
		l, _, err := openReplay(t, fs, fuzzOpts(), 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.run(l, 30, 0); err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			p := fmt.Appendf(nil, "unsynced %d", i)
			lsn, err := l.Append(p, 0)
			if err != nil {
				t.Fatal(err)
			}
			h.appended[lsn] = p
		}
		fs.CrashAfter(1) // the group's write lands, its fdatasync does not
		l.Close()
		fs.Crash(k)

		fs.CrashAfter(k)
		l, got, err := openReplay(t, fs, fuzzOpts(), h.ckpt)
		if err == nil {
			h.check(t, got, fmt.Sprintf("crash point %d: first recovery", k))
			if err := h.run(l, 12, 100); err != nil && !errors.Is(err, vfs.ErrCrashed) {
				t.Fatalf("crash point %d: %v", k, err)
			}
			l.Close()
		}
		reached := fs.Crashed()
		fs.Crash(k + 1000)
		l, got, err = openReplay(t, fs, fuzzOpts(), h.ckpt)
		if err != nil {
			t.Fatalf("crash point %d: second recovery: %v", k, err)
		}
		h.check(t, got, fmt.Sprintf("crash point %d: second recovery", k))
		l.Close()
		if !reached {
			t.Logf("%d crash points", k-1)
			return // the whole recovery and workload ran without dying
		}
	}
}
