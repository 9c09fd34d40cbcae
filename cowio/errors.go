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

	// ErrBadExtentRecord is returned by DecodeExtentRecord for an encoding
	// that is not a valid extent record. It wraps format.ErrCorrupt.
	ErrBadExtentRecord = fmt.Errorf("cowdb/cowio: malformed extent record: %w", format.ErrCorrupt)
)

// A data block whose checksum does not match is reported as a
// *format.CorruptError of kind format.ErrBadChecksum (so it wraps
// format.ErrCorrupt) naming the file block and the physical block; a mapped
// block past the end of the data file likewise, of kind format.ErrTruncated.
