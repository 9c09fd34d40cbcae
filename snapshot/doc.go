// Package snapshot owns the catalog of roots (the live store and every named
// snapshot), the background drop that reclaims a deleted snapshot's
// exclusive space in bounded, logged steps, and the diff of two roots
// (DESIGN §9).
//
// snapshot never touches files or blocks directly: it works through the
// B-tree and the space accounting of the layers below it.
//
// Status: not yet implemented; the snapshot issue builds it.
package snapshot
