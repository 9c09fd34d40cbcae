package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/cowdb/cowdb"
)

// transferCommands move files into and out of the store.
var transferCommands = []*command{
	{name: "import", args: "SRC [PREFIX]", run: runImport,
		summary: "store a file, or every file of a directory tree, under PREFIX",
		help: `Import stores the file SRC under the key PREFIX + its name, or, if SRC is a
directory, every regular file below it under PREFIX + its path relative to
SRC, with "/" between names (import photos p/ stores photos/2024/a.jpg as
p/2024/a.jpg). Symbolic links and other special files are skipped, with a
warning. The store is created if the directory holds none yet.

Each file is stored atomically (see 'cowdb put --help'); large files are
streamed. Import writes without waiting for each file to be durable and
makes everything durable once at the end, so an interrupted import (or a
crash) may have stored some of the files, each whole. A file that cannot be
read, or whose name makes a key longer than 1024 bytes, is reported and
skipped; the exit status is then 1.`},
	{name: "export", args: "[PREFIX] DEST", run: runExport,
		summary: "write the keys starting with PREFIX back as files under DEST",
		help: `Export writes the value of every key starting with PREFIX to the file DEST +
the rest of the key, creating directories as "/" in keys requires: the
reverse of import (export p/ out writes p/2024/a.jpg to out/2024/a.jpg). A
key equal to PREFIX is written to DEST + its last name. Existing files are
overwritten. A key that is not a valid relative path (".." or empty names,
a leading "/") or whose file cannot be written is reported and skipped; the
exit status is then 1. With -s it exports a snapshot's keys.`},
}

// importFile is one file to import.
type importFile struct {
	path string
	key  []byte
	size int64
}

// sourceError is an error of reading a file to import, which skips that
// file; every other error stops the import.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

func runImport(e *env, c *command, args []string) (err error) {
	fs := flagSet(e, c)
	if args, err = parse(e, c, fs, args); err != nil {
		return err
	}
	e.stoppable.Store(true) // it checks e.ctx between values
	if err := operands(c, args, 1, 2); err != nil {
		return err
	}
	prefix := ""
	if len(args) == 2 {
		prefix = args[1]
	}
	dir, err := e.storeDir()
	if err != nil {
		return err
	}
	files, total, unreadable, err := findFiles(e, args[0], prefix, dir)
	if err != nil {
		return err
	}
	// SyncNever: one Sync at the end instead of one log flush per file.
	db, err := e.open(create, func(o *cowdb.Options) { o.Sync = cowdb.SyncNever })
	if err != nil {
		return err
	}
	defer closeDB(db, &err)

	bar := e.newProgress(total, "import")
	start := time.Now()
	var stored, bytes int64
	failed := unreadable
	for _, f := range files {
		if e.ctx.Err() != nil {
			break
		}
		n, err := importOne(e, db, f, bar)
		bytes += n
		var se *sourceError
		switch {
		case err == nil:
			stored++
		case errors.As(err, &se), errors.Is(err, cowdb.ErrInvalidKey), errors.Is(err, cowdb.ErrKeyTooLarge),
			errors.Is(err, cowdb.ErrValueTooLarge):
			e.warnf(bar, "%s: %s; skipped", f.path, message(err))
			failed++
		default:
			bar.finish(false)
			return fmt.Errorf("import %s: %w", f.path, err)
		}
	}
	if err := db.Sync(); err != nil {
		bar.finish(false)
		return storeErr(err)
	}
	bar.finish(e.ctx.Err() == nil)
	elapsed := time.Since(start)
	e.summaryf("imported %s, %s in %s (%s)", plural(stored, "file"), size(bytes), duration(elapsed), rate(bytes, elapsed))
	switch {
	case e.ctx.Err() != nil:
		return fmt.Errorf("import interrupted after %s of %s files", count(stored), count(int64(len(files))))
	case failed > 0:
		return fmt.Errorf("%s not imported", plural(failed, "file"))
	}
	return nil
}

// findFiles lists the regular files to import from src (a file or a
// directory tree) and their total size. Files that are not regular are
// reported and left out, and so is the store directory if it is in the
// tree; files it cannot list are reported and counted in unreadable.
func findFiles(e *env, src, prefix, storeDir string) (files []importFile, total, unreadable int64, err error) {
	store, _ := os.Stat(storeDir) // nil if the store is yet to be created
	info, err := os.Stat(src)
	if err != nil {
		return nil, 0, 0, err
	}
	if !info.IsDir() {
		if !info.Mode().IsRegular() {
			return nil, 0, 0, fmt.Errorf("%s is not a regular file or a directory", src)
		}
		key := []byte(prefix + filepath.Base(src))
		return []importFile{{path: src, key: key, size: info.Size()}}, info.Size(), 0, nil
	}
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			e.warnf(nil, "%s: %s; skipped", p, message(err))
			unreadable++
			return nil // a directory that cannot be read is skipped whole
		case d.IsDir():
			if fi, err := d.Info(); err == nil && store != nil && os.SameFile(fi, store) {
				e.warnf(nil, "%s: the store itself; skipped", p)
				return filepath.SkipDir
			}
			return nil
		case !d.Type().IsRegular():
			// Links and special files are left out by design, not
			// failures: a warning, and no effect on the exit status.
			e.warnf(nil, "%s: not a regular file; skipped", p)
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			e.warnf(nil, "%s: %s; skipped", p, message(err))
			unreadable++
			return nil
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		files = append(files, importFile{path: p, key: []byte(prefix + filepath.ToSlash(rel)), size: fi.Size()})
		total += fi.Size()
		return nil
	})
	return files, total, unreadable, err
}

