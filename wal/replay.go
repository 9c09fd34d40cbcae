package wal

import (
	"errors"
	"fmt"
	"slices"

	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/vfs"
)

// evidenceChecksMax bounds the checksums replay computes while looking for
// frames after a bad one, so hostile bytes cannot make the search quadratic.
// Running out of it is reported as corruption: that many frames claiming to
// belong to the segment's life and to follow a durable point cannot be a
// torn tail.
const evidenceChecksMax = 1024

// Replay calls fn, in LSN order, with every valid record whose LSN is at
// least from (0 meaning 1), stopping at the first invalid record. If that
// record had been acknowledged (a later valid frame or segment header says
// its LSN was durable), Replay returns an error wrapping format.ErrCorrupt
// that names the segment file and byte offset; otherwise the invalid record
// and all after it are a torn tail and are ignored, and later appends
// continue from the last valid LSN. An error from fn is returned unchanged
// and ends the replay (Replay may then be called again).
//
// from is the LSN the caller's checkpoint needs replayed from; the log must
// reach it: every record before from must have been durable (Sync) before
// the checkpoint that covers it was. Segments wholly before from become
// free for recycling.
//
// Before it returns, a writable log fdatasyncs the segments it replayed:
// what it read may be bytes a dead process wrote but never synced, and
// later appends claim them durable. A failure there is fatal (ErrFailed).
//
// Replay holds one segment in memory at a time (SegmentSize bytes, 64 MiB
// by default). payload aliases that buffer: fn must copy what it keeps. fn
// must not call methods of the Log. Replay must be called before the first
// append and cannot be called after it.
func (l *Log) Replay(from format.LSN, fn func(lsn format.LSN, payload []byte) error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.mu.closed:
		return ErrClosed
	case l.mu.appended:
		return ErrReplayed
	}
	from = max(from, 1)
	segs := append(slices.Clone(l.mu.chain), l.mu.free...)
	slices.SortFunc(segs, func(a, b *segment) int { return cmpUint(a.hdr.Seq, b.hdr.Seq) })
	r := replayer{l: l, segs: segs, from: from, fn: fn}
	if err := r.run(); err != nil {
		return err
	}
	if err := r.syncChain(); err != nil {
		l.failLocked(err)
		return l.mu.err
	}
	l.mu.chain, l.mu.free = r.chain, r.free
	l.mu.nextLSN, l.mu.durable = r.next, r.next-1
	l.mu.replayed = true
	return nil
}

// replayer is the state of one Replay.
type replayer struct {
	l     *Log
	segs  []*segment // every segment, in sequence order
	from  format.LSN
	fn    func(format.LSN, []byte) error
	buf   []byte
	next  format.LSN // LSN the next valid record must have
	chain []*segment
	free  []*segment
}

func (r *replayer) run() error {
	if len(r.segs) == 0 {
		r.next = r.from
		return nil
	}
	start := -1
	for i, s := range r.segs {
		if s.hdr.FirstLSN <= r.from {
			start = i
		}
	}
	if start < 0 {
		s := r.segs[0]
		return format.Corruptf(s.where(0), format.ErrMalformed,
			"log starts at LSN %d, replay needs LSN %d", s.hdr.FirstLSN, r.from)
	}
	r.free = append(r.free, r.segs[:start]...)
	r.next = r.segs[start].hdr.FirstLSN
	for cur := start; cur >= 0; {
		next, err := r.segment(cur)
		if err != nil {
			return err
		}
		cur = next
	}
	if r.next < r.from {
		s := r.chain[len(r.chain)-1]
		return format.Corruptf(s.where(0), format.ErrTruncated,
			"log ends at LSN %d, replay needs LSN %d", r.next-1, r.from)
	}
	return nil
}

