package extents_test

import (
	"errors"
	"fmt"
	"slices"

	"github.com/cowdb/cowdb/extents"
	"pgregory.net/rapid"
)

// Checkpoint actions of the model test: seal, commit or free into the
// sealed checkpoint, then make it durable (write its images to a simulated
// disk and load them into a fresh Allocator) or abort it (its images are
// written but the superblock is not, so they must be ignored).

func (m *model) cpBlocks() uint64 {
	return uint64(m.geo.AGStart) + uint64(m.cp.AGCount)*uint64(m.geo.BlocksPerAG)
}

func (m *model) seal(t *rapid.T, a *extents.Allocator) {
	cp, err := a.Seal(m.epoch+1, m.lsn)
	if m.cp != nil {
		if !errors.Is(err, extents.ErrCheckpoint) {
			t.Fatalf("second seal: %v", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	m.cp = cp
	m.seals++
	m.cpGen = m.seals
	n := m.cpBlocks()
	m.cpCommit = make([]bool, n)
	m.cpCnt = slices.Clone(m.cnt[:n])
	for b := range n {
		m.cpCommit[b] = m.st[b] == extents.StateCommitted
	}
}

func (m *model) inCheckpoint(e extents.Extent) bool {
	return uint64(e.End()) <= m.cpBlocks()
}

func (m *model) commitTo(t *rapid.T, a *extents.Allocator) {
	if m.cp == nil {
		t.Skip("no open checkpoint")
	}
	e := m.pickExtent(t)
	valid := m.all(e, extents.StateStaging) && m.inCheckpoint(e)
	if wantErr(t, fmt.Sprintf("commitTo %v", e), valid, a.CommitTo(m.cp, e)) {
		for b := e.Start; b < e.End(); b++ {
			m.st[b], m.cnt[b] = extents.StateCommitted, 1
			m.cpCommit[b], m.cpCnt[b] = true, 1
		}
	}
}

func (m *model) freeTo(t *rapid.T, a *extents.Allocator) {
	if m.cp == nil {
		t.Skip("no open checkpoint")
	}
	e := m.pickExtent(t)
	valid := m.all(e, extents.StateCommitted) && m.unshared(e) && m.inCheckpoint(e)
	for b := e.Start; valid && b < e.End(); b++ {
		valid = m.cpCnt[b] <= 1 && m.cpCommit[b] // held by the seal, unshared
	}
	if wantErr(t, fmt.Sprintf("freeTo %v", e), valid, a.FreeTo(m.cp, e)) {
		for b := e.Start; b < e.End(); b++ {
			m.makeBusy(b, m.cp.LSN, m.cpGen)
			m.cpCommit[b] = false
		}
	}
}

func (m *model) finishCheckpoint(t *rapid.T, a *extents.Allocator, durable bool) {
	if m.cp == nil {
		if err := a.CheckpointDurable(nil); !errors.Is(err, extents.ErrCheckpoint) {
			t.Fatalf("durable without checkpoint: %v", err)
		}
		t.Skip("no open checkpoint")
	}
	cp := m.cp
	if err := a.Freeze(cp); err != nil {
		t.Fatal(err)
	}
	written := m.writeImages(t, cp, func(extents.AGImage) int { return writeWhole })
	m.cp = nil
	if !durable {
		if err := a.AbortCheckpoint(cp); err != nil {
			t.Fatal(err)
		}
		m.loadAndCompare(t)
		return
	}
	if err := a.CheckpointDurable(cp); err != nil {
		t.Fatal(err)
	}
	for ag, slot := range written {
		m.durSlot[ag] = slot
	}
	m.epoch, m.durable, m.durGen = cp.Epoch, cp.LSN, m.cpGen
	if cp.RecordsChanged {
		m.diskRecs = slices.Collect(cp.Records())
	}
	m.release()
	m.persisted = m.cpCommit
	m.persistedCnt = m.cpCnt
	m.loadAndCompare(t)
}

// How writeImages treats one image: as a crash may leave it.
const (
	writeWhole = iota
	writeTorn  // a damaged copy: fails its checksum
	writeNone  // never reached the disk
)

// writeImages writes cp's images to the simulated disk, each as how says,
// after checking each goes to the slot not holding its AG's newest durable
// copy. It returns the slot of every image.
func (m *model) writeImages(t *rapid.T, cp *extents.Checkpoint, how func(extents.AGImage) int) map[uint32]int {
	written := map[uint32]int{}
	for img := range cp.Images() {
		if img.Block != m.geo.BitmapCopy(img.AG, img.Slot) || len(img.Data) != int(m.geo.BitmapBlocks)*m.geo.BlockSize {
			t.Fatalf("image of AG %d slot %d at block %d, %d bytes", img.AG, img.Slot, img.Block, len(img.Data))
		}
		if slot, ok := m.durSlot[img.AG]; ok && slot == img.Slot {
			t.Fatalf("image of AG %d addressed to slot %d, which holds its newest durable copy", img.AG, img.Slot)
		}
		written[img.AG] = img.Slot
		if m.disk[img.AG] == nil {
			m.disk[img.AG], m.diskEpoch[img.AG] = new([2][]byte), new([2]extents.Epoch)
		}
		switch how(img) {
		case writeWhole:
			m.disk[img.AG][img.Slot], m.diskEpoch[img.AG][img.Slot] = img.Data, cp.Epoch
		case writeTorn:
			torn := slices.Clone(img.Data)
			torn[len(torn)/2] ^= 0x5a
			m.disk[img.AG][img.Slot], m.diskEpoch[img.AG][img.Slot] = torn, 0
		}
	}
	return written
}

// crash simulates a crash at any point: the open checkpoint, if any, gets
// some of its images written whole, some torn, some not at all, and its
// superblock never becomes durable; the allocator is then recovered from
// the simulated disk and the model reset to the durable checkpoint.
func (m *model) crash(t *rapid.T, a *extents.Allocator) *extents.Allocator {
	if m.epoch == 0 {
		t.Skip("nothing durable to recover")
	}
	if cp := m.cp; cp != nil {
		if err := a.Freeze(cp); err != nil {
			t.Fatal(err)
		}
		m.writeImages(t, cp, func(img extents.AGImage) int {
			return rapid.IntRange(writeWhole, writeNone).Draw(t, fmt.Sprintf("write AG %d", img.AG))
		})
		m.cp = nil
	}
	b := m.loadAndCompare(t)
	n := len(m.persisted)
	m.geo = b.Geometry()
	m.st, m.cnt, m.freedAt, m.freedGen = m.st[:n], m.cnt[:n], m.freedAt[:n], m.freedGen[:n]
	m.seals, m.durGen = 0, 0 // the recovered allocator counts seals afresh
	for i := range n {
		switch {
		case m.st[i] == extents.StateHeader:
		case m.persisted[i]:
			m.st[i], m.cnt[i] = extents.StateCommitted, m.persistedCnt[i]
		default:
			m.st[i], m.cnt[i] = extents.StateFree, 0
		}
	}
	clear(m.pins)
	clear(m.res)
	m.reused = m.durable
	return b
}

// loadAndCompare loads the simulated disk as of the durable checkpoint into
// a fresh Allocator and requires exactly the committed set and counts of
// that checkpoint's seal, with every other data block free, each AG loaded
// from its newest durable copy, and dirty exactly the AGs whose other copy
// is not a valid older one (never written, torn, or left by a checkpoint
// that never became durable). It returns the loaded Allocator.
func (m *model) loadAndCompare(t *rapid.T) *extents.Allocator {
	if m.epoch == 0 {
		return nil // nothing durable yet
	}
	nAG := uint32((uint64(len(m.persisted)) - uint64(m.geo.AGStart)) / uint64(m.geo.BlocksPerAG))
	l, err := extents.NewLoader(&m.opts, nAG, m.epoch)
	if err != nil {
		t.Fatal(err)
	}
	var dirty int64
	for ag := range nAG {
		slot, err := l.LoadAG(ag, *m.disk[ag])
		if err != nil {
			t.Fatalf("load AG %d: %v", ag, err)
		}
		if slot != m.durSlot[ag] {
			t.Fatalf("AG %d loaded from slot %d, newest durable copy in %d", ag, slot, m.durSlot[ag])
		}
		if e := m.diskEpoch[ag][1-slot]; e == 0 || e > m.epoch {
			dirty++
		}
	}
	for _, r := range m.diskRecs {
		if err := l.LoadRecord(r); err != nil {
			t.Fatalf("load record %+v: %v", r, err)
		}
	}
	b2, err := l.Finish(m.durable)
	if err != nil {
		t.Fatal(err)
	}
	for b := range m.persisted {
		st := b2.State(extents.Block(b))
		switch {
		case m.st[b] == extents.StateHeader:
			if st != extents.StateHeader {
				t.Fatalf("loaded header block %d: state %d", b, st)
			}
		case m.persisted[b]:
			if st != extents.StateCommitted || b2.Count(extents.Block(b)) != m.persistedCnt[b] {
				t.Fatalf("loaded block %d: state %d count %d, want committed count %d", b, st, b2.Count(extents.Block(b)), m.persistedCnt[b])
			}
		default:
			if st != extents.StateFree {
				t.Fatalf("loaded block %d: state %d, want free", b, st)
			}
		}
	}
	if s := b2.Stats(); s.BusyBlocks != 0 || s.StagingBlocks != 0 || s.DirtyAGs != dirty {
		t.Fatalf("loaded stats %+v, want %d dirty AGs", s, dirty)
	}
	if err := b2.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	return b2
}
