package main

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"iter"
	"math"
	"os"

	"github.com/cowdb/cowdb"
)

// valueCommands read and write single values.
var valueCommands = []*command{
	{name: "put", args: "KEY [VALUE | -f FILE | -]", run: runPut,
		summary: "store a value: VALUE, a file's contents, or standard input (-)",
		help: `Put stores a value under KEY, replacing any value there: the argument VALUE,
the contents of FILE (-f), or standard input (-). The store is created if the
directory holds none yet.

Put is atomic whatever the size: a value up to 64 MiB is written with one
Put; a larger one is streamed into a temporary key and then cloned onto KEY
(no data copied), so KEY holds the old value or the new one, never a part.
After a crash in the middle of a large put, a temporary key starting with
"\x00cowdb/tmp/" may be left behind; 'cowdb rm --prefix' removes it.`},
	{name: "get", args: "KEY [-o FILE]", run: runGet,
		summary: "write a value to standard output, or to FILE",
		help: `Get writes the value of KEY to standard output, or to FILE with -o, exactly
as stored (no newline is added). With -s it reads the value a snapshot holds.`},
	{name: "cat", args: "KEY...", run: runCat,
		summary: "stream values to standard output, one after the other",
		help: `Cat streams the values of the KEYs to standard output, one after the other,
in large chunks however large the values are. With -s it reads them from a
snapshot.`},
	{name: "rm", args: "KEY...", run: runRm,
		summary: "delete keys",
		help: `Rm deletes the KEYs and their values, atomically when there are at most
1000. A key that does not exist is an error (exit status 1; the others are
deleted) unless -f is given. With --prefix every argument is a prefix and
every key starting with it is deleted, in atomic batches of 1000 keys.`},
	{name: "ls", args: "[PREFIX] [-l]", run: runLs,
		summary: "list the keys (starting with PREFIX), with sizes (-l)",
		help: `Ls lists the keys starting with PREFIX (every key without one) in key
order, one per line; a key that is not printable, or has spaces at its
ends, is printed quoted. With -l each line starts with the value's size,
human-readable (-b: in bytes). With -s it lists a snapshot's keys.`},
	{name: "clone", args: "SRC DST [--from SNAP]", run: runClone,
		summary: "make DST a copy of SRC sharing its blocks (no data copied)",
		help: `Clone makes the key DST hold a copy of the value of SRC, replacing what DST
held. The copy shares SRC's blocks (a reflink): it costs a few records
whatever the size, and later writes to either value never affect the other.
With --from, SRC is read from the snapshot SNAP: that restores one value
of a snapshot into the live store.`},
}

// putInMemoryMax is the largest value put and import read into memory and
// store with one Put; larger ones are streamed through a blob. (env's
// putInMemoryMax overrides it, for tests.)
const putInMemoryMax = 64 << 20

func runPut(e *env, c *command, args []string) (err error) {
	fs := flagSet(e, c)
	file := fs.String("f", "", "read the value from `FILE`")
	args, err = parse(e, c, fs, args)
	if err != nil {
		return err
	}
	if err := operands(c, args, 1, 2); err != nil {
		return err
	}
	if (len(args) == 2) == (*file != "") {
		return usagef(c, "put: give one of VALUE, -f FILE, or - for standard input")
	}
	key := []byte(args[0])
	db, err := e.open(create, nil)
	if err != nil {
		return err
	}
	defer closeDB(db, &err)
	switch {
	case *file != "":
		f, err := os.Open(*file)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		_, err = e.putStream(db, key, f, fi.Size())
		return err
	case args[1] == "-":
		_, err = e.putStream(db, key, e.stdin, -1)
		return err
	}
	return keyErr(key, db.Put(key, []byte(args[1])))
}

// putStream stores what r yields under key, atomically. sizeHint is r's
// size if known, else -1. Up to putInMemoryMax bytes are read and Put; a
// larger value is streamed into a blob under a temporary key which is then
// cloned onto key, so that key never holds part of the value.
func (e *env) putStream(db *cowdb.DB, key []byte, r io.Reader, sizeHint int64) (int64, error) {
	if err := validKey(key); err != nil {
		return 0, err // before reading anything
	}
	inMemoryMax := cmp.Or(e.putInMemoryMax, putInMemoryMax)
	var head []byte
	if sizeHint <= inMemoryMax {
		var err error
		head, err = io.ReadAll(io.LimitReader(r, inMemoryMax+1))
		if err != nil {
			return 0, err
		}
		if int64(len(head)) <= inMemoryMax {
			return int64(len(head)), keyErr(key, db.Put(key, head))
		}
	}
	tmp := tempKey()
	n, err := streamBlob(db, tmp, head, r)
	if err == nil {
		err = keyErr(key, db.Clone(tmp, key))
	}
	if derr := db.Delete(tmp); derr != nil && err == nil {
		err = storeErr(derr)
	}
	return n, err
}

