package peers

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// rawChunk is the raw device's largest I/O: ingest writes 8 MiB at a time,
// as cowdb's streaming writes do.
const rawChunk = 8 << 20

var errRawRange = errors.New("cowdb/peers: raw blob I/O larger than rawChunk")

// rawBlobs is the machine's floor for the blob workloads: each blob is a
// file of its own, name.blob, read and written with O_DIRECT through
// golang.org/x/sys/unix, and made durable with fdatasync. Ingest
// fallocates the file, writes it in rawChunk writes and fdatasyncs once;
// writeAt writes the whole blocks the range covers, in place, without
// reading them first, so an unaligned write leaves the rest of its blocks
// holding whatever was in the write buffer (the floor is what the device
// must do, not a store: its exact is false); commit fdatasyncs the files
// written since the last one. Not safe for concurrent use.
type rawBlobs struct {
	dir   string
	fds   map[string]int
	dirty map[string]bool
	buf   []byte // aligned, rawChunk bytes
}

const rawBlobExt = ".blob"

// openRawBlobs opens the blobs already in dir, if any, with O_DIRECT.
func openRawBlobs(dir string, _ bool) (blobStore, error) {
	r := &rawBlobs{dir: dir, fds: map[string]int{}, dirty: map[string]bool{}, buf: alignedBuf(rawChunk)}
	names, err := filepath.Glob(filepath.Join(dir, "*"+rawBlobExt))
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		fd, err := openDirect(n, 0)
		if err != nil {
			r.close()
			return nil, err
		}
		r.fds[strings.TrimSuffix(filepath.Base(n), rawBlobExt)] = fd
	}
	return r, nil
}

func openDirect(name string, flags int) (int, error) {
	fd, err := unix.Open(name, unix.O_RDWR|unix.O_DIRECT|unix.O_CLOEXEC|flags, 0o600)
	if err != nil {
		return -1, fmt.Errorf("cowdb/peers: open %s with O_DIRECT: %w", name, err)
	}
	return fd, nil
}

// blocks rounds n up to whole rawBlocks.
func blocks(n int64) int64 { return (n + rawBlock - 1) &^ (rawBlock - 1) }

func (r *rawBlobs) ingest(name string, src io.Reader, size int64) error {
	if fd, ok := r.fds[name]; ok {
		unix.Close(fd)
		delete(r.fds, name)
	}
	fd, err := openDirect(filepath.Join(r.dir, name+rawBlobExt), unix.O_CREAT|unix.O_TRUNC)
	if err != nil {
		return err
	}
	r.fds[name] = fd
	if err := unix.Fallocate(fd, 0, 0, blocks(size)); err != nil {
		return err
	}
	var off int64
	for {
		n, err := io.ReadFull(src, r.buf)
		if n > 0 {
			clear(r.buf[n:blocks(int64(n))]) // the last block's tail
			if err := pwriteAll(fd, r.buf[:blocks(int64(n))], off); err != nil {
				return err
			}
			off += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if off != size {
		return fmt.Errorf("%w: ingested %d of %d bytes", errBlobShort, off, size)
	}
	return unix.Fdatasync(fd)
}

func pwriteAll(fd int, p []byte, off int64) error {
	n, err := unix.Pwrite(fd, p, off)
	if err == nil && n != len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return fmt.Errorf("cowdb/peers: pwrite of %d bytes at %d: %w", len(p), off, err)
	}
	return nil
}

// span returns the file descriptor of blob name and the aligned range
// that covers [off, off+n).
func (r *rawBlobs) span(name string, off int64, n int) (fd int, start, end int64, err error) {
	fd, ok := r.fds[name]
	if !ok {
		return -1, 0, 0, fmt.Errorf("cowdb/peers: no raw blob %q", name)
	}
	start, end = off&^(rawBlock-1), blocks(off+int64(n))
	if end-start > rawChunk {
		return -1, 0, 0, errRawRange
	}
	return fd, start, end, nil
}

func (r *rawBlobs) writeAt(name string, p []byte, off int64) error {
	fd, start, end, err := r.span(name, off, len(p))
	if err != nil {
		return err
	}
	copy(r.buf[off-start:], p)
	r.dirty[name] = true
	return pwriteAll(fd, r.buf[:end-start], start)
}

func (r *rawBlobs) commit() error {
	for name := range r.dirty {
		if err := unix.Fdatasync(r.fds[name]); err != nil {
			return err
		}
		delete(r.dirty, name)
	}
	return nil
}

func (r *rawBlobs) settle() error { return nil }

func (r *rawBlobs) readAt(name string, p []byte, off int64) error {
	fd, start, end, err := r.span(name, off, len(p))
	if err != nil {
		return err
	}
	n, err := unix.Pread(fd, r.buf[:end-start], start)
	if err != nil {
		return err
	}
	if int64(n) < off-start+int64(len(p)) {
		return fmt.Errorf("%w: read %d bytes at %d", errBlobShort, n, start)
	}
	copy(p, r.buf[off-start:])
	return nil
}

func (r *rawBlobs) close() error {
	var errs []error
	for _, fd := range r.fds {
		errs = append(errs, unix.Close(fd))
	}
	clear(r.fds)
	return errors.Join(errs...)
}

// dropCache drops the OS page cache of every file under dir (closed
// stores'), so that the next open reads from the device: each file is
// synced, so that its pages are clean, then advised POSIX_FADV_DONTNEED.
// It touches only these files, never the machine's whole cache.
func dropCache(dir string) error {
	return filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.Fdatasync(fd); err != nil {
			return err
		}
		return unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED)
	})
}
