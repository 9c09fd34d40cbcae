// Command snapshots shows cowdb's named snapshots in a temporary directory:
// it stores a few keys and a 1 MiB blob, takes a snapshot, then modifies,
// deletes and adds keys and overwrites two small parts of the blob. It
// lists what changed with Diff (the blob's changed byte ranges included),
// reads the old values through the snapshot, shows the space the snapshot
// holds, restores it, and checks that the live store is back as it was.
// Every claim it prints is checked; it exits non-zero if anything is wrong.
//
//	go run ./examples/snapshots
package main

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"

	"github.com/cowdb/cowdb"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "snapshots failed:", err)
		os.Exit(1)
	}
	fmt.Println("all checks passed")
}

const (
	snapName = "before-edit"
	blobKey  = "doc/report"
	blobSize = 1 << 20
)

// patch is one in-place overwrite of the blob.
type patch struct {
	off  int64
	data []byte
}

func run() error {
	tmp, err := os.MkdirTemp("", "cowdb-snapshots")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// Small allocation groups keep the demo's files small.
	opts := &cowdb.Options{GroupSize: 16 << 20, WALSegmentSize: 4 << 20,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	db, err := cowdb.Open(filepath.Join(tmp, "store"), opts)
	if err != nil {
		return err
	}
	defer db.Close()
	bs := int64(db.Stats().BlockSize)

	before, err := fill(db)
	if err != nil {
		return err
	}
	if err := takeSnapshot(db, bs); err != nil {
		return err
	}
	after, patches, err := edit(db, before)
	if err != nil {
		return err
	}
	if err := showDiff(db, bs, before, after, patches); err != nil {
		return err
	}
	if err := showSpace(db, bs, "while the live store has moved on", 3); err != nil {
		return err
	}
	if err := readOld(db, before, patches); err != nil {
		return err
	}

	if err := restore(db, before); err != nil {
		return err
	}
	if err := showSpace(db, bs, "after the Restore", 0); err != nil {
		return err
	}
	return db.Close()
}

// restore restores the snapshot and checks that the live store is back to
// before, and that a blob handle opened before the Restore went stale.
func restore(db *cowdb.DB, before map[string][]byte) error {
	// A live blob handle kept open across the Restore must go stale.
	h, err := db.OpenBlob([]byte(blobKey))
	if err != nil {
		return err
	}
	defer h.Close()
	if err := db.Restore(snapName); err != nil {
		return err
	}
	fmt.Printf("restored %q: the live store is the snapshot's state again\n", snapName)
	if err := checkStore(db, before); err != nil {
		return fmt.Errorf("live store after Restore: %w", err)
	}
	fmt.Println("  every key and every blob byte is back as before the edits")
	for c, err := range db.Diff(snapName, "") {
		if err != nil {
			return err
		}
		return fmt.Errorf("Diff(%q, \"\") after Restore yields %q (%v), want nothing", snapName, c.Key, c.Kind)
	}
	fmt.Printf("  Diff(%q, live) is now empty\n", snapName)
	if _, err := h.ReadAt(make([]byte, 1), 0); !errors.Is(err, cowdb.ErrStale) {
		return fmt.Errorf("a blob handle opened before Restore: ReadAt gave %v, want ErrStale", err)
	}
	fmt.Println("  a blob handle opened before the Restore reports ErrStale")
	return nil
}

// fill stores the starting state, a few small keys and a blob, and
// returns it as a model to check against.
func fill(db *cowdb.DB) (map[string][]byte, error) {
	rng := rand.New(rand.NewPCG(1, 2))
	doc := make([]byte, blobSize)
	for i := range doc {
		doc[i] = byte(rng.UintN(256))
	}
	before := map[string][]byte{
		"config/color": []byte("blue"),
		"config/size":  []byte("large"),
		"user/alice":   []byte("admin"),
		"user/bob":     []byte("guest"),
		blobKey:        doc,
	}
	for _, k := range slices.Sorted(maps.Keys(before)) {
		if k == blobKey {
			continue
		}
		if err := db.Put([]byte(k), before[k]); err != nil {
			return nil, err
		}
	}
	if err := writeBlob(db, blobKey, true, []patch{{0, doc}}); err != nil {
		return nil, err
	}
	fmt.Printf("stored 4 small keys and a %s blob %q\n", human(blobSize), blobKey)
	return before, nil
}

// edit modifies, deletes and adds a key and overwrites two parts of the
// blob, one block-aligned and one not; it returns the new state and the
// blob's patches.
func edit(db *cowdb.DB, before map[string][]byte) (map[string][]byte, []patch, error) {
	patches := []patch{
		{64 << 10, bytes.Repeat([]byte{0xAA}, 8<<10)},   // 8 KiB, two whole blocks
		{500_000, bytes.Repeat([]byte("patched!"), 13)}, // 104 bytes inside one block
	}
	after := maps.Clone(before)
	after["config/color"] = []byte("green")
	delete(after, "user/bob")
	after["user/carol"] = []byte("editor")
	after[blobKey] = slices.Clone(before[blobKey])
	for _, p := range patches {
		copy(after[blobKey][p.off:], p.data)
	}
	if err := db.Put([]byte("config/color"), after["config/color"]); err != nil {
		return nil, nil, err
	}
	if err := db.Delete([]byte("user/bob")); err != nil {
		return nil, nil, err
	}
	if err := db.Put([]byte("user/carol"), after["user/carol"]); err != nil {
		return nil, nil, err
	}
	if err := writeBlob(db, blobKey, false, patches); err != nil {
		return nil, nil, err
	}
	fmt.Println("then: changed config/color, deleted user/bob, added user/carol,")
	fmt.Printf("      overwrote %s at offset %d and %d bytes at offset %d of the blob\n",
		human(int64(len(patches[0].data))), patches[0].off, len(patches[1].data), patches[1].off)
	if err := checkStore(db, after); err != nil {
		return nil, nil, fmt.Errorf("live store after the edits: %w", err)
	}
	return after, patches, nil
}

// takeSnapshot takes the snapshot and checks, with both states written by
// a checkpoint, that it cost a few metadata blocks and copied no data.
func takeSnapshot(db *cowdb.DB, bs int64) error {
	if err := db.Checkpoint(); err != nil {
		return err
	}
	before := db.Stats().CommittedBlocks
	if _, err := db.Snapshot(snapName); err != nil {
		return err
	}
	if err := db.Checkpoint(); err != nil {
		return err
	}
	grew := (db.Stats().CommittedBlocks - before) * bs
	fmt.Printf("took snapshot %q: the store grew by %s (a catalog entry), no data copied\n", snapName, human(grew))
	if grew > 4*bs {
		return fmt.Errorf("Snapshot grew the committed space by %d bytes, want at most a few catalog blocks", grew)
	}
	return nil
}

// writeBlob creates (create) or opens the blob key and applies each patch
// with WriteAt.
func writeBlob(db *cowdb.DB, key string, create bool, patches []patch) error {
	open := db.OpenBlob
	if create {
		open = db.CreateBlob
	}
	b, err := open([]byte(key))
	if err != nil {
		return err
	}
	for _, p := range patches {
		if _, err := b.WriteAt(p.data, p.off); err != nil {
			b.Close()
			return err
		}
	}
	return b.Close()
}

// showDiff prints Diff(snapshot, live) and checks it against the edits:
// the right keys and kinds, and for the blob exactly the blocks the
// patches touched, which must cover every byte that differs.
func showDiff(db *cowdb.DB, bs int64, before, after map[string][]byte, patches []patch) error {
	want := map[string]cowdb.ChangeKind{
		"config/color": cowdb.Modified,
		"user/bob":     cowdb.Removed,
		"user/carol":   cowdb.Added,
		blobKey:        cowdb.Modified,
	}
	var wantRanges []cowdb.Range
	for _, p := range patches {
		first := p.off / bs * bs
		end := (p.off + int64(len(p.data)) + bs - 1) / bs * bs
		wantRanges = append(wantRanges, cowdb.Range{Off: first, Len: end - first})
	}
	fmt.Printf("Diff(%q, live):\n", snapName)
	got := map[string]cowdb.ChangeKind{}
	for c, err := range db.Diff(snapName, "") {
		if err != nil {
			return err
		}
		k := string(c.Key)
		got[k] = c.Kind
		fmt.Printf("  %-9v %s\n", c.Kind, k)
		for _, r := range c.Ranges {
			fmt.Printf("            bytes %d..%d (%s)\n", r.Off, r.Off+r.Len, human(r.Len))
		}
		if k == blobKey {
			if !slices.Equal(c.Ranges, wantRanges) {
				return fmt.Errorf("Diff ranges of %q: got %v, want the blocks the writes touched, %v", k, c.Ranges, wantRanges)
			}
			if err := covered(before[k], after[k], c.Ranges); err != nil {
				return err
			}
		} else if c.Ranges != nil {
			return fmt.Errorf("Diff of %q (%v): got ranges %v, want none", k, c.Kind, c.Ranges)
		}
	}
	if !maps.Equal(got, want) {
		return fmt.Errorf("Diff(%q, live): got %v, want %v", snapName, got, want)
	}
	fmt.Printf("  the blob's ranges are exactly the %d-byte blocks the two writes touched\n", bs)
	return nil
}

// covered checks that every byte where a and b differ lies in a range.
func covered(a, b []byte, ranges []cowdb.Range) error {
	for i := range a {
		if a[i] == b[i] {
			continue
		}
		in := false
		for _, r := range ranges {
			in = in || (int64(i) >= r.Off && int64(i) < r.Off+r.Len)
		}
		if !in {
			return fmt.Errorf("byte %d differs but no Diff range covers it (ranges %v)", i, ranges)
		}
	}
	return nil
}

// readOld reads the pre-edit values through an open snapshot.
func readOld(db *cowdb.DB, before map[string][]byte, patches []patch) error {
	s, err := db.OpenSnapshot(snapName)
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Printf("reading through OpenSnapshot(%q):\n", snapName)
	for _, k := range []string{"config/color", "user/bob"} {
		v, err := s.Get([]byte(k))
		if err != nil {
			return fmt.Errorf("snapshot Get(%q): %w", k, err)
		}
		if !bytes.Equal(v, before[k]) {
			return fmt.Errorf("snapshot Get(%q) = %q, want %q", k, v, before[k])
		}
		fmt.Printf("  %-12s = %q\n", k, v)
	}
	if _, err := s.Get([]byte("user/carol")); !errors.Is(err, cowdb.ErrNotFound) {
		return fmt.Errorf("snapshot Get(user/carol): got %v, want ErrNotFound", err)
	}
	fmt.Println("  user/carol   : not found (added after the snapshot)")
	b, err := s.OpenBlob([]byte(blobKey))
	if err != nil {
		return err
	}
	defer b.Close()
	for _, p := range patches {
		old := make([]byte, len(p.data))
		if _, err := b.ReadAt(old, p.off); err != nil {
			return err
		}
		if !bytes.Equal(old, before[blobKey][p.off:p.off+int64(len(p.data))]) {
			return fmt.Errorf("snapshot blob at %d: read the edited bytes, want the old ones", p.off)
		}
	}
	whole := make([]byte, b.Size())
	if _, err := b.ReadAt(whole, 0); err != nil {
		return err
	}
	if !bytes.Equal(whole, before[blobKey]) {
		return errors.New("snapshot blob differs from the blob as it was")
	}
	fmt.Printf("  %-12s : all %s as they were, patched ranges included\n", blobKey, human(int64(len(whole))))
	if _, err := b.WriteAt([]byte("x"), 0); !errors.Is(err, cowdb.ErrReadOnly) {
		return fmt.Errorf("writing a snapshot's blob: got %v, want ErrReadOnly", err)
	}
	fmt.Println("  and the snapshot's blob refuses writes (ErrReadOnly)")
	return nil
}

// showSpace prints Snapshots() and checks its figures: the snapshot
// references at least the blob, and holds exclusively at least minExcl
// data blocks (the overwritten ones), or nothing when minExcl is 0 (it is
// the live state).
func showSpace(db *cowdb.DB, bs int64, when string, minExcl int64) error {
	infos, err := db.Snapshots()
	if err != nil {
		return err
	}
	fmt.Printf("Snapshots() %s:\n", when)
	for _, in := range infos {
		fmt.Printf("  %-12s created %s  references %s, holds %s exclusively\n",
			in.Name, in.Created.Format("15:04:05.000"), human(in.ReferencedBytes), human(in.ExclusiveBytes))
	}
	if len(infos) != 1 || infos[0].Name != snapName {
		return fmt.Errorf("Snapshots() lists %v, want the one snapshot %q", infos, snapName)
	}
	in := infos[0]
	if in.ReferencedBytes < blobSize {
		return fmt.Errorf("%q references %d bytes, less than its %d-byte blob", snapName, in.ReferencedBytes, blobSize)
	}
	switch {
	case minExcl == 0 && in.ExclusiveBytes != 0:
		return fmt.Errorf("%q holds %d bytes exclusively, want 0: the live store is the same state", snapName, in.ExclusiveBytes)
	case minExcl > 0 && (in.ExclusiveBytes < minExcl*bs || in.ExclusiveBytes >= in.ReferencedBytes):
		return fmt.Errorf("%q: ExclusiveBytes is %d, want at least %d (the old versions of the %d blob blocks the edits replaced, which only the snapshot holds) and less than the %d it references",
			snapName, in.ExclusiveBytes, minExcl*bs, minExcl, in.ReferencedBytes)
	}
	if minExcl > 0 {
		fmt.Printf("  exclusive: the %d old blob blocks the edits replaced, and the tree nodes they changed\n", minExcl)
	} else {
		fmt.Println("  exclusive is 0: the live store shares the snapshot's every block")
	}
	return nil
}

// checkStore checks that the live store holds exactly want: the same keys,
// each with the same value.
func checkStore(db *cowdb.DB, want map[string][]byte) error {
	n := 0
	for it, err := range db.Scan(nil, nil) {
		if err != nil {
			return err
		}
		k := string(it.Key)
		w, ok := want[k]
		if !ok {
			return fmt.Errorf("unexpected key %q", k)
		}
		v, err := it.Value()
		if err != nil {
			return err
		}
		if !bytes.Equal(v, w) {
			return fmt.Errorf("key %q holds %d bytes that differ from the %d expected", k, len(v), len(w))
		}
		n++
	}
	if n != len(want) {
		return fmt.Errorf("found %d keys, want %d", n, len(want))
	}
	return nil
}

// human formats a byte count in binary units: "512 B", "12 KiB", "1.5 MiB".
func human(n int64) string {
	const unit = 1024
	if n < 0 {
		return "-" + human(-n)
	}
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	suffix := "KMGTP"[exp : exp+1]
	if n%div == 0 {
		return fmt.Sprintf("%d %siB", n/div, suffix)
	}
	return fmt.Sprintf("%.1f %siB", float64(n)/float64(div), suffix)
}
