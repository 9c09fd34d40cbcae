package format

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/bits"

	"github.com/cespare/xxhash/v2"
)

// B-tree nodes (DESIGN §4): one node per block, a fixed header followed by
// the node's entries packed in key order, then zeros to the end of the
// block. Little-endian throughout.
//
// Header:
//
//	offset size field
//	     0    4 magic      NodeMagic ("CBTN")
//	     4    1 kind       NodeLeaf (1) or NodeBranch (2)
//	     5    1 tree       which tree the node belongs to; opaque here,
//	                       chosen by the tree's owner (namespace, catalog, ...)
//	     6    2 level      0 for a leaf; a branch is one above its children
//	     8    2 count      number of entries, at least 1
//	    10    2 reserved   zero
//	    12    4 used       bytes of entries after the header
//	    16    8 epoch      checkpoint epoch that wrote the node
//	    24    8 checksum   xxhash64 of the whole block with these 8 bytes
//	                       taken as zero
//	    32                 (NodeHeaderSize)
//
// Leaf entry (NodeLeafEntrySize(k, v) = 4 + k + v bytes):
//
//	size field
//	   2 key length   1..NodeKeyMax
//	   2 value length 0..NodeValueMax(block size)
//	   k key
//	   v value
//
// Branch entry (NodeBranchEntrySize(k) = 18 + k bytes):
//
//	size field
//	   2 key length   1..NodeKeyMax: a lower bound of every key in the child
//	   k key
//	   8 child block  never NoBlock
//	   8 child sum    the child's checksum field, so a parent detects a lost
//	                  or misdirected write of its child
//
// Keys are strictly ascending within a node. The checksum of a node is the
// Sum of the Ref that points at it.
//
// The constants below are part of the on-disk format: changing one changes
// what existing stores mean.
const (
	// NodeMagic is the first 4 bytes of every node: "CBTN" little-endian.
	NodeMagic uint32 = 0x4e544243
	// NodeHeaderSize is the size of a node's header in bytes.
	NodeHeaderSize = 32
	// NodeKeyMax is the longest key a node holds: the store's 1024-byte
	// user keys plus room for a prefix of up to 16 bytes.
	NodeKeyMax = 1040
	// NodeBlockSizeMin and NodeBlockSizeMax bound the block size a node can
	// live in (a power of two between them). The minimum is what two
	// maximum-size leaf entries need; the maximum is what 16-bit lengths
	// address.
	NodeBlockSizeMin = 4096
	NodeBlockSizeMax = 65536
	// NodeLevelMax bounds a branch's level; with at least two entries per
	// node a tree this tall could never be filled.
	NodeLevelMax = 64

	nodeLeafEntryOverhead   = 4
	nodeBranchEntryOverhead = 18
	nodeSumOffset           = 24
)

// NodeKind says whether a node is a leaf or a branch.
type NodeKind uint8

const (
	// NodeLeaf is a node whose entries map keys to values.
	NodeLeaf NodeKind = 1
	// NodeBranch is a node whose entries map separator keys to children.
	NodeBranch NodeKind = 2
)

// ErrNodeOverflow is returned by EncodeNode when the entries do not fit in
// the block, or break a size rule (key or value too long). It is a bug in
// the caller, never damage: it does not wrap ErrCorrupt.
var ErrNodeOverflow = errors.New("cowdb/format: node entries do not fit the block")

// Node is a decoded node. DecodeNode's slices alias the block it decoded,
// which must not change afterwards.
type Node struct {
	Kind  NodeKind
	Tree  uint8
	Level uint16
	Epoch Epoch
	// Sum is the node's checksum: set by DecodeNode, returned by EncodeNode.
	Sum uint64
	// Keys are the entries' keys, strictly ascending.
	Keys [][]byte
	// Values are a leaf's values, one per key (nil for a branch).
	Values [][]byte
	// Children are a branch's children, one per key (nil for a leaf).
	Children []Ref
}

// NodeLeafEntrySize is the number of bytes a leaf entry with a key of k bytes
// and a value of v bytes takes.
func NodeLeafEntrySize(k, v int) int { return nodeLeafEntryOverhead + k + v }

// NodeBranchEntrySize is the number of bytes a branch entry with a key of k
// bytes takes.
func NodeBranchEntrySize(k int) int { return nodeBranchEntryOverhead + k }

// NodeCapacity is the number of entry bytes a node of blockSize holds.
func NodeCapacity(blockSize int) int { return blockSize - NodeHeaderSize }

