package cowio

import (
	"errors"
	"fmt"

	"github.com/cowdb/cowdb/internal/format"
)

// Errors returned by cowio. Each is testable with errors.Is; cowio wraps
// them with the context of the call (the size, the offset, the block).
var (
	// ErrNoSpace is the no-space sentinel of the Space contract: a Space
	// that cannot allocate returns an error wrapping it (it may wrap
	// extents.ErrNoSpace too), and WriteNew passes it on wrapped.
	ErrNoSpace = errors.New("cowdb/cowio: no space")

	// ErrInvalidOffset is returned by ReadAt for a negative offset.
	ErrInvalidOffset = errors.New("cowdb/cowio: invalid offset")

	// ErrInvalidSize is returned by ReadAt for a value size below 0 or
	// above ReadSizeMax.
	ErrInvalidSize = errors.New("cowdb/cowio: invalid value size")

	// ErrTooLarge is returned by WriteNew for a value above WriteMax bytes.
	ErrTooLarge = errors.New("cowdb/cowio: value too large")

	// ErrInvalidOptions is returned by NewWriter for a bad block size or
	// option; the message names the field.
	ErrInvalidOptions = errors.New("cowdb/cowio: invalid options")

	// ErrBadMapping is returned when a Mapping is malformed: entries out of
	// order or overlapping, an empty extent, a block 0 start, a checksum
	// list of the wrong length, or an address past what a data file can
	// hold. Mappings are read from disk, so it wraps format.ErrCorrupt.
	ErrBadMapping = fmt.Errorf("cowdb/cowio: malformed mapping: %w", format.ErrCorrupt)

	// ErrUnaligned is returned by Inode.WriteAt for an offset or length
	// that is not a multiple of the block size.
	ErrUnaligned = errors.New("cowdb/cowio: unaligned write")

	// ErrOutOfOrder is returned by Inode.Apply and Inode.TruncateBlocks for
	// an LSN not above that of the inode's last committed change: commits
	// of one inode must be applied in log order.
	ErrOutOfOrder = errors.New("cowdb/cowio: committed change out of log order")

	// ErrNotInFlight is returned by Inode.Commit and Inode.Apply for a
	// remap that is not a write in flight on that inode (applied or
	// aborted already, or another inode's).
	ErrNotInFlight = errors.New("cowdb/cowio: remap not in flight")

	// ErrBadExtentRecord is returned by DecodeExtentRecord for an encoding
	// that is not a valid extent record. It wraps format.ErrCorrupt.
	ErrBadExtentRecord = fmt.Errorf("cowdb/cowio: malformed extent record: %w", format.ErrCorrupt)
)

// A data block whose checksum does not match is reported as a
// *format.CorruptError of kind format.ErrBadChecksum (so it wraps
// format.ErrCorrupt) naming the file block and the physical block; a mapped
// block past the end of the data file likewise, of kind format.ErrTruncated.
