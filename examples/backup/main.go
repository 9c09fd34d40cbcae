// Command backup shows incremental backup with cowdb's snapshots and Diff.
// Store A, in one temporary directory, holds small keys and large blobs; a
// snapshot "b1" of it is exported whole into store B, in another. A then
// changes (keys modified, added and deleted, a blob patched in place, one
// appended to, one truncated, one replaced), and a second snapshot "b2" is
// taken. Only Diff("b1", "b2") is applied to B: changed values are copied,
// and for a blob modified in place only its changed byte ranges. B must then
// equal A's b2 exactly, key for key and byte for byte; the program prints
// how much the incremental step copied against a full copy, checks every
// result, and exits non-zero if anything is wrong.
//
//	go run ./examples/backup
package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
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
		fmt.Fprintln(os.Stderr, "backup failed:", err)
		os.Exit(1)
	}
	fmt.Println("all checks passed")
}

// smallMax is the largest value the backup copies with Get and Put; larger
// ones are streamed into a blob.
const smallMax = 64 << 10

// A blob the edits patch in place, and the patches.
const journal = "db/journal"

var journalPatches = []struct {
	off int64
	n   int
}{
	{1 << 20, 16 << 10},  // four whole blocks
	{2_500_000, 300},     // inside one block
	{4<<20 - 4096, 4096}, // the last block
}

