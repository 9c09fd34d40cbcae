package cowdb

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/cowdb/cowdb/btree"
	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/internal/record"
	"github.com/cowdb/cowdb/snapshot"
)

// Snapshots, restore and background drops (DESIGN §9).
//
// A snapshot is a counted root of the namespace tree: Snapshot shares the
// live root (one increment, btree.Tree.Share) and names it in memory;
// the next checkpoint writes its catalog entry ('s' + name). Restore makes
// the live root a share of the snapshot's. A root given up (a deleted
// snapshot, the live root a Restore replaced) becomes a drop: it is
// released in bounded steps (btree.Drop), each logged as a DropProgress
// record carrying the cursor after the step, and its cursor is written to
// the catalog ('d' + the LSN that started the drop) at each checkpoint, so
// a crash resumes where the drop stood. A drop starts only once a
// checkpoint has written its tree: a cursor can only name persisted nodes.
//
// These operations change roots, not a namespace tree, so each is logged
// alone in a record and applied with no batch open (applyRootOpLocked),
// the same way live and at replay.

// snapState is a named snapshot.
type snapState struct {
	tree    *btree.Tree // a counted root
	created int64       // unix nanoseconds
}

// dropState is a root being released in the background.
type dropState struct {
	id        uint64      // catalog DropKey id: the LSN of the record that began it
	tree      *btree.Tree // the root, until the first step
	d         *btree.Drop // nil until the first step (or a resumed cursor)
	persisted bool        // a checkpoint has written the tree: steps may run
	created   int64
}

// dropBudget is the work of one logged drop step: count changes and freed
// nodes (btree.Drop.Step's units). A step runs under the writer mutex and
// may read the nodes it releases, so it is kept small: writers wait at
// most one step.
const dropBudget = 64

// isRootOp reports whether op changes roots rather than a namespace tree.
func isRootOp(k record.Kind) bool {
	switch k {
	case record.Snapshot, record.DeleteSnapshot, record.Restore, record.DropProgress:
		return true
	}
	return false
}

// dropName is the Name a DropProgress record gives its drop.
func dropName(id uint64) string { return strconv.FormatUint(id, 16) }

// applyRootOpLocked applies one root operation logged (or replayed) at lsn.
// With no batch open, under db.mu. A DropProgress op with a nil Value is
// the live path's: it runs the step and fills in the cursor; at replay the
// cursor logged must be the one the step reaches.
func (db *DB) applyRootOpLocked(op *record.Op, lsn format.LSN) error {
	switch op.Kind {
	case record.Snapshot:
		if err := snapshot.ValidName(op.Name); err != nil {
			return fmt.Errorf("%w: %w", record.ErrBadBatch, err)
		}
		if db.mu.snaps[op.Name] != nil || len(db.mu.snaps) >= snapshot.MaxSnapshots {
			return fmt.Errorf("%w: snapshot %q exists, or %d snapshots", record.ErrBadBatch, op.Name, len(db.mu.snaps))
		}
		if err := db.mu.live.Share(); err != nil {
			return err
		}
		db.mu.snaps[op.Name] = &snapState{tree: db.mu.live, created: op.Time}
	case record.DeleteSnapshot:
		s := db.mu.snaps[op.Name]
		if s == nil {
			return fmt.Errorf("%w: delete of snapshot %q, which does not exist", record.ErrBadBatch, op.Name)
		}
		delete(db.mu.snaps, op.Name)
		db.mu.drops = append(db.mu.drops, &dropState{id: uint64(lsn), tree: s.tree, created: s.created})
	case record.Restore:
		s := db.mu.snaps[op.Name]
		if s == nil {
			return fmt.Errorf("%w: restore of snapshot %q, which does not exist", record.ErrBadBatch, op.Name)
		}
		if err := s.tree.Share(); err != nil {
			return err
		}
		db.mu.drops = append(db.mu.drops, &dropState{id: uint64(lsn), tree: db.mu.live, created: db.created})
		db.mu.live = s.tree
		db.mu.hasBlobs = true
		db.mu.restores++
		db.restores.Store(db.mu.restores)
		// Every page history belongs to the replaced root's inodes.
		db.cache.SetPinned(db.pages.apply(db.pages.coverAll(maxFileBlock), lsn))
	case record.DropProgress:
		return db.applyDropStepLocked(op, lsn)
	default:
		return fmt.Errorf("%w: %v is not a root operation", record.ErrBadBatch, op.Kind)
	}
	return nil
}

