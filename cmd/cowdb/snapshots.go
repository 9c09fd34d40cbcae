package main

import (
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/cowdb/cowdb"
)

// snapshotGroup is "cowdb snapshot SUBCOMMAND".
var snapshotGroup = &command{name: "snapshot", args: "create|ls|rm|restore|diff ...", run: runSnapshot,
	summary: "manage snapshots",
	help: `Snapshot manages the store's snapshots: named, persistent, read-only views of
the whole store, which cost nothing to take and keep only the blocks that
changed since. Reading commands (get, cat, ls, export) read a snapshot with
-s NAME; 'cowdb clone --from' restores one value of it.`}

// snapshotCommands are the subcommands of snapshot.
var snapshotCommands = []*command{
	{name: "snapshot create", args: "NAME", run: runSnapshotCreate,
		summary: "take a snapshot of the store, named NAME",
		help: `Snapshot create names the store's current state NAME, at once whatever the
store's size. Names are 1 to 255 letters, digits and -_.:@.`},
	{name: "snapshot ls", args: "", run: runSnapshotLs,
		summary: "list the snapshots, their age and sizes",
		help: `Snapshot ls lists the snapshots in name order: when each was taken, the
bytes it references (its whole state: every value and the tree holding them)
and the bytes only it references, which deleting it would free.`},
	{name: "snapshot rm", args: "NAME...", run: runSnapshotRm,
		summary: "delete snapshots (space is reclaimed in the background)",
		help: `Snapshot rm deletes the snapshots NAME. The space only they used is
reclaimed in the background, and shows as free in 'cowdb stat' once that is
done. A name that does not exist is reported (exit status 1); the others
are deleted.`},
	{name: "snapshot restore", args: "NAME", run: runSnapshotRestore,
		summary: "make the live store what the snapshot NAME holds",
		help: `Snapshot restore makes the live store equal to the snapshot NAME, at once and
atomically; the snapshot stays. Everything written since the snapshot was
taken is dropped: take a snapshot first to keep it.`},
	{name: "snapshot diff", args: "FROM [TO] [-l]", run: runSnapshotDiff,
		summary: "list the keys that differ from snapshot FROM to TO (default: live)",
		help: `Snapshot diff lists the keys that differ from the snapshot FROM to the
snapshot TO, or to the live store without TO (an empty name "" also means
the live store), one per line in key order: "A" added, "D" deleted, "M"
modified. A value modified in place shows how much of it changed (block
granularity); -l lists the changed byte ranges. Its cost follows the number
of changes, not the size of the store.`},
}

func findSnapshotCommand(name string) *command {
	for _, c := range snapshotCommands {
		if c.name == "snapshot "+name {
			return c
		}
	}
	return nil
}

func runSnapshot(e *env, c *command, args []string) error {
	if len(args) == 0 {
		return usagef(c, "snapshot: missing subcommand (create, ls, rm, restore or diff)")
	}
	if args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
		fmt.Fprintf(e.stdout, "Usage: cowdb snapshot SUBCOMMAND [ARGS]\n\n%s\n\nSubcommands:\n", c.help)
		for _, s := range snapshotCommands {
			fmt.Fprintf(e.stdout, "  %-26s %s\n", s.name+" "+s.args, s.summary)
		}
		return errHelp
	}
	sub := findSnapshotCommand(args[0])
	if sub == nil {
		return usagef(c, "snapshot: unknown subcommand %q", args[0])
	}
	return sub.run(e, sub, args[1:])
}

func runSnapshotCreate(e *env, c *command, args []string) (err error) {
	if args, err = parse(e, c, flagSet(e, c), args); err != nil {
		return err
	}
	if err := operands(c, args, 1, 1); err != nil {
		return err
	}
	db, err := e.open(readWrite, nil)
	if err != nil {
		return err
	}
	defer closeDB(db, &err)
	_, err = db.Snapshot(args[0])
	return snapErr(args[0], err)
}

