package snapshot

import (
	"encoding/binary"
	"fmt"

	"github.com/cowdb/cowdb/internal/format"
)

// Catalog keys (the catalog tree's keys; docs/FORMAT.md "Catalog tree"):
//
//	0x00                       the live root
//	's' + name                 a named snapshot (name valid, see ValidName)
//	'd' + drop ID (8, BE)      a root being dropped in the background
//
// A zero byte is never the first byte of a name, and 'd' keys have a fixed
// length, so the three kinds never collide. A dropping root has no name:
// DeleteSnapshot and Restore give up a root by moving its record under a
// drop key, so that the name is free at once while the drop goes on. The
// drop ID tells concurrent drops apart; the store uses the LSN of the log
// record that started the drop, which is unique and never 0.
//
// The prefixes are part of the on-disk format.
const (
	keyPrefixSnapshot byte = 's'
	keyPrefixDrop     byte = 'd'
	dropKeySize            = 1 + 8
)

// LiveKey is the catalog key of the live root. Do not modify it.
var LiveKey = []byte{0}

// KeyKind says which kind of root a catalog key names.
type KeyKind uint8

const (
	// KeyLive is LiveKey.
	KeyLive KeyKind = iota + 1
	// KeySnapshot is a named snapshot's key (SnapshotKey).
	KeySnapshot
	// KeyDrop is the key of a root being dropped (DropKey).
	KeyDrop
)

// String returns the kind's name ("live", "snapshot", "drop").
func (k KeyKind) String() string {
	switch k {
	case KeyLive:
		return "live"
	case KeySnapshot:
		return "snapshot"
	case KeyDrop:
		return "drop"
	}
	return fmt.Sprintf("KeyKind(%d)", uint8(k))
}

// SnapshotKey returns the catalog key of the snapshot named name. name
// should be valid (ValidName): the caller checks a user's name before it
// looks it up, and ParseKey refuses the key of an invalid one.
func SnapshotKey(name string) []byte {
	k := make([]byte, 0, 1+len(name))
	k = append(k, keyPrefixSnapshot)
	return append(k, name...)
}

// DropKey returns the catalog key of the root being dropped under id (the
// LSN of the record that started the drop). id 0 is no LSN; it panics (an
// assertion: a caller bug).
func DropKey(id uint64) []byte {
	if id == 0 {
		panic("cowdb: assertion failed: drop key with id 0")
	}
	k := make([]byte, 0, dropKeySize)
	k = append(k, keyPrefixDrop)
	return binary.BigEndian.AppendUint64(k, id)
}

// ParseKey tells what a catalog key names: the live root, the snapshot
// name, or the drop dropID. Any other key (empty, an unknown prefix, an
// invalid name, a drop key of the wrong length or with id 0) is a
// *format.CorruptError at "catalog key" wrapping format.ErrMalformed; it
// never panics.
func ParseKey(k []byte) (kind KeyKind, name string, dropID uint64, err error) {
	const where = "catalog key"
	switch {
	case len(k) == 1 && k[0] == 0:
		return KeyLive, "", 0, nil
	case len(k) > 0 && k[0] == keyPrefixSnapshot:
		name = string(k[1:])
		if err := ValidName(name); err != nil {
			return 0, "", 0, format.Corruptf(where, format.ErrMalformed, "%v", err)
		}
		return KeySnapshot, name, 0, nil
	case len(k) == dropKeySize && k[0] == keyPrefixDrop:
		id := binary.BigEndian.Uint64(k[1:])
		if id == 0 {
			return 0, "", 0, format.Corruptf(where, format.ErrMalformed, "drop id 0")
		}
		return KeyDrop, "", id, nil
	}
	return 0, "", 0, format.Corruptf(where, format.ErrMalformed, "%d bytes: %x", len(k), k[:min(len(k), 16)])
}

// Root records (the catalog tree's values, little-endian):
//
//	offset size field
//	     0    1 kind     RootLive, RootSnapshot or RootDropping
//	     1    8 block    the namespace tree's root block (0: empty tree)
//	     9    8 sum      its checksum (0 with block 0)
//	    17    8 created  unix nanoseconds: when the root was made
//	    25    n cursor   RootDropping only: the drop's cursor, n >= 1
//
// A live or snapshot record is exactly RecordHeaderSize bytes. A dropping
// record has a zero root (the cursor says what is left to release) and
// carries btree.Drop.MarshalBinary's bytes, rewritten as the drop
// progresses; this package does not look inside them
// (btree.Forest.ResumeDrop validates them).
//
// The constants below are part of the on-disk format. RootLive,
// RootSnapshot and the 25-byte layout are those of the records written
// before dropping records existed.
const (
	// RecordHeaderSize is the size of a root record without its cursor.
	RecordHeaderSize = 25
)

