// Package record encodes the logical operations that one WAL record
// batches (DESIGN §5): the payload the wal package carries without looking
// inside. A batch is applied all or nothing, so one Update transaction, one
// Put of a large value (its inode and every remap), or one Snapshot is one
// batch.
//
// Replay must be deterministic, so every operation names exactly what it
// changes: a remap names the physical blocks it maps and their data
// checksums, a put carries the whole new inode record, a clone names the
// inode it creates. Derived effects (reference counts, frees) are not logged;
// replay recomputes them the same way the first execution did.
//
// record never does I/O and holds no state. Decode validates every length
// against the bytes actually present and against the named limits below, and
// returns an error wrapping format.ErrCorrupt rather than panicking, whatever
// the input. Its functions are safe for concurrent use.
//
// # Encoding
//
// The constants and the layout are part of the on-disk format (they live in
// the WAL). Integers are unsigned varints (encoding/binary Uvarint) unless
// noted; byte strings are a uvarint length followed by the bytes.
//
//	batch:  version (1 byte, = Version) | count (uvarint) | count × op
//	op:     kind (1 byte) | the kind's fields, in the order of Op's fields
//	        as listed for each Kind below
//
// A data checksum list (Sums) is a uvarint count followed by count
// little-endian uint64 values, one per block of the remapped range.
package record

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cowdb/cowdb/internal/format"
)

// Version is the batch encoding version written in the first byte.
const Version = 1

// Limits of one operation. Decode refuses anything larger, so a hostile
// length can never make it allocate more than the record holds.
const (
	// KeySizeMax bounds Key and Dst: the public API's 1024-byte keys.
	KeySizeMax = 1024
	// NameSizeMax bounds snapshot names.
	NameSizeMax = 255
	// OpsPerBatchMax bounds the operations of one batch.
	OpsPerBatchMax = 1 << 20
)

// Kind says what an operation does and which fields of Op it uses.
type Kind uint8

// The operation kinds. Their values are part of the on-disk format.
const (
	// Put sets Key's inode record: Key, Inode, Size, Flags, Value (the
	// inline value, or empty for a blob). Whatever Key held before is
	// released.
	Put Kind = 1
	// Delete removes Key and releases what it held: Key.
	Delete Kind = 2
	// Remap maps file blocks [FileBlock, FileBlock+Len) of Inode to
	// physical blocks [Phys, Phys+Len), whose data checksums are Sums; the
	// blocks previously mapped there lose a reference: Inode, FileBlock,
	// Phys, Len, Sums.
	Remap Kind = 3
	// Truncate sets Key's (inode Inode's) size to Size, releasing the
	// blocks past it: Key, Inode, Size.
	Truncate Kind = 4
	// DeferredWrite writes Value at byte Off of Inode through the page
	// cache; writeback later turns it into remaps: Inode, Off, Value.
	DeferredWrite Kind = 5
	// Clone makes Dst a new inode Inode sharing every extent of Key (in the
	// snapshot Name, or the live store when Name is empty): Key, Dst, Name,
	// Inode.
	Clone Kind = 6
	// Snapshot creates snapshot Name of the live store at time Time (unix
	// nanoseconds): Name, Time.
	Snapshot Kind = 7
	// DeleteSnapshot removes snapshot Name from the catalog and starts
	// dropping it: Name.
	DeleteSnapshot Kind = 8
	// Restore makes the live store equal to snapshot Name: Name.
	Restore Kind = 9
	// DropProgress records how far a background drop has come: Name (the
	// dropped root's catalog name), Value (the drop cursor).
	DropProgress Kind = 10
)

var kindNames = [...]string{
	Put: "Put", Delete: "Delete", Remap: "Remap", Truncate: "Truncate",
	DeferredWrite: "DeferredWrite", Clone: "Clone", Snapshot: "Snapshot",
	DeleteSnapshot: "DeleteSnapshot", Restore: "Restore", DropProgress: "DropProgress",
}

func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Op is one logical operation. It is a tagged union: Kind says which fields
// are meaningful (see each Kind); the others are zero and are not encoded.
type Op struct {
	Kind      Kind
	Key       []byte
	Dst       []byte
	Name      string
	Inode     format.InodeID
	Size      int64
	Flags     uint8
	FileBlock uint64
	Phys      format.Block
	Len       uint64
	Off       int64
	Time      int64
	Value     []byte
	Sums      []uint64
}

// Field identifiers, in encoding order. Each kind encodes a subset of them.
type field uint16

const (
	fKey field = 1 << iota
	fDst
	fName
	fInode
	fSize
	fFlags
	fFileBlock
	fPhys
	fLen
	fOff
	fTime
	fValue
	fSums
)