// streamBlob writes head and then what r yields into a new blob under key.
func streamBlob(db *cowdb.DB, key, head []byte, r io.Reader) (int64, error) {
	b, err := db.CreateBlob(key)
	if err != nil {
		return 0, keyErr(key, err)
	}
	if _, err := b.Write(head); err != nil {
		b.Close()
		return 0, storeErr(err)
	}
	n, err := io.Copy(b, r) // Blob.ReadFrom: large aligned chunks
	n += int64(len(head))
	if cerr := b.Close(); err == nil {
		err = storeErr(cerr)
	}
	return n, err
}

// tempKeyPrefix starts the keys large puts stream into before cloning them
// onto their key. The NUL byte keeps them out of the way of keys people
// type.
const tempKeyPrefix = "\x00cowdb/tmp/"

func tempKey() []byte {
	var r [8]byte
	rand.Read(r[:])
	return []byte(tempKeyPrefix + hex.EncodeToString(r[:]))
}

// source is what reading commands read from: the live store or a
// snapshot.
type source interface {
	OpenBlob(key []byte) (*cowdb.Blob, error)
	Prefix(prefix []byte) iter.Seq2[*cowdb.Item, error]
}

// openSource opens the store read-only and, if snap is set, the snapshot
// snap; done closes what was opened.
func (e *env) openSource(snap string) (src source, done func(*error), err error) {
	db, err := e.open(readOnly, nil)
	if err != nil {
		return nil, nil, err
	}
	if snap == "" {
		return db, func(err *error) { closeDB(db, err) }, nil
	}
	s, err := db.OpenSnapshot(snap)
	if err != nil {
		db.Close()
		return nil, nil, snapErr(snap, err)
	}
	return s, func(err *error) {
		s.Close()
		closeDB(db, err)
	}, nil
}

// copyValue writes the value of key in src to w.
func copyValue(src source, key []byte, w io.Writer) (int64, error) {
	b, err := src.OpenBlob(key)
	if err != nil {
		return 0, keyErr(key, err)
	}
	defer b.Close()
	n, err := b.WriteTo(w)
	if err != nil {
		return n, keyErr(key, err)
	}
	return n, nil
}

// snapshotFlag adds -s, the snapshot the reading commands read from.
func snapshotFlag(fs *flag.FlagSet) *string {
	return fs.String("s", "", "read from the snapshot `NAME` instead of the live store")
}