// NodeValueMax is the longest value a leaf in a block of blockSize holds:
// chosen so that two entries with the longest key and the longest value fit
// one node, which is what splitting a full node needs. 988 bytes at 4096.
func NodeValueMax(blockSize int) int {
	return NodeCapacity(blockSize)/2 - nodeLeafEntryOverhead - NodeKeyMax
}

// ValidNodeBlockSize reports whether nodes can live in blocks of size n.
func ValidNodeBlockSize(n int) bool {
	return n >= NodeBlockSizeMin && n <= NodeBlockSizeMax && bits.OnesCount(uint(n)) == 1
}

// NodeSum is the checksum of an encoded node block: xxhash64 of the block
// with its checksum field taken as zero.
func NodeSum(b []byte) uint64 {
	var zero [8]byte
	d := xxhash.New()
	_, _ = d.Write(b[:nodeSumOffset])
	_, _ = d.Write(zero[:])
	_, _ = d.Write(b[nodeSumOffset+8:])
	return d.Sum64()
}

// EncodeNode writes n into dst, whose length is the block size, zero-fills
// the rest of dst, and returns the checksum it stored (n.Sum is ignored).
// It returns ErrNodeOverflow if the entries break a size rule or do not fit.
func EncodeNode(dst []byte, n *Node) (uint64, error) {
	if !ValidNodeBlockSize(len(dst)) {
		return 0, ErrNodeOverflow
	}
	if err := checkEncodable(n, len(dst)); err != nil {
		return 0, err
	}
	le := binary.LittleEndian
	p := NodeHeaderSize
	for i, k := range n.Keys {
		le.PutUint16(dst[p:], uint16(len(k)))
		if n.Kind == NodeLeaf {
			le.PutUint16(dst[p+2:], uint16(len(n.Values[i])))
			p += 4
			p += copy(dst[p:], k)
			p += copy(dst[p:], n.Values[i])
			continue
		}
		p += 2
		p += copy(dst[p:], k)
		le.PutUint64(dst[p:], uint64(n.Children[i].Block))
		le.PutUint64(dst[p+8:], n.Children[i].Sum)
		p += 16
	}
	clear(dst[p:])
	le.PutUint32(dst[0:], NodeMagic)
	dst[4] = byte(n.Kind)
	dst[5] = n.Tree
	le.PutUint16(dst[6:], n.Level)
	le.PutUint16(dst[8:], uint16(len(n.Keys)))
	le.PutUint16(dst[10:], 0)
	le.PutUint32(dst[12:], uint32(p-NodeHeaderSize))
	le.PutUint64(dst[16:], uint64(n.Epoch))
	le.PutUint64(dst[nodeSumOffset:], 0)
	sum := NodeSum(dst)
	le.PutUint64(dst[nodeSumOffset:], sum)
	return sum, nil
}

// checkEncodable checks n against the rules DecodeNode enforces, so that
// nothing is written that could not be read back.
func checkEncodable(n *Node, blockSize int) error {
	leaf := n.Kind == NodeLeaf
	switch {
	case n.Kind != NodeLeaf && n.Kind != NodeBranch,
		leaf != (n.Level == 0), n.Level > NodeLevelMax,
		len(n.Keys) == 0,
		leaf && len(n.Values) != len(n.Keys),
		!leaf && len(n.Children) != len(n.Keys):
		return ErrNodeOverflow
	}
	used := 0
	for i, k := range n.Keys {
		if len(k) == 0 || len(k) > NodeKeyMax || (i > 0 && bytes.Compare(n.Keys[i-1], k) >= 0) {
			return ErrNodeOverflow
		}
		if leaf {
			if len(n.Values[i]) > NodeValueMax(blockSize) {
				return ErrNodeOverflow
			}
			used += NodeLeafEntrySize(len(k), len(n.Values[i]))
		} else {
			if n.Children[i].Block == NoBlock {
				return ErrNodeOverflow
			}
			used += NodeBranchEntrySize(len(k))
		}
	}
	if used > NodeCapacity(blockSize) {
		return ErrNodeOverflow
	}
	return nil
}

