package extents_test

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"testing"

	"github.com/cowdb/cowdb/extents"
	"pgregory.net/rapid"
)

// The model is deliberately simple: a state, a count and a freeing LSN per
// block, and the rules of the package comment applied block by block.

type mstate = extents.State

type model struct {
	geo      extents.Geometry
	refMax   uint32
	st       []mstate
	cnt      []uint32
	freedAt  []extents.LSN
	freedGen []uint64 // seal number of the first checkpoint showing it free
	seals    uint64   // successful Seal calls (since the last crash)
	cpGen    uint64   // seal number of the open checkpoint
	durGen   uint64   // seal number of the last durable checkpoint
	lsn      extents.LSN
	durable  extents.LSN
	pins     map[extents.PinID]extents.LSN
	res      map[extents.ReservationID]uint64
	epoch    extents.Epoch
	reused   extents.LSN
	storeID  uint64
	opts     extents.Options
	disk     map[uint32]*[2][]byte // AG bitmap copies written so far
	// diskEpoch is the epoch of each copy on disk, 0 if never written or
	// torn; durSlot is the slot of each AG's newest durable copy.
	diskEpoch map[uint32]*[2]extents.Epoch
	durSlot   map[uint32]int
	diskRecs  []extents.Record // refcount records of the durable checkpoint
	// The open checkpoint and what it must persist.
	cp       *extents.Checkpoint
	cpCommit []bool   // per block: committed in the sealed image
	cpCnt    []uint32 // counts at the seal
	// The durable checkpoint's committed set and counts.
	persisted    []bool
	persistedCnt []uint32
	handed       []extents.Extent
}

func newModel(a *extents.Allocator, opts extents.Options) *model {
	m := &model{
		geo: a.Geometry(), refMax: opts.RefcountMax, opts: opts, storeID: opts.StoreID,
		pins: map[extents.PinID]extents.LSN{}, res: map[extents.ReservationID]uint64{},
		disk: map[uint32]*[2][]byte{}, diskEpoch: map[uint32]*[2]extents.Epoch{},
		durSlot: map[uint32]int{},
	}
	m.grow()
	return m
}

// grow extends the per-block slices to the allocator's geometry.
func (m *model) grow() {
	for b := uint64(len(m.st)); b < m.geo.TotalBlocks(); b++ {
		s := extents.StateFree
		if _, off, ok := m.geo.AGOf(extents.Block(b)); !ok || off < m.geo.HeaderBlocks() {
			s = extents.StateHeader
		}
		m.st = append(m.st, s)
		m.cnt = append(m.cnt, 0)
		m.freedAt = append(m.freedAt, 0)
		m.freedGen = append(m.freedGen, 0)
	}
}

func (m *model) count(s mstate) (n int64) {
	for _, x := range m.st {
		if x == s {
			n++
		}
	}
	return n
}

func (m *model) reserved() (n int64) {
	for _, r := range m.res {
		n += int64(r)
	}
	return n
}

// all reports whether every block of e exists and is in state s.
func (m *model) all(e extents.Extent, s mstate) bool {
	if e.Len == 0 || uint64(e.End()) > uint64(len(m.st)) {
		return false
	}
	for b := e.Start; b < e.End(); b++ {
		if m.st[b] != s {
			return false
		}
	}
	return true
}

// longestRun returns the longest run of free blocks.
func (m *model) longestRun() uint64 {
	best, _ := m.freeRuns()
	return best
}

// freeRuns returns the longest run of free blocks and the number of runs.
func (m *model) freeRuns() (longest uint64, runs int64) {
	var run uint64
	for _, s := range m.st {
		if s != extents.StateFree {
			run = 0
			continue
		}
		if run++; run == 1 {
			runs++
		}
		longest = max(longest, run)
	}
	return longest, runs
}

// release frees busy blocks that no durable checkpoint or pin holds back:
// free in a durable checkpoint's image, freed at or before its LSN and
// every pin.
func (m *model) release() {
	limit := m.durable
	for _, p := range m.pins {
		limit = min(limit, p)
	}
	for b, s := range m.st {
		if s == extents.StateBusy && m.freedAt[b] <= limit && m.freedGen[b] <= m.durGen {
			m.st[b] = extents.StateFree
			m.reused = max(m.reused, m.freedAt[b])
		}
	}
}

