package cowdb_test

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cowdb/cowdb"
	"github.com/cowdb/cowdb/snapshot"
	"github.com/cowdb/cowdb/vfs"
)

// snapVal is one key's value in the snapshot model.
type snapVal struct {
	data   []byte // never changed in place: the frozen copies share it
	id     int    // the value's identity (its inode): new at every replacement
	inline bool   // a Put of at most snapInlineMax bytes never written as a blob
}

// snapKV is one state of the store: key -> value.
type snapKV map[string]snapVal

// snapInlineMax is the default Options.InlineMax, which the model tests
// keep: a Put of at most this many bytes is stored inline, and the first
// blob write to such a value makes it a new blob (a new inode).
const snapInlineMax = 512

// snapFrozen is a snapshot in the model: the state it names and when the
// store said it was taken.
type snapFrozen struct {
	kv      snapKV
	created time.Time
}

// heldSnap is an open Snapshot handle with the state it must read.
type heldSnap struct {
	h    *cowdb.Snapshot
	name string
	kv   snapKV
}

// snapModelConfig is one set of options the snapshot model test runs
// under.
type snapModelConfig struct {
	name             string
	cacheSize        int64 // 1 MiB: blob writeback under memory pressure
	deferredWriteMax int
}

var snapModelConfigs = []snapModelConfig{
	{"pressure", 1 << 20, 0},
	{"roomy", 64 << 20, 16 << 10},
}

func (c snapModelConfig) opts(fs vfs.FS) *cowdb.Options {
	o := memOpts(fs)
	o.CacheSize = c.cacheSize
	o.DeferredWriteMax = c.deferredWriteMax
	o.WALSegmentSize = 1 << 20
	return o
}

const (
	snapKeys    = 6   // "k0".."k5": values, blobs, clones
	snapNames   = 5   // "s0".."s4"
	snapBulk    = 400 // "m/0000"..: bulk keys, so trees have several levels
	heldSnapMax = 3   // Snapshot handles kept open at once
)

func snapKey(i int) string  { return fmt.Sprintf("k%d", i) }
func snapName(i int) string { return fmt.Sprintf("s%d", i) }

// snapOpKind says what a snapOp does.
type snapOpKind int

const (
	sPut            snapOpKind = iota // Put key: n bytes (inline or extents)
	sDelete                           // Delete key
	sCreateBlob                       // CreateBlob key
	sWriteAt                          // WriteAt through key's live handle (CreateBlob if absent)
	sTruncate                         // Truncate through key's live handle
	sBulk                             // Update putting (n > 0) or deleting every bulk key
	sSnapshot                         // Snapshot name
	sDeleteSnapshot                   // DeleteSnapshot name
	sRestore                          // Restore name
	sClone                            // Clone key to key2
	sCloneFrom                        // CloneFrom name: key to key2
	sOpenSnap                         // OpenSnapshot name, kept open
	sReadSnap                         // a read (mode n) through an open handle
	sCloseSnap                        // Close an open handle
	sDiff                             // Diff name to name2 (-1: live)
	sList                             // Snapshots
	sCheckpoint                       // Checkpoint, then CheckPersisted
	sReopen                           // close everything, reopen
)

// snapOp is one step of the model test, drawn ahead of the run so a
// failing sequence can be replayed and shrunk. Offsets and sizes are
// resolved against the model when the step runs, so every subsequence is
// a valid run.
type snapOp struct {
	kind        snapOpKind
	key, key2   int
	name, name2 int
	off         int64
	n           int
	aligned     bool
	data        uint64
}

func (op snapOp) String() string {
	k, k2 := snapKey(op.key), snapKey(op.key2)
	nm := func(i int) string {
		if i < 0 {
			return `""`
		}
		return snapName(i)
	}
	switch op.kind {
	case sPut:
		return fmt.Sprintf("Put(%s, %d bytes)", k, op.n)
	case sDelete:
		return fmt.Sprintf("Delete(%s)", k)
	case sCreateBlob:
		return fmt.Sprintf("CreateBlob(%s)", k)
	case sWriteAt:
		return fmt.Sprintf("%s: WriteAt(off %d, n %d, aligned %v)", k, op.off, op.n, op.aligned)
	case sTruncate:
		return fmt.Sprintf("%s: Truncate(mode %d, %d)", k, op.n, op.off)
	case sBulk:
		return fmt.Sprintf("bulk (put %v)", op.n > 0)
	case sSnapshot:
		return fmt.Sprintf("Snapshot(%s)", nm(op.name))
	case sDeleteSnapshot:
		return fmt.Sprintf("DeleteSnapshot(%s)", nm(op.name))
	case sRestore:
		return fmt.Sprintf("Restore(%s)", nm(op.name))
	case sClone:
		return fmt.Sprintf("Clone(%s, %s)", k, k2)
	case sCloneFrom:
		return fmt.Sprintf("CloneFrom(%s, %s, %s)", nm(op.name), k, k2)
	case sOpenSnap:
		return fmt.Sprintf("OpenSnapshot(%s)", nm(op.name))
	case sReadSnap:
		return fmt.Sprintf("read handle %d, mode %d, %s..%s", op.name, op.n, k, k2)
	case sCloseSnap:
		return fmt.Sprintf("close handle %d", op.name)
	case sDiff:
		return fmt.Sprintf("Diff(%s, %s)", nm(op.name), nm(op.name2))
	case sList:
		return "Snapshots"
	case sCheckpoint:
		return "Checkpoint"
	}
	return "reopen"
}

// genSnapOps draws n steps. It follows which snapshots exist so that most
// steps name one that does (and most Snapshot steps one that does not);
// the rest check the errors.
func genSnapOps(rng *rand.Rand, bs int64, n int) []snapOp {
	ops := make([]snapOp, 0, n)
	var exists [snapNames]bool
	pick := func(want bool) int {
		var names []int
		for i, e := range exists {
			if e == want {
				names = append(names, i)
			}
		}
		if len(names) == 0 || rng.IntN(8) == 0 {
			return rng.IntN(snapNames)
		}
		return names[rng.IntN(len(names))]
	}
	for range n {
		op := snapOp{key: rng.IntN(snapKeys), key2: rng.IntN(snapKeys), name: pick(true), name2: pick(true), data: rng.Uint64()}
		if rng.IntN(3) == 0 {
			op.name2 = -1 // the live store, for Diff
		}
		switch p := rng.IntN(100); {
		case p < 12:
			op.kind, op.n = sPut, rng.IntN(snapInlineMax+1)
			if rng.IntN(3) == 0 {
				op.n = snapInlineMax + 1 + rng.IntN(40000)
			}
		case p < 16:
			op.kind = sDelete
		case p < 18:
			op.kind = sCreateBlob
		case p < 36:
			op.kind, op.aligned = sWriteAt, rng.IntN(5) < 2
			if op.aligned {
				op.off, op.n = rng.Int64N(24)*bs, (1+rng.IntN(8))*int(bs)
			} else {
				op.off, op.n = rng.Int64N(1<<30), 1+rng.IntN(20000)
			}
		case p < 40:
			op.kind, op.n, op.off = sTruncate, rng.IntN(3), rng.Int64N(1<<30)
		case p < 42:
			op.kind, op.n = sBulk, rng.IntN(3) // mostly puts
		case p < 50:
			op.kind, op.name = sSnapshot, pick(false)
			exists[op.name] = true
		case p < 55:
			op.kind = sDeleteSnapshot
			exists[op.name] = false
		case p < 59:
			op.kind = sRestore
		case p < 63:
			op.kind = sClone
		case p < 67:
			op.kind = sCloneFrom
		case p < 71:
			op.kind = sOpenSnap
		case p < 80:
			op.kind, op.n = sReadSnap, rng.IntN(5)
		case p < 82:
			op.kind = sCloseSnap
		case p < 90:
			op.kind = sDiff
			if rng.IntN(3) == 0 {
				op.name = -1
			}
		case p < 92:
			op.kind = sList
		case p < 97:
			op.kind = sCheckpoint
		default:
			op.kind = sReopen
		}
		ops = append(ops, op)
	}
	return ops
}

// snapData returns the n bytes a step with data seed d writes.
func snapData(d uint64, n int) []byte {
	return randBytes(rand.New(rand.NewPCG(d, 1)), n)
}

// TestSnapshotModel interleaves, at random, Put and Delete of inline and
// extent values, blob WriteAt (aligned and not) and Truncate through live
// handles, bulk transactions, Snapshot, DeleteSnapshot, Restore, Clone,
// CloneFrom, reads through Snapshot handles kept open across later deletes
// and restores, Diff between random pairs, Snapshots, checkpoints and
// reopens, against a model holding the live state and a frozen copy per
// snapshot. It checks every result and error against the model, Diff per
// key (kind, and for a blob modified in place that every changed byte
// lies in Ranges), that each checkpoint's durable image keeps the DESIGN
// §6 invariant (cowdb.CheckPersisted), and at the end that deleting every
// snapshot and key and letting the drops finish leaves exactly a new
// store's committed blocks. A failing sequence is shrunk and printed;
// rerun with -run 'TestSnapshotModel/<config>/seed=<n>'.
func TestSnapshotModel(t *testing.T) {
	seeds, nOps := 4, 200
	switch {
	case *long:
		seeds, nOps = 20, 600
	case raceEnabled():
		seeds = 1
	}
	for _, c := range snapModelConfigs {
		for s := range seeds {
			seed := uint64(s + 1)
			t.Run(fmt.Sprintf("%s/seed=%d", c.name, seed), func(t *testing.T) {
				ops := genSnapOps(rand.New(rand.NewPCG(seed, 31)), 4096, nOps)
				if err := runSnapOps(c, ops, seed); err != nil {
					flags := ""
					if *long {
						flags = " -long"
					}
					t.Fatalf("%v\nrerun: go test -run 'TestSnapshotModel/%s/seed=%d'%s\nshrunk to:\n%s",
						err, c.name, seed, flags, shrinkSnapOps(c, ops, seed))
				}
			})
		}
	}
}