// importOne stores one file under its key.
func importOne(e *env, db *cowdb.DB, f importFile, bar *progress) (int64, error) {
	if err := validKey(f.key); err != nil {
		return 0, err
	}
	file, err := os.Open(f.path)
	if err != nil {
		return 0, &sourceError{err}
	}
	defer file.Close()
	r := &sourceReader{countingReader{r: file, p: bar}}
	return e.putStream(db, f.key, r, f.size)
}

// sourceReader marks the errors of reading a file to import.
type sourceReader struct{ countingReader }

func (r *sourceReader) Read(p []byte) (int, error) {
	n, err := r.countingReader.Read(p)
	if err != nil && err != io.EOF {
		err = &sourceError{err}
	}
	return n, err
}

func runExport(e *env, c *command, args []string) (err error) {
	fs := flagSet(e, c)
	snap := snapshotFlag(fs)
	if args, err = parse(e, c, fs, args); err != nil {
		return err
	}
	e.stoppable.Store(true) // it checks e.ctx between values
	if err := operands(c, args, 1, 2); err != nil {
		return err
	}
	prefix, dest := "", args[len(args)-1]
	if len(args) == 2 {
		prefix = args[0]
	}
	src, done, err := e.openSource(*snap)
	if err != nil {
		return err
	}
	defer done(&err)
	// A first pass over the sizes (no value is read) gives the bar its
	// total; both passes read the same version, as no writer can have the
	// store while it is open read-only.
	var keys, total int64
	for it, err := range src.Prefix([]byte(prefix)) {
		if err != nil {
			return storeErr(err)
		}
		keys++
		total += it.Size
	}
	if err := os.MkdirAll(dest, 0o777); err != nil {
		return err
	}
	bar := e.newProgress(total, "export")
	start := time.Now()
	var written, bytes, failed int64
	for it, err := range src.Prefix([]byte(prefix)) {
		if err != nil {
			bar.finish(false)
			return storeErr(err)
		}
		if e.ctx.Err() != nil {
			break
		}
		n, err := exportOne(it, prefix, dest, bar)
		bytes += n
		if err != nil {
			e.warnf(bar, "%s; skipped", message(err))
			failed++
			continue
		}
		written++
	}
	bar.finish(e.ctx.Err() == nil)
	elapsed := time.Since(start)
	e.summaryf("exported %s, %s in %s (%s)", plural(written, "file"), size(bytes), duration(elapsed), rate(bytes, elapsed))
	switch {
	case e.ctx.Err() != nil:
		return fmt.Errorf("export interrupted after %s of %s files", count(written), count(keys))
	case failed > 0:
		return fmt.Errorf("%s not exported", plural(failed, "key"))
	}
	return nil
}

// exportOne writes one item's value to its file under dest.
func exportOne(it *cowdb.Item, prefix, dest string, bar *progress) (int64, error) {
	rel := string(it.Key[len(prefix):])
	if rel == "" {
		rel = path.Base(string(it.Key))
	}
	name, err := filepath.Localize(rel)
	if err != nil || !filepath.IsLocal(name) {
		return 0, fmt.Errorf("key %s is not a relative file path", quoteKey(it.Key))
	}
	target := filepath.Join(dest, name)
	if err := os.MkdirAll(filepath.Dir(target), 0o777); err != nil {
		return 0, fmt.Errorf("key %s: %w", quoteKey(it.Key), err)
	}
	b, err := it.Open()
	if err != nil {
		return 0, keyErr(it.Key, err)
	}
	defer b.Close()
	f, err := os.Create(target)
	if err != nil {
		return 0, fmt.Errorf("key %s: %w", quoteKey(it.Key), err)
	}
	w := &countingWriter{w: f, p: bar}
	_, err = b.WriteTo(w)
	if err != nil {
		err = keyErr(it.Key, err)
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("key %s: %w", quoteKey(it.Key), cerr)
	}
	if err != nil {
		os.Remove(target) // no half-written file left behind
	}
	return w.n, err
}