func runGet(e *env, c *command, args []string) (err error) {
	fs := flagSet(e, c)
	out := fs.String("o", "", "write the value to `FILE` instead of standard output")
	snap := snapshotFlag(fs)
	if args, err = parse(e, c, fs, args); err != nil {
		return err
	}
	if err := operands(c, args, 1, 1); err != nil {
		return err
	}
	src, done, err := e.openSource(*snap)
	if err != nil {
		return err
	}
	defer done(&err)
	key := []byte(args[0])
	if *out == "" {
		_, err = copyValue(src, key, e.stdout)
		return err
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	_, err = copyValue(src, key, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(*out) // no half-written file left behind
	}
	return err
}

func runCat(e *env, c *command, args []string) (err error) {
	fs := flagSet(e, c)
	snap := snapshotFlag(fs)
	if args, err = parse(e, c, fs, args); err != nil {
		return err
	}
	if err := operands(c, args, 1, math.MaxInt); err != nil {
		return err
	}
	src, done, err := e.openSource(*snap)
	if err != nil {
		return err
	}
	defer done(&err)
	for _, k := range args {
		if _, err := copyValue(src, []byte(k), e.stdout); err != nil {
			return err
		}
	}
	return nil
}

// rmBatch is how many keys one atomic rm transaction deletes: it bounds
// the size of the transaction's log record.
const rmBatch = 1000

func runRm(e *env, c *command, args []string) (err error) {
	fs := flagSet(e, c)
	force := fs.Bool("f", false, "ignore keys that do not exist")
	prefix := fs.Bool("prefix", false, "delete every key starting with each argument")
	if args, err = parse(e, c, fs, args); err != nil {
		return err
	}
	if err := operands(c, args, 1, math.MaxInt); err != nil {
		return err
	}
	db, err := e.open(readWrite, nil)
	if err != nil {
		return err
	}
	defer closeDB(db, &err)
	keys := make([][]byte, 0, len(args))
	for _, a := range args {
		if err := validKey([]byte(a)); err != nil {
			return err
		}
		keys = append(keys, []byte(a))
	}
	if *prefix {
		if keys, err = keysWithPrefixes(db, keys); err != nil {
			return err
		}
	}
	var missing [][]byte
	for len(keys) > 0 {
		batch := keys[:min(len(keys), rmBatch)]
		keys = keys[len(batch):]
		m, err := deleteKeys(db, batch)
		if err != nil {
			return err
		}
		missing = append(missing, m...)
	}
	if len(missing) > 0 && !*force {
		for _, k := range missing[1:] {
			e.warnf(nil, "key %s not found", quoteKey(k))
		}
		return keyErr(missing[0], cowdb.ErrNotFound)
	}
	return nil
}

// keysWithPrefixes returns the keys that start with one of prefixes.
func keysWithPrefixes(db *cowdb.DB, prefixes [][]byte) ([][]byte, error) {
	var keys [][]byte
	for _, p := range prefixes {
		for it, err := range db.Prefix(p) {
			if err != nil {
				return nil, storeErr(err)
			}
			keys = append(keys, append([]byte(nil), it.Key...))
		}
	}
	return keys, nil
}

// deleteKeys deletes keys in one transaction and returns those that did
// not exist.
func deleteKeys(db *cowdb.DB, keys [][]byte) (missing [][]byte, err error) {
	err = db.Update(func(tx *cowdb.Tx) error {
		missing = missing[:0]
		for _, k := range keys {
			ok, err := exists(tx.Scan(k, append(k[:len(k):len(k)], 0)))
			if err != nil {
				return err
			}
			if !ok {
				missing = append(missing, k)
				continue
			}
			if err := tx.Delete(k); err != nil {
				return keyErr(k, err)
			}
		}
		return nil
	})
	return missing, storeErr(err)
}

// validKey checks the length of a key the tool uses before asking the
// store anything with it (an empty Scan bound would mean "unbounded").
func validKey(key []byte) error {
	switch {
	case len(key) == 0:
		return keyErr(key, cowdb.ErrInvalidKey)
	case len(key) > cowdb.MaxKeySize:
		return keyErr(key, cowdb.ErrKeyTooLarge)
	}
	return nil
}

// exists reports whether a scan yields an item, without reading a value.
func exists(items iter.Seq2[*cowdb.Item, error]) (bool, error) {
	for _, err := range items {
		return err == nil, err
	}
	return false, nil
}

func runLs(e *env, c *command, args []string) (err error) {
	fs := flagSet(e, c)
	long := fs.Bool("l", false, "long listing: each value's size before its key")
	bytes := fs.Bool("b", false, "with -l, sizes in bytes")
	snap := snapshotFlag(fs)
	if args, err = parse(e, c, fs, args); err != nil {
		return err
	}
	if err := operands(c, args, 0, 1); err != nil {
		return err
	}
	var prefix []byte
	if len(args) == 1 {
		prefix = []byte(args[0])
	}
	src, done, err := e.openSource(*snap)
	if err != nil {
		return err
	}
	defer done(&err)
	for it, err := range src.Prefix(prefix) {
		if err != nil {
			return storeErr(err)
		}
		switch {
		case !*long:
			_, err = fmt.Fprintln(e.stdout, showKey(it.Key))
		case *bytes:
			_, err = fmt.Fprintf(e.stdout, "%12d  %s\n", it.Size, showKey(it.Key))
		default:
			_, err = fmt.Fprintf(e.stdout, "%10s  %s\n", size(it.Size), showKey(it.Key))
		}
		if err != nil {
			return err // a closed pipe: stop listing
		}
	}
	return nil
}

func runClone(e *env, c *command, args []string) (err error) {
	fs := flagSet(e, c)
	from := fs.String("from", "", "read SRC from the snapshot `SNAP`")
	if args, err = parse(e, c, fs, args); err != nil {
		return err
	}
	if err := operands(c, args, 2, 2); err != nil {
		return err
	}
	db, err := e.open(readWrite, nil)
	if err != nil {
		return err
	}
	defer closeDB(db, &err)
	src, dst := []byte(args[0]), []byte(args[1])
	if *from == "" {
		return cloneErr(src, dst, db.Clone(src, dst))
	}
	err = db.CloneFrom(*from, src, dst)
	if errors.Is(err, cowdb.ErrNotFound) {
		return explain(err, "key %s not found in snapshot %q", quoteKey(src), *from)
	}
	if errors.Is(err, cowdb.ErrSnapshotNotFound) {
		return snapErr(*from, err)
	}
	return cloneErr(src, dst, err)
}

// cloneErr explains an error of Clone: a missing key is the source, any
// other key error may be about either.
func cloneErr(src, dst []byte, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, cowdb.ErrNotFound):
		return keyErr(src, err)
	case len(src) == 0 || len(src) > cowdb.MaxKeySize:
		return keyErr(src, err)
	}
	return keyErr(dst, err)
}
