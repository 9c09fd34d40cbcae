package extents

import "errors"

var (
	// ErrNoSpace is returned by Alloc, AllocExtents, Reserve and Grow when
	// the request cannot be met: not enough free unreserved blocks, or the
	// maximum AG count reached. Busy blocks do not count as free; the store
	// should force a checkpoint to release them, then grow, before giving up.
	ErrNoSpace = errors.New("cowdb/extents: no space")

	// ErrInvalid is returned for a malformed request: a zero-length
	// extent, an extent outside the data file, touching a header block or
	// crossing an AG boundary, bad Options.
	ErrInvalid = errors.New("cowdb/extents: invalid argument")

	// ErrWrongState is returned when the blocks of an extent are not in the
	// state the call needs (committing blocks that are not staging, freeing
	// or sharing blocks that are not committed, freeing shared blocks). It
	// is a bug in the caller; nothing is changed.
	ErrWrongState = errors.New("cowdb/extents: blocks in the wrong state")

	// ErrUnknownReservation is returned for a ReservationID that was never
	// issued or was already released, or an allocation larger than what is
	// left of the reservation.
	ErrUnknownReservation = errors.New("cowdb/extents: unknown or exhausted reservation")

	// ErrUnknownPin is returned by Unpin for a PinID not pinned.
	ErrUnknownPin = errors.New("cowdb/extents: unknown pin")

	// ErrPinTooOld is returned by Pin for a version older than a block
	// already handed back to the allocator: the reader could see reused
	// blocks.
	ErrPinTooOld = errors.New("cowdb/extents: version too old to pin")

	// ErrTooMany is returned when a bounded table is full: Options.PinsMax
	// pins or Options.ReservationsMax reservations.
	ErrTooMany = errors.New("cowdb/extents: too many pins or reservations")

	// ErrCheckpoint is returned by Seal while another checkpoint is sealed
	// and not yet durable or aborted; by CommitTo, FreeTo, Freeze,
	// CheckpointDurable and AbortCheckpoint for a checkpoint that is not
	// the open one; and by CommitTo and FreeTo after Freeze.
	ErrCheckpoint = errors.New("cowdb/extents: no such open checkpoint")
)