func run() error {
	tmp, err := os.MkdirTemp("", "cowdb-backup")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	opts := &cowdb.Options{GroupSize: 32 << 20, WALSegmentSize: 16 << 20,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	a, err := cowdb.Open(filepath.Join(tmp, "a"), opts)
	if err != nil {
		return err
	}
	defer a.Close()
	b, err := cowdb.Open(filepath.Join(tmp, "b"), opts)
	if err != nil {
		return err
	}
	defer b.Close()
	bs := int64(a.Stats().BlockSize)
	rng := rand.NewChaCha8([32]byte{'b', 'a', 'c', 'k', 'u', 'p'})

	b1, err := fill(a, rng)
	if err != nil {
		return err
	}
	if _, err := a.Snapshot("b1"); err != nil {
		return err
	}
	fmt.Printf("store A: %d keys, %s in all; took snapshot \"b1\"\n", len(b1), human(total(b1)))

	full, err := export(a, "b1", b)
	if err != nil {
		return err
	}
	if err := same(b, b1); err != nil {
		return fmt.Errorf("B after the full export of b1: %w", err)
	}
	fmt.Printf("full backup: exported b1 into store B, %s copied; B equals b1\n", human(full))

	b2, want, err := edit(a, b1, rng, bs)
	if err != nil {
		return err
	}
	if _, err := a.Snapshot("b2"); err != nil {
		return err
	}
	if err := same(a, b2); err != nil {
		return fmt.Errorf("A after the edits: %w", err)
	}
	fmt.Printf("changed A (%d keys, %s in all), took snapshot \"b2\"\n", len(b2), human(total(b2)))

	inc, err := incremental(a, b, b1, b2, want)
	if err != nil {
		return err
	}
	if err := same(b, b2); err != nil {
		return fmt.Errorf("B after the incremental backup: %w", err)
	}
	snap, err := read(a, "b2")
	if err != nil {
		return err
	}
	if err := same(b, snap); err != nil {
		return fmt.Errorf("B against A's snapshot b2: %w", err)
	}
	fmt.Printf("B now equals A's snapshot b2: all %d keys, every byte of every value\n", len(b2))
	fmt.Printf("the incremental step copied %s; a full copy of b2 is %s (%.1f%%)\n",
		human(inc), human(total(b2)), 100*float64(inc)/float64(total(b2)))
	if inc >= total(b2)/2 {
		return fmt.Errorf("the incremental step copied %d bytes, not much less than the full %d", inc, total(b2))
	}
	if err := b.Close(); err != nil {
		return err
	}
	return a.Close()
}

// fill writes the starting state of A and returns it.
func fill(a *cowdb.DB, rng *rand.ChaCha8) (map[string][]byte, error) {
	state := map[string][]byte{
		"conf/mode":    []byte("primary"),
		"conf/old":     []byte("to be removed"),
		"conf/region":  []byte("eu-west"),
		journal:        random(rng, 4<<20),
		"log/app.log":  random(rng, 1_000_000),
		"photos/a.jpg": random(rng, 3<<20),
		"photos/b.jpg": random(rng, 2<<20),
		"photos/c.jpg": random(rng, 1<<20),
		"tmp/cache":    random(rng, 1<<20),
	}
	for _, k := range slices.Sorted(maps.Keys(state)) {
		if err := a.Put([]byte(k), state[k]); err != nil {
			return nil, err
		}
	}
	return state, nil
}

// change is what Diff("b1", "b2") should say about a key.
type change struct {
	kind   cowdb.ChangeKind
	ranges []cowdb.Range
}

// edit changes A, and returns the new state and the Diff it expects: the
// ranges of a blob changed in place are the blocks the writes touched, and
// when the size changed, the blocks from the one holding the smaller size
// up to the larger one.
func edit(a *cowdb.DB, b1 map[string][]byte, rng *rand.ChaCha8, bs int64) (map[string][]byte, map[string]change, error) {
	b2 := maps.Clone(b1)
	want := map[string]change{}
	// blocks is the range of the blocks holding bytes [off, end) of a
	// blob whose larger size (before or after) is size.
	blocks := func(off, end, size int64) cowdb.Range {
		first := off / bs * bs
		return cowdb.Range{Off: first, Len: min((end+bs-1)/bs*bs, size) - first}
	}
	put := func(k string, v []byte, kind cowdb.ChangeKind) error {
		b2[k], want[k] = v, change{kind: kind}
		return a.Put([]byte(k), v)
	}
	steps := []func() error{
		func() error { return put("conf/mode", []byte("standby"), cowdb.Modified) },
		func() error { return put("conf/zone", []byte("b"), cowdb.Added) },
		func() error { return put("photos/b.jpg", random(rng, 2<<20), cowdb.Modified) }, // a new value: copied whole
		func() error { return put("photos/d.jpg", random(rng, 1536<<10), cowdb.Added) },
		func() error {
			delete(b2, "conf/old")
			want["conf/old"] = change{kind: cowdb.Removed}
			return a.Delete([]byte("conf/old"))
		},
		func() error {
			delete(b2, "photos/c.jpg")
			want["photos/c.jpg"] = change{kind: cowdb.Removed}
			return a.Delete([]byte("photos/c.jpg"))
		},
		func() error {
			v := slices.Clone(b1[journal])
			c := change{kind: cowdb.Modified}
			err := withBlob(a, journal, func(blob *cowdb.Blob) error {
				for _, p := range journalPatches {
					data := random(rng, p.n)
					copy(v[p.off:], data)
					c.ranges = append(c.ranges, blocks(p.off, p.off+int64(p.n), int64(len(v))))
					if _, err := blob.WriteAt(data, p.off); err != nil {
						return err
					}
				}
				return nil
			})
			b2[journal], want[journal] = v, c
			return err
		},
		func() error {
			const k = "log/app.log"
			tail := random(rng, 10_000)
			old := int64(len(b1[k]))
			b2[k] = append(slices.Clone(b1[k]), tail...)
			want[k] = change{kind: cowdb.Modified, ranges: []cowdb.Range{blocks(old, old+int64(len(tail)), old+int64(len(tail)))}}
			return withBlob(a, k, func(blob *cowdb.Blob) error {
				_, err := blob.WriteAt(tail, old)
				return err
			})
		},
		func() error {
			const k, size = "tmp/cache", 300_000
			b2[k] = b1[k][:size]
			want[k] = change{kind: cowdb.Modified, ranges: []cowdb.Range{blocks(size, int64(len(b1[k])), int64(len(b1[k])))}}
			return withBlob(a, k, func(blob *cowdb.Blob) error { return blob.Truncate(size) })
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, nil, err
		}
	}
	fmt.Println("edits to A: modified conf/mode, added conf/zone, removed conf/old,")
	fmt.Println("  replaced photos/b.jpg, added photos/d.jpg, removed photos/c.jpg,")
	fmt.Printf("  patched %d places in %s, appended 10000 bytes to log/app.log, truncated tmp/cache to 300000 bytes\n",
		len(journalPatches), journal)
	return b2, want, nil
}

// incremental applies Diff("b1", "b2") of A to B, after checking it is
// the diff the edits should give, and returns the bytes it copied.
func incremental(a, b *cowdb.DB, b1, b2 map[string][]byte, want map[string]change) (int64, error) {
	snap, err := a.OpenSnapshot("b2")
	if err != nil {
		return 0, err
	}
	defer snap.Close()
	fmt.Println("incremental backup, applying Diff(\"b1\", \"b2\") to B:")
	var copied int64
	got := map[string]change{}
	for c, err := range a.Diff("b1", "b2") {
		if err != nil {
			return 0, err
		}
		k := string(c.Key)
		got[k] = change{kind: c.Kind, ranges: c.Ranges}
		var n int64
		switch {
		case c.Kind == cowdb.Removed:
			err = b.Delete(c.Key)
		case c.Ranges == nil: // added, or replaced by a new value
			n, err = copyValue(snap, b, c.Key)
		default: // a blob modified in place
			if err := covers(b1[k], b2[k], c.Ranges); err != nil {
				return 0, fmt.Errorf("Diff of %q: %w", k, err)
			}
			n, err = copyRanges(snap, b, c.Key, c.Ranges)
		}
		if err != nil {
			return 0, fmt.Errorf("applying %v %q: %w", c.Kind, k, err)
		}
		copied += n
		switch {
		case c.Kind == cowdb.Removed:
			fmt.Printf("  %-8v %-13s deleted from B\n", c.Kind, k)
		case c.Ranges == nil:
			fmt.Printf("  %-8v %-13s copied whole, %s\n", c.Kind, k, human(n))
		default:
			fmt.Printf("  %-8v %-13s copied %s, the ranges", c.Kind, k, human(n))
			for _, r := range c.Ranges {
				fmt.Printf(" [%d, %d)", r.Off, r.Off+r.Len)
			}
			if len(b2[k]) < len(b1[k]) {
				fmt.Printf(",\n%24s then truncated to %d bytes (nothing to copy past them)", "", len(b2[k]))
			}
			fmt.Println()
		}
	}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if g, ok := got[k]; !ok || g.kind != want[k].kind || !slices.Equal(g.ranges, want[k].ranges) {
			return 0, fmt.Errorf("Diff(b1, b2) for %q: got %v %v (listed: %v), want %v %v",
				k, g.kind, g.ranges, ok, want[k].kind, want[k].ranges)
		}
	}
	if len(got) != len(want) {
		return 0, fmt.Errorf("Diff(b1, b2) lists %d keys, want %d: %v", len(got), len(want), slices.Sorted(maps.Keys(got)))
	}
	fmt.Println("  Diff listed exactly the keys changed, and for blobs changed in place exactly the blocks written")
	return copied, nil
}

