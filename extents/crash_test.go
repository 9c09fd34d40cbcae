package extents_test

import (
	"errors"
	"runtime"
	"testing"

	"github.com/cowdb/cowdb/extents"
)

// simDisk is a simulated data file's AG bitmap copies: what a checkpoint's
// images wrote, durable or not.
type simDisk [][2][]byte

func (d simDisk) write(t *testing.T, a *extents.Allocator, cp *extents.Checkpoint) map[uint32]int {
	t.Helper()
	must(t, a.Freeze(cp))
	slots := map[uint32]int{}
	for img := range cp.Images() {
		d[img.AG][img.Slot] = img.Data
		slots[img.AG] = img.Slot
	}
	return slots
}

// load rebuilds an Allocator from the disk as a recovery whose superblock
// has the given epoch and LSN does (no refcount records).
func (d simDisk) load(t *testing.T, epoch extents.Epoch, lsn extents.LSN) (*extents.Allocator, []int) {
	t.Helper()
	l, err := extents.NewLoader(&smallOpts, uint32(len(d)), epoch)
	must(t, err)
	slots := make([]int, len(d))
	for ag := range d {
		slots[ag], err = l.LoadAG(uint32(ag), d[ag])
		must(t, err)
	}
	a, err := l.Finish(lsn)
	must(t, err)
	return a, slots
}

// TestAbandonedImageAfterCrash checks that a bitmap image written by a
// checkpoint whose superblock never became durable cannot come back once
// the next checkpoint reuses its epoch: checkpoint 1 is durable; checkpoint
// 2 writes AG 0's image (with a block committed) and the process crashes;
// recovery loads epoch 1, changes AG 1 only and makes its own checkpoint 2
// durable. Loading epoch 2 must give AG 0 as checkpoint 1 left it, so the
// recovered allocator must rewrite AG 0, into the slot of the abandoned
// image.
func TestAbandonedImageAfterCrash(t *testing.T) {
	disk := make(simDisk, 2)
	a := newSmall(t, 2, smallOpts)
	kept := allocCommit(t, a, 4, a.Geometry().AGFirst(0))
	cp, err := a.Seal(1, 1)
	must(t, err)
	disk.write(t, a, cp)
	must(t, a.CheckpointDurable(cp))

	lost := allocCommit(t, a, 6, kept.End()) // committed at LSN 2, never durable
	cp, err = a.Seal(2, 2)
	must(t, err)
	if slots := disk.write(t, a, cp); slots[0] != 1 {
		t.Fatalf("checkpoint 2 wrote AG 0 to slot %d, want 1", slots[0])
	}
	// Crash: the superblock of epoch 2 never became durable.

	b, slots := disk.load(t, 1, 1)
	if slots[0] != 0 || b.State(lost.Start) != extents.StateFree || b.State(kept.Start) != extents.StateCommitted {
		t.Fatalf("recovery from epoch 1: AG 0 from slot %d, lost %d kept %d", slots[0], b.State(lost.Start), b.State(kept.Start))
	}
	other := allocCommit(t, b, 3, b.Geometry().AGFirst(1)) // AG 1 only
	cp, err = b.Seal(2, 2)
	must(t, err)
	written := disk.write(t, b, cp)
	if slot, ok := written[0]; !ok || slot != 1 {
		t.Errorf("recovered checkpoint 2 wrote AGs %v: AG 0 must go to slot 1, over the abandoned image", written)
	}
	must(t, b.CheckpointDurable(cp))

	c, _ := disk.load(t, 2, 2)
	for blk := lost.Start; blk < lost.End(); blk++ {
		if st := c.State(blk); st != extents.StateFree {
			t.Fatalf("block %d of the abandoned checkpoint: state %d after reload, want free", blk, st)
		}
	}
	if c.State(kept.Start) != extents.StateCommitted || c.State(other.Start) != extents.StateCommitted {
		t.Fatalf("reload lost committed blocks: kept %d other %d", c.State(kept.Start), c.State(other.Start))
	}
	if s := c.Stats(); s.CommittedBlocks != int64(kept.Len+other.Len) {
		t.Fatalf("reload: %d committed blocks, want %d", s.CommittedBlocks, kept.Len+other.Len)
	}
}

