package cowio

import (
	"sync"
	"sync/atomic"

	"github.com/cowdb/cowdb/vfs"
)

// run calls do(i) for each i in [0, n), each holding one of the Writer's
// work tokens (so at most 2 × InFlight pieces, and their buffers, are in
// progress over all calls); do holds an I/O token only around its system
// call (see io), so while some pieces copy or checksum, others keep the
// device busy. A single piece runs on the calling goroutine; more run on
// one goroutine each. After the first failure no further piece is started.
// run waits for every piece it started and returns the lowest index that
// failed with its error, or (n, nil).
func (w *Writer) run(n int, do func(i int) error) (int, error) {
	if n == 1 {
		w.work <- struct{}{}
		err := do(0)
		<-w.work
		if err != nil {
			return 0, err
		}
		return 1, nil
	}
	var (
		wg       sync.WaitGroup
		stop     atomic.Bool
		mu       sync.Mutex
		failed   = n
		firstErr error
	)
	for i := 0; i < n; i++ {
		w.work <- struct{}{}
		if stop.Load() {
			<-w.work
			break
		}
		wg.Go(func() {
			defer func() { <-w.work }()
			if err := do(i); err != nil {
				stop.Store(true)
				mu.Lock()
				if i < failed {
					failed, firstErr = i, err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return failed, firstErr
}

// io runs one data system call holding an I/O token, so that at most
// InFlight of them are under way at once over all calls.
func (w *Writer) io(call func() (int, error)) (int, error) {
	w.ioTokens <- struct{}{}
	defer func() { <-w.ioTokens }()
	return call()
}

// bufPool keeps aligned I/O buffers in size classes (the block size
// doubling up to the I/O size), so a steady stream of calls allocates no
// buffer, and a one-block read does not hold a whole I/O-size buffer.
type bufPool struct {
	sizes []int
	pools []sync.Pool
}

func newBufPool(blockSize, ioSize int) *bufPool {
	var sizes []int
	for s := blockSize; s < ioSize; s *= 2 {
		sizes = append(sizes, s)
	}
	sizes = append(sizes, ioSize)
	return &bufPool{sizes: sizes, pools: make([]sync.Pool, len(sizes))}
}

// class returns the index of the smallest class holding n bytes.
func (bp *bufPool) class(n int) int {
	for i, s := range bp.sizes {
		if n <= s {
			return i
		}
	}
	panic("cowdb: assertion failed: cowio buffer larger than the I/O size")
}

// get returns an aligned buffer of at least n bytes (n <= the I/O size);
// its length is its class size.
func (bp *bufPool) get(n int) *[]byte {
	c := bp.class(n)
	if v := bp.pools[c].Get(); v != nil {
		return v.(*[]byte)
	}
	b := vfs.AlignedBuf(bp.sizes[c])
	return &b
}

// put returns a buffer obtained from get.
func (bp *bufPool) put(b *[]byte) {
	bp.pools[bp.class(len(*b))].Put(b)
}