// RootKind says what a root record is.
type RootKind uint8

const (
	// RootLive is the live store's root.
	RootLive RootKind = 1
	// RootSnapshot is a named snapshot's root.
	RootSnapshot RootKind = 2
	// RootDropping is a root being released in the background: its record
	// holds the drop's cursor instead of a root.
	RootDropping RootKind = 3
)

// String returns the kind's name ("live", "snapshot", "dropping").
func (k RootKind) String() string {
	switch k {
	case RootLive:
		return "live"
	case RootSnapshot:
		return "snapshot"
	case RootDropping:
		return "dropping"
	}
	return fmt.Sprintf("RootKind(%d)", uint8(k))
}

// Record is a decoded root record.
type Record struct {
	Kind RootKind
	// Root is the namespace tree's root (the zero Ref for the empty tree,
	// and always for RootDropping).
	Root format.Ref
	// Created is when the root was made, in unix nanoseconds.
	Created int64
	// Cursor is the drop's cursor (btree.Drop.MarshalBinary) for
	// RootDropping, at least one byte; empty for the other kinds.
	Cursor []byte
}

// valid returns why r cannot be encoded, or "".
func (r Record) valid() string {
	switch {
	case r.Kind != RootLive && r.Kind != RootSnapshot && r.Kind != RootDropping:
		return fmt.Sprintf("kind %d", r.Kind)
	case r.Root.Block == format.NoBlock && r.Root.Sum != 0:
		return fmt.Sprintf("checksum %#x without a root block", r.Root.Sum)
	case r.Root.Block != format.NoBlock && r.Root.Block < format.SuperblockCopies:
		return fmt.Sprintf("root at superblock %d", r.Root.Block)
	case r.Kind == RootDropping && r.Root != format.Ref{}:
		return fmt.Sprintf("dropping record with root block %d", r.Root.Block)
	case r.Kind == RootDropping && len(r.Cursor) == 0:
		return "dropping record without a cursor"
	case r.Kind != RootDropping && len(r.Cursor) != 0:
		return fmt.Sprintf("%s record with a %d-byte cursor", r.Kind, len(r.Cursor))
	}
	return ""
}

// AppendRecord appends the encoding of r to dst. r must be one DecodeRecord
// would return: a known kind; a zero Root or one past the superblocks; for
// RootDropping a zero Root and a non-empty Cursor, for the others no
// Cursor. It panics otherwise (an assertion: a caller bug, never persisted).
func AppendRecord(dst []byte, r Record) []byte {
	if why := r.valid(); why != "" {
		panic("cowdb: assertion failed: encoding root record: " + why)
	}
	dst = append(dst, byte(r.Kind))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(r.Root.Block))
	dst = binary.LittleEndian.AppendUint64(dst, r.Root.Sum)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(r.Created))
	return append(dst, r.Cursor...)
}

// DecodeRecord decodes and validates a root record. A record shorter than
// RecordHeaderSize is a *format.CorruptError at "catalog root record"
// wrapping format.ErrTruncated; any other record AppendRecord would not
// write (an unknown kind, a checksum without a block, a root at a
// superblock, a live or snapshot record with trailing bytes, a dropping
// record with a root or without a cursor) wraps format.ErrMalformed. It
// never panics. The Cursor is a copy: it does not alias b.
func DecodeRecord(b []byte) (Record, error) {
	const where = "catalog root record"
	if len(b) < RecordHeaderSize {
		return Record{}, format.Corruptf(where, format.ErrTruncated, "%d bytes", len(b))
	}
	r := Record{
		Kind:    RootKind(b[0]),
		Root:    format.Ref{Block: format.Block(binary.LittleEndian.Uint64(b[1:])), Sum: binary.LittleEndian.Uint64(b[9:])},
		Created: int64(binary.LittleEndian.Uint64(b[17:])),
	}
	if rest := b[RecordHeaderSize:]; len(rest) > 0 {
		r.Cursor = append([]byte(nil), rest...)
	}
	if why := r.valid(); why != "" {
		return Record{}, format.Corruptf(where, format.ErrMalformed, "%s", why)
	}
	return r, nil
}