// TestFreeAfterSealStaysBusy checks that a block freed after a checkpoint
// was sealed is not released by that checkpoint, whatever LSN the free
// carries: the checkpoint's image (and roots) still hold the block, so it
// must stay busy until a later checkpoint, sealed after the free, is
// durable. Here the frees carry the sealed LSN itself.
func TestFreeAfterSealStaysBusy(t *testing.T) {
	a := newSmall(t, 1, smallOpts)
	e := allocCommit(t, a, 10, 0)
	checkpoint(t, a, 1, 5)
	pin, err := a.Pin(5)
	must(t, err)
	must(t, a.Free(extents.Extent{Start: e.Start, Len: 4}, 5)) // after checkpoint 1
	must(t, a.Unpin(pin))
	if st := a.State(e.Start); st != extents.StateBusy {
		t.Fatalf("block freed after checkpoint 1 is in state %d before any later checkpoint", st)
	}
	cp, err := a.Seal(2, 5)
	must(t, err)
	must(t, a.Free(extents.Extent{Start: e.Start + 4, Len: 3}, 5)) // after the seal of 2
	must(t, a.Dec(extents.Extent{Start: e.Start + 7, Len: 3}, 5))
	must(t, a.CheckpointDurable(cp))
	if st := a.State(e.Start); st != extents.StateFree {
		t.Fatalf("block freed before the seal of checkpoint 2: state %d after it is durable", st)
	}
	for b := e.Start + 4; b < e.End(); b++ {
		if st := a.State(b); st != extents.StateBusy {
			t.Fatalf("block %d freed after the seal of checkpoint 2: state %d once it is durable", b, st)
		}
	}
	checkpoint(t, a, 3, 5)
	if s := a.Stats(); s.BusyBlocks != 0 {
		t.Fatalf("after checkpoint 3: %d busy blocks", s.BusyBlocks)
	}
}

// TestLoaderAllocatesAsItLoads checks that a superblock claiming a huge AG
// count costs nothing until its AGs are actually loaded: a hostile count
// must not make NewLoader allocate per AG up front.
func TestLoaderAllocatesAsItLoads(t *testing.T) {
	opts := smallOpts
	opts.MaxAGCount = 1 << 24
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	l, err := extents.NewLoader(&opts, 1<<24, 1)
	runtime.ReadMemStats(&after)
	must(t, err)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Fatalf("NewLoader for 2^24 AGs allocated %d bytes up front", grew)
	}
	if _, err := l.Finish(1); !errors.Is(err, extents.ErrInvalid) {
		t.Fatalf("Finish before the AGs are loaded: %v", err)
	}
}

// TestFreeToOnlyWhatTheCheckpointHolds checks that FreeTo refuses blocks
// committed after the seal: the checkpoint's image does not hold them, and
// freeing them into it would release them when it is durable although a
// reader of the newer version can still see them. Blocks the checkpoint
// holds, committed before the seal or by CommitTo, are accepted.
func TestFreeToOnlyWhatTheCheckpointHolds(t *testing.T) {
	a := newSmall(t, 1, smallOpts)
	old := allocCommit(t, a, 4, 0)
	cp, err := a.Seal(1, 1)
	must(t, err)
	late := allocCommit(t, a, 4, old.End()) // committed at LSN 2, after the seal
	pin, err := a.Pin(2)
	must(t, err)
	if err := a.FreeTo(cp, late); !errors.Is(err, extents.ErrWrongState) {
		t.Fatalf("FreeTo of blocks committed after the seal: %v", err)
	}
	node, err := a.Alloc(2, late.End())
	must(t, err)
	must(t, a.CommitTo(cp, node))
	must(t, a.FreeTo(cp, node))
	must(t, a.FreeTo(cp, old))
	must(t, a.CheckpointDurable(cp))
	if a.State(late.Start) != extents.StateCommitted || a.State(old.Start) != extents.StateFree || a.State(node.Start) != extents.StateFree {
		t.Fatalf("after checkpoint 1: late %d old %d node %d", a.State(late.Start), a.State(old.Start), a.State(node.Start))
	}
	must(t, a.Unpin(pin))
}