func runSnapshotLs(e *env, c *command, args []string) (err error) {
	fs := flagSet(e, c)
	bytes := fs.Bool("b", false, "sizes in bytes")
	if args, err = parse(e, c, fs, args); err != nil {
		return err
	}
	if err := operands(c, args, 0, 0); err != nil {
		return err
	}
	db, err := e.open(readOnly, nil)
	if err != nil {
		return err
	}
	defer closeDB(db, &err)
	infos, err := db.Snapshots()
	if err != nil {
		return storeErr(err)
	}
	if len(infos) == 0 {
		return nil
	}
	sz := size
	if *bytes {
		sz = func(n int64) string { return fmt.Sprint(n) }
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "NAME\tCREATED\t%10s  %10s\n", "REFERENCED", "EXCLUSIVE")
	for _, s := range infos {
		fmt.Fprintf(tw, "%s\t%s\t%10s  %10s\n", s.Name, s.Created.Local().Format(time.DateTime), sz(s.ReferencedBytes), sz(s.ExclusiveBytes))
	}
	return tw.Flush()
}

func runSnapshotRm(e *env, c *command, args []string) (err error) {
	if args, err = parse(e, c, flagSet(e, c), args); err != nil {
		return err
	}
	if err := operands(c, args, 1, len(args)); err != nil {
		return err
	}
	db, err := e.open(readWrite, nil)
	if err != nil {
		return err
	}
	defer closeDB(db, &err)
	var first error
	for _, name := range args {
		err := snapErr(name, db.DeleteSnapshot(name))
		switch {
		case err == nil:
		case first == nil:
			first = err
		default:
			e.warnf(nil, "%s", message(err))
		}
	}
	return first
}

func runSnapshotRestore(e *env, c *command, args []string) (err error) {
	if args, err = parse(e, c, flagSet(e, c), args); err != nil {
		return err
	}
	if err := operands(c, args, 1, 1); err != nil {
		return err
	}
	db, err := e.open(readWrite, nil)
	if err != nil {
		return err
	}
	defer closeDB(db, &err)
	return snapErr(args[0], db.Restore(args[0]))
}

func runSnapshotDiff(e *env, c *command, args []string) (err error) {
	fs := flagSet(e, c)
	long := fs.Bool("l", false, "list the changed byte ranges of values modified in place")
	if args, err = parse(e, c, fs, args); err != nil {
		return err
	}
	if err := operands(c, args, 1, 2); err != nil {
		return err
	}
	from, to := args[0], ""
	if len(args) == 2 {
		to = args[1]
	}
	db, err := e.open(readOnly, nil)
	if err != nil {
		return err
	}
	defer closeDB(db, &err)
	for ch, err := range db.Diff(from, to) {
		if err != nil {
			if errors.Is(err, cowdb.ErrSnapshotNotFound) {
				return diffSnapErr(db, from, to, err)
			}
			return storeErr(err)
		}
		if err := printChange(e, ch, *long); err != nil {
			return err
		}
	}
	return nil
}

// diffSnapErr names which of the two snapshots of a diff does not exist.
func diffSnapErr(db *cowdb.DB, from, to string, err error) error {
	for _, name := range []string{from, to} {
		if name == "" {
			continue
		}
		if s, oerr := db.OpenSnapshot(name); oerr != nil {
			return snapErr(name, oerr)
		} else {
			s.Close()
		}
	}
	return storeErr(err)
}

// printChange prints one line of a diff: the kind, the key and, for a
// value modified in place, how much changed.
func printChange(e *env, ch cowdb.Change, long bool) error {
	letter := map[cowdb.ChangeKind]string{cowdb.Added: "A", cowdb.Removed: "D", cowdb.Modified: "M"}[ch.Kind]
	if letter == "" {
		letter = "?"
	}
	if len(ch.Ranges) == 0 {
		_, err := fmt.Fprintf(e.stdout, "%s  %s\n", letter, showKey(ch.Key))
		return err
	}
	var changed int64
	for _, r := range ch.Ranges {
		changed += r.Len
	}
	ranges := "ranges"
	if len(ch.Ranges) == 1 {
		ranges = "range"
	}
	if _, err := fmt.Fprintf(e.stdout, "%s  %s  (%s in %d %s)\n", letter, showKey(ch.Key), size(changed), len(ch.Ranges), ranges); err != nil {
		return err
	}
	if !long {
		return nil
	}
	for _, r := range ch.Ranges {
		if _, err := fmt.Fprintf(e.stdout, "     bytes %d-%d (%s)\n", r.Off, r.Off+r.Len-1, size(r.Len)); err != nil {
			return err
		}
	}
	return nil
}
