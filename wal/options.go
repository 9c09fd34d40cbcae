package wal

import (
	"fmt"
	"log/slog"

	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/vfs"
)

// Limits and defaults. They are not part of the on-disk format: a log
// written with other options is read correctly.
const (
	// SegmentSizeDefault is the default size of a segment file, header
	// block included.
	SegmentSizeDefault = 64 << 20
	// SegmentSizeMax bounds Options.SegmentSize and the size a segment
	// header may claim; replay holds one segment in memory at a time.
	SegmentSizeMax = 1 << 30
	// MaxRecordSizeDefault is the default Options.MaxRecordSize.
	MaxRecordSizeDefault = 4 << 20
	// MaxSegmentsDefault is the default Options.MaxSegments.
	MaxSegmentsDefault = 64
	// groupBytesMin is the smallest write buffer: a group commit writes at
	// most about this much (or one maximal record) in one I/O.
	groupBytesMin = 1 << 20
	// pendingBatchesMax bounds the write buffers Append may fill before it
	// writes them itself.
	pendingBatchesMax = 4
)

// Options configure a Log. The zero value of each field means its default.
type Options struct {
	// StoreID identifies the store; every segment header carries it, and a
	// segment with another ID is refused as foreign. Required (non-zero).
	StoreID uint64

	// SegmentSize is the size in bytes of each segment file, including its
	// 4096-byte header block; a multiple of 4096. 0 means
	// SegmentSizeDefault. It must leave room for one maximal record.
	// Existing segments keep the size they were created with.
	SegmentSize int64

	// MaxRecordSize is the largest payload in bytes Commit and Append
	// accept (ErrRecordTooLarge above it). 0 means MaxRecordSizeDefault,
	// or a quarter of SegmentSize if that is smaller.
	MaxRecordSize int

	// MaxSegments bounds the number of segment files; when a new segment
	// is needed and none can be recycled, appends fail with ErrLogFull.
	// 0 means MaxSegmentsDefault.
	MaxSegments int

	// DirectIO chooses O_DIRECT for segment files. The zero value,
	// vfs.DirectIOAuto, uses it where the file system allows.
	DirectIO vfs.DirectIO

	// BeforeFlush, if set, is called by the group leader once per group,
	// before the group's log write, when any record in the group was
	// appended with NeedsDataSync. The store uses it to fdatasync the data
	// file, so data is durable before the record that maps it. An error
	// from it is fatal for the Log.
	BeforeFlush func() error

	// ReadOnly opens the log for Replay only: nothing under dir is
	// created, removed or written (a missing dir is an empty log), and
	// Commit, Append and Recycle return ErrReadOnly.
	ReadOnly bool

	// Logger receives one line per notable event (torn tail ignored,
	// segment created, direct I/O unavailable). nil means no logging.
	Logger *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	if o.SegmentSize == 0 {
		o.SegmentSize = SegmentSizeDefault
	}
	if o.MaxRecordSize == 0 {
		o.MaxRecordSize = int(min(MaxRecordSizeDefault, o.SegmentSize/4))
	}
	if o.MaxSegments == 0 {
		o.MaxSegments = MaxSegmentsDefault
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case o.StoreID == 0:
		return o, fmt.Errorf("%w: StoreID is 0", ErrInvalidOptions)
	case o.MaxRecordSize < 0 || o.MaxRecordSize > format.FramePayloadMax:
		return o, fmt.Errorf("%w: MaxRecordSize %d", ErrInvalidOptions, o.MaxRecordSize)
	case o.SegmentSize%format.SegmentHeaderSize != 0 || o.SegmentSize > SegmentSizeMax ||
		o.SegmentSize < format.SegmentHeaderSize+roundUp(int64(format.FrameSize(o.MaxRecordSize))):
		return o, fmt.Errorf("%w: SegmentSize %d (MaxRecordSize %d)", ErrInvalidOptions, o.SegmentSize, o.MaxRecordSize)
	case o.MaxSegments < 2:
		return o, fmt.Errorf("%w: MaxSegments %d below 2", ErrInvalidOptions, o.MaxSegments)
	}
	return o, nil
}

// roundUp rounds n up to a multiple of vfs.Alignment.
func roundUp(n int64) int64 {
	return (n + vfs.Alignment - 1) &^ (vfs.Alignment - 1)
}