// export copies every value of A's snapshot name into B and returns the
// bytes copied.
func export(a *cowdb.DB, name string, b *cowdb.DB) (int64, error) {
	snap, err := a.OpenSnapshot(name)
	if err != nil {
		return 0, err
	}
	defer snap.Close()
	var copied int64
	for it, err := range snap.Scan(nil, nil) {
		if err != nil {
			return 0, err
		}
		n, err := copyValue(snap, b, it.Key)
		if err != nil {
			return 0, err
		}
		copied += n
	}
	return copied, nil
}

// copyValue copies key's value in snap into b whole: small values with Get
// and Put, large ones streamed from the snapshot's blob into a new one.
func copyValue(snap *cowdb.Snapshot, b *cowdb.DB, key []byte) (int64, error) {
	src, err := snap.OpenBlob(key)
	if err != nil {
		return 0, err
	}
	defer src.Close()
	if src.Size() <= smallMax {
		v, err := snap.Get(key)
		if err != nil {
			return 0, err
		}
		return int64(len(v)), b.Put(key, v)
	}
	dst, err := b.CreateBlob(key)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(dst, src)
	if err := errors.Join(err, dst.Close()); err != nil {
		return 0, err
	}
	if n != src.Size() {
		return 0, fmt.Errorf("copied %d bytes of %q, its size is %d", n, key, src.Size())
	}
	return n, nil
}

