// Command vmdisk uses cowdb as a thin-provisioned disk-image store, the way
// a hypervisor keeps virtual machine disks. A 64 MiB blob "vm1" is a virtual
// disk: a base image is installed on it, then each "boot" writes 4 KiB
// sectors at random offsets, as a guest file system does, and ends with a
// snapshot "vm1-boot-N". A second VM's disk is made with Clone, which copies
// no data: the space figures before and after show it. Writes to the clone
// leave the original untouched, and vm1 is rolled back to an earlier boot
// with CloneFrom.
//
// Every disk and snapshot is read back and compared with an in-memory model,
// and every space figure is checked against the model's count of the data
// blocks each state holds (each sector write lands in a new block, so a
// sector's version names its block). The program exits non-zero if anything
// is wrong.
//
//	go run ./examples/vmdisk
package main

import (
	"bytes"
	"crypto/sha256"
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
		fmt.Fprintln(os.Stderr, "vmdisk failed:", err)
		os.Exit(1)
	}
	fmt.Println("all checks passed")
}

const (
	diskSize      = 64 << 20 // bytes per virtual disk
	sector        = 4 << 10  // the guest's write unit, one store block
	sectors       = diskSize / sector
	boots         = 3
	writesPerBoot = 256
	// metaMax bounds the tree nodes (extent records, keys, catalog) the
	// whole store or one state may hold, in bytes; metaStep bounds those
	// one operation that copies no data may add. Both are small beside
	// one disk, so copied data cannot hide in them.
	metaMax  = 4 << 20
	metaStep = 1 << 20
)

// versions names, per sector of a disk, the write that put its bytes
// there (0: none, a hole that reads as zeros). Every write lands in a fresh block and Clone shares blocks, so
// two states hold the same block for a sector exactly when they hold the
// same version.
type versions []uint32

// disk is a VM disk: its key, the bytes it should hold, and their versions.
type disk struct {
	key   []byte
	bytes []byte
	ver   versions
}

// lab is the store and the model of what it holds.
type lab struct {
	db      *cowdb.DB
	rng     *rand.Rand
	next    uint32 // the next write's version
	disks   []*disk
	snaps   map[string]versions // vm1's sectors in each snapshot
	hashes  map[string][sha256.Size]byte
	written map[string]int // distinct sectors each boot wrote
}

