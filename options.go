package cowdb

import (
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"time"

	"github.com/cowdb/cowdb/vfs"
)

// SyncMode says when a write is durable.
type SyncMode int

const (
	// SyncAlways, the default, makes every write call durable before it
	// returns. Concurrent callers share one log flush (group commit).
	SyncAlways SyncMode = iota
	// SyncNever returns once a write is logged in memory: it is durable at
	// the next DB.Sync or checkpoint. A crash may lose the writes since
	// then, whole, but never corrupts the store.
	SyncNever
)

// DirectIOMode says whether the data file and the log use direct I/O.
type DirectIOMode = vfs.DirectIO

const (
	// DirectIOAuto, the default, uses O_DIRECT; where the file system
	// refuses it (tmpfs), it falls back to buffered I/O with fdatasync and
	// logs one line. Durability is the same either way.
	DirectIOAuto = vfs.DirectIOAuto
	// DirectIORequired fails Open where the file system refuses O_DIRECT.
	DirectIORequired = vfs.DirectIORequired
	// DirectIOOff never uses O_DIRECT.
	DirectIOOff = vfs.DirectIOOff
)

// Options configure Open. A nil *Options means every default; a zero field
// means that field's default.
type Options struct {
	// FS is the file system the store lives on. Default: the operating
	// system's (vfs.OS). Tests pass vfs.NewMem() to simulate crashes.
	FS vfs.FS

	// BlockSize is the unit of allocation and of direct I/O, in bytes: a
	// power of two from 4096 to 65536. Default 4096. Fixed when the store
	// is created; opening an existing store with another value is an error.
	BlockSize int

	// GroupSize is the size of one allocation group, in bytes: a multiple
	// of BlockSize holding at least 64 blocks. Default 128 MiB. Fixed when
	// the store is created.
	GroupSize int64

	// InitialSize is the data file's size when the store is created, in
	// bytes, rounded up to whole allocation groups. Default one group.
	InitialSize int64

	// MaxSize bounds the data file, in bytes; past it writes fail with
	// ErrNoSpace. 0 means no bound but the device's.
	MaxSize int64

	// GrowSize is how much the data file grows by when it fills, in
	// bytes, rounded up to whole allocation groups. Default one group.
	GrowSize int64

	// CacheSize is the memory budget of the clean block cache (B-tree
	// nodes and data blocks), in bytes. Default 64 MiB.
	CacheSize int64

	// Sync says when writes are durable. Default SyncAlways.
	Sync SyncMode

	// ReadOnly opens the store for reading only: writes return
	// ErrReadOnly, no recovery is written back, and other ReadOnly openers
	// may share the store (never a writer).
	ReadOnly bool

	// InlineMax is the largest value, in bytes, stored inline in the
	// B-tree; larger values are stored in extents. Default 512; at most
	// maxInline.
	InlineMax int

	// DeferredWriteMax is the largest aligned blob write, in bytes, that
	// still takes the logged page-cache route like an unaligned write (one
	// log write now, the block written back later) instead of going
	// straight to new blocks (a data write and sync, then the log). 0
	// means the default, 4096: measured, 4 KiB random overwrites run 2.5×
	// faster durable each and about 2.7× with a sync every 16 writes,
	// writeback included, for about twice the bytes written (2.2 per user
	// byte instead of 1.2). Negative: every aligned write goes to new
	// blocks. At most 1 MiB (and a quarter of a log record).
	DeferredWriteMax int

	// CheckpointInterval is the longest time between checkpoints while
	// there are writes to checkpoint. Default 30s.
	CheckpointInterval time.Duration

	// CheckpointWALSize starts a checkpoint once this many bytes of log
	// have accumulated since the last one. Default 64 MiB.
	CheckpointWALSize int64

	// Logger receives the store's rare operational messages (recovery,
	// fallbacks). Default: slog.Default().
	Logger *slog.Logger

	// DirectIO says whether to use O_DIRECT. Default DirectIOAuto.
	DirectIO DirectIOMode

	// WALSegmentSize is the size of each write-ahead log segment file, in
	// bytes, a multiple of 4096 of at least minWALSegmentSize. Segments are
	// preallocated and recycled. Default 0: the wal package's default
	// (64 MiB). Tests use small segments.
	WALSegmentSize int64
}

