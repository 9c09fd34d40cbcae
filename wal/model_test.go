package wal_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"pgregory.net/rapid"

	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/vfs"
	"github.com/cowdb/cowdb/wal"
)

// logMachine drives a Log on a MemFS through random sequences of commits,
// appends, syncs, checkpoints (Recycle), clean reopens and crashes, against
// the history model of the crash tests.
type logMachine struct {
	fs *vfs.MemFS
	l  *wal.Log
	h  *history
	n  int // records appended so far, for payloads
}

func (m *logMachine) reopen(t *rapid.T, what string) {
	l, got, err := openReplay(t, m.fs, fuzzOpts(), m.h.ckpt)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	m.h.check(t, got, what)
	m.l = l
}

func (m *logMachine) payload(t *rapid.T) []byte {
	m.n++
	size := rapid.IntRange(0, 1200).Draw(t, "size")
	return append(fmt.Appendf(nil, "%d:", m.n), bytes.Repeat([]byte{byte(m.n)}, size)...)
}

func (m *logMachine) Commit(t *rapid.T) {
	p := m.payload(t)
	flags := wal.RecordFlags(rapid.IntRange(0, 1).Draw(t, "flags"))
	lsn, err := m.l.Commit(p, flags)
	if errors.Is(err, wal.ErrLogFull) {
		m.makeRoom(t)
		lsn, err = m.l.Commit(p, flags)
	}
	if err != nil {
		t.Fatalf("commit: %v", err)
	}
	m.h.appended[lsn] = p
	m.h.acked = lsn
}

func (m *logMachine) Append(t *rapid.T) {
	p := m.payload(t)
	lsn, err := m.l.Append(p, 0)
	if errors.Is(err, wal.ErrLogFull) {
		m.makeRoom(t)
		lsn, err = m.l.Append(p, 0)
	}
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	m.h.appended[lsn] = p
}

func (m *logMachine) Sync(t *rapid.T) {
	if err := m.l.Sync(format.LSN(len(m.h.appended)) + m.h.ckpt + 1000); err != nil {
		t.Fatalf("sync: %v", err)
	}
	m.h.acked = m.l.Stats().DurableLSN
}

func (m *logMachine) Checkpoint(t *rapid.T) {
	m.h.ckpt = m.h.acked + 1
	if err := m.l.Recycle(m.h.ckpt); err != nil {
		t.Fatalf("recycle: %v", err)
	}
}

// makeRoom answers ErrLogFull as the store would: sync, checkpoint,
// recycle.
func (m *logMachine) makeRoom(t *rapid.T) {
	m.Sync(t)
	m.Checkpoint(t)
}

func (m *logMachine) Reopen(t *rapid.T) {
	if err := m.l.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	m.h.acked = format.LSN(0)
	for lsn := range m.h.appended {
		m.h.acked = max(m.h.acked, lsn) // Close syncs everything
	}
	m.reopen(t, "clean reopen")
}

func (m *logMachine) Crash(t *rapid.T) {
	seed := rapid.Int64().Draw(t, "seed")
	m.fs.CrashAfter(0)
	m.l.Close()
	m.fs.Crash(seed)
	m.reopen(t, fmt.Sprintf("crash seed %d", seed))
}

func (m *logMachine) Check(t *rapid.T) {}

// TestLogModel checks random sequences of operations, including clean
// reopens and crashes at any point between them, against the model: after
// every reopen the log holds every acknowledged record from the checkpoint
// on, only records that were appended, each whole, and stays usable.
func TestLogModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := &logMachine{fs: mustFS(t), h: newHistory()}
		m.reopen(t, "first open")
		t.Repeat(rapid.StateMachineActions(m))
		m.l.Close()
	})
}