func run() error {
	tmp, err := os.MkdirTemp("", "cowdb-vmdisk")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// A guest flushes its disk at the end of a boot, not after every
	// write: SyncNever with a Sync per boot models that.
	opts := &cowdb.Options{GroupSize: 64 << 20, WALSegmentSize: 16 << 20, Sync: cowdb.SyncNever,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	db, err := cowdb.Open(filepath.Join(tmp, "store"), opts)
	if err != nil {
		return err
	}
	defer db.Close()
	l := &lab{db: db, rng: rand.New(rand.NewPCG(7, 11)), next: 1,
		snaps: map[string]versions{}, hashes: map[string][sha256.Size]byte{}, written: map[string]int{}}

	vm1 := &disk{key: []byte("vm1"), bytes: make([]byte, diskSize), ver: make(versions, sectors)}
	l.disks = append(l.disks, vm1)
	if err := l.install(vm1); err != nil {
		return err
	}
	for n := 1; n <= boots; n++ {
		name := fmt.Sprintf("vm1-boot-%d", n)
		distinct, err := l.boot(vm1)
		if err != nil {
			return err
		}
		if _, err := db.Snapshot(name); err != nil {
			return err
		}
		l.snaps[name] = slices.Clone(vm1.ver)
		l.hashes[name] = sha256.Sum256(vm1.bytes)
		fmt.Printf("boot %d: wrote %d random %s sectors (%d distinct, %s), then snapshot %q\n",
			n, writesPerBoot, human(sector), distinct, human(int64(distinct)*sector), name)
	}
	if err := l.verify(vm1); err != nil {
		return err
	}
	vm2, err := l.cloneVM(vm1)
	if err != nil {
		return err
	}
	if err := l.bootClone(vm1, vm2); err != nil {
		return err
	}
	if err := l.rollback(vm1, vm2, "vm1-boot-1"); err != nil {
		return err
	}
	return db.Close()
}

// install makes d a fixed-size disk (a sparse blob: Truncate allocates
// nothing) and writes a base image over it in 1 MiB pieces, as an
// installer would.
func (l *lab) install(d *disk) error {
	b, err := l.db.CreateBlob(d.key)
	if err != nil {
		return err
	}
	defer b.Close()
	if err := b.Truncate(diskSize); err != nil {
		return err
	}
	empty, err := l.space()
	if err != nil {
		return err
	}
	fmt.Printf("created %q: a %s virtual disk, thin: %s of the store in use\n", d.key, human(diskSize), human(empty.committed))
	if empty.committed >= metaStep {
		return fmt.Errorf("an empty %d-byte disk uses %d bytes, want only metadata", diskSize, empty.committed)
	}
	base := rand.NewChaCha8([32]byte{'b', 'a', 's', 'e'})
	if _, err := base.Read(d.bytes); err != nil {
		return err
	}
	for s := range d.ver {
		d.ver[s] = l.next
		l.next++
	}
	const piece = 1 << 20
	for off := 0; off < diskSize; off += piece {
		if _, err := b.WriteAt(d.bytes[off:off+piece], int64(off)); err != nil {
			return err
		}
	}
	if err := b.Close(); err != nil {
		return err
	}
	if err := l.db.Sync(); err != nil {
		return err
	}
	full, err := l.space()
	if err != nil {
		return err
	}
	fmt.Printf("installed a %s base image: %s in use\n", human(diskSize), human(full.committed))
	return l.verify(d)
}

// boot writes writesPerBoot sectors of fresh bytes at random offsets of d,
// flushes, and returns how many distinct sectors it wrote.
func (l *lab) boot(d *disk) (int, error) {
	b, err := l.db.OpenBlob(d.key)
	if err != nil {
		return 0, err
	}
	defer b.Close()
	distinct := map[int64]bool{}
	buf := make([]byte, sector)
	for range writesPerBoot {
		s := l.rng.Int64N(sectors)
		for i := range buf {
			buf[i] = byte(l.rng.Uint32())
		}
		if _, err := b.WriteAt(buf, s*sector); err != nil {
			return 0, err
		}
		copy(d.bytes[s*sector:], buf)
		d.ver[s] = l.next
		l.next++
		distinct[s] = true
	}
	if err := b.Close(); err != nil {
		return 0, err
	}
	return len(distinct), l.db.Sync()
}

// cloneVM makes vm2 a clone of vm1 and shows, with the store's figures
// before and after, that the clone copied no data.
func (l *lab) cloneVM(vm1 *disk) (*disk, error) {
	before, err := l.space()
	if err != nil {
		return nil, err
	}
	before.print("before the clone")
	vm2 := &disk{key: []byte("vm2"), bytes: slices.Clone(vm1.bytes), ver: slices.Clone(vm1.ver)}
	if err := l.db.Clone(vm1.key, vm2.key); err != nil {
		return nil, err
	}
	l.disks = append(l.disks, vm2)
	after, err := l.space()
	if err != nil {
		return nil, err
	}
	fmt.Printf("Clone(%q, %q): a second %s disk\n", vm1.key, vm2.key, human(diskSize))
	after.print("after the clone")
	grew := after.committed - before.committed
	fmt.Printf("  the clone added %s of metadata and copied no data: %s of disks in %s\n",
		human(grew), human(2*diskSize), human(after.committed))
	if grew < 0 || grew > metaStep {
		return nil, fmt.Errorf("Clone changed the space in use by %d bytes, want a little metadata (at most %d)", grew, metaStep)
	}
	if after.shared < diskSize {
		return nil, fmt.Errorf("after Clone %d bytes are shared, want at least the whole %d-byte disk", after.shared, diskSize)
	}
	for _, s := range before.snaps {
		// A snapshot is immutable: what it references stays put.
		if a := after.snap(s.Name); a.ReferencedBytes != s.ReferencedBytes {
			return nil, fmt.Errorf("snapshot %q references %d bytes after Clone, %d before", s.Name, a.ReferencedBytes, s.ReferencedBytes)
		}
	}
	fmt.Println("  every block of vm1 is now shared; the snapshots reference what they did")
	if err := l.verify(vm2); err != nil {
		return nil, err
	}
	fmt.Printf("  %q reads back identical to %q\n", vm2.key, vm1.key)
	return vm2, nil
}

// bootClone boots vm2 once and checks that vm1 did not change and that
// vm2 took space only for the sectors it wrote.
func (l *lab) bootClone(vm1, vm2 *disk) error {
	before, err := l.space()
	if err != nil {
		return err
	}
	n, err := l.boot(vm2)
	if err != nil {
		return err
	}
	after, err := l.space()
	if err != nil {
		return err
	}
	grew := after.committed - before.committed
	fmt.Printf("booted %q: %d random %s writes (%d distinct sectors, %s); the store grew by %s\n",
		vm2.key, writesPerBoot, human(sector), n, human(int64(n)*sector), human(grew))
	if grew < int64(n)*sector || grew > int64(n)*sector+metaStep {
		return fmt.Errorf("vm2's writes grew the space in use by %d bytes, want its %d new sectors (%d bytes) plus a little metadata",
			grew, n, int64(n)*sector)
	}
	if err := l.verify(vm1); err != nil {
		return fmt.Errorf("vm1 after writes to its clone: %w", err)
	}
	if err := l.verify(vm2); err != nil {
		return err
	}
	fmt.Printf("  %q holds its new sectors; %q reads back unchanged\n", vm2.key, vm1.key)
	return nil
}

// rollback rolls vm1 back to the snapshot target with CloneFrom and checks
// every disk and every boot snapshot against what it should hold.
func (l *lab) rollback(vm1, vm2 *disk, target string) error {
	before, err := l.space()
	if err != nil {
		return err
	}
	if err := l.db.CloneFrom(target, vm1.key, vm1.key); err != nil {
		return err
	}
	vm1.ver = slices.Clone(l.snaps[target])
	after, err := l.space()
	if err != nil {
		return err
	}
	fmt.Printf("rolled %q back to %q with CloneFrom (space in use %s -> %s)\n",
		vm1.key, target, human(before.committed), human(after.committed))
	got, err := hashBlob(l.db.OpenBlob(vm1.key))
	if err != nil {
		return err
	}
	if got != l.hashes[target] {
		return fmt.Errorf("%q after CloneFrom(%q) does not hold the disk as it was at that boot", vm1.key, target)
	}
	fmt.Printf("  %q now holds exactly the bytes it held at %q\n", vm1.key, target)
	if err := l.verify(vm2); err != nil {
		return fmt.Errorf("vm2 after vm1's rollback: %w", err)
	}
	fmt.Printf("  %q is unaffected\n", vm2.key)
	for _, name := range slices.Sorted(maps.Keys(l.snaps)) {
		snap, err := l.db.OpenSnapshot(name)
		if err != nil {
			return err
		}
		got, err := hashBlob(snap.OpenBlob(vm1.key))
		snap.Close()
		if err != nil {
			return err
		}
		if got != l.hashes[name] {
			return fmt.Errorf("snapshot %q: %q does not hold the disk as it was at that boot", name, vm1.key)
		}
	}
	fmt.Printf("  each of the %d boot snapshots still reads back the disk as it was then\n", len(l.snaps))
	after.print("after the rollback")
	return nil
}

// verify reads d's disk whole and compares it with its model.
func (l *lab) verify(d *disk) error {
	b, err := l.db.OpenBlob(d.key)
	if err != nil {
		return err
	}
	defer b.Close()
	if b.Size() != diskSize {
		return fmt.Errorf("%q is %d bytes, want %d", d.key, b.Size(), diskSize)
	}
	buf := make([]byte, 1<<20)
	for off := int64(0); off < diskSize; off += int64(len(buf)) {
		if _, err := b.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if !bytes.Equal(buf, d.bytes[off:off+int64(len(buf))]) {
			return fmt.Errorf("%q differs from what was written to it in the MiB at offset %d", d.key, off)
		}
	}
	return b.Close()
}

// hashBlob reads an opened blob whole and returns its SHA-256.
func hashBlob(b *cowdb.Blob, err error) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	if err != nil {
		return sum, err
	}
	defer b.Close()
	h := sha256.New()
	if _, err := b.WriteTo(h); err != nil {
		return sum, err
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// usage is the store's space at one moment, in bytes, and its snapshots.
type usage struct {
	committed, shared, free int64
	snaps                   []cowdb.SnapshotInfo
}

// snap returns the figures of the snapshot name (zero if absent).
func (u usage) snap(name string) cowdb.SnapshotInfo {
	i := slices.IndexFunc(u.snaps, func(s cowdb.SnapshotInfo) bool { return s.Name == name })
	if i < 0 {
		return cowdb.SnapshotInfo{}
	}
	return u.snaps[i]
}

// space writes a checkpoint, so that every tree node has its block and
// the figures are settled, returns the store's space, and checks it
// against the model (checkSpace).
func (l *lab) space() (usage, error) {
	if err := l.db.Checkpoint(); err != nil {
		return usage{}, err
	}
	st := l.db.Stats()
	bs := int64(st.BlockSize)
	snaps, err := l.db.Snapshots()
	if err != nil {
		return usage{}, err
	}
	u := usage{committed: st.CommittedBlocks * bs, shared: st.SharedBlocks * bs, free: st.FreeBlocks * bs, snaps: snaps}
	return u, l.checkSpace(u)
}

// checkSpace checks the store's figures against the model. The data the
// store holds is one block per distinct version of a sector across every
// disk and snapshot; the rest of the space in use is tree nodes, at most
// metaMax. A snapshot references a whole disk of data plus its nodes, and
// holds exclusively exactly the data blocks no other state holds, plus
// some of its nodes.
func (l *lab) checkSpace(u usage) error {
	var states []versions
	for _, d := range l.disks {
		states = append(states, d.ver)
	}
	names := slices.Sorted(maps.Keys(l.snaps))
	for _, n := range names {
		states = append(states, l.snaps[n])
	}
	var data int64
	only := make([]int64, len(states)) // data blocks state i alone holds
	for s := range sectors {
		for i, st := range states {
			if st[s] == 0 {
				continue // a hole: no block
			}
			first, alone := true, true
			for j, o := range states {
				if o[s] == st[s] && j != i {
					alone = false
					first = first && j > i
				}
			}
			if first {
				data += sector
			}
			if alone {
				only[i] += sector
			}
		}
	}
	if meta := u.committed - data; meta < 0 || meta > metaMax {
		return fmt.Errorf("space in use is %d bytes; the disks and snapshots hold %d bytes of data, so %d bytes of tree nodes, want 0 to %d",
			u.committed, data, meta, metaMax)
	}
	if len(u.snaps) != len(names) {
		return fmt.Errorf("Snapshots() lists %d snapshots, want %v", len(u.snaps), names)
	}
	for i, n := range names {
		s := u.snap(n)
		meta := s.ReferencedBytes - diskSize
		if s.Name != n || meta <= 0 || meta > metaMax {
			return fmt.Errorf("snapshot %q references %d bytes, want its %d-byte disk plus at most %d of tree nodes", n, s.ReferencedBytes, diskSize, metaMax)
		}
		excl := only[len(l.disks)+i]
		if s.ExclusiveBytes < excl || s.ExclusiveBytes > excl+meta {
			return fmt.Errorf("snapshot %q: ExclusiveBytes is %d, but it alone holds %d bytes of data (%d sectors no other disk or snapshot holds) and %d bytes of tree nodes at most: want %d to %d",
				n, s.ExclusiveBytes, excl, excl/sector, meta, excl, excl+meta)
		}
	}
	return nil
}

// print shows u under a heading.
func (u usage) print(when string) {
	fmt.Printf("  space %s: %s in use, %s of it shared, %s free\n", when, human(u.committed), human(u.shared), human(u.free))
	for _, s := range u.snaps {
		fmt.Printf("    %-11s references %9s, holds %9s exclusively\n", s.Name, human(s.ReferencedBytes), human(s.ExclusiveBytes))
	}
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