// Defaults and bounds of Options.
const (
	defaultBlockSize          = 4096
	minBlockSize              = 4096
	maxBlockSize              = 65536
	defaultGroupSize          = 128 << 20
	minGroupBlocks            = 64
	defaultCacheSize          = 64 << 20
	minCacheSize              = 1 << 20
	defaultInlineMax          = 512
	defaultDeferredWrite      = 4096
	maxDeferredWrite          = 1 << 20
	maxInline                 = 1024
	defaultCheckpointInterval = 30 * time.Second
	defaultCheckpointWALSize  = 64 << 20
	minWALSegmentSize         = 256 << 10
)

// ErrInvalidOptions is returned by Open when an Options field is out of its
// documented range; the message names the field.
var ErrInvalidOptions = errors.New("cowdb: invalid options")

// withDefaults returns a copy of o (which may be nil) with every zero field
// set to its default, or an error naming the first invalid field.
func (o *Options) withDefaults() (Options, error) {
	var r Options
	if o != nil {
		r = *o
	}
	if r.FS == nil {
		r.FS = vfs.OS
	}
	setDefault(&r.BlockSize, defaultBlockSize)
	setDefault(&r.GroupSize, defaultGroupSize)
	setDefault(&r.InitialSize, r.GroupSize)
	setDefault(&r.GrowSize, r.GroupSize)
	setDefault(&r.CacheSize, defaultCacheSize)
	setDefault(&r.InlineMax, defaultInlineMax)
	setDefault(&r.DeferredWriteMax, defaultDeferredWrite)
	setDefault(&r.CheckpointInterval, defaultCheckpointInterval)
	setDefault(&r.CheckpointWALSize, defaultCheckpointWALSize)
	if r.Logger == nil {
		r.Logger = slog.Default()
	}
	return r, r.validate()
}

func setDefault[T comparable](field *T, def T) {
	var zero T
	if *field == zero {
		*field = def
	}
}

// validate checks every field of an Options whose defaults are filled in.
func (o *Options) validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s %s", ErrInvalidOptions, field, fmt.Sprintf(format, args...))
	}
	switch {
	case o.BlockSize < minBlockSize || o.BlockSize > maxBlockSize || bits.OnesCount(uint(o.BlockSize)) != 1:
		return bad("BlockSize", "is %d; it must be a power of two from %d to %d", o.BlockSize, minBlockSize, maxBlockSize)
	case o.GroupSize%int64(o.BlockSize) != 0 || o.GroupSize/int64(o.BlockSize) < minGroupBlocks:
		return bad("GroupSize", "is %d; it must be a multiple of BlockSize (%d) holding at least %d blocks", o.GroupSize, o.BlockSize, minGroupBlocks)
	case o.InitialSize < 0:
		return bad("InitialSize", "is %d; it must not be negative", o.InitialSize)
	case o.MaxSize < 0:
		return bad("MaxSize", "is %d; it must not be negative", o.MaxSize)
	case o.MaxSize > 0 && o.MaxSize < o.InitialSize:
		return bad("MaxSize", "is %d, below InitialSize %d", o.MaxSize, o.InitialSize)
	case o.GrowSize < 0:
		return bad("GrowSize", "is %d; it must not be negative", o.GrowSize)
	case o.CacheSize < minCacheSize:
		return bad("CacheSize", "is %d; it must be at least %d", o.CacheSize, minCacheSize)
	case o.Sync != SyncAlways && o.Sync != SyncNever:
		return bad("Sync", "is %d; it must be SyncAlways or SyncNever", o.Sync)
	case o.InlineMax < 0 || o.InlineMax > maxInline:
		return bad("InlineMax", "is %d; it must be from 0 to %d", o.InlineMax, maxInline)
	case o.DeferredWriteMax > maxDeferredWrite:
		return bad("DeferredWriteMax", "is %d; it must be at most %d", o.DeferredWriteMax, maxDeferredWrite)
	case o.CheckpointInterval < 0:
		return bad("CheckpointInterval", "is %v; it must not be negative", o.CheckpointInterval)
	case o.CheckpointWALSize < 0:
		return bad("CheckpointWALSize", "is %d; it must not be negative", o.CheckpointWALSize)
	case o.DirectIO != DirectIOAuto && o.DirectIO != DirectIORequired && o.DirectIO != DirectIOOff:
		return bad("DirectIO", "is %v; it must be DirectIOAuto, DirectIORequired or DirectIOOff", o.DirectIO)
	}
	return nil
}
