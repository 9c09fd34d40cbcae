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

// encodeCopy encodes a well-formed bitmap copy of AG 0 of the fuzz store
// with the given epoch, its bits taken from raw (zero-padded or cut).
func encodeCopy(raw []byte, epoch extents.Epoch, storeID uint64) []byte {
	bm := format.NewAGBitmap(storeID, 0, epoch, fuzzOpts.BlocksPerAG)
	copy(bm.Bits, raw)
	if r := fuzzOpts.BlocksPerAG % 8; r != 0 {
		bm.Bits[len(bm.Bits)-1] &= byte(1)<<r - 1 // padding bits must be clear
	}
	return bm.Encode(fuzzOpts.BlockSize)
}

// FuzzLoadBits feeds the Loader copies that pass their checksums, so the
// fuzzer explores hostile contents rather than checksum failures: any bit
// pattern, epochs on either side of the superblock's, foreign or damaged
// copies. It must never panic; a rejection must wrap format.ErrCorrupt; an
// accepted load must take the newest usable copy, be dirty exactly when
// the other copy is not a valid older one, give every record's blocks the
// record's count, and never hand out a header or committed block.
func FuzzLoadBits(f *testing.F) {
	f.Add([]byte{3}, []byte{0xff, 3}, uint8(1), uint8(2), uint8(0), encodeRecords([]extents.Record{{Start: 4, Len: 2, Count: 3}}))
	f.Add([]byte{3}, []byte{7}, uint8(2), uint8(3), uint8(0), []byte(nil)) // copy 1 ahead
	f.Add([]byte{3}, []byte{7}, uint8(2), uint8(1), uint8(2), []byte(nil)) // copy 1 damaged
	f.Add([]byte{1}, []byte{3}, uint8(2), uint8(2), uint8(4), []byte(nil)) // header not allocated
	f.Fuzz(func(t *testing.T, raw0, raw1 []byte, e0, e1, flags uint8, recs []byte) {
		const sbEpoch = 2
		epochs := [2]extents.Epoch{extents.Epoch(e0 % 4), extents.Epoch(e1 % 4)}
		var copies [2][]byte
		for i, raw := range [2][]byte{raw0, raw1} {
			id := fuzzOpts.StoreID
			if flags&(8<<i) != 0 {
				id++ // another store's copy
			}
			copies[i] = encodeCopy(raw, epochs[i], id)
			if flags&(1<<i) != 0 {
				copies[i][format.AGBitmapHeaderSize] ^= 1 // damaged: fails its checksum
			}
		}
		usable := func(i int) bool { return flags&(9<<i) == 0 && epochs[i] <= sbEpoch }
		l, err := extents.NewLoader(&fuzzOpts, 1, sbEpoch)
		if err != nil {
			t.Fatal(err)
		}
		slot, err := l.LoadAG(0, copies)
		if err != nil {
			if !errors.Is(err, format.ErrCorrupt) {
				t.Fatalf("LoadAG error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		if !usable(slot) || usable(1-slot) && epochs[1-slot] > epochs[slot] {
			t.Fatalf("loaded copy %d (epochs %v, flags %#x)", slot, epochs, flags)
		}
		var loaded []extents.Record
		for len(recs) >= 20 && len(loaded) < 64 {
			r := extents.Record{
				Start: extents.Block(binary.LittleEndian.Uint64(recs)),
				Len:   binary.LittleEndian.Uint64(recs[8:]) % 128,
				Count: binary.LittleEndian.Uint32(recs[16:]) % 8,
			}
			recs = recs[20:]
			if err := l.LoadRecord(r); err != nil {
				if !errors.Is(err, format.ErrCorrupt) {
					t.Fatalf("LoadRecord error does not wrap ErrCorrupt: %v", err)
				}
				break
			}
			loaded = append(loaded, r)
		}
		a, err := l.Finish(2)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.CheckInvariants(); err != nil {
			t.Fatal(err)
		}
		older := usable(1-slot) && epochs[1-slot] <= epochs[slot]
		if dirty := a.Stats().DirtyAGs; (dirty != 0) == older {
			t.Fatalf("%d dirty AGs, other copy older and valid: %v (epochs %v, flags %#x)", dirty, older, epochs, flags)
		}
		for _, r := range loaded {
			for b := r.Start; b < r.End(); b++ {
				if a.Count(b) != r.Count {
					t.Fatalf("block %d: count %d, record %+v", b, a.Count(b), r)
				}
			}
		}
		checkLoaded(t, a)
	})
}
