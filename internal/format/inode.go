package format

import (
	"encoding/binary"
)

// Namespace tree records (DESIGN §4). The namespace tree of a root maps
//
//	'i' + inode ID (8, BE)                       -> user key (blob index)
//	'k' + user key                              -> inode record
//	'x' + inode ID (8, BE) + file block (8, BE)  -> extent record
//
// The 'i' entries index blobs by inode: each non-inline inode has one, whose
// value is the user key holding it, so that a change found among a blob's
// extent records (a diff) leads back to its key without a scan. Inline
// inodes have no extent records and no index entry.
//
// This file encodes the keys and the inode record; the extent record's
// value is the data path's, encoded by cowio (cowio.ExtentRecord). The
// inode record is little-endian and carries the value itself when it is
// inline.
//
// Inode record (InodeHeaderSize bytes, then the inline value if any):
//
//	offset size field
//	     0    1 flags      InodeInline (bit 0): the value follows the header;
//	                       other bits zero
//	     1    8 inode ID   never 0
//	     9    8 size       value size in bytes, < 2^63
//	    17    n value      only when InodeInline: exactly size bytes
//
// The constants below are part of the on-disk format: changing one changes
// what existing stores mean.
const (
	// KeyPrefixBlobKey starts the namespace key of a blob's index entry.
	KeyPrefixBlobKey byte = 'i'
	// BlobKeyKeySize is the length of a blob index entry's key.
	BlobKeyKeySize = 1 + 8
	// KeyPrefixInode starts the namespace key of a user key's inode record.
	KeyPrefixInode byte = 'k'
	// KeyPrefixExtent starts the namespace key of an extent record.
	KeyPrefixExtent byte = 'x'
	// ExtentKeySize is the length of an extent record's key.
	ExtentKeySize = 1 + 8 + 8

	// InodeHeaderSize is the size of an inode record without its value.
	InodeHeaderSize = 17
	// InodeInline marks an inode record whose value is stored in it.
	InodeInline uint8 = 1 << 0
)

// Inode is a decoded inode record. Value aliases the decoded buffer.
type Inode struct {
	ID    InodeID
	Size  int64
	Flags uint8
	Value []byte // the inline value when Flags has InodeInline, else nil
}

// Inline reports whether the value is stored in the record.
func (n *Inode) Inline() bool { return n.Flags&InodeInline != 0 }

// AppendInode appends the encoding of n to dst. For an inline inode, Size
// must equal len(Value); it panics otherwise (an assertion: a caller bug).
func AppendInode(dst []byte, n Inode) []byte {
	if n.Inline() && int64(len(n.Value)) != n.Size {
		panic("cowdb: assertion failed: inline inode size differs from its value")
	}
	dst = append(dst, n.Flags)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(n.ID))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(n.Size))
	if n.Inline() {
		dst = append(dst, n.Value...)
	}
	return dst
}

// DecodeInode decodes and validates an inode record. Every failure is a
// *CorruptError at "inode record" wrapping ErrTruncated or ErrMalformed; it
// never panics.
func DecodeInode(b []byte) (Inode, error) {
	if len(b) < InodeHeaderSize {
		return Inode{}, Corruptf("inode record", ErrTruncated, "%d bytes", len(b))
	}
	n := Inode{
		Flags: b[0],
		ID:    InodeID(binary.LittleEndian.Uint64(b[1:])),
		Size:  int64(binary.LittleEndian.Uint64(b[9:])),
	}
	rest := b[InodeHeaderSize:]
	switch {
	case n.Flags&^InodeInline != 0:
		return Inode{}, Corruptf("inode record", ErrMalformed, "flags %#x", n.Flags)
	case n.ID == 0:
		return Inode{}, Corruptf("inode record", ErrMalformed, "zero inode ID")
	case n.Size < 0:
		return Inode{}, Corruptf("inode record", ErrMalformed, "size %d", n.Size)
	case n.Inline() && int64(len(rest)) != n.Size:
		return Inode{}, Corruptf("inode record", ErrMalformed, "inline size %d with %d value bytes", n.Size, len(rest))
	case !n.Inline() && len(rest) != 0:
		return Inode{}, Corruptf("inode record", ErrMalformed, "%d bytes after a blob inode", len(rest))
	}
	if n.Inline() {
		n.Value = rest
	}
	return n, nil
}

// InodeKey appends the namespace key of user key k's inode record to dst.
func InodeKey(dst, k []byte) []byte {
	dst = append(dst, KeyPrefixInode)
	return append(dst, k...)
}

// ExtentKey appends the namespace key of the extent record of inode id at
// file block fb to dst.
func ExtentKey(dst []byte, id InodeID, fb uint64) []byte {
	dst = append(dst, KeyPrefixExtent)
	dst = binary.BigEndian.AppendUint64(dst, uint64(id))
	return binary.BigEndian.AppendUint64(dst, fb)
}

// ParseExtentKey returns the inode ID and file block an extent key names;
// ok is false if k is not an extent key.
func ParseExtentKey(k []byte) (id InodeID, fb uint64, ok bool) {
	if len(k) != ExtentKeySize || k[0] != KeyPrefixExtent {
		return 0, 0, false
	}
	return InodeID(binary.BigEndian.Uint64(k[1:])), binary.BigEndian.Uint64(k[9:]), true
}

// BlobKeyKey appends the namespace key of the index entry of blob inode id
// (whose value is the user key holding it) to dst.
func BlobKeyKey(dst []byte, id InodeID) []byte {
	dst = append(dst, KeyPrefixBlobKey)
	return binary.BigEndian.AppendUint64(dst, uint64(id))
}

// ParseBlobKeyKey returns the inode ID a blob index key names; ok is false
// if k is not one (wrong prefix or length, or inode ID 0, which no inode
// has).
func ParseBlobKeyKey(k []byte) (id InodeID, ok bool) {
	if len(k) != BlobKeyKeySize || k[0] != KeyPrefixBlobKey {
		return 0, false
	}
	id = InodeID(binary.BigEndian.Uint64(k[1:]))
	return id, id != 0
}
