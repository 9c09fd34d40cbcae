package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/cowdb/cowdb"
)

// openMode says how a command opens the store.
type openMode int

const (
	// readOnly shares the store with other readers; writers are refused.
	readOnly openMode = iota
	// readWrite takes the store exclusively; it must exist.
	readWrite
	// create is readWrite, creating the store if it does not exist.
	create
)

// dataFile is the name of a store's data file (docs/FORMAT.md): a
// directory without one holds no store.
const dataFile = "data"

// storeDir returns the store directory: -d, else $COWDB_DIR.
func (e *env) storeDir() (string, error) {
	if e.dir != "" {
		return e.dir, nil
	}
	if d := e.getenv("COWDB_DIR"); d != "" {
		return d, nil
	}
	return "", &usageError{msg: "no store directory: give -d DIR or set COWDB_DIR"}
}

// open opens the store for a command; tune, if set, adjusts the options.
// Its errors say what a person can do about them.
func (e *env) open(mode openMode, tune func(*cowdb.Options)) (*cowdb.DB, error) {
	dir, err := e.storeDir()
	if err != nil {
		return nil, err
	}
	return e.openAt(dir, mode, tune)
}

// openAt is open of the store in dir.
func (e *env) openAt(dir string, mode openMode, tune func(*cowdb.Options)) (*cowdb.DB, error) {
	if err := checkStoreDir(dir, mode); err != nil {
		return nil, err
	}
	opts := &cowdb.Options{
		ReadOnly: mode == readOnly,
		// The store's rare operational messages (recovery, direct I/O
		// fallbacks) are noise on a command line; warnings are not.
		Logger: slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if tune != nil {
		tune(opts)
	}
	if e.options != nil {
		e.options(opts)
	}
	db, err := cowdb.Open(dir, opts)
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, cowdb.ErrLocked) && mode == readOnly:
		return nil, explain(err, "store %s is locked by another process writing to it", dir)
	case errors.Is(err, cowdb.ErrLocked):
		return nil, explain(err, "store %s is locked by another process", dir)
	case errors.Is(err, cowdb.ErrCorrupt):
		return nil, explain(err, "store %s is damaged: %s ('cowdb check --offline' lists the damage)", dir, message(err))
	}
	return nil, fmt.Errorf("open store %s: %w", dir, err)
}

// checkStoreDir checks that dir holds a store, or for create, that it
// holds a store or nothing: a directory of other files is never turned
// into a store by a mistyped -d.
func checkStoreDir(dir string, mode openMode) error {
	_, err := os.Stat(filepath.Join(dir, dataFile))
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return err
	case mode != create:
		return fmt.Errorf("no store in %s", dir)
	}
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case len(entries) > 0:
		return fmt.Errorf("%s is not empty and holds no store: give a new or empty directory", dir)
	}
	return nil
}

// closeDB closes db, reporting its error in *err unless there is one
// already: a failed Close of a writer means its last checkpoint failed.
func closeDB(db *cowdb.DB, err *error) {
	if cerr := db.Close(); cerr != nil && *err == nil {
		*err = fmt.Errorf("close store: %w", cerr)
	}
}

// explained is an error with a message written for people; it still
// unwraps to the library's error, so errors.Is works on it.
type explained struct {
	msg string
	err error
}

func (e *explained) Error() string { return e.msg }
func (e *explained) Unwrap() error { return e.err }

func explain(err error, format string, args ...any) error {
	return &explained{msg: fmt.Sprintf(format, args...), err: err}
}

// message is err's text without the library's "cowdb: " prefix, which
// run puts back once.
func message(err error) string {
	return strings.TrimPrefix(err.Error(), "cowdb: ")
}

// keyErr explains an error of an operation on key.
func keyErr(key []byte, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, cowdb.ErrNotFound):
		return explain(err, "key %s not found", quoteKey(key))
	case errors.Is(err, cowdb.ErrInvalidKey):
		return explain(err, "invalid key %s: keys are 1 to %d bytes", quoteKey(key), cowdb.MaxKeySize)
	case errors.Is(err, cowdb.ErrKeyTooLarge):
		return explain(err, "key %s... is %d bytes long: keys are at most %d bytes", quoteKey(key[:min(len(key), 40)]), len(key), cowdb.MaxKeySize)
	case errors.Is(err, cowdb.ErrValueTooLarge):
		return explain(err, "value of key %s is too large", quoteKey(key))
	case errors.Is(err, cowdb.ErrStale):
		return explain(err, "key %s was replaced while it was being read", quoteKey(key))
	}
	return storeErr(fmt.Errorf("key %s: %w", quoteKey(key), err))
}

// snapErr explains an error of an operation on the snapshot name.
func snapErr(name string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, cowdb.ErrSnapshotNotFound):
		return explain(err, "snapshot %q not found", name)
	case errors.Is(err, cowdb.ErrSnapshotExists):
		return explain(err, "snapshot %q already exists", name)
	case errors.Is(err, cowdb.ErrInvalidSnapshotName):
		return explain(err, "invalid snapshot name %q: names are 1 to 255 letters, digits and -_.:@", name)
	case errors.Is(err, cowdb.ErrTooManySnapshots):
		return explain(err, "too many snapshots: delete some first")
	}
	return storeErr(fmt.Errorf("snapshot %q: %w", name, err))
}

// storeErr explains the errors any write may get.
func storeErr(err error) error {
	switch {
	case errors.Is(err, cowdb.ErrNoSpace):
		return explain(err, "store is out of space (%s)", message(err))
	case errors.Is(err, cowdb.ErrCorrupt):
		return explain(err, "store is damaged: %s ('cowdb check' lists the damage)", message(err))
	}
	return err
}

// showKey returns key as ls prints it: as is when it is printable UTF-8
// without spaces at its ends, quoted otherwise so that every key prints on
// one line and can be told apart.
func showKey(key []byte) string {
	if len(key) == 0 || !utf8.Valid(key) {
		return strconv.Quote(string(key))
	}
	s := string(key)
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	if strings.TrimSpace(s) != s || s[0] == '"' {
		return strconv.Quote(s)
	}
	return s
}

// quoteKey returns key quoted, as error messages show keys.
func quoteKey(key []byte) string {
	return strconv.Quote(string(key))
}
