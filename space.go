package cowdb

import (
	"errors"
	"fmt"

	"github.com/cowdb/cowdb/extents"
)

// Space kept for checkpoints (DESIGN §8). A checkpoint must always be able
// to write the dirty nodes, or the busy blocks it would release stay busy
// and a full store could never make room. So a checkpoint needs the dirty
// nodes plus cpReserve blocks (the catalog's path; the refcount tree, one
// node per refcountsPerNode records, on top), and a write is accepted only
// if, with up to nodesPerOp new dirty nodes per operation and cpMargin
// blocks more, that still holds. A write that only deletes is accepted
// into the margin: it is how a full store makes room, and the checkpoint
// after it still fits in the reserve.
const (
	cpReserve        = 8
	cpMargin         = 8
	refcountsPerNode = 64
	nodesPerOp       = 3
)

// checkpointNeedLocked returns the free blocks the next checkpoint needs.
func (db *DB) checkpointNeedLocked() uint64 {
	return uint64(db.forest.Stats().DirtyNodes) + cpReserve
}

// admitNeedLocked returns the free blocks a new allocation must leave: the
// next checkpoint's, and one for each dirty page, which writeback will
// need (a full store must not accept what it can never write back).
func (db *DB) admitNeedLocked() uint64 {
	dirty, _ := db.pages.stats()
	// The pages being written back are allocating their blocks now.
	dirty -= min(dirty, db.wbInFlight.Load())
	return db.checkpointNeedLocked() + uint64(dirty)
}

// ensureSpaceLocked makes sure need blocks can be allocated, growing the
// data file by GrowSize (whole allocation groups) as many times as needed
// (DESIGN §8). Busy blocks are not counted: they return at the next durable
// checkpoint, which itself needs room. Past MaxSize (or the device's
// capacity) it returns ErrNoSpace and changes nothing, leaving the store
// consistent and usable.
//
// Growing fallocates under db.mu: rare, and bounded by GrowSize.
func (db *DB) ensureSpaceLocked(need uint64) error {
	a := db.mu.alloc
	free := uint64(a.Stats().FreeBlocks)
	db.mu.headroom = free
	if free >= need {
		return nil
	}
	g := a.Geometry()
	groupBytes := int64(g.BlocksPerAG) * int64(db.bs)
	step := uint32(max(1, (db.opts.GrowSize+groupBytes-1)/groupBytes))
	perAG := uint64(g.BlocksPerAG - g.HeaderBlocks())
	count := g.AGCount
	for free < need {
		count += step
		free += uint64(step) * perAG
	}
	if count > g.MaxAGCount {
		return fmt.Errorf("%w: %d blocks needed, %d free, and the data file may not grow past %d groups (MaxSize)", ErrNoSpace, need, db.mu.headroom, g.MaxAGCount)
	}
	oldSize := int64(g.TotalBlocks()) * int64(db.bs)
	newSize := (int64(g.AGStart) + int64(count)*int64(g.BlocksPerAG)) * int64(db.bs)
	if err := db.data.Fallocate(oldSize, newSize-oldSize); err != nil {
		return fmt.Errorf("%w: growing the data file to %d bytes: %w", ErrNoSpace, newSize, err)
	}
	if _, err := a.Grow(count); err != nil {
		if errors.Is(err, extents.ErrNoSpace) {
			return fmt.Errorf("%w: %w", ErrNoSpace, err)
		}
		return err
	}
	db.geo = a.Geometry()
	db.mu.headroom = free
	db.logger.Info("cowdb: data file grown", "dir", db.dir, "groups", count, "bytes", newSize)
	return nil
}

// checkHeadroomLocked refuses a write of ops operations (ErrNoSpace) when
// the next checkpoint might then not find room for the dirty nodes,
// growing the file first if it can; freeing says the write only deletes.
// It is cheap unless the last known free space is nearly used up.
func (db *DB) checkHeadroomLocked(ops int, freeing bool) error {
	// A write that only deletes needs room for its nodes at the next
	// checkpoint and nothing more: that checkpoint relogs the pages it
	// cannot write back.
	need := db.checkpointNeedLocked() + uint64(nodesPerOp*ops)
	if !freeing {
		need = db.admitNeedLocked() + uint64(nodesPerOp*ops) + cpMargin
	}
	if need <= db.mu.headroom {
		return nil
	}
	return db.ensureSpaceLocked(need)
}

// growForReplayLocked extends the allocator over e when replay meets a
// remap naming blocks past the AGs of the checkpoint it replays onto: the
// live path grew the data file (ensureSpaceLocked) and wrote the value
// there before logging the remap, and that growth is durable — the log
// flush synced the data file first — while the checkpoint recording it
// was never written. It grows only as far as the file already reaches; an
// extent past that, or past MaxAGCount, is left for Claim to refuse.
func (db *DB) growForReplayLocked(e extents.Extent) error {
	a := db.mu.alloc
	g := a.Geometry()
	end := uint64(e.Start) + e.Len
	if e.Start < g.AGStart || end < uint64(e.Start) || end <= g.TotalBlocks() {
		return nil
	}
	agCount := (end - uint64(g.AGStart) + uint64(g.BlocksPerAG) - 1) / uint64(g.BlocksPerAG)
	if agCount > uint64(g.MaxAGCount) {
		return nil
	}
	fi, err := db.data.Stat()
	if err != nil {
		return fmt.Errorf("cowdb: sizing the data file for replay: %w", err)
	}
	if need := (uint64(g.AGStart) + agCount*uint64(g.BlocksPerAG)) * uint64(db.bs); uint64(fi.Size) < need {
		return nil
	}
	if _, err := a.Grow(uint32(agCount)); err != nil {
		return err
	}
	db.geo = a.Geometry()
	db.logger.Info("cowdb: replay found the data file grown", "dir", db.dir, "groups", agCount)
	return nil
}
