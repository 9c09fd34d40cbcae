package wal

import (
	"fmt"
	"path"
	"runtime"

	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/vfs"
)

// RecordFlags qualify one appended record.
type RecordFlags uint8

const (
	// NeedsDataSync asks that Options.BeforeFlush run before the group
	// holding the record is written: the record maps data that must be
	// durable first. One call serves the whole group.
	NeedsDataSync RecordFlags = 1 << iota
)

// batch is a run of encoded frames bound for one segment, written in one
// I/O. buf starts at the block-aligned file offset off; when off is inside
// the segment's partial last block, buf begins with that block's bytes
// already written, so rewriting them is harmless (identical bytes).
type batch struct {
	seg      *segment
	off      int64
	buf      []byte
	fresh    bool // seg starts a new life with this batch: write seg.hdr first
	create   bool // seg's file must be created first
	last     format.LSN
	dataSync bool
}

// Commit appends payload as one record and returns its LSN once the record
// is durable. Concurrent commits share one write and one fdatasync. If the
// write or flush fails, the record's fate is unknown (it is all there after
// a crash, or not at all): its LSN is returned with the error, which wraps
// ErrFailed.
func (l *Log) Commit(payload []byte, flags RecordFlags) (format.LSN, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lsn, err := l.appendLocked(payload, flags)
	if err != nil {
		return 0, err
	}
	return lsn, l.syncLocked(lsn)
}

// Append appends payload as one record and returns its LSN without waiting
// for it to be durable; Sync(lsn) makes it so. A crash before then may lose
// it (whole: a record is never partly visible), and every record after it.
// Append writes the pending records itself when too many are waiting.
func (l *Log) Append(payload []byte, flags RecordFlags) (format.LSN, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.mu.pending) >= pendingBatchesMax && l.mu.err == nil && l.mu.replayed && !l.mu.closed {
		if err := l.syncLocked(l.mu.nextLSN - 1); err != nil {
			return 0, err
		}
	}
	return l.appendLocked(payload, flags)
}

// Sync returns once every record with an LSN up to upTo (every record
// appended, if upTo is beyond the last) is durable.
func (l *Log) Sync(upTo format.LSN) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usableLocked(); err != nil {
		return err
	}
	return l.syncLocked(upTo)
}

// appendLocked encodes payload as the next record into a pending batch.
func (l *Log) appendLocked(payload []byte, flags RecordFlags) (format.LSN, error) {
	if err := l.writableLocked(); err != nil {
		return 0, err
	}
	if len(payload) > l.opts.MaxRecordSize {
		return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrRecordTooLarge, len(payload), l.opts.MaxRecordSize)
	}
	size := format.FrameSize(len(payload))
	b, err := l.batchForLocked(size)
	if err != nil {
		return 0, err
	}
	lsn := l.mu.nextLSN
	b.buf = format.AppendFrame(b.buf, format.Frame{LSN: lsn, Seq: b.seg.hdr.Seq, DurableLSN: l.mu.durable, Payload: payload})
	b.last = lsn
	b.dataSync = b.dataSync || flags&NeedsDataSync != 0
	l.mu.nextLSN++
	l.mu.activeOff += int64(size)
	l.mu.appended = true
	l.mu.stats.Records++
	return lsn, nil
}

// batchForLocked returns the pending batch a frame of size bytes goes into,
// starting a new batch, and a new segment, when needed.
func (l *Log) batchForLocked(size int) (*batch, error) {
	if l.mu.active == nil || l.mu.activeOff+int64(size) > l.mu.active.size {
		return l.startSegmentLocked(size)
	}
	if n := len(l.mu.pending); n > 0 {
		last := l.mu.pending[n-1]
		if last.seg == l.mu.active && len(last.buf)+size <= cap(last.buf) {
			return last, nil
		}
	}
	off := l.mu.activeOff &^ (vfs.Alignment - 1)
	b := &batch{seg: l.mu.active, off: off, buf: l.bufLocked()}
	partial := l.mu.tail
	if n := len(l.mu.pending); n > 0 {
		last := l.mu.pending[n-1]
		partial = last.buf[off-last.off:]
	}
	b.buf = append(b.buf, partial[:l.mu.activeOff-off]...)
	l.mu.pending = append(l.mu.pending, b)
	return b, nil
}