func (m *model) takeHanded(t *rapid.T, a *extents.Allocator, e extents.Extent, n uint64, avail int64) {
	if e.Len == 0 || e.Len > n {
		t.Fatalf("alloc(%d) returned %v", n, e)
	}
	if !m.all(e, extents.StateFree) {
		t.Fatalf("alloc returned %v, not all free in the model", e)
	}
	if want := min(n, uint64(avail)); e.Len < want && m.longestRun() >= want {
		t.Fatalf("alloc(%d) returned %v though a free run of %d exists", n, e, want)
	}
	for b := e.Start; b < e.End(); b++ {
		m.st[b] = extents.StateStaging
	}
	m.handed = append(m.handed, e)
}

// pickExtent draws an extent: usually a sub-range of one handed out, or any
// range at all (often invalid, to test that errors change nothing).
func (m *model) pickExtent(t *rapid.T) extents.Extent {
	if len(m.handed) > 0 && rapid.IntRange(0, 4).Draw(t, "fromHanded") > 0 {
		e := rapid.SampledFrom(m.handed).Draw(t, "handed")
		off := rapid.Uint64Range(0, e.Len-1).Draw(t, "off")
		n := rapid.Uint64Range(1, e.Len-off).Draw(t, "n")
		return extents.Extent{Start: e.Start + extents.Block(off), Len: n}
	}
	s := rapid.Uint64Range(0, uint64(len(m.st))+2).Draw(t, "start")
	return extents.Extent{Start: extents.Block(s), Len: rapid.Uint64Range(0, 8).Draw(t, "len")}
}

// wantErr checks err against whether the model says the call is valid.
func wantErr(t *rapid.T, what string, valid bool, err error) bool {
	if valid && err != nil {
		t.Fatalf("%s: unexpected error %v", what, err)
	}
	if !valid {
		if err == nil {
			t.Fatalf("%s: invalid call succeeded", what)
		}
		if !errors.Is(err, extents.ErrWrongState) && !errors.Is(err, extents.ErrInvalid) {
			t.Fatalf("%s: wrong error %v", what, err)
		}
	}
	return valid
}

// check compares every block's state and count with the model, and the
// figures, free extents and records with what the model implies.
func (m *model) check(t *rapid.T, a *extents.Allocator) {
	if err := a.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	var ce []extents.Extent
	for b := 0; b < len(m.st); b++ {
		if m.st[b] != extents.StateCommitted {
			continue
		}
		if n := len(ce); n > 0 && ce[n-1].End() == extents.Block(b) {
			ce[n-1].Len++
		} else {
			ce = append(ce, extents.Extent{Start: extents.Block(b), Len: 1})
		}
	}
	if got := slices.Collect(a.CommittedExtents()); !slices.Equal(got, ce) {
		t.Fatalf("committed extents %v, model %v", got, ce)
	}
	for b := range m.st {
		if got := a.State(extents.Block(b)); got != m.st[b] {
			t.Fatalf("block %d: state %d, model %d", b, got, m.st[b])
		}
		want := uint32(0)
		if m.st[b] == extents.StateCommitted {
			want = m.cnt[b]
		}
		if got := a.Count(extents.Block(b)); got != want {
			t.Fatalf("block %d: count %d, model %d", b, got, want)
		}
	}
	s := a.Stats()
	if s.TotalBlocks != int64(len(m.st)) || s.FreeBlocks != m.count(extents.StateFree) ||
		s.BusyBlocks != m.count(extents.StateBusy) || s.StagingBlocks != m.count(extents.StateStaging) ||
		s.CommittedBlocks != m.count(extents.StateCommitted) || s.HeaderBlocks != m.count(extents.StateHeader) ||
		s.ReservedBlocks != m.reserved() || s.LargestFree != int64(m.longestRun()) || s.Pins != int64(len(m.pins)) {
		t.Fatalf("stats %+v disagree with the model", s)
	}
	wantFrag := 0.0
	if longest, runs := m.freeRuns(); s.FreeExtents != runs {
		t.Fatalf("%d free extents, model %d", s.FreeExtents, runs)
	} else if s.FreeBlocks > 0 {
		wantFrag = 1 - float64(longest)/float64(s.FreeBlocks)
	}
	if s.Fragmentation != wantFrag {
		t.Fatalf("fragmentation %v, model %v", s.Fragmentation, wantFrag)
	}
	var shared int64
	for b, c := range m.cnt {
		if m.st[b] == extents.StateCommitted && c >= 2 {
			shared++
		}
	}
	if s.SharedBlocks != shared {
		t.Fatalf("shared %d, model %d", s.SharedBlocks, shared)
	}
	checkCanonical(t, slices.Collect(a.Records()))
	var prev extents.Extent
	for e := range a.FreeExtents() {
		if prev.Len > 0 && e.Start <= prev.End() {
			t.Fatalf("free extents %v then %v: unordered or not merged", prev, e)
		}
		prev = e
	}
}

