package cowdb_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/cowdb/cowdb"
	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/vfs"
)

// damagedStore returns the durable image of a closed store holding some
// inline and large values.
func damagedStore(t *testing.T) *vfs.MemFS {
	t.Helper()
	fs := vfs.NewMem()
	db := mustOpen(t, fs, "/db")
	for i := range 300 {
		v := bytes.Repeat([]byte{byte(i)}, 100)
		if i%50 == 0 {
			v = bytes.Repeat([]byte{byte(i)}, 9000)
		}
		if err := db.Put([]byte(fmt.Sprintf("k%03d", i)), v); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return fs
}

// overwrite writes p at off of the named file and syncs it.
func overwrite(t *testing.T, fs vfs.FS, name string, off int64, p []byte) {
	t.Helper()
	f, err := fs.OpenFile(name, vfs.ReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(p, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

// TestDamagedSuperblocks checks that a store whose superblocks are both
// damaged is ErrCorrupt naming the data file, that one damaged copy falls
// back to the other, and that a store whose log has no data file is
// refused rather than reinitialized.
func TestDamagedSuperblocks(t *testing.T) {
	damagesOnPurpose(t)
	fs := damagedStore(t)
	one := fs.CloneDurable()
	junk := bytes.Repeat([]byte{0xa5}, 2*4096)
	overwrite(t, fs, "/db/data", 0, junk)
	_, err := cowdb.Open("/db", memOpts(fs))
	if !errors.Is(err, cowdb.ErrCorrupt) || !strings.Contains(err.Error(), "/db/data") {
		t.Fatalf("both superblocks damaged: %v, want ErrCorrupt naming /db/data", err)
	}
	// Damage only the newest copy: the older checkpoint's copy is used, and
	// the log written since it (not yet recycled past it) is replayed... or,
	// when the log was recycled, Open reports the damage. Either way no
	// panic and no wrong data.
	for slot := range 2 {
		fs := one.CloneDurable()
		overwrite(t, fs, "/db/data", int64(slot)*4096, junk[:4096])
		db, err := cowdb.Open("/db", memOpts(fs))
		if err != nil {
			if !errors.Is(err, cowdb.ErrCorrupt) {
				t.Fatalf("copy %d damaged: %v", slot, err)
			}
			continue
		}
		for it, err := range db.Scan(nil, nil) {
			if err != nil {
				if !errors.Is(err, cowdb.ErrCorrupt) {
					t.Fatalf("copy %d damaged, scan: %v", slot, err)
				}
				break
			}
			if _, err := it.Value(); err != nil && !errors.Is(err, cowdb.ErrCorrupt) {
				t.Fatalf("copy %d damaged, value: %v", slot, err)
			}
		}
		db.Close()
	}
	// A log without a data file.
	fs2 := one.CloneDurable()
	if err := fs2.Remove("/db/data"); err != nil {
		t.Fatal(err)
	}
	if _, err := cowdb.Open("/db", memOpts(fs2)); !errors.Is(err, cowdb.ErrCorrupt) {
		t.Fatalf("log without data file: %v, want ErrCorrupt", err)
	}
}

// TestDamagedBlocks overwrites random blocks of a store's data file and log
// with garbage, and checks that Open and reads never panic and report
// damage as ErrCorrupt (a damaged block is never returned as data: the
// values that read back are the ones written).
func TestDamagedBlocks(t *testing.T) {
	base := damagedStore(t)
	n := 40
	if *long {
		n = 400
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range n {
		fs := base.CloneDurable()
		name := "/db/data"
		if i%4 == 3 {
			name = "/db/wal/000001.log"
		}
		fi, err := fs.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		blocks := fi.Size / 4096
		off := rng.Int64N(min(blocks, 200)) * 4096
		junk := make([]byte, 4096)
		for j := range junk {
			junk[j] = byte(rng.Uint32())
		}
		if rng.IntN(2) == 0 {
			copy(junk, bytes.Repeat([]byte{0}, 4000)) // mostly zeros: a lost write
		}
		overwrite(t, fs, name, off, junk)
		o := memOpts(fs)
		o.Logger = slog.New(slog.DiscardHandler)
		db, err := cowdb.Open("/db", o)
		if err != nil {
			if !errors.Is(err, cowdb.ErrCorrupt) {
				t.Fatalf("%s block %d damaged: Open: %v", name, off/4096, err)
			}
			continue
		}
		for it, err := range db.Scan(nil, nil) {
			if err != nil {
				if !errors.Is(err, cowdb.ErrCorrupt) {
					t.Fatalf("%s block %d damaged: scan: %v", name, off/4096, err)
				}
				break
			}
			v, err := it.Value()
			if err != nil {
				// Data blocks are verified against the checksums their
				// extent records hold.
				if !errors.Is(err, cowdb.ErrCorrupt) {
					t.Fatalf("%s block %d damaged: %s: %v", name, off/4096, it.Key, err)
				}
				continue
			}
			var k int
			fmt.Sscanf(string(it.Key), "k%d", &k)
			want := 100
			if k%50 == 0 {
				want = 9000
			}
			if !bytes.Equal(v, bytes.Repeat([]byte{byte(k)}, want)) {
				t.Fatalf("%s block %d damaged: %s read back wrong", name, off/4096, it.Key)
			}
		}
		db.Close()
	}
}

// TestDirectIOFallback checks DirectIOAuto's fallback on a file system
// that refuses O_DIRECT and DirectIORequired's refusal.
func TestDirectIOFallback(t *testing.T) {
	fs := vfs.NewMem()
	fs.SetDirectSupported(false)
	o := memOpts(fs)
	o.DirectIO = cowdb.DirectIORequired
	if _, err := cowdb.Open("/db", o); !errors.Is(err, vfs.ErrDirectUnsupported) {
		t.Fatalf("DirectIORequired without O_DIRECT: %v", err)
	}
	var logged bytes.Buffer
	o = memOpts(fs)
	o.Logger = slog.New(slog.NewTextHandler(&logged, nil))
	db, err := cowdb.Open("/db2", o)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Put([]byte("k"), make([]byte, 10000)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logged.String(), "direct I/O unavailable") {
		t.Fatalf("no fallback line logged: %s", logged.String())
	}
}

// TestForeignGeometryRefused checks that a superblock whose checksum is
// valid but which places AG 0 somewhere extents does not (the format allows
// any start after the superblocks) is refused as ErrCorrupt, before any
// bitmap or node is read from the wrong blocks.
func TestForeignGeometryRefused(t *testing.T) {
	damagesOnPurpose(t)
	fs := damagedStore(t)
	f, err := fs.OpenFile("/db/data", vfs.ReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	for slot := range int64(2) {
		buf := make([]byte, 4096)
		if _, err := f.ReadAt(buf, slot*4096); err != nil {
			t.Fatal(err)
		}
		sb, err := format.DecodeSuperblock(buf)
		if err != nil {
			continue // the slot never written by a checkpoint
		}
		sb.AGStart = 3
		sb.Checksum = 0
		if _, err := f.WriteAt(sb.Encode(4096), slot*4096); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, err = cowdb.Open("/db", memOpts(fs))
	if !errors.Is(err, format.ErrBadGeometry) || !strings.Contains(err.Error(), "/db/data") {
		t.Fatalf("Open: %v, want ErrBadGeometry naming /db/data", err)
	}
}
