package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/cowdb/cowdb"
)

// checkCommand is "cowdb check".
var checkCommand = &command{name: "check", args: "[--offline]", run: runCheck,
	summary: "verify every invariant of the store (fsck)",
	help: `Check verifies every invariant of the store: both the superblock and the
allocation bitmaps usable, every tree well formed, the blocks allocated
exactly those reachable, every reference count right, every data block
matching its checksum. It opens the store (replaying its log, which writes
a checkpoint) and checks that checkpoint. If the store does not open
because it is damaged, or with --offline, it checks the last durable
checkpoint without writing anything (taking the store shared, so a writer
must not have it open). It lists every violation found on standard output
and exits with status 1 if there is any.`}

func runCheck(e *env, c *command, args []string) (err error) {
	fs := flagSet(e, c)
	offline := fs.Bool("offline", false, "check the last durable checkpoint without opening the store for writing")
	maxV := fs.Int("max", 0, "list at most `N` violations (0: 1000)")
	if args, err = parse(e, c, fs, args); err != nil {
		return err
	}
	if err := operands(c, args, 0, 0); err != nil {
		return err
	}
	dir, err := e.storeDir()
	if err != nil {
		return err
	}
	var checked int64
	bar := e.newCountProgress(-1, "check", "blocks", true)
	opts := cowdb.CheckOptions{MaxViolations: *maxV, Progress: func(done, total int64) {
		checked = done
		bar.set(done, total)
	}}
	start := time.Now()
	var cerr error
	if !*offline {
		db, err := e.open(readWrite, nil)
		switch {
		case err == nil:
			cerr = db.CheckWith(opts)
			if err := db.Close(); cerr == nil {
				cerr = err
			}
		case errors.Is(err, cowdb.ErrCorrupt):
			// The violations say what is wrong better than Open's error.
			e.warnf(bar, "the store does not open; checking its last checkpoint offline")
			*offline = true
		default:
			bar.finish(false)
			return err
		}
	}
	if *offline {
		cerr = checkOffline(e, dir, opts)
	}
	bar.finish(cerr == nil)
	return checkReport(e, cerr, checked, time.Since(start))
}

// checkOffline checks the store's last durable checkpoint without writing.
func checkOffline(e *env, dir string, opts cowdb.CheckOptions) error {
	if _, err := os.Stat(filepath.Join(dir, dataFile)); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no store in %s", dir)
	}
	err := cowdb.CheckDirWith(dir, nil, opts)
	if errors.Is(err, cowdb.ErrLocked) {
		return explain(err, "store %s is locked by another process writing to it: an offline check needs it closed", dir)
	}
	return err
}

// checkReport lists the violations of a check on stdout and turns the
// check's result into the command's.
func checkReport(e *env, cerr error, checked int64, elapsed time.Duration) error {
	var ce *cowdb.CheckError
	if !errors.As(cerr, &ce) {
		if cerr != nil {
			return fmt.Errorf("check could not run: %s", message(cerr))
		}
		e.summaryf("store is consistent: %s checked in %s", plural(checked, "block"), duration(elapsed))
		return nil
	}
	for _, v := range ce.Violations {
		fmt.Fprintln(e.stdout, v.String())
	}
	if ce.Truncated {
		fmt.Fprintln(e.stdout, "... more violations not listed (see --max)")
	}
	if ce.Partial {
		fmt.Fprintln(e.stdout, "some trees could not be read whole: leaks and reference counts were not checked")
	}
	return explain(cerr, "store is damaged: %s found in checkpoint epoch %d", plural(int64(len(ce.Violations)), "violation"), ce.Epoch)
}

// scrubCommand is "cowdb scrub".
var scrubCommand = &command{name: "scrub", args: "[--all]", run: runScrub,
	summary: "read every value, verifying its data against its checksums",
	help: `Scrub reads every value of the live store (with --all, of every snapshot
too) and verifies each block against its checksum, reporting every value
that cannot be read, and exits with status 1 if there is any. Unlike check
it looks at values one by one, as a reader would, and says which keys are
damaged.`}