// applyDropStepLocked runs one step of the drop op.Name, its frees tagged
// lsn.
func (db *DB) applyDropStepLocked(op *record.Op, lsn format.LSN) error {
	i := slices.IndexFunc(db.mu.drops, func(d *dropState) bool { return dropName(d.id) == op.Name })
	if i < 0 || !db.mu.drops[i].persisted {
		return fmt.Errorf("%w: step of drop %q, which is not running", record.ErrBadBatch, op.Name)
	}
	ds := db.mu.drops[i]
	budget := op.Len
	if op.Value != nil {
		var n int
		budget, n = binary.Uvarint(op.Value)
		if n <= 0 {
			return fmt.Errorf("%w: step of drop %q without a budget", record.ErrBadBatch, op.Name)
		}
	}
	if budget == 0 || budget > dropBudget*64 {
		return fmt.Errorf("%w: step of drop %q with budget %d", record.ErrBadBatch, op.Name, budget)
	}
	if ds.d == nil {
		ds.d = db.forest.Drop(ds.tree)
		ds.tree = nil
	}
	db.mu.opLSN = lsn
	done, err := ds.d.Step(int(budget))
	if err != nil {
		return err
	}
	var cursor []byte
	if !done {
		if cursor, err = ds.d.MarshalBinary(); err != nil {
			return err
		}
	}
	// The record's Value: the budget (uvarint), then the cursor after the
	// step (empty once the drop is done).
	val := append(binary.AppendUvarint(nil, budget), cursor...)
	if op.Value == nil {
		op.Value = val
	} else if !bytes.Equal(op.Value, val) {
		return format.Corruptf(fmt.Sprintf("log record %d", lsn), format.ErrMalformed, "drop %s reached another cursor than logged", op.Name)
	}
	if done {
		db.mu.drops = slices.Delete(db.mu.drops, i, i+1)
	}
	db.stats.dropSteps.Add(1)
	return nil
}

// rootOp logs op alone in a record and applies it, publishing the live
// root it leaves; under SyncAlways it waits for durability. check runs
// under db.mu first and may refuse. quiesce writes back every dirty page
// first, with every blob writer held off until the record is logged
// (quiesceBlobs). A full log or no space checkpoints and retries, with no
// lock held.
func (db *DB) rootOp(op record.Op, quiesce bool, check func() error) error {
	if op.Kind == record.DropProgress {
		// A drop step is no one's write: it becomes durable with the next
		// flush or checkpoint, and replay resumes from the last one
		// logged. The background loop retries it.
		_, err := db.rootOpOnce(&op, check)
		if err == nil {
			db.bg.kick()
		}
		return err
	}
	return db.commitRetrying(func() (format.LSN, error) {
		if quiesce {
			release, err := db.quiesceBlobs()
			if err != nil {
				return 0, err
			}
			defer release()
		}
		o := op
		return db.rootOpOnce(&o, check)
	})
}

func (db *DB) rootOpOnce(op *record.Op, check func() error) (format.LSN, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if err := db.usableLocked(); err != nil {
		return 0, err
	}
	if check != nil {
		if err := check(); err != nil {
			return 0, err
		}
	}
	if err := db.checkHeadroomLocked(1, op.Kind == record.DeleteSnapshot || op.Kind == record.DropProgress); err != nil {
		return 0, err
	}
	want := db.mu.lastLSN + 1
	if op.Kind == record.DropProgress {
		// The step's result is part of the record: run it first, at the
		// LSN the record will get. A failed append then leaves counts
		// the log does not hold, which fails the store.
		if err := db.applyRootOpLocked(op, want); err != nil {
			return 0, db.failLocked(err)
		}
	}
	payload, err := record.Append(nil, []record.Op{*op})
	if err != nil {
		return 0, db.failLocked(err)
	}
	lsn, err := db.wal.Append(payload, 0)
	if err == nil && lsn != want {
		err = fmt.Errorf("cowdb: assertion failed: root operation logged at %d, expected %d", lsn, want)
	}
	if err != nil {
		if op.Kind == record.DropProgress {
			return 0, db.failLocked(err)
		}
		return 0, err
	}
	if op.Kind != record.DropProgress {
		if err := db.applyRootOpLocked(op, lsn); err != nil {
			return 0, db.failLocked(err)
		}
	}
	db.mu.lastLSN = lsn
	db.cur.Store(&version{ns: db.mu.live, lsn: lsn})
	db.stats.writes.Add(1)
	db.stats.walBytes.Add(int64(len(payload)))
	return lsn, nil
}