// segment replays segs[cur], checks that what follows its last valid
// record proves no acknowledged record lost, and returns the index of the
// next segment of the chain, or -1 at the end of the log.
func (r *replayer) segment(cur int) (int, error) {
	s := r.segs[cur]
	r.chain = append(r.chain, s)
	if err := r.read(s); err != nil {
		return -1, err
	}
	off, err := r.records(s)
	if err != nil {
		return -1, err
	}
	bad := func(detail string, args ...any) error {
		kind := badKind(r.buf[off:s.size], s.hdr.Seq, r.next)
		return format.Corruptf(s.where(off), kind,
			"record LSN %d invalid but acknowledged: "+detail, append([]any{r.next}, args...)...)
	}
	if p, found := r.evidence(s, off); found {
		return -1, bad("valid frame at offset %d follows it", p)
	}
	next := -1
	for j := cur + 1; j < len(r.segs); j++ {
		if r.segs[j].hdr.FirstLSN == r.next {
			next = j
			break
		}
	}
	end := len(r.segs)
	if next >= 0 {
		end = next
	}
	for _, g := range r.segs[cur+1 : end] {
		if g.hdr.FirstLSN < r.next {
			return -1, format.Corruptf(g.where(0), format.ErrMalformed,
				"segment starts at LSN %d, inside the log before LSN %d", g.hdr.FirstLSN, r.next)
		}
		if g.hdr.DurableLSN >= r.next {
			return -1, bad("segment %s header says LSN %d durable", g.name, g.hdr.DurableLSN)
		}
		if err := r.read(g); err != nil {
			return -1, err
		}
		if p, found := r.evidence(g, format.SegmentHeaderSize); found {
			return -1, bad("valid frame in %s at offset %d follows it", g.name, p)
		}
		r.free = append(r.free, g)
	}
	if next < 0 && off < s.size && format.FrameSeqAt(r.buf[off:s.size]) == s.hdr.Seq {
		r.l.opts.Logger.Warn("cowdb/wal: torn tail ignored", "where", s.where(off), "lsn", r.next)
	}
	return next, nil
}

// syncChain makes durable what replay read from the log's segments. The
// bytes may have been read from the cache of a machine that is still up
// after the previous process died between a write and its fdatasync; they
// become the durable LSN that new frames and segment headers claim, so they
// must be on stable storage before anything is appended after them (else a
// later power loss loses them and the new claims turn a torn tail into
// apparent corruption). A read-only log appends nothing and syncs nothing.
func (r *replayer) syncChain() error {
	if r.l.opts.ReadOnly {
		return nil
	}
	for _, s := range r.chain {
		if err := s.f.Datasync(); err != nil {
			return fmt.Errorf("fdatasync %s after replay: %w", s.name, err)
		}
	}
	return nil
}

// read reads segment s into r.buf[:s.size].
func (r *replayer) read(s *segment) error {
	if int64(len(r.buf)) < s.size {
		r.buf = vfs.AlignedBuf(int(s.size))
	}
	if _, err := s.f.ReadAt(r.buf[:s.size], 0); err != nil {
		return fmt.Errorf("cowdb/wal: read %s: %w", s.name, err)
	}
	return nil
}

// records yields the valid records of s (in r.buf) and returns the offset
// of the first invalid one (or the end of the segment).
func (r *replayer) records(s *segment) (int64, error) {
	off := int64(format.SegmentHeaderSize)
	for off < s.size {
		f, n, err := format.DecodeFrame(r.buf[off:s.size], format.FramePayloadMax)
		if err != nil || f.Seq != s.hdr.Seq || f.LSN != r.next {
			break
		}
		if f.LSN >= r.from {
			if err := r.fn(f.LSN, f.Payload); err != nil {
				return off, err
			}
		}
		r.next++
		off += int64(n)
	}
	return off, nil
}

// evidence looks in s (in r.buf) from offset off on for a valid frame of
// s's life that says LSN r.next was durable, and returns its offset.
func (r *replayer) evidence(s *segment, off int64) (int64, bool) {
	checks := 0
	for p := off; p+format.FrameHeaderSize <= s.size; p += format.FrameAlign {
		b := r.buf[p:s.size]
		if format.FrameSeqAt(b) != s.hdr.Seq || !claimsDurable(b, r.next) {
			continue
		}
		if checks++; checks > evidenceChecksMax {
			return p, true
		}
		if f, _, err := format.DecodeFrame(b, format.FramePayloadMax); err == nil && f.DurableLSN >= r.next {
			return p, true
		}
	}
	return 0, false
}

// claimsDurable reads, unchecked, whether the frame header at b[0] says
// LSN lsn was durable: a cheap filter before the checksum.
func claimsDurable(b []byte, lsn format.LSN) bool {
	return format.FrameDurableAt(b) >= lsn
}

// badKind returns the kind of damage of the frame at b[0], expected to
// belong to life seq and carry LSN lsn.
func badKind(b []byte, seq uint64, lsn format.LSN) error {
	f, _, err := format.DecodeFrame(b, format.FramePayloadMax)
	var ce *format.CorruptError
	switch {
	case errors.As(err, &ce):
		return ce.Err
	case err != nil:
		return format.ErrMalformed
	case f.Seq != seq:
		return format.ErrMisplaced
	}
	return format.ErrMalformed
}