// copyRanges brings key's blob in b up to date with snap by copying only
// the given ranges (those past the snapshot's size have nothing to copy)
// and setting the size.
func copyRanges(snap *cowdb.Snapshot, b *cowdb.DB, key []byte, ranges []cowdb.Range) (int64, error) {
	src, err := snap.OpenBlob(key)
	if err != nil {
		return 0, err
	}
	defer src.Close()
	var copied int64
	err = withBlob(b, string(key), func(dst *cowdb.Blob) error {
		for _, r := range ranges {
			end := min(r.Off+r.Len, src.Size())
			if end <= r.Off {
				continue
			}
			buf := make([]byte, end-r.Off)
			if _, err := src.ReadAt(buf, r.Off); err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			if _, err := dst.WriteAt(buf, r.Off); err != nil {
				return err
			}
			copied += int64(len(buf))
		}
		if dst.Size() != src.Size() {
			return dst.Truncate(src.Size())
		}
		return nil
	})
	return copied, err
}

// withBlob opens key's blob in db, runs fn on it, and closes it.
func withBlob(db *cowdb.DB, key string, fn func(*cowdb.Blob) error) error {
	blob, err := db.OpenBlob([]byte(key))
	if err != nil {
		return err
	}
	return errors.Join(fn(blob), blob.Close())
}

// covers checks that ranges cover every byte where old and new differ,
// counting the bytes past the shorter one as differing.
func covers(old, new []byte, ranges []cowdb.Range) error {
	in := func(i int) bool {
		for _, r := range ranges {
			if int64(i) >= r.Off && int64(i) < r.Off+r.Len {
				return true
			}
		}
		return false
	}
	for i := range max(len(old), len(new)) {
		if i < len(old) && i < len(new) && old[i] == new[i] {
			continue
		}
		if !in(i) {
			return fmt.Errorf("byte %d differs between b1 and b2 but no range %v covers it", i, ranges)
		}
	}
	return nil
}

// same checks that db holds exactly want: the same keys, each with the
// same value.
func same(db *cowdb.DB, want map[string][]byte) error {
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
			return fmt.Errorf("%q holds %d bytes that differ from the %d expected", k, len(v), len(w))
		}
		n++
	}
	if n != len(want) {
		return fmt.Errorf("found %d keys, want %d", n, len(want))
	}
	return nil
}

// read returns every key and value of the snapshot name of db.
func read(db *cowdb.DB, name string) (map[string][]byte, error) {
	snap, err := db.OpenSnapshot(name)
	if err != nil {
		return nil, err
	}
	defer snap.Close()
	state := map[string][]byte{}
	for it, err := range snap.Scan(nil, nil) {
		if err != nil {
			return nil, err
		}
		if state[string(it.Key)], err = it.Value(); err != nil {
			return nil, err
		}
	}
	return state, nil
}

// random returns n bytes from rng.
func random(rng *rand.ChaCha8, n int) []byte {
	p := make([]byte, n)
	rng.Read(p)
	return p
}

// total returns the bytes of all values of a state.
func total(state map[string][]byte) int64 {
	var n int64
	for _, v := range state {
		n += int64(len(v))
	}
	return n
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