// DecodeNode decodes and validates the node in b, whose length is the block
// size. Every failure wraps ErrCorrupt: a bad magic, checksum, kind, level,
// count or length, an entry running past the used bytes, keys out of order,
// non-zero bytes after the entries. The returned slices alias b.
func DecodeNode(b []byte) (Node, error) {
	const where = "btree node"
	if !ValidNodeBlockSize(len(b)) {
		return Node{}, Corruptf(where, ErrTruncated, "block of %d bytes", len(b))
	}
	le := binary.LittleEndian
	if m := le.Uint32(b[0:]); m != NodeMagic {
		return Node{}, Corruptf(where, ErrBadMagic, "magic %#x", m)
	}
	stored := le.Uint64(b[nodeSumOffset:])
	if sum := NodeSum(b); sum != stored {
		return Node{}, Corruptf(where, ErrBadChecksum, "stored %#x, computed %#x", stored, sum)
	}
	n := Node{
		Kind:  NodeKind(b[4]),
		Tree:  b[5],
		Level: le.Uint16(b[6:]),
		Epoch: Epoch(le.Uint64(b[16:])),
		Sum:   stored,
	}
	count := int(le.Uint16(b[8:]))
	used := int(le.Uint32(b[12:]))
	leaf := n.Kind == NodeLeaf
	// The smallest entry of the node's kind bounds count by used, which
	// bounds what decodeEntries allocates before it parses anything.
	entryMin := nodeBranchEntryOverhead
	if leaf {
		entryMin = nodeLeafEntryOverhead
	}
	switch {
	case n.Kind != NodeLeaf && n.Kind != NodeBranch:
		return Node{}, Corruptf(where, ErrMalformed, "kind %d", n.Kind)
	case leaf != (n.Level == 0) || n.Level > NodeLevelMax:
		return Node{}, Corruptf(where, ErrMalformed, "kind %d at level %d", n.Kind, n.Level)
	case le.Uint16(b[10:]) != 0:
		return Node{}, Corruptf(where, ErrMalformed, "reserved bytes set")
	case count == 0 || used > NodeCapacity(len(b)) || count*entryMin > used:
		return Node{}, Corruptf(where, ErrMalformed, "count %d, used %d", count, used)
	}
	if err := decodeEntries(&n, b[NodeHeaderSize:NodeHeaderSize+used], count, len(b)); err != nil {
		return Node{}, err
	}
	for _, c := range b[NodeHeaderSize+used:] {
		if c != 0 {
			return Node{}, Corruptf(where, ErrMalformed, "bytes after the entries")
		}
	}
	return n, nil
}

// decodeEntries parses count entries that must fill e exactly.
func decodeEntries(n *Node, e []byte, count, blockSize int) error {
	const where = "btree node"
	le := binary.LittleEndian
	leaf := n.Kind == NodeLeaf
	n.Keys = make([][]byte, count)
	if leaf {
		n.Values = make([][]byte, count)
	} else {
		n.Children = make([]Ref, count)
	}
	p := 0
	for i := range count {
		over := nodeBranchEntryOverhead
		if leaf {
			over = nodeLeafEntryOverhead
		}
		if len(e)-p < over {
			return Corruptf(where, ErrMalformed, "entry %d truncated", i)
		}
		kl := int(le.Uint16(e[p:]))
		vl := 0
		if leaf {
			vl = int(le.Uint16(e[p+2:]))
			p += 4
		} else {
			p += 2
		}
		if kl == 0 || kl > NodeKeyMax || (leaf && vl > NodeValueMax(blockSize)) {
			return Corruptf(where, ErrMalformed, "entry %d: key %d, value %d bytes", i, kl, vl)
		}
		rest := kl + vl
		if !leaf {
			rest += 16
		}
		if len(e)-p < rest {
			return Corruptf(where, ErrMalformed, "entry %d runs past the used bytes", i)
		}
		k := e[p : p+kl : p+kl]
		if i > 0 && bytes.Compare(n.Keys[i-1], k) >= 0 {
			return Corruptf(where, ErrMalformed, "entry %d out of key order", i)
		}
		n.Keys[i] = k
		p += kl
		if leaf {
			n.Values[i] = e[p : p+vl : p+vl]
			p += vl
			continue
		}
		blk := Block(le.Uint64(e[p:]))
		if blk == NoBlock {
			return Corruptf(where, ErrMalformed, "entry %d: child block 0", i)
		}
		n.Children[i] = Ref{Block: blk, Sum: le.Uint64(e[p+8:])}
		p += 16
	}
	if p != len(e) {
		return Corruptf(where, ErrMalformed, "%d entries use %d of %d bytes", count, p, len(e))
	}
	return nil
}
