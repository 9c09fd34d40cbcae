package peers

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Sizes of the raw device's file. rawBlock is the unit of direct I/O;
// rawFileSize is preallocated by writing it whole, so that later writes
// overwrite allocated, written blocks and fdatasync has no metadata to
// flush: it measures the device's write and cache flush alone.
const (
	rawBlock    = 4096
	rawFileSize = 64 << 20
	rawMaxWrite = 1 << 20
)

var errRawTooLarge = errors.New("cowdb/peers: raw commit larger than rawMaxWrite")

// rawDevice is the machine's floor: each durable commit is one O_DIRECT
// write of the commit's payload rounded up to whole 4 KiB blocks, at the
// next position of a circular log in a preallocated file, then fdatasync.
// It is what any store must at least pay to make a commit durable. Safe for
// concurrent use: positions are taken atomically and writes never share a
// block while the log has not wrapped.
type rawDevice struct {
	f    *os.File
	src  []byte       // aligned, read-only source of every write
	next atomic.Int64 // next block of the circular log
	bufs sync.Pool    // aligned rawBlock read buffers
}

// alignedBuf returns n bytes whose address is a multiple of rawBlock, as
// O_DIRECT requires.
func alignedBuf(n int) []byte {
	b := make([]byte, n+rawBlock)
	off := int(-uintptr(unsafe.Pointer(&b[0])) & (rawBlock - 1))
	return b[off : off+n : off+n]
}

// openRaw creates dir/raw.dat with O_DIRECT and fills it, durably.
func openRaw(dir string) (*rawDevice, error) {
	name := filepath.Join(dir, "raw.dat")
	fd, err := unix.Open(name, unix.O_RDWR|unix.O_CREAT|unix.O_DIRECT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cowdb/peers: open %s with O_DIRECT: %w", name, err)
	}
	r := &rawDevice{f: os.NewFile(uintptr(fd), name), src: alignedBuf(rawMaxWrite)}
	r.bufs.New = func() any { return alignedBuf(rawBlock) }
	rng := rand.New(rand.NewPCG(7, 7))
	for i := 0; i < len(r.src); i += 8 {
		binary.LittleEndian.PutUint64(r.src[i:], rng.Uint64())
	}
	for off := int64(0); off < rawFileSize; off += rawMaxWrite {
		if _, err := r.f.WriteAt(r.src, off); err != nil {
			r.f.Close()
			return nil, err
		}
	}
	if err := unix.Fdatasync(fd); err != nil {
		r.f.Close()
		return nil, err
	}
	return r, nil
}

// commit writes payload bytes (rounded up to whole blocks) and fdatasyncs.
func (r *rawDevice) commit(payload int) error {
	blocks := int64(max(1, (payload+rawBlock-1)/rawBlock))
	if blocks*rawBlock > rawMaxWrite {
		return errRawTooLarge
	}
	const fileBlocks = rawFileSize / rawBlock
	end := r.next.Add(blocks)
	start := end - blocks
	if start%fileBlocks+blocks > fileBlocks { // would cross the end: wrap
		start = 0
	} else {
		start %= fileBlocks
	}
	if _, err := r.f.WriteAt(r.src[:blocks*rawBlock], start*rawBlock); err != nil {
		return err
	}
	return unix.Fdatasync(int(r.f.Fd()))
}

// readBlock reads block n (modulo the file) with O_DIRECT: a read the page
// cache cannot serve.
func (r *rawDevice) readBlock(n uint64) ([]byte, error) {
	buf := r.bufs.Get().([]byte)
	defer r.bufs.Put(buf)
	off := int64(n%(rawFileSize/rawBlock)) * rawBlock
	if _, err := r.f.ReadAt(buf, off); err != nil {
		return nil, err
	}
	return append([]byte(nil), buf...), nil
}

func (r *rawDevice) close() error { return r.f.Close() }

// rawStore puts the raw device behind the store interface: a batch or a
// put is one commit of its payload's size, and a get is one direct 4 KiB
// read of a block chosen by the key (the device knows no keys, so the
// value is not the one put: the benchmarks do not check raw's values).
type rawStore struct{ dev *rawDevice }

func openRawStore(dir string) (store, error) {
	dev, err := openRaw(dir)
	if err != nil {
		return nil, err
	}
	return rawStore{dev}, nil
}

func (s rawStore) batch(keys, vals [][]byte) error {
	n := 0
	for i := range keys {
		n += len(keys[i]) + len(vals[i])
	}
	return s.dev.commit(n)
}

func (s rawStore) put(k, v []byte) error { return s.dev.commit(len(k) + len(v)) }

func (s rawStore) get(k []byte) ([]byte, error) {
	var h uint64 = 14695981039346656037 // FNV-1a, to spread keys over blocks
	for _, c := range k {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return s.dev.readBlock(h)
}

func (s rawStore) close() error { return s.dev.close() }
