package extents_test

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/cowdb/cowdb/extents"
	"github.com/cowdb/cowdb/internal/format"
)

var fuzzOpts = extents.Options{StoreID: 7, BlockSize: 512, BlocksPerAG: 100, RefcountMax: 5}

// encodeRecords packs records as 20-byte tuples (start, len, count), the
// fuzz target's wire form for records.
func encodeRecords(recs []extents.Record) []byte {
	var b []byte
	for _, r := range recs {
		b = binary.LittleEndian.AppendUint64(b, uint64(r.Start))
		b = binary.LittleEndian.AppendUint64(b, r.Len)
		b = binary.LittleEndian.AppendUint32(b, r.Count)
	}
	return b
}

// fuzzSeed returns the two bitmap copies of AG 0 and the records of a
// small store after two checkpoints.
func fuzzSeed(tb testing.TB) (c0, c1, recs []byte) {
	a, err := extents.New(&fuzzOpts, 1)
	if err != nil {
		tb.Fatal(err)
	}
	var copies [2][]byte
	for epoch := extents.Epoch(1); epoch <= 2; epoch++ {
		es, err := a.AllocExtents(nil, 9, 0, 0)
		if err != nil {
			tb.Fatal(err)
		}
		for _, e := range es {
			if err := a.Commit(e); err != nil {
				tb.Fatal(err)
			}
		}
		if err := a.Inc(extents.Extent{Start: es[0].Start + 1, Len: 3}); err != nil {
			tb.Fatal(err)
		}
		cp, err := a.Seal(epoch, extents.LSN(epoch))
		if err != nil {
			tb.Fatal(err)
		}
		for img := range cp.Images() {
			copies[img.Slot] = img.Data
		}
		var rs []extents.Record
		for r := range cp.Records() {
			rs = append(rs, r)
		}
		recs = encodeRecords(rs)
		if err := a.CheckpointDurable(cp); err != nil {
			tb.Fatal(err)
		}
	}
	return copies[0], copies[1], recs
}

// FuzzLoad feeds hostile bitmap copies and refcount records to a Loader:
// it must never panic, every rejection must wrap format.ErrCorrupt, and an
// accepted state must be consistent: the block states partition the file
// and allocating all free space never hands out a header or committed
// block.
func FuzzLoad(f *testing.F) {
	c0, c1, recs := fuzzSeed(f)
	f.Add(c0, c1, recs)
	f.Add(c0, []byte(nil), []byte(nil))
	f.Add(c0[:100], c1, recs[:7])
	f.Fuzz(func(t *testing.T, c0, c1, recs []byte) {
		l, err := extents.NewLoader(&fuzzOpts, 1, 2)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.LoadAG(0, [2][]byte{c0, c1}); err != nil {
			if !errors.Is(err, format.ErrCorrupt) {
				t.Fatalf("LoadAG error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		for len(recs) >= 20 {
			r := extents.Record{
				Start: extents.Block(binary.LittleEndian.Uint64(recs)),
				Len:   binary.LittleEndian.Uint64(recs[8:]),
				Count: binary.LittleEndian.Uint32(recs[16:]),
			}
			recs = recs[20:]
			if err := l.LoadRecord(r); err != nil {
				if !errors.Is(err, format.ErrCorrupt) {
					t.Fatalf("LoadRecord error does not wrap ErrCorrupt: %v", err)
				}
				return
			}
		}
		a, err := l.Finish(2)
		if err != nil {
			t.Fatal(err)
		}
		checkLoaded(t, a)
	})
}

func checkLoaded(t *testing.T, a *extents.Allocator) {
	s := a.Stats()
	if s.HeaderBlocks+s.FreeBlocks+s.CommittedBlocks != s.TotalBlocks || s.BusyBlocks != 0 || s.StagingBlocks != 0 {
		t.Fatalf("loaded stats do not partition: %+v", s)
	}
	free := s.FreeBlocks
	for free > 0 {
		e, err := a.Alloc(uint64(free), 0)
		if err != nil {
			t.Fatal(err)
		}
		for b := e.Start; b < e.End(); b++ {
			if a.State(b) != extents.StateStaging {
				t.Fatalf("allocated block %d is in state %d", b, a.State(b))
			}
		}
		free -= int64(e.Len)
	}
	if _, err := a.Alloc(1, 0); !errors.Is(err, extents.ErrNoSpace) {
		t.Fatalf("alloc on a full store: %v", err)
	}
}