// startSegmentLocked reserves a segment for the next frame, recycled if one
// is free and large enough, else a new file, and starts its first batch.
func (l *Log) startSegmentLocked(size int) (*batch, error) {
	need := format.SegmentHeaderSize + int64(size)
	b := &batch{off: format.SegmentHeaderSize, fresh: true}
	for i, s := range l.mu.free {
		if s.size >= need {
			b.seg = s
			l.mu.free = append(l.mu.free[:i], l.mu.free[i+1:]...)
			l.mu.stats.Reused++
			break
		}
	}
	if b.seg == nil {
		if l.mu.files >= l.opts.MaxSegments {
			return nil, fmt.Errorf("%w: %d segments", ErrLogFull, l.mu.files)
		}
		num := l.mu.nextNum
		l.mu.nextNum++
		l.mu.files++
		b.seg = &segment{num: num, name: path.Join(l.dir, segmentName(num)), size: l.opts.SegmentSize}
		b.create = true
	}
	if !b.create && l.mu.nextSeq%2 == b.seg.hdr.Seq%2 {
		// The new header goes in slot Seq mod 2; it must not be the slot
		// holding the current header, or a torn write could leave the file
		// with no valid header at all. Sequence numbers need only grow.
		l.mu.nextSeq++
	}
	b.seg.hdr = format.SegmentHeader{
		StoreID:    l.opts.StoreID,
		Seq:        l.mu.nextSeq,
		FirstLSN:   l.mu.nextLSN,
		DurableLSN: l.mu.durable,
		Size:       b.seg.size,
	}
	l.mu.nextSeq++
	b.buf = l.bufLocked()
	l.mu.chain = append(l.mu.chain, b.seg)
	l.mu.active = b.seg
	l.mu.activeOff = format.SegmentHeaderSize
	l.mu.pending = append(l.mu.pending, b)
	return b, nil
}

// bufLocked returns an empty write buffer of capacity l.bufSize.
func (l *Log) bufLocked() []byte {
	if n := len(l.mu.bufs); n > 0 {
		b := l.mu.bufs[n-1]
		l.mu.bufs = l.mu.bufs[:n-1]
		return b[:0]
	}
	return vfs.AlignedBuf(l.bufSize)[:0]
}

// syncLocked waits until every LSN up to upTo is durable, leading groups
// while nobody else does.
func (l *Log) syncLocked(upTo format.LSN) error {
	upTo = min(upTo, l.mu.nextLSN-1)
	for {
		switch {
		case l.mu.err != nil:
			return l.mu.err
		case l.mu.durable >= upTo:
			return nil
		case l.mu.closed:
			return ErrClosed
		case !l.mu.leader:
			if len(l.mu.pending) == 0 {
				panic("cowdb: assertion failed: wal records neither durable, pending nor in flight")
			}
			l.leadLocked()
		default:
			l.mu.cond.Wait()
		}
	}
}

// leadLocked writes and flushes every pending batch as one group. It is
// called with l.mu held and no leader; it releases l.mu during the I/O.
func (l *Log) leadLocked() {
	if len(l.mu.pending) == 0 {
		return
	}
	l.mu.leader = true
	// Let committers woken by the previous group append before this one
	// is sealed: otherwise committers split into two cohorts that
	// alternate, and each group holds only about half of them.
	l.mu.Unlock()
	runtime.Gosched()
	l.mu.Lock()
	batches := l.mu.pending
	l.mu.pending = nil
	last := batches[len(batches)-1]
	tail := l.mu.activeOff &^ (vfs.Alignment - 1)
	l.mu.tail = append(l.mu.tail[:0], last.buf[tail-last.off:]...)
	l.mu.Unlock()
	written, err := l.writeGroup(batches)
	l.mu.Lock()
	l.mu.leader = false
	if err != nil {
		l.failLocked(err)
	} else {
		l.mu.durable = last.last
		l.mu.stats.Groups++
		l.mu.stats.BytesWritten += written
		for _, b := range batches {
			if b.dataSync {
				l.mu.stats.DataSyncs++
				break
			}
		}
	}
	for _, b := range batches {
		l.mu.bufs = append(l.mu.bufs, b.buf)
	}
	l.mu.cond.Broadcast()
}

// writeGroup runs BeforeFlush if any batch asks for it, prepares new
// segments, writes each batch and syncs each segment written once. It
// returns the bytes written.
func (l *Log) writeGroup(batches []*batch) (int64, error) {
	for _, b := range batches {
		if b.dataSync && l.opts.BeforeFlush != nil {
			if err := l.opts.BeforeFlush(); err != nil {
				return 0, fmt.Errorf("data flush before log write: %w", err)
			}
			break
		}
	}
	var written int64
	var touched []*segment
	for _, b := range batches {
		if err := l.prepareSegment(b); err != nil {
			return written, fmt.Errorf("segment %s: %w", b.seg.name, err)
		}
		n := roundUp(int64(len(b.buf)))
		buf := b.buf[:n]
		clear(buf[len(b.buf):])
		if _, err := b.seg.f.WriteAt(buf, b.off); err != nil {
			return written, fmt.Errorf("write %s at %d: %w", b.seg.name, b.off, err)
		}
		written += n
		if len(touched) == 0 || touched[len(touched)-1] != b.seg {
			touched = append(touched, b.seg)
		}
	}
	for _, s := range touched {
		if err := s.f.Datasync(); err != nil {
			return written, fmt.Errorf("fdatasync %s: %w", s.name, err)
		}
	}
	return written, nil
}

// prepareSegment creates or reheaders b's segment if b starts its life.
func (l *Log) prepareSegment(b *batch) error {
	switch {
	case b.create:
		return l.createSegment(b.seg)
	case b.fresh:
		return l.reheader(b.seg, b.seg.hdr)
	}
	return nil
}
