// Package format defines cowdb's on-disk structures: the typed numbers that
// name things on disk, the checksum, and the encoders and decoders of every
// persisted root (superblock, AG bitmap copy, B-tree node header, WAL record
// frame). docs/FORMAT.md is the map of the whole file layout.
//
// format holds no logic beyond encoding, decoding and validation: it never
// does I/O and never decides policy. Every decoder validates what it reads
// and returns an error wrapping ErrCorrupt instead of panicking, whatever the
// input. Its functions are safe for concurrent use; its types are plain
// values.
//
// Damage is reported as a *CorruptError that names the place ("superblock
// copy 1", "AG 3 bitmap copy 0") and wraps one sentinel per kind of damage
// (ErrBadMagic, ErrBadVersion, ErrBadChecksum, ErrBadGeometry, ErrTruncated,
// ErrMalformed, ...; see errors.go), each of which wraps ErrCorrupt. Where a
// structure is kept in two copies, a Pick function chooses the newest valid
// one and, if there is none, reports both failures.
//
// One file per structure, each with its byte-width diagram: superblock.go,
// agbitmap.go, node.go (B-tree nodes), walframe.go (WAL segments and
// frames).
//
// The constants in this package are part of the on-disk format: changing one
// changes what existing stores mean.
package format

import (
	"errors"

	"github.com/cespare/xxhash/v2"
)

// Block is the number of a block in the data file: byte offset = Block ×
// block size. Addresses on disk are always block numbers, never byte offsets.
type Block uint64

// NoBlock marks the absence of a block (an empty tree, an unset root). Block
// 0 holds a superblock copy, so it is never a node or data block.
const NoBlock Block = 0

// Epoch numbers checkpoints: checkpoint E is the E-th durable state of a
// store. It only grows.
type Epoch uint64

// LSN is a log sequence number: the position of a record in the WAL's
// history. LSNs start at 1 and only grow; 0 means "before every record".
type LSN uint64

// InodeID names one value (inline or blob) independently of its key, so a
// value's extent records survive a rename of nothing and a clone gets a new
// identity. 0 is never a valid inode.
type InodeID uint64

// Ref points at a block and carries the checksum of that block's contents,
// so that a lost or misdirected write is detected when the pointer is
// followed (DESIGN §4).
type Ref struct {
	Block Block
	Sum   uint64
}

// IsZero reports whether r points nowhere.
func (r Ref) IsZero() bool { return r.Block == NoBlock }

// ErrCorrupt is the one corruption marker: every checksum, magic, version or
// structural failure of anything read from disk wraps it, so callers test
// with errors.Is(err, ErrCorrupt) whatever the specific failure.
var ErrCorrupt = errors.New("cowdb: corrupt")

// Checksum is the checksum of every persisted structure: xxhash64.
func Checksum(b []byte) uint64 { return xxhash.Sum64(b) }