// checkCanonical checks records are ordered, disjoint, merged, counts >= 2.
func checkCanonical(t *rapid.T, recs []extents.Record) {
	for i, r := range recs {
		if r.Count < 2 || r.Len == 0 {
			t.Fatalf("record %+v", r)
		}
		if i > 0 && (r.Start < recs[i-1].End() || r.Start == recs[i-1].End() && r.Count == recs[i-1].Count) {
			t.Fatalf("records %+v then %+v", recs[i-1], r)
		}
	}
}

func testOptions(t *rapid.T) extents.Options {
	return extents.Options{
		StoreID:       7,
		BlockSize:     512,
		BlocksPerAG:   rapid.SampledFrom([]uint32{64, 100, 130}).Draw(t, "blocksPerAG"),
		MaxAGCount:    5,
		RefcountMax:   rapid.SampledFrom([]uint32{3, 5, 1 << 31}).Draw(t, "refMax"),
		NearSearchMax: rapid.IntRange(1, 4).Draw(t, "near"),
	}
}

// TestAllocatorModel drives an Allocator and the model with random
// sequences of every operation and, after each step, requires the same
// state and count for every block: free, staging, committed, busy and
// header partition the blocks; nothing is handed out twice or while busy;
// every sealed checkpoint's images, loaded into a fresh Allocator, hold
// exactly the committed set of the seal.
func TestAllocatorModel(t *testing.T) {
	if *long {
		setFlag(t, "rapid.checks", "20000")
		setFlag(t, "rapid.steps", "200")
	} else if f := flag.Lookup("rapid.checks"); f != nil && f.Value.String() == "100" {
		setFlag(t, "rapid.checks", "5000") // rapid's default is too few for rare sequences
	}
	rapid.Check(t, func(t *rapid.T) {
		opts := testOptions(t)
		a, err := extents.New(&opts, uint32(rapid.IntRange(1, 3).Draw(t, "ags")))
		if err != nil {
			t.Fatal(err)
		}
		m := newModel(a, opts)
		t.Repeat(m.actions(a))
	})
}

// setFlag sets a command-line flag (rapid's) for the duration of the test.
func setFlag(t *testing.T, name, value string) {
	f := flag.Lookup(name)
	if f == nil {
		t.Fatalf("no flag %s", name)
	}
	old := f.Value.String()
	if err := f.Value.Set(value); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Value.Set(old) })
}

// actions returns the model's steps. The crash step replaces a with the
// allocator recovered from the simulated disk; every step sees the new one.
func (m *model) actions(a *extents.Allocator) map[string]func(*rapid.T) {
	return map[string]func(*rapid.T){
		"crash":          func(t *rapid.T) { a = m.crash(t, a) },
		"":               func(t *rapid.T) { m.check(t, a) },
		"alloc":          func(t *rapid.T) { m.alloc(t, a) },
		"allocExtents":   func(t *rapid.T) { m.allocExtents(t, a) },
		"reserve":        func(t *rapid.T) { m.reserve(t, a) },
		"allocReserved":  func(t *rapid.T) { m.allocReserved(t, a) },
		"unreserve":      func(t *rapid.T) { m.unreserve(t, a) },
		"commit":         func(t *rapid.T) { m.commit(t, a) },
		"releaseStaging": func(t *rapid.T) { m.releaseStaging(t, a) },
		"free":           func(t *rapid.T) { m.free(t, a) },
		"inc":            func(t *rapid.T) { m.inc(t, a) },
		"dec":            func(t *rapid.T) { m.dec(t, a) },
		"pin":            func(t *rapid.T) { m.pin(t, a) },
		"unpin":          func(t *rapid.T) { m.unpin(t, a) },
		"grow":           func(t *rapid.T) { m.growAG(t, a) },
		"seal":           func(t *rapid.T) { m.seal(t, a) },
		"commitTo":       func(t *rapid.T) { m.commitTo(t, a) },
		"freeTo":         func(t *rapid.T) { m.freeTo(t, a) },
		"durable":        func(t *rapid.T) { m.finishCheckpoint(t, a, true) },
		"abort":          func(t *rapid.T) { m.finishCheckpoint(t, a, false) },
	}
}

