package format_test

import (
	"errors"
	"math"
	"testing"

	"github.com/cowdb/cowdb/internal/format"
	"pgregory.net/rapid"
)

// damageKinds lists every damage sentinel, so a test can check that an error is of
// exactly one kind.
var damageKinds = map[string]error{
	"ErrTruncated":   format.ErrTruncated,
	"ErrBadMagic":    format.ErrBadMagic,
	"ErrBadVersion":  format.ErrBadVersion,
	"ErrBadChecksum": format.ErrBadChecksum,
	"ErrBadGeometry": format.ErrBadGeometry,
	"ErrMalformed":   format.ErrMalformed,
	"ErrMisplaced":   format.ErrMisplaced,
	"ErrForeign":     format.ErrForeign,
	"ErrEpochAhead":  format.ErrEpochAhead,
	"ErrConflict":    format.ErrConflict,
}

// requireDamage fails t unless err is ErrCorrupt, is want, is no other damage
// kind, and names the place where.
func requireDamage(t testing.TB, err, want error, where string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", want)
	}
	if !errors.Is(err, format.ErrCorrupt) {
		t.Errorf("error %q is not ErrCorrupt", err)
	}
	for name, k := range damageKinds {
		if got := errors.Is(err, k); got != (k == want) {
			t.Errorf("errors.Is(%q, %s) = %v", err, name, got)
		}
	}
	var ce *format.CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("error %q is not a *CorruptError", err)
	}
	if ce.Where != where {
		t.Errorf("error %q is at %q, want %q", err, ce.Where, where)
	}
}

// sampleSuperblock returns a valid superblock with every field distinct and
// non-zero, the shape a real store would have after a few checkpoints.
func sampleSuperblock() format.Superblock {
	return format.Superblock{
		BlockSize:       4096,
		BlocksPerAG:     32768,
		AGCount:         3,
		MaxAGCount:      64,
		AGStart:         2,
		StoreID:         0x1122334455667788,
		Epoch:           41,
		CheckpointLSN:   9000,
		WALSegment:      7,
		WALOffset:       123456,
		CatalogRoot:     format.Ref{Block: 100, Sum: 0xaaaa},
		RefcountRoot:    format.Ref{Block: 200, Sum: 0xbbbb},
		BitmapDigest:    0xcccc,
		NextInode:       77,
		CreatedUnixNano: 1_700_000_000_000_000_000,
	}
}

// genSuperblock draws a valid superblock (before Encode stamps it):
// arbitrary epochs, positions and times, geometry within the bounds
// Validate accepts, roots empty or inside the file.
func genSuperblock(t *rapid.T) format.Superblock {
	bs := uint32(1) << rapid.IntRange(9, 16).Draw(t, "blockShift")
	bpa := rapid.OneOf(
		rapid.Uint32Range(3, 1<<24),
		rapid.Just(uint32(math.MaxUint32)),
	).Draw(t, "blocksPerAG")
	agMax := rapid.Uint32Range(1, 1<<14).Draw(t, "maxAGCount")
	ags := rapid.Uint32Range(1, agMax).Draw(t, "agCount")
	start := format.Block(rapid.Uint64Range(2, min(uint64(bpa), 64)).Draw(t, "agStart"))
	end := start + format.Block(ags)*format.Block(bpa)
	ref := func(name string) format.Ref {
		if rapid.Bool().Draw(t, name+"Empty") {
			return format.Ref{}
		}
		return format.Ref{
			Block: format.Block(rapid.Uint64Range(uint64(start), uint64(end)-1).Draw(t, name+"Block")),
			Sum:   rapid.Uint64().Draw(t, name+"Sum"),
		}
	}
	return format.Superblock{
		BlockSize:       bs,
		BlocksPerAG:     bpa,
		AGCount:         ags,
		MaxAGCount:      agMax,
		AGStart:         start,
		StoreID:         rapid.Uint64Min(1).Draw(t, "storeID"),
		Epoch:           format.Epoch(rapid.Uint64().Draw(t, "epoch")),
		CheckpointLSN:   format.LSN(rapid.Uint64().Draw(t, "lsn")),
		WALSegment:      rapid.Uint64().Draw(t, "walSegment"),
		WALOffset:       rapid.Uint64().Draw(t, "walOffset"),
		CatalogRoot:     ref("catalog"),
		RefcountRoot:    ref("refcount"),
		BitmapDigest:    rapid.Uint64().Draw(t, "bitmapDigest"),
		NextInode:       format.InodeID(rapid.Uint64Min(1).Draw(t, "nextInode")),
		CreatedUnixNano: rapid.Int64().Draw(t, "created"),
	}
}
