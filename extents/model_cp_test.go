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
		valid = m.cpCnt[b] <= 1 // unshared at the seal too
	}
	if wantErr(t, fmt.Sprintf("freeTo %v", e), valid, a.FreeTo(m.cp, e)) {
		for b := e.Start; b < e.End(); b++ {
			m.st[b], m.cnt[b], m.freedAt[b] = extents.StateBusy, 0, m.cp.LSN
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
	for img := range cp.Images() {
		if img.Block != m.geo.BitmapCopy(img.AG, img.Slot) || len(img.Data) != int(m.geo.BitmapBlocks)*m.geo.BlockSize {
			t.Fatalf("image of AG %d slot %d at block %d, %d bytes", img.AG, img.Slot, img.Block, len(img.Data))
		}
		if m.disk[img.AG] == nil {
			m.disk[img.AG] = new([2][]byte)
		}
		m.disk[img.AG][img.Slot] = img.Data
	}
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
	m.epoch, m.durable = cp.Epoch, cp.LSN
	if cp.RecordsChanged {
		m.diskRecs = slices.Collect(cp.Records())
	}
	m.release()
	m.persisted = m.cpCommit
	m.persistedCnt = m.cpCnt
	m.loadAndCompare(t)
}

// loadAndCompare loads the simulated disk as of the durable checkpoint into
// a fresh Allocator and requires exactly the committed set and counts of
// that checkpoint's seal, with every other data block free.
func (m *model) loadAndCompare(t *rapid.T) {
	if m.epoch == 0 {
		return // nothing durable yet
	}
	nAG := uint32((uint64(len(m.persisted)) - uint64(m.geo.AGStart)) / uint64(m.geo.BlocksPerAG))
	l, err := extents.NewLoader(&m.opts, nAG, m.epoch)
	if err != nil {
		t.Fatal(err)
	}
	for ag := range nAG {
		if _, err := l.LoadAG(ag, *m.disk[ag]); err != nil {
			t.Fatalf("load AG %d: %v", ag, err)
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
		case m.st[b] == extents.StateHeader && b < len(m.persisted):
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
	if s := b2.Stats(); s.BusyBlocks != 0 || s.StagingBlocks != 0 || s.DirtyAGs != 0 {
		t.Fatalf("loaded stats %+v", s)
	}
}