func (m *model) alloc(t *rapid.T, a *extents.Allocator) {
	n := rapid.Uint64Range(1, 40).Draw(t, "n")
	goal := extents.Block(rapid.Uint64Range(0, uint64(len(m.st))).Draw(t, "goal"))
	avail := m.count(extents.StateFree) - m.reserved()
	e, err := a.Alloc(n, goal)
	if avail == 0 {
		if !errors.Is(err, extents.ErrNoSpace) {
			t.Fatalf("alloc with nothing available: %v, %v", e, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("alloc(%d): %v with %d available", n, err, avail)
	}
	m.takeHanded(t, a, e, n, avail)
}

func (m *model) allocExtents(t *rapid.T, a *extents.Allocator) {
	n := rapid.Uint64Range(1, 60).Draw(t, "n")
	goal := extents.Block(rapid.Uint64Range(0, uint64(len(m.st))).Draw(t, "goal"))
	avail := m.count(extents.StateFree) - m.reserved()
	es, err := a.AllocExtents(nil, n, goal, 0)
	if int64(n) > avail {
		if !errors.Is(err, extents.ErrNoSpace) || len(es) != 0 {
			t.Fatalf("allocExtents(%d) with %d available: %v, %v", n, avail, es, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("allocExtents(%d): %v", n, err)
	}
	var sum uint64
	for _, e := range es {
		m.takeHanded(t, a, e, e.Len, int64(e.Len))
		sum += e.Len
	}
	if sum != n {
		t.Fatalf("allocExtents(%d) returned %d blocks: %v", n, sum, es)
	}
}

func (m *model) reserve(t *rapid.T, a *extents.Allocator) {
	n := rapid.Uint64Range(1, 50).Draw(t, "n")
	avail := m.count(extents.StateFree) - m.reserved()
	r, err := a.Reserve(n)
	if int64(n) > avail {
		if !errors.Is(err, extents.ErrNoSpace) {
			t.Fatalf("reserve(%d) with %d available: %v", n, avail, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("reserve(%d): %v", n, err)
	}
	m.res[r] = n
}

func (m *model) resIDs(t *rapid.T) extents.ReservationID {
	if len(m.res) == 0 {
		t.Skip("no reservation")
	}
	ids := make([]extents.ReservationID, 0, len(m.res))
	for id := range m.res {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return rapid.SampledFrom(ids).Draw(t, "res")
}

func (m *model) allocReserved(t *rapid.T, a *extents.Allocator) {
	r := m.resIDs(t)
	n := rapid.Uint64Range(1, m.res[r]+1).Draw(t, "n")
	goal := extents.Block(rapid.Uint64Range(0, uint64(len(m.st))).Draw(t, "goal"))
	if rapid.Bool().Draw(t, "extents") {
		es, err := a.AllocExtents(nil, n, goal, r)
		if n > m.res[r] {
			if !errors.Is(err, extents.ErrUnknownReservation) {
				t.Fatalf("over-reservation: %v", err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			m.res[r] -= e.Len
			m.takeHanded(t, a, e, e.Len, int64(e.Len))
		}
		return
	}
	e, err := a.AllocReserved(r, n, goal)
	if n > m.res[r] {
		if !errors.Is(err, extents.ErrUnknownReservation) {
			t.Fatalf("over-reservation: %v", err)
		}
		return
	}
	if err != nil {
		t.Fatalf("allocReserved(%d of %d): %v", n, m.res[r], err)
	}
	m.res[r] -= e.Len
	// Reserved blocks are free blocks set aside: the "whole range" check
	// runs against all the free space.
	m.takeHanded(t, a, e, n, int64(n))
}

func (m *model) unreserve(t *rapid.T, a *extents.Allocator) {
	r := m.resIDs(t)
	if err := a.Unreserve(r); err != nil {
		t.Fatal(err)
	}
	delete(m.res, r)
	if err := a.Unreserve(r); !errors.Is(err, extents.ErrUnknownReservation) {
		t.Fatalf("second unreserve: %v", err)
	}
}

func (m *model) commit(t *rapid.T, a *extents.Allocator) {
	e := m.pickExtent(t)
	if wantErr(t, fmt.Sprintf("commit %v", e), m.all(e, extents.StateStaging), a.Commit(e)) {
		for b := e.Start; b < e.End(); b++ {
			m.st[b], m.cnt[b] = extents.StateCommitted, 1
		}
	}
}

func (m *model) releaseStaging(t *rapid.T, a *extents.Allocator) {
	e := m.pickExtent(t)
	if wantErr(t, fmt.Sprintf("release %v", e), m.all(e, extents.StateStaging), a.ReleaseStaging(e)) {
		for b := e.Start; b < e.End(); b++ {
			m.st[b] = extents.StateFree
		}
	}
}

// unshared reports whether every block of a committed extent has count 1.
func (m *model) unshared(e extents.Extent) bool {
	for b := e.Start; b < e.End(); b++ {
		if m.cnt[b] != 1 {
			return false
		}
	}
	return true
}

// nextLSN returns the LSN of a new freeing operation: usually the next
// one, sometimes the current one again, which may be the LSN of the last
// sealed checkpoint (a free made after the seal must still wait for the
// next checkpoint).
func (m *model) nextLSN(t *rapid.T) extents.LSN {
	if m.lsn == 0 || rapid.IntRange(0, 3).Draw(t, "sameLSN") > 0 {
		m.lsn++
	}
	return m.lsn
}

func (m *model) makeBusy(b extents.Block, lsn extents.LSN, gen uint64) {
	m.st[b], m.cnt[b], m.freedAt[b], m.freedGen[b] = extents.StateBusy, 0, lsn, gen
}

func (m *model) free(t *rapid.T, a *extents.Allocator) {
	e := m.pickExtent(t)
	lsn := m.nextLSN(t)
	valid := m.all(e, extents.StateCommitted) && m.unshared(e)
	if wantErr(t, fmt.Sprintf("free %v", e), valid, a.Free(e, lsn)) {
		for b := e.Start; b < e.End(); b++ {
			m.makeBusy(b, lsn, m.seals+1)
		}
	}
}

func (m *model) inc(t *rapid.T, a *extents.Allocator) {
	e := m.pickExtent(t)
	if wantErr(t, fmt.Sprintf("inc %v", e), m.all(e, extents.StateCommitted), a.Inc(e)) {
		for b := e.Start; b < e.End(); b++ {
			if m.cnt[b] != m.refMax {
				m.cnt[b]++
			}
		}
	}
}

func (m *model) dec(t *rapid.T, a *extents.Allocator) {
	e := m.pickExtent(t)
	lsn := m.nextLSN(t)
	if wantErr(t, fmt.Sprintf("dec %v", e), m.all(e, extents.StateCommitted), a.Dec(e, lsn)) {
		for b := e.Start; b < e.End(); b++ {
			switch m.cnt[b] {
			case m.refMax:
			case 1:
				m.makeBusy(b, lsn, m.seals+1)
			default:
				m.cnt[b]--
			}
		}
	}
}

func (m *model) pin(t *rapid.T, a *extents.Allocator) {
	lsn := m.lsn
	if rapid.Bool().Draw(t, "old") && lsn > 0 {
		lsn = extents.LSN(rapid.Uint64Range(0, uint64(lsn)).Draw(t, "lsn"))
	}
	id, err := a.Pin(lsn)
	if lsn < m.reused {
		if !errors.Is(err, extents.ErrPinTooOld) {
			t.Fatalf("pin(%d) after reusing blocks freed at %d: %v", lsn, m.reused, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("pin(%d): %v", lsn, err)
	}
	m.pins[id] = lsn
}

func (m *model) unpin(t *rapid.T, a *extents.Allocator) {
	if len(m.pins) == 0 {
		t.Skip("no pin")
	}
	ids := make([]extents.PinID, 0, len(m.pins))
	for id := range m.pins {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	id := rapid.SampledFrom(ids).Draw(t, "pin")
	if err := a.Unpin(id); err != nil {
		t.Fatal(err)
	}
	delete(m.pins, id)
	m.release()
	if err := a.Unpin(id); !errors.Is(err, extents.ErrUnknownPin) {
		t.Fatalf("second unpin: %v", err)
	}
}

func (m *model) growAG(t *rapid.T, a *extents.Allocator) {
	n := m.geo.AGCount + 1
	total, err := a.Grow(n)
	if n > m.geo.MaxAGCount {
		if !errors.Is(err, extents.ErrNoSpace) {
			t.Fatalf("grow past max: %v", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	m.geo = a.Geometry()
	if total != m.geo.TotalBlocks() {
		t.Fatalf("grow returned %d blocks, geometry %d", total, m.geo.TotalBlocks())
	}
	m.grow()
}
