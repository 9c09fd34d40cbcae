package btree

import "errors"

var (
	// ErrInvalidKey is returned by Put and Delete for an empty key.
	ErrInvalidKey = errors.New("cowdb/btree: empty key")
	// ErrKeyTooLarge is returned for a key longer than format.NodeKeyMax.
	ErrKeyTooLarge = errors.New("cowdb/btree: key too large")
	// ErrValueTooLarge is returned by Put for a value longer than
	// format.NodeValueMax of the block size.
	ErrValueTooLarge = errors.New("cowdb/btree: value too large")
	// ErrBatchOpen is returned by Begin while another Batch of the same
	// Forest is open, and by Checkpoint and Drop steps while one is.
	ErrBatchOpen = errors.New("cowdb/btree: a batch is open")
	// ErrBatchDone is returned by a Batch used after Commit or Abort.
	ErrBatchDone = errors.New("cowdb/btree: batch already committed or aborted")
	// ErrNotPersisted is returned when something needs block addresses that
	// dirty nodes do not have yet: a Drop cursor holding a dirty node.
	ErrNotPersisted = errors.New("cowdb/btree: node not persisted yet")
	// ErrUncounted is returned by Checkpoint when a tree it is given leads to
	// a dirty node whose count is 0, and by Begin, Share and a Drop's first
	// Step when the tree's root is such a node: the tree was not a counted
	// root (a stale version a reader held), and writing, changing, sharing
	// or dropping it would leak blocks or drive counts below zero.
	ErrUncounted = errors.New("cowdb/btree: tree is not a counted root")
	// ErrFailed is returned by every writer operation after a BlockStore
	// call failed in the middle of Commit, Checkpoint or a Drop step: the
	// counts are then only partly applied, and the caller must rebuild the
	// Forest from its last checkpoint and log.
	ErrFailed = errors.New("cowdb/btree: forest failed earlier")
	// ErrForeignTree is returned when two trees of different Forests (or
	// kinds) are combined, as in Diff.
	ErrForeignTree = errors.New("cowdb/btree: trees of different forests")
	// ErrInvalidOptions is returned by New for a missing store or a bad
	// block size.
	ErrInvalidOptions = errors.New("cowdb/btree: invalid options")
)
