package wal

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"sync"

	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/vfs"
)

// Log is an open write-ahead log. It is safe for concurrent use by multiple
// goroutines (see the package comment for the order of calls).
type Log struct {
	fs   vfs.FS
	dir  string
	opts Options

	// bufSize is the capacity of every write buffer: room for a partial
	// block plus one maximal frame, and at least groupBytesMin.
	bufSize int
	// warnedDirect is set once the O_DIRECT fallback has been logged.
	// Only Open, Replay and the leader open files, never concurrently.
	warnedDirect bool

	mu struct {
		sync.Mutex
		// cond is broadcast whenever a group ends (durable moved, or err
		// set) or the leader role is released.
		cond *sync.Cond

		replayed bool
		appended bool // an append happened; Replay is over for good
		closed   bool
		err      error // fatal: wraps ErrFailed and the first failure
		leader   bool  // a goroutine is writing a group

		nextLSN format.LSN // LSN of the next record appended
		durable format.LSN // every LSN <= durable is synced

		// chain is the log's live segments in sequence order; the last
		// one receives appends once active is set.
		chain []*segment
		free  []*segment // recyclable segments
		files int        // segment files existing or being created
		// nextNum and nextSeq are the next file number and sequence
		// number to give out; sequence numbers never repeat.
		nextNum uint64
		nextSeq uint64

		active    *segment // segment receiving appends; nil before the first
		activeOff int64    // where the next frame goes in active
		pending   []*batch // encoded, not yet handed to a leader
		tail      []byte   // bytes of active's partial last block already handed over
		bufs      [][]byte // spare write buffers

		stats Stats
	}
}

// Stats counts what a Log has done since Open.
type Stats struct {
	Records      int64 // records appended
	Groups       int64 // groups written and flushed (fdatasyncs of the log)
	BytesWritten int64 // bytes written to segment files by groups
	DataSyncs    int64 // calls of Options.BeforeFlush
	Reused       int64 // recycled segments started anew
	Segments     int   // segment files
	LiveSegments int   // segments holding records not yet recycled
	FreeSegments int   // segment files ready for recycling
	NextLSN      format.LSN
	DurableLSN   format.LSN
}

// Open opens (creating it if needed) the log in directory dir of fs. It
// reads every segment header, so a foreign or damaged segment is reported
// here with an error wrapping format.ErrCorrupt that names the file; it
// does not read records: call Replay next, then append.
func Open(fs vfs.FS, dir string, opts Options) (*Log, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	l := &Log{fs: fs, dir: dir, opts: opts}
	l.bufSize = int(max(groupBytesMin, roundUp(int64(vfs.Alignment+format.FrameSize(opts.MaxRecordSize)))))
	l.mu.cond = sync.NewCond(&l.mu.Mutex)
	l.mu.nextNum, l.mu.nextSeq = 1, 1
	names, err := l.listDir()
	if err != nil {
		return nil, fmt.Errorf("cowdb/wal: %w", err)
	}
	for _, name := range names {
		num, ok := parseSegmentName(name)
		if !ok {
			continue
		}
		s, err := l.loadSegment(num)
		if err != nil {
			l.closeSegments()
			return nil, err
		}
		l.mu.chain = append(l.mu.chain, s)
		l.mu.nextNum = max(l.mu.nextNum, num+1)
		l.mu.nextSeq = max(l.mu.nextSeq, s.hdr.Seq+1)
	}
	slices.SortFunc(l.mu.chain, func(a, b *segment) int { return cmpUint(a.hdr.Seq, b.hdr.Seq) })
	l.mu.files = len(l.mu.chain)
	return l, nil
}

// listDir returns the names in the log directory, creating it (or, read
// only, treating a missing one as empty), removing leftovers of
// interrupted segment creations and making every entry durable.
func (l *Log) listDir() ([]string, error) {
	if l.opts.ReadOnly {
		names, err := l.fs.ReadDir(l.dir)
		if errors.Is(err, vfs.ErrNotExist) {
			return nil, nil
		}
		return names, err
	}
	if err := l.fs.MkdirAll(l.dir); err != nil {
		return nil, err
	}
	if err := l.fs.SyncDir(path.Dir(l.dir)); err != nil {
		return nil, err
	}
	names, err := l.fs.ReadDir(l.dir)
	if err != nil {
		return nil, err
	}
	if err := l.removeTemps(names); err != nil {
		return nil, err
	}
	// A segment renamed into place by a process that died before its
	// SyncDir is visible here but may not be durable; this Log may reuse it
	// without creating (and so syncing the directory for) another segment.
	if err := l.fs.SyncDir(l.dir); err != nil {
		return nil, err
	}
	return names, nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Close writes and syncs every pending record, then closes the segment
// files. It returns the log's failure, if any. Calls waiting in Commit or
// Sync when Close starts are served first; calls after it return ErrClosed.
// Close is idempotent.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.mu.closed {
		l.mu.Unlock()
		return nil
	}
	for l.mu.leader || (l.mu.err == nil && len(l.mu.pending) > 0) {
		if l.mu.leader {
			l.mu.cond.Wait()
		} else {
			l.leadLocked()
		}
	}
	l.mu.closed = true
	err := l.mu.err
	l.mu.cond.Broadcast()
	l.mu.Unlock()
	if cerr := l.closeSegments(); err == nil {
		err = cerr
	}
	return err
}

// closeSegments closes every segment file; only Open and Close call it,
// when no leader runs.
func (l *Log) closeSegments() error {
	var errs []error
	for _, s := range append(slices.Clone(l.mu.chain), l.mu.free...) {
		if s.f != nil {
			errs = append(errs, s.f.Close())
			s.f = nil
		}
	}
	return errors.Join(errs...)
}

// Recycle makes every segment whose records all have LSNs below upTo free
// for reuse by later appends. upTo must be covered by a durable checkpoint:
// the records below it will never be replayed again. The segment receiving
// appends is never recycled. Recycle does no I/O; a recycled segment is
// rewritten only when reused.
func (l *Log) Recycle(upTo format.LSN) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writableLocked(); err != nil {
		return err
	}
	// A segment is done when its successor starts at or below upTo, and
	// only records already durable may be recycled, whatever the caller
	// claims.
	upTo = min(upTo, l.mu.durable+1)
	n := 0
	for n+1 < len(l.mu.chain) && l.mu.chain[n+1].hdr.FirstLSN <= upTo {
		n++
	}
	l.mu.free = append(l.mu.free, l.mu.chain[:n]...)
	l.mu.chain = slices.Delete(l.mu.chain, 0, n)
	return nil
}

// Stats returns the log's counters.
func (l *Log) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.mu.stats
	s.Segments = l.mu.files
	s.LiveSegments = len(l.mu.chain)
	s.FreeSegments = len(l.mu.free)
	s.NextLSN = l.mu.nextLSN
	s.DurableLSN = l.mu.durable
	return s
}

// usableLocked returns why the log cannot be used now, or nil.
func (l *Log) usableLocked() error {
	switch {
	case l.mu.closed:
		return ErrClosed
	case l.mu.err != nil:
		return l.mu.err
	case !l.mu.replayed:
		return ErrNotReplayed
	}
	return nil
}

// writableLocked is usableLocked for calls that write.
func (l *Log) writableLocked() error {
	if l.opts.ReadOnly {
		return ErrReadOnly
	}
	return l.usableLocked()
}

// failLocked records the first fatal failure.
func (l *Log) failLocked(err error) {
	if l.mu.err == nil {
		l.mu.err = fmt.Errorf("%w: %w", ErrFailed, err)
	}
}