// scrubTally counts what a scrub read.
type scrubTally struct {
	values, bytes, bad int64
}

func runScrub(e *env, c *command, args []string) (err error) {
	fs := flagSet(e, c)
	all := fs.Bool("all", false, "scrub every snapshot as well as the live store")
	if args, err = parse(e, c, fs, args); err != nil {
		return err
	}
	e.stoppable.Store(true) // it checks e.ctx between values
	if err := operands(c, args, 0, 0); err != nil {
		return err
	}
	db, err := e.open(readOnly, nil)
	if err != nil {
		return err
	}
	defer closeDB(db, &err)
	roots := []string{""} // the live store, then the snapshots
	if *all {
		infos, err := db.Snapshots()
		if err != nil {
			return storeErr(err)
		}
		for _, s := range infos {
			roots = append(roots, s.Name)
		}
	}
	// The sizes first (no value is read) for the bar's total: the store is
	// open read-only, so no writer changes it between the two passes.
	var total int64
	for _, root := range roots {
		err := withRoot(db, root, func(src source) error {
			for it, err := range src.Prefix(nil) {
				if err != nil {
					return err
				}
				total += it.Size
			}
			return nil
		})
		if err != nil {
			return storeErr(err)
		}
	}
	bar := e.newProgress(total, "scrub")
	start := time.Now()
	var t scrubTally
	for _, root := range roots {
		if err := withRoot(db, root, func(src source) error { return scrubSource(e, src, root, bar, &t) }); err != nil {
			bar.finish(false)
			return err
		}
	}
	bar.finish(e.ctx.Err() == nil)
	elapsed := time.Since(start)
	e.summaryf("scrubbed %s, %s in %s (%s): %s unreadable", plural(t.values, "value"), size(t.bytes),
		duration(elapsed), rate(t.bytes, elapsed), count(t.bad))
	switch {
	case t.bad > 0:
		return fmt.Errorf("scrub found %s", plural(t.bad, "unreadable value"))
	case e.ctx.Err() != nil:
		return errors.New("scrub interrupted")
	}
	return nil
}

// withRoot calls fn with the live store ("") or the snapshot root.
func withRoot(db *cowdb.DB, root string, fn func(source) error) error {
	if root == "" {
		return fn(db)
	}
	s, err := db.OpenSnapshot(root)
	if err != nil {
		return snapErr(root, err)
	}
	defer s.Close()
	return fn(s)
}

// scrubSource reads every value of src, reporting each that fails.
func scrubSource(e *env, src source, root string, bar *progress, t *scrubTally) error {
	where := ""
	if root != "" {
		where = fmt.Sprintf("snapshot %q: ", root)
	}
	for it, err := range src.Prefix(nil) {
		if err != nil {
			// The tree itself is damaged: what lies past here cannot be
			// listed.
			e.warnf(bar, "%skeys past the last one read cannot be listed: %s", where, message(err))
			t.bad++
			return nil
		}
		if e.ctx.Err() != nil {
			return nil
		}
		n, err := scrubItem(it, bar)
		t.values++
		t.bytes += n
		if err != nil {
			e.warnf(bar, "%s%s", where, message(keyErr(it.Key, err)))
			t.bad++
			bar.add(it.Size - n) // what was not read still counts as done
		}
	}
	return nil
}

// scrubItem reads one value to its end, every block verified against its
// checksum on the way.
func scrubItem(it *cowdb.Item, bar *progress) (int64, error) {
	b, err := it.Open()
	if err != nil {
		return 0, err
	}
	defer b.Close()
	w := &countingWriter{w: io.Discard, p: bar}
	_, err = b.WriteTo(w)
	if err == nil && w.n != it.Size {
		err = fmt.Errorf("read %d bytes of a %d-byte value", w.n, it.Size)
	}
	return w.n, err
}