// snapRun is the state of one model run.
type snapRun struct {
	c      snapModelConfig
	fs     *vfs.MemFS
	db     *cowdb.DB
	rng    *rand.Rand // the checks' own choices
	live   snapKV
	snaps  map[string]snapFrozen
	nextID int
	blobs  map[string]*cowdb.Blob // live handles, each on its key's current value
	open   []heldSnap
}

// runSnapOps runs ops on a new store and returns the first disagreement
// with the model.
func runSnapOps(c snapModelConfig, ops []snapOp, seed uint64) (err error) {
	r := &snapRun{c: c, fs: vfs.NewMem(), rng: rand.New(rand.NewPCG(seed, 32)), live: snapKV{},
		snaps: map[string]snapFrozen{}, blobs: map[string]*cowdb.Blob{}}
	if r.db, err = cowdb.Open("/db", c.opts(r.fs)); err != nil {
		return err
	}
	defer func() {
		for _, o := range r.open {
			o.h.Close()
		}
		r.db.Close()
	}()
	for step, op := range ops {
		err := r.do(op)
		if err == nil && step%10 == 9 {
			err = r.checkLive()
		}
		if err != nil {
			return fmt.Errorf("step %d, %v: %w", step, op, err)
		}
	}
	if err := r.checkAll(); err != nil {
		return fmt.Errorf("at the end: %w", err)
	}
	if err := r.reopen(); err != nil {
		return err
	}
	if err := r.checkAll(); err != nil {
		return fmt.Errorf("at the end, after reopening: %w", err)
	}
	return r.empty()
}

func (r *snapRun) newID() int {
	r.nextID++
	return r.nextID
}

// do performs op on the store and on the model.
func (r *snapRun) do(op snapOp) error {
	k := snapKey(op.key)
	switch op.kind {
	case sPut:
		data := snapData(op.data, op.n)
		if err := r.db.Put([]byte(k), data); err != nil {
			return err
		}
		r.live[k] = snapVal{data: data, id: r.newID(), inline: len(data) <= snapInlineMax}
		return r.replaced(k)
	case sDelete:
		if err := r.db.Delete([]byte(k)); err != nil {
			return err
		}
		delete(r.live, k)
		return r.replaced(k)
	case sCreateBlob:
		old := r.blobs[k]
		b, err := r.db.CreateBlob([]byte(k))
		if err != nil {
			return err
		}
		r.live[k] = snapVal{data: []byte{}, id: r.newID()}
		if err := staleCheck(k, old); err != nil {
			return err
		}
		r.blobs[k] = b
		return r.checkKey(k)
	case sWriteAt, sTruncate:
		return r.blobWrite(op)
	case sBulk:
		return r.bulk(op)
	case sSnapshot, sDeleteSnapshot, sRestore:
		return r.rootOp(op)
	case sClone:
		return r.clone(op)
	case sCloneFrom:
		return r.cloneFrom(op)
	case sOpenSnap, sReadSnap, sCloseSnap:
		return r.handleOp(op)
	case sDiff:
		return r.diff(op)
	case sList:
		return r.list()
	case sCheckpoint:
		if err := r.db.Checkpoint(); err != nil {
			return err
		}
		return cowdb.CheckPersisted(r.fs.CloneDurable(), "/db")
	}
	if err := r.reopen(); err != nil {
		return err
	}
	return r.list()
}

// replaced checks that key's live handle, if any, went stale when its
// value was replaced or deleted, and forgets it; then checks the key.
func (r *snapRun) replaced(k string) error {
	b := r.blobs[k]
	delete(r.blobs, k)
	if err := staleCheck(k, b); err != nil {
		return err
	}
	return r.checkKey(k)
}

// staleCheck requires a read through b, if not nil, to give ErrStale.
func staleCheck(k string, b *cowdb.Blob) error {
	if b == nil {
		return nil
	}
	if _, err := b.ReadAt(make([]byte, 1), 0); !errors.Is(err, cowdb.ErrStale) {
		return fmt.Errorf("handle of %s after its value was replaced: ReadAt = %v, want ErrStale", k, err)
	}
	return nil
}

// checkKey compares Get(k) with the live model.
func (r *snapRun) checkKey(k string) error {
	return checkGet(k, r.live, func(key []byte) ([]byte, error) { return r.db.Get(key) })
}

// checkGet compares get(k) with kv.
func checkGet(k string, kv snapKV, get func([]byte) ([]byte, error)) error {
	got, err := get([]byte(k))
	want, ok := kv[k]
	switch {
	case !ok && !errors.Is(err, cowdb.ErrNotFound):
		return fmt.Errorf("Get(%s) = %d bytes, %v; want ErrNotFound", k, len(got), err)
	case ok && (err != nil || !bytes.Equal(got, want.data)):
		return fmt.Errorf("Get(%s) = %d bytes, %v; want %d bytes (first difference at %d)", k, len(got), err, len(want.data), firstDiff(got, want.data))
	}
	return nil
}

// handle returns key's live handle, creating the blob if the key holds no
// value.
func (r *snapRun) handle(k string) (*cowdb.Blob, error) {
	if b := r.blobs[k]; b != nil {
		return b, nil
	}
	var b *cowdb.Blob
	var err error
	if _, ok := r.live[k]; ok {
		b, err = r.db.OpenBlob([]byte(k))
	} else {
		b, err = r.db.CreateBlob([]byte(k))
		r.live[k] = snapVal{data: []byte{}, id: r.newID()}
	}
	if err != nil {
		return nil, err
	}
	r.blobs[k] = b
	return b, nil
}

// blobWrite does a WriteAt or Truncate through the key's live handle.
func (r *snapRun) blobWrite(op snapOp) error {
	k := snapKey(op.key)
	b, err := r.handle(k)
	if err != nil {
		return err
	}
	v := r.live[k]
	m := blobModel(bytes.Clone(v.data))
	size := int64(len(m))
	if v.inline { // the first blob write makes a new inode
		v.id, v.inline = r.newID(), false
	}
	if op.kind == sWriteAt {
		off := op.off
		if !op.aligned {
			off %= size + 8192
		}
		data := snapData(op.data, op.n)
		m.writeAt(data, off)
		_, err = b.WriteAt(data, off)
	} else {
		to := size
		switch op.n {
		case 0:
			to = op.off % (size + 1)
		case 1:
			to = size + op.off%20000
		}
		m.truncate(to)
		err = b.Truncate(to)
	}
	if err != nil {
		return err
	}
	v.data = m
	r.live[k] = v
	if err := checkBlob(b, m, r.rng); err != nil {
		return err
	}
	return r.checkKey(k)
}

