package wal

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/vfs"
)

// segment is one segment file. Its fields are written by Open, Replay and
// the group leader; the leader is the only one touching a segment's file
// while appends run, and the others run before appends start.
type segment struct {
	num  uint64 // file number: wal/NNNNNN.log
	name string // full path
	f    vfs.File
	size int64                // bytes, header block included
	hdr  format.SegmentHeader // valid header of the current life; Seq 0 if none
}

// segmentName returns the file name of segment file number num.
func segmentName(num uint64) string { return fmt.Sprintf("%06d.log", num) }

// parseSegmentName returns the file number of a segment file name, or false
// if name is not one.
func parseSegmentName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, ".log")
	if !ok || len(digits) < 6 {
		return 0, false
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	return n, err == nil && n > 0
}

// where names a place in s for corruption reports.
func (s *segment) where(off int64) string {
	return fmt.Sprintf("wal segment %s offset %d", path.Base(s.name), off)
}

// openFile opens a segment file in the log's direct I/O mode.
func (l *Log) openFile(name string, flag vfs.OpenFlag) (vfs.File, error) {
	f, fellBack, err := vfs.OpenDirect(l.fs, name, flag, l.opts.DirectIO)
	if err != nil {
		return nil, err
	}
	if fellBack && !l.warnedDirect {
		l.warnedDirect = true
		l.opts.Logger.Warn("cowdb/wal: file system refuses O_DIRECT, using buffered I/O", "file", name)
	}
	return f, nil
}

// loadSegment opens segment file num and decodes its header: the valid slot
// with the higher sequence number. A file with no valid slot, a slot of
// another store, or a header larger than the file is corruption.
func (l *Log) loadSegment(num uint64) (*segment, error) {
	s := &segment{num: num, name: path.Join(l.dir, segmentName(num))}
	flag := vfs.ReadWrite
	if l.opts.ReadOnly {
		flag = 0
	}
	f, err := l.openFile(s.name, flag)
	if err != nil {
		return nil, fmt.Errorf("cowdb/wal: open segment: %w", err)
	}
	s.f = f
	fail := func(err error) (*segment, error) {
		f.Close()
		return nil, err
	}
	info, err := f.Stat()
	if err != nil {
		return fail(fmt.Errorf("cowdb/wal: stat segment: %w", err))
	}
	if info.Size < format.SegmentHeaderSize {
		return fail(format.Corruptf(s.where(0), format.ErrTruncated, "file of %d bytes", info.Size))
	}
	block := vfs.AlignedBuf(format.SegmentHeaderSize)
	if _, err := f.ReadAt(block, 0); err != nil {
		return fail(fmt.Errorf("cowdb/wal: read segment header %s: %w", s.name, err))
	}
	var slotErr error
	for i := range 2 {
		off := int64(i * format.SegmentHeaderSlotStride)
		h, err := format.DecodeSegmentHeader(block[off:])
		switch {
		case err != nil:
			if slotErr == nil {
				slotErr = format.Locate(err, s.where(off))
			}
		case h.StoreID != l.opts.StoreID:
			return fail(format.Corruptf(s.where(off), format.ErrForeign,
				"store ID %#x, expected %#x", h.StoreID, l.opts.StoreID))
		case h.Size > info.Size || h.Size > SegmentSizeMax:
			return fail(format.Corruptf(s.where(off), format.ErrTruncated,
				"header claims %d bytes, file has %d", h.Size, info.Size))
		case h.Seq > s.hdr.Seq:
			s.hdr = h
		}
	}
	if s.hdr.Seq == 0 {
		return fail(slotErr)
	}
	s.size = s.hdr.Size
	return s, nil
}

// createSegment creates the file of reserved segment s (num, name, size
// and hdr set): fallocated and zero-filled (writing into allocated but
// unwritten extents costs about 1.7x per fdatasync on ext4), header written,
// all synced, under a temporary name that is then renamed into place and
// made durable with SyncDir. A .log file therefore always has a durable,
// complete header.
func (l *Log) createSegment(s *segment) error {
	tmp := s.name + ".tmp"
	f, err := l.openFile(tmp, vfs.Create|vfs.ReadWrite)
	if err != nil {
		return err
	}
	if err := l.fillSegment(f, s.size, s.hdr); err != nil {
		f.Close()
		l.fs.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := l.fs.Rename(tmp, s.name); err != nil {
		return err
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return err
	}
	if s.f, err = l.openFile(s.name, vfs.ReadWrite); err != nil {
		return err
	}
	l.opts.Logger.Info("cowdb/wal: segment created", "file", s.name, "bytes", s.size)
	return nil
}

// fillSegment preallocates f, zero-fills it, writes header h into its slot
// and syncs.
func (l *Log) fillSegment(f vfs.File, size int64, h format.SegmentHeader) error {
	if err := f.Fallocate(0, size); err != nil {
		return err
	}
	zeros := vfs.AlignedBuf(int(min(size, groupBytesMin)))
	for off := int64(0); off < size; off += int64(len(zeros)) {
		n := min(int64(len(zeros)), size-off)
		if _, err := f.WriteAt(zeros[:n], off); err != nil {
			return err
		}
	}
	block := zeros[:format.SegmentHeaderSize]
	clear(block)
	slot := h.Seq % 2 * format.SegmentHeaderSlotStride
	format.EncodeSegmentHeader(block[slot:], h)
	if _, err := f.WriteAt(block, 0); err != nil {
		return err
	}
	return f.Datasync()
}

// reheader starts a new life of recycled segment s with header h (the
// caller sets s.hdr, choosing h.Seq of the other parity than the current
// header's): it rewrites only the slot of h's parity, keeping the other
// slot's bytes, and syncs, so no frame of the new life is written before
// the header that makes it valid is durable. A torn write leaves the
// current header's slot intact.
func (l *Log) reheader(s *segment, h format.SegmentHeader) error {
	block := vfs.AlignedBuf(format.SegmentHeaderSize)
	if _, err := s.f.ReadAt(block, 0); err != nil {
		return err
	}
	slot := h.Seq % 2 * format.SegmentHeaderSlotStride
	format.EncodeSegmentHeader(block[slot:], h)
	if _, err := s.f.WriteAt(block, 0); err != nil {
		return err
	}
	return s.f.Datasync()
}

// removeTemps removes segment files whose creation a crash interrupted; the
// caller syncs the directory.
func (l *Log) removeTemps(names []string) error {
	for _, name := range names {
		if strings.HasSuffix(name, ".log.tmp") {
			if err := l.fs.Remove(path.Join(l.dir, name)); err != nil && !errors.Is(err, vfs.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}