// quiesceBlobs holds off every blob writer and writes back every dirty
// page, so the live tree holds every acknowledged byte; release undoes it.
// Snapshot, Restore and Diff of the live store need it.
func (db *DB) quiesceBlobs() (release func(), err error) {
	db.deferMu.Lock()
	if err := db.writebackAll(); err != nil {
		db.deferMu.Unlock()
		return nil, err
	}
	return db.deferMu.Unlock, nil
}

// Snapshot names the live store's current state: O(1), one catalog entry
// and one reference, durable on return under SyncAlways. Names are 1 to
// 255 bytes of letters, digits and "-_.:@" (ErrInvalidOptions... see
// snapshot.ValidName); an existing name is ErrSnapshotExists; at most
// snapshot.MaxSnapshots exist at once.
func (db *DB) Snapshot(name string) (SnapshotInfo, error) {
	if err := snapshot.ValidName(name); err != nil {
		return SnapshotInfo{}, fmt.Errorf("%w: %w", ErrInvalidSnapshotName, err)
	}
	if db.closed.Load() {
		return SnapshotInfo{}, ErrClosed
	}
	now := time.Now()
	err := db.rootOp(record.Op{Kind: record.Snapshot, Name: name, Time: now.UnixNano()}, true, func() error {
		if db.mu.snaps[name] != nil {
			return fmt.Errorf("%w: %q", ErrSnapshotExists, name)
		}
		if len(db.mu.snaps) >= snapshot.MaxSnapshots {
			return fmt.Errorf("%w: %d snapshots exist, at most %d", ErrTooManySnapshots, len(db.mu.snaps), snapshot.MaxSnapshots)
		}
		return nil
	})
	if err != nil {
		return SnapshotInfo{}, err
	}
	return SnapshotInfo{Name: name, Created: time.Unix(0, now.UnixNano())}, nil
}

// DeleteSnapshot removes the snapshot name, durably on return under
// SyncAlways; the space only it used is reclaimed in the background, in
// bounded logged steps that resume after a crash (Stats.Dropping). An
// open Snapshot handle of it stays readable until closed.
func (db *DB) DeleteSnapshot(name string) error {
	if err := snapshot.ValidName(name); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSnapshotName, err)
	}
	return db.rootOp(record.Op{Kind: record.DeleteSnapshot, Name: name}, false, func() error {
		if db.mu.snaps[name] == nil {
			return fmt.Errorf("%w: %q", ErrSnapshotNotFound, name)
		}
		return nil
	})
}

// Restore makes the live store the snapshot name, in O(1), durably on
// return under SyncAlways; the snapshot stays. The replaced live state is
// dropped in the background. Every Blob handle of the live store open
// before the Restore returns ErrStale from then on (its value may differ
// in the restored state even where the key is the same).
func (db *DB) Restore(name string) error {
	if err := snapshot.ValidName(name); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSnapshotName, err)
	}
	if db.closed.Load() {
		return ErrClosed
	}
	err := db.rootOp(record.Op{Kind: record.Restore, Name: name}, true, func() error {
		if db.mu.snaps[name] == nil {
			return fmt.Errorf("%w: %q", ErrSnapshotNotFound, name)
		}
		return nil
	})
	if err == nil {
		// The blob write path's inodes describe the replaced root.
		db.inodes.DropAll()
	}
	return err
}

// dropWork reports what the background drops need: a checkpoint (a drop's
// tree is not written yet) or steps.
func (db *DB) dropWork() (needCheckpoint, steps bool) {
	db.mu.Lock()
	defer db.mu.Unlock()
	for _, d := range db.mu.drops {
		if d.persisted {
			steps = true
		} else {
			needCheckpoint = true
		}
	}
	return needCheckpoint, steps
}

// dropSteps runs up to n logged drop steps and reports whether drops
// remain to step.
func (db *DB) dropSteps(n int) (bool, error) {
	for range n {
		var name string
		db.mu.Lock()
		for _, d := range db.mu.drops {
			if d.persisted {
				name = dropName(d.id)
				break
			}
		}
		db.mu.Unlock()
		if name == "" {
			return false, nil
		}
		if err := db.rootOp(record.Op{Kind: record.DropProgress, Name: name, Len: dropBudget}, false, nil); err != nil {
			return false, err
		}
	}
	_, more := db.dropWork()
	return more, nil
}