// bulk puts (or deletes) every bulk key in one transaction.
func (r *snapRun) bulk(op snapOp) error {
	put := op.n > 0
	rng := rand.New(rand.NewPCG(op.data, 2))
	vals := make([][]byte, snapBulk)
	err := r.db.Update(func(tx *cowdb.Tx) error {
		for i := range snapBulk {
			k := []byte(fmt.Sprintf("m/%04d", i))
			if !put {
				if err := tx.Delete(k); err != nil {
					return err
				}
				continue
			}
			vals[i] = randBytes(rng, 20+rng.IntN(80))
			if err := tx.Put(k, vals[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := range snapBulk {
		k := fmt.Sprintf("m/%04d", i)
		if put {
			r.live[k] = snapVal{data: vals[i], id: r.newID(), inline: true}
		} else {
			delete(r.live, k)
		}
	}
	return nil
}

// rootOp does a Snapshot, DeleteSnapshot or Restore, and requires the
// error the model predicts.
func (r *snapRun) rootOp(op snapOp) error {
	name := snapName(op.name)
	s, exists := r.snaps[name]
	switch op.kind {
	case sSnapshot:
		info, err := r.db.Snapshot(name)
		if exists {
			return wantErr("Snapshot of an existing name", err, cowdb.ErrSnapshotExists)
		}
		if err != nil {
			return err
		}
		if info.Name != name {
			return fmt.Errorf("Snapshot returned %+v", info)
		}
		r.snaps[name] = snapFrozen{kv: maps.Clone(r.live), created: info.Created}
		return nil
	case sDeleteSnapshot:
		err := r.db.DeleteSnapshot(name)
		if !exists {
			return wantErr("DeleteSnapshot of a missing name", err, cowdb.ErrSnapshotNotFound)
		}
		delete(r.snaps, name)
		return err
	}
	err := r.db.Restore(name)
	if !exists {
		if err := wantErr("Restore of a missing name", err, cowdb.ErrSnapshotNotFound); err != nil {
			return err
		}
		// Nothing changed: the live handles still work.
		for k, b := range r.blobs {
			if err := checkBlob(b, r.live[k].data, nil); err != nil {
				return fmt.Errorf("handle of %s after a failed Restore: %w", k, err)
			}
		}
		return nil
	}
	if err != nil {
		return err
	}
	r.live = maps.Clone(s.kv)
	for _, k := range slices.Sorted(maps.Keys(r.blobs)) {
		b := r.blobs[k]
		delete(r.blobs, k)
		if err := staleCheck(k, b); err != nil {
			return fmt.Errorf("after Restore: %w", err)
		}
		if _, err := b.WriteAt([]byte("x"), 0); !errors.Is(err, cowdb.ErrStale) {
			return fmt.Errorf("handle of %s after Restore: WriteAt = %v, want ErrStale", k, err)
		}
	}
	return r.checkLive()
}

// wantErr checks that err wraps want.
func wantErr(what string, err, want error) error {
	if !errors.Is(err, want) {
		return fmt.Errorf("%s = %v, want %v", what, err, want)
	}
	return nil
}

// clone does a Clone: ErrNotFound for a missing src, nothing for src ==
// dst, else dst a new value with src's bytes.
func (r *snapRun) clone(op snapOp) error {
	k, k2 := snapKey(op.key), snapKey(op.key2)
	v, ok := r.live[k]
	err := r.db.Clone([]byte(k), []byte(k2))
	if !ok {
		return wantErr("Clone of a missing key", err, cowdb.ErrNotFound)
	}
	if err != nil {
		return err
	}
	if k == k2 {
		if b := r.blobs[k]; b != nil {
			if err := checkBlob(b, v.data, nil); err != nil {
				return fmt.Errorf("handle of %s after Clone onto itself: %w", k, err)
			}
		}
		return r.checkKey(k)
	}
	r.live[k2] = snapVal{data: v.data, id: r.newID(), inline: v.inline}
	return r.replaced(k2)
}

// cloneFrom does a CloneFrom.
func (r *snapRun) cloneFrom(op snapOp) error {
	name, k, k2 := snapName(op.name), snapKey(op.key), snapKey(op.key2)
	s, exists := r.snaps[name]
	err := r.db.CloneFrom(name, []byte(k), []byte(k2))
	if !exists {
		return wantErr("CloneFrom a missing snapshot", err, cowdb.ErrSnapshotNotFound)
	}
	v, ok := s.kv[k]
	if !ok {
		return wantErr("CloneFrom of a key the snapshot lacks", err, cowdb.ErrNotFound)
	}
	if err != nil {
		return err
	}
	r.live[k2] = snapVal{data: v.data, id: r.newID(), inline: v.inline}
	return r.replaced(k2)
}

// handleOp opens, reads or closes Snapshot handles.
func (r *snapRun) handleOp(op snapOp) error {
	switch op.kind {
	case sOpenSnap:
		name := snapName(op.name)
		s, exists := r.snaps[name]
		h, err := r.db.OpenSnapshot(name)
		if !exists {
			return wantErr("OpenSnapshot of a missing name", err, cowdb.ErrSnapshotNotFound)
		}
		if err != nil {
			return err
		}
		if h.Name() != name {
			return fmt.Errorf("OpenSnapshot(%s).Name() = %q", name, h.Name())
		}
		r.open = append(r.open, heldSnap{h: h, name: name, kv: s.kv})
		if len(r.open) > heldSnapMax {
			err := closeSnapCheck(r.open[0])
			r.open = r.open[1:]
			return err
		}
		return checkSnapHandle(r.open[len(r.open)-1], nil)
	case sCloseSnap:
		if len(r.open) == 0 {
			return nil
		}
		i := op.name % len(r.open)
		err := closeSnapCheck(r.open[i])
		r.open = slices.Delete(r.open, i, i+1)
		return err
	}
	if len(r.open) == 0 {
		return nil
	}
	o := r.open[op.name%len(r.open)]
	k, k2 := snapKey(op.key), snapKey(op.key2)
	switch op.n {
	case 0:
		return checkGet(k, o.kv, o.h.Get)
	case 1:
		return checkSnapHandle(o, r.rng)
	case 2:
		b, err := o.h.OpenBlob([]byte(k))
		v, ok := o.kv[k]
		if !ok {
			return wantErr("snapshot OpenBlob of a missing key", err, cowdb.ErrNotFound)
		}
		if err != nil {
			return err
		}
		defer b.Close()
		return checkBlob(b, v.data, r.rng)
	case 3:
		return checkItems(o.h.Prefix([]byte("k")), o.kv, func(k string) bool { return strings.HasPrefix(k, "k") })
	}
	lo, hi := min(k, k2), max(k, k2)
	return checkItems(o.h.Scan([]byte(lo), []byte(hi)), o.kv, func(k string) bool { return lo <= k && k < hi })
}

// closeSnapCheck closes o's handle and requires ErrClosed from its reads
// afterwards, and nil from a second Close.
func closeSnapCheck(o heldSnap) error {
	if err := o.h.Close(); err != nil {
		return err
	}
	if _, err := o.h.Get([]byte("k0")); !errors.Is(err, cowdb.ErrClosed) {
		return fmt.Errorf("Get on a closed Snapshot = %v, want ErrClosed", err)
	}
	return o.h.Close()
}

// checkSnapHandle compares everything o reads with its state: Scan with
// each value, and every key's blob (with rng, random ranges too).
func checkSnapHandle(o heldSnap, rng *rand.Rand) error {
	if err := checkItems(o.h.Scan(nil, nil), o.kv, func(string) bool { return true }); err != nil {
		return fmt.Errorf("snapshot %s: %w", o.name, err)
	}
	for i := range snapKeys {
		k := snapKey(i)
		v, ok := o.kv[k]
		if !ok {
			continue
		}
		b, err := o.h.OpenBlob([]byte(k))
		if err != nil {
			return fmt.Errorf("snapshot %s: OpenBlob(%s): %w", o.name, k, err)
		}
		err = checkBlob(b, v.data, rng)
		b.Close()
		if err != nil {
			return fmt.Errorf("snapshot %s, blob %s: %w", o.name, k, err)
		}
	}
	return nil
}

// checkItems compares what items yields with the keys of kv that in
// selects: key order, Size, Value.
func checkItems(items func(func(*cowdb.Item, error) bool), kv snapKV, in func(string) bool) error {
	var want []string
	for k := range kv {
		if in(k) {
			want = append(want, k)
		}
	}
	slices.Sort(want)
	i := 0
	for it, err := range items {
		if err != nil {
			return err
		}
		if i >= len(want) || string(it.Key) != want[i] {
			return fmt.Errorf("scan yielded %q as item %d; want %v", it.Key, i, want[i:min(i+1, len(want))])
		}
		v := kv[want[i]]
		got, err := it.Value()
		if err != nil || it.Size != int64(len(v.data)) || !bytes.Equal(got, v.data) {
			return fmt.Errorf("scan: %s: Size %d, Value %d bytes, %v; want %d bytes", it.Key, it.Size, len(got), err, len(v.data))
		}
		i++
	}
	if i != len(want) {
		return fmt.Errorf("scan yielded %d items, want %d", i, len(want))
	}
	return nil
}

// checkLive compares a scan of the live store with the model.
func (r *snapRun) checkLive() error {
	return checkItems(r.db.Scan(nil, nil), r.live, func(string) bool { return true })
}

// checkAll compares the live store, the snapshot list and every snapshot,
// opened anew, with the model.
func (r *snapRun) checkAll() error {
	if err := r.checkLive(); err != nil {
		return err
	}
	if err := r.list(); err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(r.snaps)) {
		h, err := r.db.OpenSnapshot(name)
		if err != nil {
			return err
		}
		err = checkSnapHandle(heldSnap{h: h, name: name, kv: r.snaps[name].kv}, nil)
		h.Close()
		if err != nil {
			return err
		}
	}
	for _, o := range r.open {
		if err := checkSnapHandle(o, nil); err != nil {
			return fmt.Errorf("handle kept open: %w", err)
		}
	}
	return nil
}

// diff checks Diff(from, to) against the model.
func (r *snapRun) diff(op snapOp) error {
	pick := func(i int) (string, snapKV, bool) {
		if i < 0 {
			return "", r.live, true
		}
		s, ok := r.snaps[snapName(i)]
		return snapName(i), s.kv, ok
	}
	from, a, okA := pick(op.name)
	to, b, okB := pick(op.name2)
	got, err := collectDiff(r.db, from, to)
	if !okA || !okB {
		return wantErr(fmt.Sprintf("Diff(%q, %q) with a missing snapshot", from, to), err, cowdb.ErrSnapshotNotFound)
	}
	if err != nil {
		return err
	}
	if err := checkDiff(a, b, got, 4096); err != nil {
		return fmt.Errorf("Diff(%q, %q): %w", from, to, err)
	}
	return nil
}

// collectDiff returns every change Diff yields, or its error.
func collectDiff(db *cowdb.DB, from, to string) ([]cowdb.Change, error) {
	var out []cowdb.Change
	for c, err := range db.Diff(from, to) {
		if err != nil {
			return out, err
		}
		out = append(out, c)
	}
	return out, nil
}

// checkDiff checks changes against the two states: key order, one change
// per key, the right kind for every key whose presence or bytes differ
// (a key whose bytes are the same may be listed as Modified, as Diff
// compares records), and Ranges exactly for blobs modified in place
// (same identity, not inline), covering every byte that differs.
func checkDiff(from, to snapKV, changes []cowdb.Change, bs int64) error {
	listed := map[string]bool{}
	for i, c := range changes {
		k := string(c.Key)
		if i > 0 && bytes.Compare(changes[i-1].Key, c.Key) >= 0 {
			return fmt.Errorf("change %d (%q) is not after %q", i, k, changes[i-1].Key)
		}
		listed[k] = true
		a, inA := from[k]
		b, inB := to[k]
		switch {
		case c.Kind == cowdb.Added && !inA && inB:
		case c.Kind == cowdb.Removed && inA && !inB:
		case c.Kind == cowdb.Modified && inA && inB:
		default:
			return fmt.Errorf("key %q listed as %v; in from %v, in to %v", k, c.Kind, inA, inB)
		}
		inPlace := c.Kind == cowdb.Modified && a.id == b.id && !a.inline
		switch {
		case c.Ranges != nil && !inPlace:
			return fmt.Errorf("key %q (%v): Ranges %v for a value not modified in place", k, c.Kind, c.Ranges)
		case c.Ranges == nil && inPlace && !bytes.Equal(a.data, b.data):
			return fmt.Errorf("key %q: blob modified in place (%d -> %d bytes, first difference at %d) without Ranges",
				k, len(a.data), len(b.data), firstDiff(a.data, b.data))
		case c.Ranges != nil:
			if err := checkRanges(c.Ranges, a.data, b.data, bs); err != nil {
				return fmt.Errorf("key %q: %w", k, err)
			}
		}
	}
	for k := range mergeKV(from, to) {
		if listed[k] {
			continue
		}
		a, inA := from[k]
		b, inB := to[k]
		if inA != inB || !bytes.Equal(a.data, b.data) {
			return fmt.Errorf("key %q not listed: in from %v (%d bytes), in to %v (%d bytes)", k, inA, len(a.data), inB, len(b.data))
		}
	}
	return nil
}

func mergeKV(a, b snapKV) map[string]bool {
	m := map[string]bool{}
	for k := range a {
		m[k] = true
	}
	for k := range b {
		m[k] = true
	}
	return m
}

// checkRanges checks a blob's changed ranges between old and new bytes:
// sorted, apart, block aligned (the last may end at the larger size),
// within the larger size, and covering every byte that differs or exists
// on one side only.
func checkRanges(ranges []cowdb.Range, old, new []byte, bs int64) error {
	size := int64(max(len(old), len(new)))
	var prevEnd int64 = -1
	for _, r := range ranges {
		end := r.Off + r.Len
		if r.Off%bs != 0 || r.Len <= 0 || r.Off <= prevEnd || end > size || end%bs != 0 && end != size {
			return fmt.Errorf("bad Ranges %v for a blob of %d -> %d bytes", ranges, len(old), len(new))
		}
		prevEnd = end
	}
	j := 0
	for i := range size {
		if i < int64(len(old)) && i < int64(len(new)) && old[i] == new[i] {
			continue
		}
		for j < len(ranges) && ranges[j].Off+ranges[j].Len <= i {
			j++
		}
		if j == len(ranges) || ranges[j].Off > i {
			return fmt.Errorf("byte %d differs (%d -> %d bytes) but Ranges %v miss it", i, len(old), len(new), ranges)
		}
	}
	return nil
}

// list checks Snapshots against the model: names in order, Created as
// Snapshot returned it, and sizes: ExclusiveBytes within ReferencedBytes,
// which covers at least every block of data holding a non-zero byte (a
// block the snapshot's blobs must have stored).
func (r *snapRun) list() error {
	infos, err := r.db.Snapshots()
	if err != nil {
		return err
	}
	names := slices.Sorted(maps.Keys(r.snaps))
	if len(infos) != len(names) {
		return fmt.Errorf("Snapshots lists %d, want %v", len(infos), names)
	}
	if st := r.db.Stats(); st.Snapshots != len(names) {
		return fmt.Errorf("Stats.Snapshots = %d, want %d", st.Snapshots, len(names))
	}
	for i, info := range infos {
		s := r.snaps[names[i]]
		if info.Name != names[i] || !info.Created.Equal(s.created) {
			return fmt.Errorf("Snapshots[%d] = %s created %v; want %s created %v", i, info.Name, info.Created, names[i], s.created)
		}
		var data int64
		for _, v := range s.kv {
			if !v.inline {
				data += nonZeroBlocks(v.data, 4096) * 4096
			}
		}
		if info.ReferencedBytes < data || info.ExclusiveBytes < 0 || info.ExclusiveBytes > info.ReferencedBytes {
			return fmt.Errorf("snapshot %s: %d bytes referenced, %d exclusive; its blobs hold %d bytes of non-zero blocks",
				info.Name, info.ReferencedBytes, info.ExclusiveBytes, data)
		}
	}
	return nil
}

// nonZeroBlocks counts the blocks of p holding a non-zero byte.
func nonZeroBlocks(p []byte, bs int) int64 {
	var n int64
	for off := 0; off < len(p); off += bs {
		if slices.ContainsFunc(p[off:min(off+bs, len(p))], func(c byte) bool { return c != 0 }) {
			n++
		}
	}
	return n
}

// reopen closes the live handles and the store, checks the DESIGN §6
// invariant on what Close left and that the Snapshot handles left open
// now say ErrClosed, and reopens.
func (r *snapRun) reopen() error {
	for k, b := range r.blobs {
		if err := b.Close(); err != nil {
			return fmt.Errorf("Close of %s's handle: %w", k, err)
		}
	}
	r.blobs = map[string]*cowdb.Blob{}
	if err := r.db.Close(); err != nil {
		return err
	}
	if err := cowdb.CheckPersisted(r.fs, "/db"); err != nil {
		return fmt.Errorf("after Close: %w", err)
	}
	for _, o := range r.open {
		if _, err := o.h.Get([]byte("k0")); !errors.Is(err, cowdb.ErrClosed) {
			return fmt.Errorf("Snapshot handle after DB.Close: Get = %v, want ErrClosed", err)
		}
		if err := o.h.Close(); err != nil {
			return fmt.Errorf("Close of a Snapshot handle after DB.Close: %w", err)
		}
	}
	r.open = nil
	db, err := cowdb.Open("/db", r.c.opts(r.fs))
	if err != nil {
		return err
	}
	r.db = db
	return nil
}

// empty deletes every snapshot and key, waits for the drops and requires
// the store to hold a new store's committed blocks and nothing leaked.
func (r *snapRun) empty() error {
	for _, o := range r.open {
		o.h.Close()
	}
	r.open = nil
	for k, b := range r.blobs {
		b.Close()
		delete(r.blobs, k)
	}
	if err := emptyStore(r.db); err != nil {
		return err
	}
	if err := r.db.Close(); err != nil {
		return err
	}
	if err := cowdb.CheckPersisted(r.fs, "/db"); err != nil {
		return err
	}
	return checkEmptied(r.fs, r.c.opts(r.fs))
}

// emptyStore deletes every snapshot and every key of db, and waits for
// the background drops to finish.
func emptyStore(db *cowdb.DB) error {
	infos, err := db.Snapshots()
	if err != nil {
		return err
	}
	for _, info := range infos {
		if err := db.DeleteSnapshot(info.Name); err != nil {
			return err
		}
	}
	var keys [][]byte
	for it, err := range db.Scan(nil, nil) {
		if err != nil {
			return err
		}
		keys = append(keys, bytes.Clone(it.Key))
	}
	for batch := range slices.Chunk(keys, 500) {
		err := db.Update(func(tx *cowdb.Tx) error {
			for _, k := range batch {
				if err := tx.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return waitDrops(db)
}

// dropPollMax bounds the polls of waitDrops in a row that see no drop
// step done: each poll is a checkpoint, a kick and a 1 ms pause, so the
// bound is seconds past the checkpointer's 1 s tick.
const dropPollMax = 5000

// dropKickKey is a key the tests never write: deleting it changes nothing
// but, as every write does, kicks the background checkpointer.
var dropKickKey = []byte("\xffno such key: kicks the checkpointer")

// waitDrops checkpoints until no drop is left, failing if the drops stop
// making progress (no step in dropPollMax polls). Each poll also kicks
// the checkpointer with a write that changes nothing: after the
// checkpoint that writes a drop's tree, and after Open resumes a drop, it
// runs the drop's steps only when kicked or at its 1 s tick.
func waitDrops(db *cowdb.DB) error {
	steps, idle := db.Stats().DropSteps, 0
	for {
		st := db.Stats()
		if st.Dropping == 0 {
			return nil
		}
		if st.DropSteps != steps {
			steps, idle = st.DropSteps, 0
		}
		if idle++; idle > dropPollMax {
			return fmt.Errorf("%d drops made no progress in %d polls (%d steps done)", st.Dropping, idle, st.DropSteps)
		}
		if err := db.Checkpoint(); err != nil {
			return err
		}
		if err := db.Delete(dropKickKey); err != nil {
			return err
		}
		time.Sleep(time.Millisecond)
	}
}

// shrinkSnapOps removes ops from a failing sequence while it still fails
// (within a bounded number of runs) and returns the shortest failure
// found, with its ops.
func shrinkSnapOps(c snapModelConfig, ops []snapOp, seed uint64) string {
	return shrink(ops, func(ops []snapOp) error { return runSnapOps(c, ops, seed) }, 300)
}

// snapNamedCalls runs every call but Snapshot that names a snapshot, and
// returns their errors by name (Diff only for a name other than "", which
// Diff reads as the live store).
func snapNamedCalls(db *cowdb.DB, name string) map[string]error {
	calls := map[string]error{}
	calls["DeleteSnapshot"] = db.DeleteSnapshot(name)
	calls["Restore"] = db.Restore(name)
	_, calls["OpenSnapshot"] = db.OpenSnapshot(name)
	calls["CloneFrom"] = db.CloneFrom(name, []byte("a"), []byte("c"))
	if name != "" { // "" names the live store in Diff
		_, calls["Diff(name, live)"] = collectDiff(db, name, "")
		_, calls["Diff(live, name)"] = collectDiff(db, "", name)
	}
	return calls
}

// snapHandleCalls runs every read of a Snapshot handle and returns their
// errors by name.
func snapHandleCalls(h *cowdb.Snapshot) map[string]error {
	first := func(items func(func(*cowdb.Item, error) bool)) error {
		for _, err := range items {
			return err
		}
		return nil
	}
	calls := map[string]error{}
	_, calls["Get"] = h.Get([]byte("a"))
	_, calls["OpenBlob"] = h.OpenBlob([]byte("b"))
	calls["Scan"] = first(h.Scan(nil, nil))
	calls["Prefix"] = first(h.Prefix(nil))
	return calls
}

// snapErrStore is the fixture of the error tests: a store holding "a"
// (inline) and "b" (10000 bytes in extents), and the snapshot "s" of it.
type snapErrStore struct {
	db   *cowdb.DB
	big  []byte
	info cowdb.SnapshotInfo
}

func newSnapErrStore(t *testing.T) *snapErrStore {
	t.Helper()
	f := &snapErrStore{db: mustOpen(t, vfs.NewMem(), "/db"), big: bytes.Repeat([]byte("0123456789"), 1000)}
	t.Cleanup(func() { f.db.Close() })
	if err := f.db.Put([]byte("a"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := f.db.Put([]byte("b"), f.big); err != nil {
		t.Fatal(err)
	}
	var err error
	if f.info, err = f.db.Snapshot("s"); err != nil {
		t.Fatal(err)
	}
	return f
}

// unchanged requires the store to be as the fixture made it: the one
// snapshot, created when Snapshot said, and the two values.
func (f *snapErrStore) unchanged(t *testing.T, when string) {
	t.Helper()
	infos, err := f.db.Snapshots()
	if err != nil || len(infos) != 1 || infos[0].Name != "s" || !infos[0].Created.Equal(f.info.Created) {
		t.Fatalf("%s: Snapshots = %+v, %v; want only s", when, infos, err)
	}
	want := snapKV{"a": {data: []byte("1")}, "b": {data: f.big}}
	if err := checkItems(f.db.Scan(nil, nil), want, func(string) bool { return true }); err != nil {
		t.Fatalf("%s: live store: %v", when, err)
	}
}

// TestSnapshotNameErrors checks, for every call that names a snapshot,
// ErrInvalidSnapshotName for invalid names and ErrSnapshotNotFound for a
// missing one, ErrSnapshotExists for Snapshot of an existing name, that
// none of them changes anything, and that the longest valid name, with
// every punctuation byte allowed, works.
func TestSnapshotNameErrors(t *testing.T) {
	f := newSnapErrStore(t)
	for _, name := range []string{"", "a/b", "a b", "\u00e9", "x\x00", "..\n", strings.Repeat("n", 256)} {
		if _, err := f.db.Snapshot(name); !errors.Is(err, cowdb.ErrInvalidSnapshotName) {
			t.Errorf("Snapshot(%q) = %v, want ErrInvalidSnapshotName", name, err)
		}
		for call, err := range snapNamedCalls(f.db, name) {
			if !errors.Is(err, cowdb.ErrInvalidSnapshotName) {
				t.Errorf("%s with name %q = %v, want ErrInvalidSnapshotName", call, name, err)
			}
		}
	}
	f.unchanged(t, "after invalid names")
	for call, err := range snapNamedCalls(f.db, "missing") {
		if !errors.Is(err, cowdb.ErrSnapshotNotFound) {
			t.Errorf("%s of a missing snapshot = %v, want ErrSnapshotNotFound", call, err)
		}
	}
	if _, err := f.db.Snapshot("s"); !errors.Is(err, cowdb.ErrSnapshotExists) {
		t.Errorf("Snapshot of an existing name = %v, want ErrSnapshotExists", err)
	}
	f.unchanged(t, "after missing and existing names")
	longest := strings.Repeat("x", snapshot.NameMax-5) + "-_.:@"
	if _, err := f.db.Snapshot(longest); err != nil {
		t.Fatalf("Snapshot of a %d-byte name: %v", len(longest), err)
	}
	if err := f.db.DeleteSnapshot(longest); err != nil {
		t.Fatal(err)
	}
	f.unchanged(t, "after the longest name")
}

// TestSnapshotKeyErrors checks the key errors of Clone, CloneFrom and a
// Snapshot handle's reads: ErrNotFound for a missing source (also onto
// itself), ErrInvalidKey and ErrKeyTooLarge for bad keys on either side,
// a Clone of a key onto itself doing nothing, and none of them changing
// anything.
func TestSnapshotKeyErrors(t *testing.T) {
	f := newSnapErrStore(t)
	db := f.db
	tooLong := bytes.Repeat([]byte("k"), cowdb.MaxKeySize+1)
	h, err := db.OpenSnapshot("s")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for what, c := range map[string]struct{ err, want error }{
		"Clone of a missing key":             {db.Clone([]byte("missing"), []byte("c")), cowdb.ErrNotFound},
		"Clone of a missing key onto itself": {db.Clone([]byte("missing"), []byte("missing")), cowdb.ErrNotFound},
		"CloneFrom of a missing key":         {db.CloneFrom("s", []byte("missing"), []byte("c")), cowdb.ErrNotFound},
		"Clone from an empty key":            {db.Clone(nil, []byte("c")), cowdb.ErrInvalidKey},
		"Clone to an empty key":              {db.Clone([]byte("a"), nil), cowdb.ErrInvalidKey},
		"Clone to a long key":                {db.Clone([]byte("a"), tooLong), cowdb.ErrKeyTooLarge},
		"CloneFrom of an empty key":          {db.CloneFrom("s", nil, []byte("c")), cowdb.ErrInvalidKey},
		"CloneFrom to a long key":            {db.CloneFrom("s", []byte("a"), tooLong), cowdb.ErrKeyTooLarge},
		"snapshot Get of a missing key":      {firstErr(h.Get([]byte("missing"))), cowdb.ErrNotFound},
		"snapshot OpenBlob of a missing key": {firstErr(h.OpenBlob([]byte("missing"))), cowdb.ErrNotFound},
		"snapshot Get of an empty key":       {firstErr(h.Get(nil)), cowdb.ErrInvalidKey},
		"snapshot OpenBlob of a long key":    {firstErr(h.OpenBlob(tooLong)), cowdb.ErrKeyTooLarge},
	} {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s = %v, want %v", what, c.err, c.want)
		}
	}
	b, err := db.OpenBlob([]byte("b"))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Clone([]byte("b"), []byte("b")); err != nil {
		t.Fatalf("Clone of a key onto itself = %v", err)
	}
	if err := checkBlob(b, f.big, nil); err != nil {
		t.Fatalf("handle of a key cloned onto itself: %v", err)
	}
	f.unchanged(t, "after refused clones")
}

// TestSnapshotReadOnlyAndStale checks that a snapshot's blobs refuse
// writes with ErrReadOnly, and that after a Restore every live Blob
// handle opened before it is stale for every call (including writes,
// which land nowhere), while a snapshot's blob handle stays good and a
// live handle opened after works.
func TestSnapshotReadOnlyAndStale(t *testing.T) {
	f := newSnapErrStore(t)
	db := f.db
	h, err := db.OpenSnapshot("s")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	checkSnapReadOnly(t, h, "b", f.big)
	if err := db.Put([]byte("new"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	live := map[string]*cowdb.Blob{}
	for _, k := range []string{"a", "b", "new"} {
		if live[k], err = db.OpenBlob([]byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := live["b"].WriteAt([]byte("before"), 3); err != nil {
		t.Fatal(err)
	}
	sb, err := h.OpenBlob([]byte("b"))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Restore("s"); err != nil {
		t.Fatal(err)
	}
	for k, b := range live {
		for call, err := range blobCalls(b) {
			if !errors.Is(err, cowdb.ErrStale) {
				t.Errorf("live handle of %s after Restore: %s = %v, want ErrStale", k, call, err)
			}
		}
	}
	f.unchanged(t, "after Restore and writes through stale handles")
	if err := checkBlob(sb, f.big, nil); err != nil {
		t.Errorf("snapshot blob handle after Restore: %v", err)
	}
	nb, err := db.OpenBlob([]byte("b"))
	if err != nil {
		t.Fatal(err)
	}
	if err := checkBlob(nb, f.big, nil); err != nil {
		t.Errorf("new live handle after Restore: %v", err)
	}
}

// TestSnapshotClosed checks ErrClosed: every read of a closed Snapshot
// handle and of a blob opened from it, Close again returning nil; then,
// once the DB is closed, every snapshot call of the DB and every read of
// a handle still open.
func TestSnapshotClosed(t *testing.T) {
	f := newSnapErrStore(t)
	db := f.db
	h, err := db.OpenSnapshot("s")
	if err != nil {
		t.Fatal(err)
	}
	sb, err := h.OpenBlob([]byte("b"))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	for call, err := range snapHandleCalls(h) {
		if !errors.Is(err, cowdb.ErrClosed) {
			t.Errorf("closed Snapshot: %s = %v, want ErrClosed", call, err)
		}
	}
	if _, err := sb.ReadAt(make([]byte, 1), 0); !errors.Is(err, cowdb.ErrClosed) {
		t.Errorf("blob of a closed Snapshot: ReadAt = %v, want ErrClosed", err)
	}
	if err := h.Close(); err != nil {
		t.Errorf("second Close of a Snapshot = %v", err)
	}
	h2, err := db.OpenSnapshot("s")
	if err != nil {
		t.Fatal(err)
	}
	sb2, err := h2.OpenBlob([]byte("b"))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	calls := snapNamedCalls(db, "s")
	_, calls["Snapshot"] = db.Snapshot("t")
	_, calls["Snapshots"] = db.Snapshots()
	calls["Clone"] = db.Clone([]byte("a"), []byte("c"))
	for call, err := range snapHandleCalls(h2) {
		calls["handle "+call] = err
	}
	_, calls["snapshot blob ReadAt"] = sb2.ReadAt(make([]byte, 1), 0)
	for call, err := range calls {
		if !errors.Is(err, cowdb.ErrClosed) {
			t.Errorf("after DB.Close: %s = %v, want ErrClosed", call, err)
		}
	}
	if err := h2.Close(); err != nil {
		t.Errorf("Close of a Snapshot of a closed DB = %v", err)
	}
}

// checkSnapReadOnly checks that the blob key of the snapshot h, which
// holds want, refuses every write with ErrReadOnly, through OpenBlob and
// through Item.Open, and still reads want after.
func checkSnapReadOnly(t *testing.T, h *cowdb.Snapshot, key string, want []byte) {
	t.Helper()
	var handles []*cowdb.Blob
	b, err := h.OpenBlob([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	handles = append(handles, b)
	for it, err := range h.Prefix([]byte(key)) {
		if err != nil {
			t.Fatal(err)
		}
		if string(it.Key) == key {
			ib, err := it.Open()
			if err != nil {
				t.Fatal(err)
			}
			handles = append(handles, ib)
		}
	}
	if len(handles) != 2 {
		t.Fatalf("snapshot Prefix(%q) did not yield the key", key)
	}
	for i, b := range handles {
		for call, err := range map[string]error{
			"WriteAt":  firstErr(b.WriteAt([]byte("x"), 0)),
			"Truncate": b.Truncate(0),
			"Write":    firstErr(b.Write([]byte("x"))),
			"ReadFrom": firstErr(b.ReadFrom(bytes.NewReader([]byte("x")))),
		} {
			if !errors.Is(err, cowdb.ErrReadOnly) {
				t.Errorf("snapshot blob (handle %d): %s = %v, want ErrReadOnly", i, call, err)
			}
		}
		if err := checkBlob(b, want, nil); err != nil {
			t.Errorf("snapshot blob (handle %d) after refused writes: %v", i, err)
		}
		if err := b.Close(); err != nil {
			t.Errorf("snapshot blob (handle %d): Close = %v", i, err)
		}
	}
	if got, err := h.Get([]byte(key)); err != nil || !bytes.Equal(got, want) {
		t.Errorf("snapshot Get(%s) after refused writes = %d bytes, %v", key, len(got), err)
	}
}

// TestSnapshotLimit takes snapshot.MaxSnapshots snapshots: one more is
// ErrTooManySnapshots (and changes nothing), and deleting one makes room
// again; every name survives a reopen.
func TestSnapshotLimit(t *testing.T) {
	fs := vfs.NewMem()
	o := memOpts(fs)
	o.Sync = cowdb.SyncNever // 10000 root operations, made durable by Close
	db, err := cowdb.Open("/db", o)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { db.Close() }()
	if err := db.Put([]byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	for i := range snapshot.MaxSnapshots {
		if _, err := db.Snapshot(fmt.Sprintf("n%05d", i)); err != nil {
			t.Fatalf("snapshot %d: %v", i, err)
		}
	}
	if _, err := db.Snapshot("one-more"); !errors.Is(err, cowdb.ErrTooManySnapshots) {
		t.Fatalf("Snapshot beyond MaxSnapshots = %v, want ErrTooManySnapshots", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err = cowdb.Open("/db", o); err != nil {
		t.Fatal(err)
	}
	infos, err := db.Snapshots()
	if err != nil || len(infos) != snapshot.MaxSnapshots || infos[0].Name != "n00000" || infos[len(infos)-1].Name != fmt.Sprintf("n%05d", snapshot.MaxSnapshots-1) {
		t.Fatalf("after reopening: %d snapshots, %v", len(infos), err)
	}
	if _, err := db.Snapshot("one-more"); !errors.Is(err, cowdb.ErrTooManySnapshots) {
		t.Fatalf("Snapshot beyond MaxSnapshots after reopening = %v, want ErrTooManySnapshots", err)
	}
	if err := db.DeleteSnapshot("n00042"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Snapshot("one-more"); err != nil {
		t.Fatalf("Snapshot after deleting one: %v", err)
	}
}

// TestSnapshotSpace checks the sizes Snapshots reports and the space a
// deleted snapshot gives back: a snapshot of an unchanged live store has
// nothing exclusive; once every value is replaced in the live store, its
// old values' blocks are exclusive to it; deleting it frees, once the
// drop has run and checkpoints have made them reusable, as many blocks as
// it had exclusive, give or take the metadata trees' own nodes.
func TestSnapshotSpace(t *testing.T) {
	fs := vfs.NewMem()
	o := memOpts(fs)
	db, err := cowdb.Open("/db", o)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const n, size = 40, 5 * 4096
	put := func(seed uint64) {
		t.Helper()
		rng := rand.New(rand.NewPCG(seed, 0))
		for i := range n {
			if err := db.Put([]byte(fmt.Sprintf("v%03d", i)), randBytes(rng, size)); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.Checkpoint(); err != nil {
			t.Fatal(err)
		}
	}
	sizes := func() map[string]cowdb.SnapshotInfo {
		t.Helper()
		infos, err := db.Snapshots()
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]cowdb.SnapshotInfo{}
		for _, i := range infos {
			m[i.Name] = i
		}
		return m
	}
	put(1)
	if _, err := db.Snapshot("old"); err != nil {
		t.Fatal(err)
	}
	s := sizes()["old"]
	if s.ExclusiveBytes != 0 || s.ReferencedBytes < n*size {
		t.Fatalf("snapshot of the live store: %d bytes referenced, %d exclusive; want at least %d, and 0", s.ReferencedBytes, s.ExclusiveBytes, n*size)
	}
	put(2)
	if _, err := db.Snapshot("new"); err != nil {
		t.Fatal(err)
	}
	m := sizes()
	old, cur := m["old"], m["new"]
	t.Logf("old: %+v; new: %+v", old, cur)
	if old.ExclusiveBytes < n*size || old.ExclusiveBytes > old.ReferencedBytes || old.ReferencedBytes > n*size+64*4096 {
		t.Fatalf("snapshot whose values were all replaced: %d bytes referenced, %d exclusive; want %d of values exclusive",
			old.ReferencedBytes, old.ExclusiveBytes, n*size)
	}
	if cur.ExclusiveBytes != 0 {
		t.Fatalf("snapshot of the unchanged live store: %d bytes exclusive", cur.ExclusiveBytes)
	}
	for range 2 {
		if err := db.Checkpoint(); err != nil {
			t.Fatal(err)
		}
	}
	before := db.Stats()
	if err := db.DeleteSnapshot("old"); err != nil {
		t.Fatal(err)
	}
	if err := waitDrops(db); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := db.Checkpoint(); err != nil {
			t.Fatal(err)
		}
	}
	after := db.Stats()
	freed := after.FreeBlocks - before.FreeBlocks
	excl := old.ExclusiveBytes / 4096
	t.Logf("freed %d blocks, %d exclusive, %d drop steps; committed %d -> %d", freed, excl, after.DropSteps, before.CommittedBlocks, after.CommittedBlocks)
	if freed < excl-4 || freed > excl+4 {
		t.Fatalf("deleting the snapshot freed %d blocks; it had %d exclusive", freed, excl)
	}
	if got := sizes(); len(got) != 1 || got["new"].ExclusiveBytes != 0 {
		t.Fatalf("after the delete: %+v", got)
	}
}

// snapPublished is a snapshot the concurrent test's writer took, with the
// bytes its blob held then.
type snapPublished struct {
	name string
	data []byte
}

// TestSnapshotConcurrent reads snapshots while the live blob they were
// taken of is rewritten (aligned, unaligned and growing writes), new
// snapshots are taken, old ones deleted, the live store restored to one
// now and then, and checkpoints run: every read through a Snapshot handle
// (Get, and ReadAt of its blob), including one handle held open for the
// whole run, must return exactly the bytes the blob held when the
// snapshot was taken. Two more goroutines write blobs of their own
// throughout, so Snapshot and Restore race with writers of other values
// (which see ErrStale after a Restore and open their value again). Meant
// for -race. At the end every blob must read the same through Get and
// OpenBlob, and the store must empty with no block leaked.
func TestSnapshotConcurrent(t *testing.T) {
	fs := vfs.NewMem()
	o := memOpts(fs)
	o.DeferredWriteMax = 8192
	o.WALSegmentSize = 1 << 20
	db, err := cowdb.Open("/db", o)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { db.Close() }()
	rounds := 300
	if raceEnabled() {
		rounds = 150
	}
	rng := rand.New(rand.NewPCG(6, 6))
	model := blobModel(randBytes(rng, 40*4096))
	if err := db.Put([]byte("b"), model); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Snapshot("first"); err != nil {
		t.Fatal(err)
	}
	held, err := db.OpenSnapshot("first")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	first := snapPublished{"first", bytes.Clone(model)}
	var mu sync.Mutex
	pub := []snapPublished{first}
	done := make(chan struct{})
	var writer, others sync.WaitGroup
	writer.Go(func() {
		defer close(done)
		if err := snapConcurrentWriter(db, rng, model, rounds, &mu, &pub); err != nil {
			t.Errorf("writer: %v", err)
		}
	})
	for i := range 2 {
		others.Go(func() {
			if err := snapNoiseWriter(db, fmt.Sprintf("n%d", i), uint64(i), done); err != nil {
				t.Errorf("writer of n%d: %v", i, err)
			}
		})
	}
	for r := range 3 {
		others.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 7))
			for {
				select {
				case <-done:
					return
				default:
				}
				mu.Lock()
				p := pub[rng.IntN(len(pub))]
				mu.Unlock()
				if err := snapConcurrentRead(db, nil, p, rng); err != nil {
					t.Errorf("reader %d: %v", r, err)
					return
				}
				if err := snapConcurrentRead(db, held, first, rng); err != nil {
					t.Errorf("reader %d, the handle held open: %v", r, err)
					return
				}
			}
		})
	}
	others.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			if err := db.Checkpoint(); err != nil {
				t.Errorf("Checkpoint: %v", err)
				return
			}
		}
	})
	writer.Wait()
	others.Wait()
	if t.Failed() {
		return
	}
	if err := snapConcurrentRead(db, held, first, rng); err != nil {
		t.Fatalf("the handle held open, at the end: %v", err)
	}
	held.Close()
	for _, k := range []string{"n0", "n1"} {
		v, err := db.Get([]byte(k))
		if errors.Is(err, cowdb.ErrNotFound) {
			continue // restored to a snapshot taken before it was made
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := db.OpenBlob([]byte(k))
		if err != nil {
			t.Fatal(err)
		}
		if err := checkBlob(b, v, rng); err != nil {
			t.Fatalf("%s reads otherwise through a blob than through Get: %v", k, err)
		}
	}
	if err := emptyStore(db); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cowdb.CheckPersisted(fs, "/db"); err != nil {
		t.Fatal(err)
	}
	if err := checkEmptied(fs, o); err != nil {
		t.Fatal(err)
	}
}

// snapNoiseWriter writes the blob key (aligned and unaligned) until done,
// while snapshots are taken and restored under it: a write refused with
// ErrStale (a Restore replaced the value) opens the key again, or creates
// it if the restored state lacks it.
func snapNoiseWriter(db *cowdb.DB, key string, seed uint64, done chan struct{}) error {
	rng := rand.New(rand.NewPCG(seed, 8))
	b, err := db.CreateBlob([]byte(key))
	if err != nil {
		return err
	}
	defer func() { b.Close() }()
	for {
		select {
		case <-done:
			return nil
		default:
		}
		if rng.IntN(2) == 0 {
			_, err = b.WriteAt(randBytes(rng, (1+rng.IntN(4))*4096), rng.Int64N(30)*4096)
		} else {
			_, err = b.WriteAt(randBytes(rng, 1+rng.IntN(9000)), rng.Int64N(120000))
		}
		if errors.Is(err, cowdb.ErrStale) {
			b.Close()
			if b, err = db.OpenBlob([]byte(key)); errors.Is(err, cowdb.ErrNotFound) {
				b, err = db.CreateBlob([]byte(key))
			}
		}
		if err != nil {
			return err
		}
	}
}

// snapConcurrentWriter rewrites the blob b, whose bytes are m, for the
// given rounds; every few rounds it takes a snapshot and publishes it
// with the bytes the blob held, deletes the oldest one beyond four, or
// restores one.
func snapConcurrentWriter(db *cowdb.DB, rng *rand.Rand, m blobModel, rounds int, mu *sync.Mutex, pub *[]snapPublished) error {
	b, err := db.OpenBlob([]byte("b"))
	if err != nil {
		return err
	}
	defer func() { b.Close() }()
	for round := range rounds {
		var off int64
		var data []byte
		switch rng.IntN(3) {
		case 0:
			off, data = rng.Int64N(48)*4096, randBytes(rng, (1+rng.IntN(4))*4096)
		case 1:
			off, data = rng.Int64N(int64(len(m))+100), randBytes(rng, 1+rng.IntN(9000))
		default:
			off, data = rng.Int64N(int64(len(m))), randBytes(rng, 1+rng.IntN(300))
		}
		m.writeAt(data, off)
		if _, err := b.WriteAt(data, off); err != nil {
			return fmt.Errorf("round %d: WriteAt: %w", round, err)
		}
		switch round % 5 {
		case 0:
			name := fmt.Sprintf("c%d", round)
			if _, err := db.Snapshot(name); err != nil {
				return err
			}
			mu.Lock()
			*pub = append(*pub, snapPublished{name, bytes.Clone(m)})
			var old string
			if len(*pub) > 5 {
				old = (*pub)[1].name // [0] is the held one
				*pub = slices.Delete(*pub, 1, 2)
			}
			mu.Unlock()
			if old != "" {
				if err := db.DeleteSnapshot(old); err != nil {
					return err
				}
			}
		case 3:
			if rng.IntN(4) != 0 {
				continue
			}
			mu.Lock()
			p := (*pub)[rng.IntN(len(*pub))]
			mu.Unlock()
			if err := db.Restore(p.name); err != nil {
				return err
			}
			m = blobModel(bytes.Clone(p.data))
			b.Close()
			if b, err = db.OpenBlob([]byte("b")); err != nil {
				return err
			}
		}
	}
	return checkBlob(b, m, rng)
}

// snapConcurrentRead reads p's blob through h (if nil, a handle opened
// now; a snapshot deleted meanwhile is skipped): Get, and ReadAt of a few
// random ranges.
func snapConcurrentRead(db *cowdb.DB, h *cowdb.Snapshot, p snapPublished, rng *rand.Rand) error {
	if h == nil {
		var err error
		h, err = db.OpenSnapshot(p.name)
		if errors.Is(err, cowdb.ErrSnapshotNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		defer h.Close()
	}
	got, err := h.Get([]byte("b"))
	if err != nil || !bytes.Equal(got, p.data) {
		return fmt.Errorf("snapshot %s: Get = %d bytes, %v; want %d bytes (first difference at %d)", p.name, len(got), err, len(p.data), firstDiff(got, p.data))
	}
	b, err := h.OpenBlob([]byte("b"))
	if err != nil {
		return err
	}
	defer b.Close()
	for range 3 {
		off := rng.IntN(len(p.data))
		if err := checkRange(b, p.data, off, 1+rng.IntN(20000)); err != nil {
			return fmt.Errorf("snapshot %s: %w", p.name, err)
		}
	}
	return nil
}

// reuseStore is a store with a cache too small to hold what the reuse
// tests read, so their reads go to the data file, and a random source
// for its values.
type reuseStore struct {
	fs  *vfs.MemFS
	db  *cowdb.DB
	rng *rand.Rand
}

func newReuseStore(t *testing.T, seed uint64) *reuseStore {
	t.Helper()
	r := &reuseStore{fs: vfs.NewMem(), rng: rand.New(rand.NewPCG(seed, seed))}
	r.db = mustOpen(t, r.fs, "/db") // CacheSize 1 MiB
	t.Cleanup(func() { r.db.Close() })
	return r
}

// fill puts 60 values of up to 30000 bytes under prefix and returns them.
func (r *reuseStore) fill(t *testing.T, prefix string) snapKV {
	t.Helper()
	kv := snapKV{}
	for i := range 60 {
		k, v := fmt.Sprintf("%s%02d", prefix, i), randBytes(r.rng, 100+r.rng.IntN(30000))
		if err := r.db.Put([]byte(k), v); err != nil {
			t.Fatal(err)
		}
		kv[k] = snapVal{data: v}
	}
	return kv
}

// churn lets the drops finish, checkpoints twice so that every block
// given up is free, then writes new values (taking free blocks, and
// giving up the last churn's) and checkpoints.
func (r *reuseStore) churn(t *testing.T) {
	t.Helper()
	if err := waitDrops(r.db); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := r.db.Checkpoint(); err != nil {
			t.Fatal(err)
		}
	}
	r.fill(t, "new")
	if err := r.db.Checkpoint(); err != nil {
		t.Fatal(err)
	}
}

// finish empties the store and requires no block leaked.
func (r *reuseStore) finish(t *testing.T) {
	t.Helper()
	if err := emptyStore(r.db); err != nil {
		t.Fatal(err)
	}
	if err := r.db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := checkEmptied(r.fs, memOpts(r.fs)); err != nil {
		t.Fatal(err)
	}
}

// TestSnapshotHandleOutlivesReuse checks that an open Snapshot keeps
// reading its own bytes after the snapshot is deleted (and the live store
// lets go of the same values), its drop has run, checkpoints have made
// its blocks free, and new writes have taken free blocks.
func TestSnapshotHandleOutlivesReuse(t *testing.T) {
	r := newReuseStore(t, 9)
	old := r.fill(t, "k")
	if _, err := r.db.Snapshot("s"); err != nil {
		t.Fatal(err)
	}
	h, err := r.db.OpenSnapshot("s")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := r.db.DeleteSnapshot("s"); err != nil {
		t.Fatal(err)
	}
	for k := range old {
		if err := r.db.Delete([]byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	r.churn(t)
	r.churn(t)
	if err := checkSnapHandle(heldSnap{h: h, name: "s", kv: old}, r.rng); err != nil {
		t.Fatalf("deleted snapshot, after its blocks were freed and written: %v", err)
	}
	for k := range old {
		if err := checkGet(k, old, h.Get); err != nil {
			t.Fatal(err)
		}
	}
	h.Close()
	r.finish(t)
}

// TestSnapshotScanOutlivesRestore checks that a live Scan under way keeps
// reading the version it began on after a Restore in its loop body gives
// up that version's root, the drop has run, and the blocks were freed and
// taken by new writes.
func TestSnapshotScanOutlivesRestore(t *testing.T) {
	r := newReuseStore(t, 10)
	r.fill(t, "k")
	if _, err := r.db.Snapshot("older"); err != nil {
		t.Fatal(err)
	}
	live := r.fill(t, "k") // replaces every value: the live root reads these
	n := 0
	for it, err := range r.db.Prefix([]byte("k")) {
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			if err := r.db.Restore("older"); err != nil {
				t.Fatal(err)
			}
			if err := r.db.DeleteSnapshot("older"); err != nil {
				t.Fatal(err)
			}
			r.churn(t)
			r.churn(t)
		}
		n++
		v, err := it.Value()
		if want := live[string(it.Key)]; err != nil || !bytes.Equal(v, want.data) {
			t.Fatalf("live Scan across a Restore and reuse: %s = %d bytes, %v; want %d bytes", it.Key, len(v), err, len(want.data))
		}
	}
	if n != len(live) {
		t.Fatalf("live Scan yielded %d items, want %d", n, len(live))
	}
	r.finish(t)
}

// TestSnapshotBufferedWrites checks how Snapshot and Restore treat a
// handle's buffered Write bytes, which are not written to the store until
// a flush (Sync, Close, another call on the handle): a snapshot taken
// before the flush does not hold them, and after a Restore the flush is
// refused with ErrStale and writes nothing.
func TestSnapshotBufferedWrites(t *testing.T) {
	db := mustOpen(t, vfs.NewMem(), "/db")
	defer db.Close()
	b, err := db.CreateBlob([]byte("b"))
	if err != nil {
		t.Fatal(err)
	}
	base := bytes.Repeat([]byte("a"), 10000)
	if _, err := b.WriteAt(base, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Write([]byte("buffered")); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Snapshot("s"); err != nil {
		t.Fatal(err)
	}
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	withWrite := blobModel(bytes.Clone(base))
	withWrite.writeAt([]byte("buffered"), 0)
	if got, err := db.Get([]byte("b")); err != nil || !bytes.Equal(got, withWrite) {
		t.Fatalf("live after Sync: %d bytes, %v", len(got), err)
	}
	h, err := db.OpenSnapshot("s")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if got, err := h.Get([]byte("b")); err != nil || !bytes.Equal(got, base) {
		t.Fatalf("snapshot taken before the flush: %q..., %v; want the bytes without the buffered write", got[:min(10, len(got))], err)
	}
	if _, err := b.Write([]byte("lost")); err != nil {
		t.Fatal(err)
	}
	if err := db.Restore("s"); err != nil {
		t.Fatal(err)
	}
	if err := b.Sync(); !errors.Is(err, cowdb.ErrStale) {
		t.Fatalf("Sync of a buffered write after Restore = %v, want ErrStale", err)
	}
	if err := b.Close(); err != nil && !errors.Is(err, cowdb.ErrStale) {
		t.Fatalf("Close of a stale handle = %v", err)
	}
	if got, err := db.Get([]byte("b")); err != nil || !bytes.Equal(got, base) {
		t.Fatalf("after Restore and a refused flush: %q..., %v", got[:min(10, len(got))], err)
	}
}

// TestSnapshotDeleteWhenFull fills a store bounded by MaxSize while a
// snapshot holds the data, until writes fail with ErrNoSpace; deleting
// the snapshot and the live keys must still work there, the drop must run
// and, once it has, the space must take the same writes again.
func TestSnapshotDeleteWhenFull(t *testing.T) {
	fs := vfs.NewMem()
	o := memOpts(fs)
	o.MaxSize = 4 << 20
	db, err := cowdb.Open("/db", o)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { db.Close() }()
	rng := rand.New(rand.NewPCG(10, 10))
	fill := func() int {
		t.Helper()
		for i := 0; ; i++ {
			err := db.Put([]byte(fmt.Sprintf("v%04d", i)), randBytes(rng, 20000))
			if errors.Is(err, cowdb.ErrNoSpace) {
				return i
			}
			if err != nil {
				t.Fatalf("Put %d: %v", i, err)
			}
			if i > 10000 {
				t.Fatal("no ErrNoSpace in 200 MB")
			}
		}
	}
	n := fill()
	if _, err := db.Snapshot("s"); err != nil {
		t.Fatalf("Snapshot of a full store: %v", err)
	}
	// One call per key: a transaction is admitted with room for the nodes
	// of all its operations, which a full store may not have even when
	// they only delete.
	for i := range n {
		if err := db.Delete([]byte(fmt.Sprintf("v%04d", i))); err != nil {
			t.Fatalf("Delete %d on a full store: %v", i, err)
		}
	}
	if err := db.DeleteSnapshot("s"); err != nil {
		t.Fatalf("DeleteSnapshot on a full store: %v", err)
	}
	if err := waitDrops(db); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := db.Checkpoint(); err != nil {
			t.Fatal(err)
		}
	}
	if again := fill(); again < n {
		t.Fatalf("the emptied store took %d values; the new store took %d", again, n)
	}
	t.Logf("%d values of 20000 bytes", n)
}

// TestSnapshotDiffRanges checks Diff's Ranges for blobs modified in place
// in each way the data path tells apart, against the blocks that changed:
// an aligned block, one byte (a dirty page, written back by Diff), a
// shrink into a block, a shrink then regrowth over the same bytes (which
// must read zeros, so differ), a write past the end leaving a hole, and a
// block rewritten with the bytes it held (allowed in Ranges, never
// required). Each case diffs a snapshot against the live store and
// against a second snapshot, both ways.
func TestSnapshotDiffRanges(t *testing.T) {
	const bs = 4096
	base := randBytes(rand.New(rand.NewPCG(12, 12)), 10000)
	cases := []struct {
		name   string
		change func(b *cowdb.Blob, m *blobModel) error
		want   []cowdb.Range // nil: only that Ranges covers every change
	}{
		{"aligned block", func(b *cowdb.Blob, m *blobModel) error {
			return snapWrite(b, m, bytes.Repeat([]byte{7}, bs), bs)
		}, []cowdb.Range{{Off: bs, Len: bs}}},
		{"one byte", func(b *cowdb.Blob, m *blobModel) error {
			return snapWrite(b, m, []byte{^base[5000]}, 5000)
		}, []cowdb.Range{{Off: bs, Len: bs}}},
		{"shrink into a block", func(b *cowdb.Blob, m *blobModel) error {
			m.truncate(5000)
			return b.Truncate(5000)
		}, []cowdb.Range{{Off: bs, Len: 10000 - bs}}},
		{"shrink and regrow", func(b *cowdb.Blob, m *blobModel) error {
			m.truncate(5000)
			m.truncate(10000)
			if err := b.Truncate(5000); err != nil {
				return err
			}
			return b.Truncate(10000)
		}, nil},
		{"write past the end", func(b *cowdb.Blob, m *blobModel) error {
			return snapWrite(b, m, []byte("tail"), 30000)
		}, nil},
		{"same bytes", func(b *cowdb.Blob, m *blobModel) error {
			return snapWrite(b, m, base[:bs], 0)
		}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			db := mustOpen(t, vfs.NewMem(), "/db")
			defer db.Close()
			if err := db.Put([]byte("b"), base); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Snapshot("before"); err != nil {
				t.Fatal(err)
			}
			b, err := db.OpenBlob([]byte("b"))
			if err != nil {
				t.Fatal(err)
			}
			m := blobModel(bytes.Clone(base))
			if err := c.change(b, &m); err != nil {
				t.Fatal(err)
			}
			from := snapKV{"b": {data: base, id: 1}}
			to := snapKV{"b": {data: m, id: 1}}
			for _, pair := range [][2]string{{"before", ""}, {"before", "after"}, {"after", "before"}} {
				if pair[1] == "after" {
					if _, err := db.Snapshot("after"); err != nil && !errors.Is(err, cowdb.ErrSnapshotExists) {
						t.Fatal(err)
					}
				}
				a, z := from, to
				if pair[0] == "after" {
					a, z = to, from
				}
				got, err := collectDiff(db, pair[0], pair[1])
				if err != nil {
					t.Fatal(err)
				}
				if err := checkDiff(a, z, got, bs); err != nil {
					t.Fatalf("Diff(%q, %q): %v", pair[0], pair[1], err)
				}
				if c.want != nil && (len(got) != 1 || !slices.Equal(got[0].Ranges, c.want)) {
					t.Fatalf("Diff(%q, %q) = %+v; want Ranges %v", pair[0], pair[1], got, c.want)
				}
			}
		})
	}
}

// snapWrite writes p at off through b and into m.
func snapWrite(b *cowdb.Blob, m *blobModel, p []byte, off int64) error {
	m.writeAt(p, off)
	_, err := b.WriteAt(p, off)
	return err
}

// TestSnapshotExclusivePartlyShared checks ExclusiveBytes for a snapshot
// whose blob extent the live store still shares in part: a blob of 40
// blocks written as one extent, a snapshot, then the live blob rewritten
// in its first block only, or in all but its first block. The blocks the
// live store no longer maps are the snapshot's alone, and deleting it
// frees exactly those and its own nodes: ExclusiveBytes must say so,
// within the few blocks the metadata trees' own changes may take or give.
func TestSnapshotExclusivePartlyShared(t *testing.T) {
	const bs = 4096
	for _, c := range []struct {
		name       string
		off, n     int64 // the blocks rewritten in the live blob
		exclusives int64 // the data blocks only the snapshot then maps
	}{
		{"first block rewritten", 0, 1, 1},
		{"all but the first rewritten", 1, 39, 39},
	} {
		t.Run(c.name, func(t *testing.T) {
			db := mustOpen(t, vfs.NewMem(), "/db")
			defer db.Close()
			b, err := db.CreateBlob([]byte("x"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.WriteAt(bytes.Repeat([]byte{1}, 40*bs), 0); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Snapshot("s"); err != nil {
				t.Fatal(err)
			}
			if _, err := b.WriteAt(bytes.Repeat([]byte{2}, int(c.n)*bs), c.off*bs); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if err := db.Checkpoint(); err != nil {
					t.Fatal(err)
				}
			}
			infos, err := db.Snapshots()
			if err != nil || len(infos) != 1 {
				t.Fatal(infos, err)
			}
			before := db.Stats()
			if err := db.DeleteSnapshot("s"); err != nil {
				t.Fatal(err)
			}
			if err := waitDrops(db); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if err := db.Checkpoint(); err != nil {
					t.Fatal(err)
				}
			}
			freed := db.Stats().FreeBlocks - before.FreeBlocks
			excl := infos[0].ExclusiveBytes / bs
			t.Logf("%+v; deleting it freed %d blocks", infos[0], freed)
			if freed < c.exclusives || excl < c.exclusives || excl < freed-2 || excl > freed+2 {
				t.Fatalf("ExclusiveBytes says %d blocks; deleting the snapshot freed %d, and %d data blocks were its alone",
					excl, freed, c.exclusives)
			}
		})
	}
}

// TestSnapshotDuringInlineConversion takes snapshots in a loop while
// another goroutine, key after key, puts a small value (stored inline)
// and then writes into it as a blob, which first turns the inline value
// into a blob holding the same bytes. Snapshot writes back every dirty
// page before it takes the root, so each snapshot must hold each key
// absent, with its inline bytes, or with the bytes after the write:
// never a blob whose bytes are missing (zeros) because its pages were
// left out.
func TestSnapshotDuringInlineConversion(t *testing.T) {
	db := mustOpen(t, vfs.NewMem(), "/db")
	defer db.Close()
	keys := 300
	if raceEnabled() {
		keys = 100
	}
	rng := rand.New(rand.NewPCG(13, 13))
	inline, final := make([][]byte, keys), make([][]byte, keys)
	for i := range keys {
		inline[i] = randBytes(rng, 332)
		m := blobModel(bytes.Clone(inline[i]))
		m.writeAt(randBytes(rng, 1000), 1157)
		final[i] = m
	}
	done := make(chan struct{})
	var snaps int
	var wg sync.WaitGroup
	wg.Go(func() {
		for ; snaps < 2000; snaps++ {
			select {
			case <-done:
				return
			default:
			}
			if _, err := db.Snapshot(fmt.Sprintf("t%d", snaps)); err != nil {
				t.Errorf("Snapshot: %v", err)
				return
			}
		}
	})
	for i := range keys {
		k := []byte(fmt.Sprintf("k%03d", i))
		if err := db.Put(k, inline[i]); err != nil {
			t.Fatal(err)
		}
		b, err := db.OpenBlob(k)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.WriteAt(final[i][1157:], 1157); err != nil {
			t.Fatal(err)
		}
		b.Close()
	}
	close(done)
	wg.Wait()
	bad := 0
	for s := range snaps {
		h, err := db.OpenSnapshot(fmt.Sprintf("t%d", s))
		if err != nil {
			t.Fatal(err)
		}
		for i := range keys {
			got, err := h.Get([]byte(fmt.Sprintf("k%03d", i)))
			if errors.Is(err, cowdb.ErrNotFound) || err == nil && (bytes.Equal(got, inline[i]) || bytes.Equal(got, final[i])) {
				continue
			}
			if bad++; bad <= 3 {
				t.Errorf("snapshot t%d, k%03d: %d bytes (%x...), %v; want its inline bytes or its final bytes", s, i, len(got), got[:min(8, len(got))], err)
			}
		}
		h.Close()
	}
	if bad > 0 {
		t.Errorf("%d values wrong in %d snapshots", bad, snaps)
	}
}
