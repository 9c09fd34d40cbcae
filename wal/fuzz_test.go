package wal_test

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"testing"

	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/vfs"
	"github.com/cowdb/cowdb/wal"
)

// fuzzOpts gives 8 KiB segments so the fuzzed log spans several files.
func fuzzOpts() wal.Options {
	return wal.Options{StoreID: testStore, SegmentSize: 8 << 10, MaxRecordSize: 2000, MaxSegments: 16}
}

// fuzzLog builds a valid log for FuzzReplay: records across several
// segments, some recycled and reused, and returns the durable image, the
// segment file names, the checkpoint LSN and the records from it on.
func fuzzLog(f *testing.F) (*vfs.MemFS, []string, format.LSN, [][]byte) {
	fs := mustFS(f)
	l, _, err := openReplay(f, fs, fuzzOpts(), 1)
	if err != nil {
		f.Fatal(err)
	}
	var all [][]byte
	const ckpt = 12
	for i := range 40 {
		p := fmt.Appendf(nil, "record %d %s", i, bytes.Repeat([]byte{'.'}, i*31%500))
		if _, err := l.Commit(p, 0); err != nil {
			f.Fatal(err)
		}
		all = append(all, p)
		if i == ckpt+2 {
			if err := l.Recycle(ckpt); err != nil {
				f.Fatal(err)
			}
		}
	}
	l.Close()
	names, err := fs.ReadDir(testDir)
	if err != nil {
		f.Fatal(err)
	}
	return fs.CloneDurable(), names, ckpt, all[ckpt-1:]
}

// FuzzReplay mutates bytes of a valid log and replays it: no panic, no
// allocation beyond a bound, and either an error wrapping ErrCorrupt or a
// continuous prefix of the original records, after which appending works.
// Each 4 input bytes are one mutation: file, offset (2 bytes), xor mask.
func FuzzReplay(f *testing.F) {
	base, names, ckpt, want := fuzzLog(f)
	f.Add([]byte{})
	f.Add([]byte{0, 0x10, 0x10, 0x01})                      // first frame of file 0
	f.Add([]byte{1, 0x00, 0x10, 0xff})                      // a frame checksum in file 1
	f.Add([]byte{0, 0x14, 0x00, 0x01})                      // header slot, file 0
	f.Add([]byte{2, 0x50, 0x12, 0x20, 2, 0x00, 0x02, 0x01}) // two mutations
	f.Fuzz(func(t *testing.T, muts []byte) {
		fs := base.CloneDurable()
		for i := 0; i+4 <= len(muts) && i < 64; i += 4 {
			name := names[int(muts[i])%len(names)]
			off := int64(muts[i+1]) | int64(muts[i+2])<<8
			old := rawRead(t, fs, name, off%(8<<10), 1)
			rawWrite(t, fs, name, off%(8<<10), []byte{old[0] ^ muts[i+3]})
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		before := ms.TotalAlloc
		l, got, err := openReplay(t, fs, fuzzOpts(), ckpt)
		runtime.ReadMemStats(&ms)
		if alloc := ms.TotalAlloc - before; alloc > 1<<20 {
			t.Fatalf("replay allocated %d bytes", alloc)
		}
		if err != nil {
			if !errors.Is(err, format.ErrCorrupt) {
				t.Fatalf("replay error not ErrCorrupt: %v", err)
			}
			return
		}
		defer l.Close()
		if len(got) > len(want) {
			t.Fatalf("replayed %d records, only %d exist", len(got), len(want))
		}
		checkRecords(t, got, ckpt, want[:len(got)])
		if lsn, err := l.Commit([]byte("after"), 0); err != nil || lsn != ckpt+format.LSN(len(got)) {
			t.Fatalf("commit after replay: LSN %d, %v", lsn, err)
		}
	})
}
