package vfs

import (
	"io"
	"path"
	"slices"
)

// memFile is an open MemFS file. Its state is guarded by fs.mu.
type memFile struct {
	fs       *MemFS
	node     *memNode
	name     string
	boot     uint64 // the boot it was opened in; a crash kills it
	writable bool
	direct   bool
	closed   bool
}

// checkLocked fails a call on a closed handle or one from before a crash.
func (f *memFile) checkLocked(op string) error {
	if f.closed || f.boot != f.fs.mu.boot {
		return pathError(op, f.name, ErrClosed)
	}
	return nil
}

// checkMutateLocked is checkLocked plus what a mutating call needs: write
// access and a live machine.
func (f *memFile) checkMutateLocked(op string) error {
	if err := f.checkLocked(op); err != nil {
		return err
	}
	if !f.writable {
		return pathError(op, f.name, errReadOnly)
	}
	return f.fs.checkLiveLocked(op, f.name)
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.checkLocked("pread"); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, pathError("pread", f.name, errInvalid)
	}
	if f.direct {
		if err := checkDirect("pread", f.name, p, off); err != nil {
			return 0, err
		}
	}
	n := f.node.cur.readAt(p, off)
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if off < 0 {
		return 0, pathError("pwrite", f.name, errInvalid)
	}
	if off > memFileSizeMax-int64(len(p)) {
		return 0, pathError("pwrite", f.name, errTooLarge)
	}
	if f.direct {
		if err := checkDirect("pwrite", f.name, p, off); err != nil {
			return 0, err
		}
	}
	if err := f.checkMutateLocked("pwrite"); err != nil {
		return 0, err
	}
	if len(p) > 0 {
		f.node.cur.writeAt(p, off)
		f.node.pending = append(f.node.pending, memOp{kind: memWrite, off: off, data: slices.Clone(p)})
	}
	f.fs.mutatedLocked()
	return len(p), nil
}

// sync makes the file's pending changes and size durable.
func (f *memFile) sync(op string) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.checkLocked(op); err != nil {
		return err
	}
	if err := f.fs.checkLiveLocked(op, f.name); err != nil {
		return err
	}
	for _, c := range f.node.pending {
		f.node.dur.apply(c)
	}
	f.node.pending = nil
	f.fs.mutatedLocked()
	return nil
}

func (f *memFile) Datasync() error { return f.sync("fdatasync") }

func (f *memFile) Sync() error { return f.sync("fsync") }

func (f *memFile) Fallocate(off, length int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if off < 0 || length <= 0 {
		return pathError("fallocate", f.name, errInvalid)
	}
	if off > memFileSizeMax-length {
		return pathError("fallocate", f.name, errTooLarge)
	}
	if err := f.checkMutateLocked("fallocate"); err != nil {
		return err
	}
	c := memOp{kind: memFallocate, off: off, n: length}
	f.node.cur.apply(c)
	f.node.pending = append(f.node.pending, c)
	f.fs.mutatedLocked()
	return nil
}

func (f *memFile) Truncate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if size < 0 {
		return pathError("ftruncate", f.name, errInvalid)
	}
	if size > memFileSizeMax {
		return pathError("ftruncate", f.name, errTooLarge)
	}
	if err := f.checkMutateLocked("ftruncate"); err != nil {
		return err
	}
	c := memOp{kind: memTruncate, off: size}
	f.node.cur.apply(c)
	f.node.pending = append(f.node.pending, c)
	f.fs.mutatedLocked()
	return nil
}

func (f *memFile) Stat() (FileInfo, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.checkLocked("fstat"); err != nil {
		return FileInfo{}, err
	}
	return FileInfo{Name: path.Base(f.name), Size: f.node.cur.size}, nil
}

func (f *memFile) Direct() bool { return f.direct }

func (f *memFile) Close() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.checkLocked("close"); err != nil {
		return err
	}
	f.closed = true
	return nil
}