// layout lists the fields each kind encodes.
var layout = [...]field{
	Put:            fKey | fInode | fSize | fFlags | fValue,
	Delete:         fKey,
	Remap:          fInode | fFileBlock | fPhys | fLen | fSums,
	Truncate:       fKey | fInode | fSize,
	DeferredWrite:  fInode | fOff | fValue,
	Clone:          fKey | fDst | fName | fInode,
	Snapshot:       fName | fTime,
	DeleteSnapshot: fName,
	Restore:        fName,
	DropProgress:   fName | fValue,
}

// Errors. Each wraps format.ErrCorrupt: a batch that fails to decode came
// from a WAL record whose checksum matched, so it is damage or a bug, never
// a torn write.
var (
	ErrTruncated = fmt.Errorf("cowdb/record: batch truncated: %w", format.ErrCorrupt)
	ErrBadBatch  = fmt.Errorf("cowdb/record: malformed batch: %w", format.ErrCorrupt)
)

// errInvalidOp is returned by Append for an operation that breaks a limit
// or its kind's rules; it is a caller bug, not corruption.
var errInvalidOp = errors.New("cowdb/record: invalid operation")

// Append appends the encoding of a batch holding ops to dst and returns the
// extended slice. It refuses (and appends nothing for) a batch that breaks
// a limit, so everything Append writes, Decode reads back.
func Append(dst []byte, ops []Op) ([]byte, error) {
	if len(ops) == 0 || len(ops) > OpsPerBatchMax {
		return dst, fmt.Errorf("%w: batch of %d operations", errInvalidOp, len(ops))
	}
	for i := range ops {
		if err := ops[i].check(); err != nil {
			return dst, fmt.Errorf("operation %d: %w", i, err)
		}
	}
	dst = append(dst, Version)
	dst = binary.AppendUvarint(dst, uint64(len(ops)))
	for i := range ops {
		dst = ops[i].append(dst)
	}
	return dst, nil
}

// check applies the limits Decode enforces.
func (op *Op) check() error {
	if int(op.Kind) >= len(layout) || layout[op.Kind] == 0 {
		return fmt.Errorf("%w: kind %v", errInvalidOp, op.Kind)
	}
	f := layout[op.Kind]
	switch {
	case f&fKey != 0 && (len(op.Key) == 0 || len(op.Key) > KeySizeMax):
		return fmt.Errorf("%w: %v key of %d bytes", errInvalidOp, op.Kind, len(op.Key))
	case f&fDst != 0 && (len(op.Dst) == 0 || len(op.Dst) > KeySizeMax):
		return fmt.Errorf("%w: %v destination key of %d bytes", errInvalidOp, op.Kind, len(op.Dst))
	case f&fName != 0 && len(op.Name) > NameSizeMax,
		f&fName != 0 && op.Kind != Clone && op.Name == "":
		return fmt.Errorf("%w: %v name of %d bytes", errInvalidOp, op.Kind, len(op.Name))
	case f&fSize != 0 && op.Size < 0, f&fOff != 0 && op.Off < 0:
		return fmt.Errorf("%w: %v negative size or offset", errInvalidOp, op.Kind)
	case f&fSums != 0 && uint64(len(op.Sums)) != op.Len:
		return fmt.Errorf("%w: remap of %d blocks with %d checksums", errInvalidOp, op.Len, len(op.Sums))
	}
	return nil
}

func (op *Op) append(dst []byte) []byte {
	f := layout[op.Kind]
	dst = append(dst, byte(op.Kind))
	if f&fKey != 0 {
		dst = appendBytes(dst, op.Key)
	}
	if f&fDst != 0 {
		dst = appendBytes(dst, op.Dst)
	}
	if f&fName != 0 {
		dst = appendBytes(dst, []byte(op.Name))
	}
	if f&fInode != 0 {
		dst = binary.AppendUvarint(dst, uint64(op.Inode))
	}
	if f&fSize != 0 {
		dst = binary.AppendUvarint(dst, uint64(op.Size))
	}
	if f&fFlags != 0 {
		dst = append(dst, op.Flags)
	}
	for _, u := range [...]struct {
		on field
		v  uint64
	}{
		{fFileBlock, op.FileBlock},
		{fPhys, uint64(op.Phys)},
		{fLen, op.Len},
		{fOff, uint64(op.Off)},
		{fTime, uint64(op.Time)},
	} {
		if f&u.on != 0 {
			dst = binary.AppendUvarint(dst, u.v)
		}
	}
	if f&fValue != 0 {
		dst = appendBytes(dst, op.Value)
	}
	if f&fSums != 0 {
		dst = binary.AppendUvarint(dst, uint64(len(op.Sums)))
		for _, s := range op.Sums {
			dst = binary.LittleEndian.AppendUint64(dst, s)
		}
	}
	return dst
}

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}
