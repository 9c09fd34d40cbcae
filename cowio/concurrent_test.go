package cowio_test

import (
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/cowdb/cowdb/cowio"
)

// TestConcurrentWritersAndReaders runs goroutines that each write values of
// random sizes, commit them, and read back both their own values and those
// others have published, at random offsets, while the Writer's in-flight
// limit is small enough to make them contend. Run with -race it also checks
// the Writer's synchronization; the space must end with nothing staging.
func TestConcurrentWritersAndReaders(t *testing.T) {
	const goroutines, rounds = 8, 25
	space := newFakeSpace(1<<15, 5)
	w := newWriter(t, openData(t, onMem), space, &cowio.Options{IOSize: 4 * bs, InFlight: 3})
	var (
		mu        sync.Mutex
		published []value
	)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 17))
			for range rounds {
				p := randBytes(rng, rng.IntN(40*bs))
				m, err := w.WriteNew(p, 0)
				if err != nil {
					t.Error(err)
					return
				}
				space.commit(t, m)
				mu.Lock()
				published = append(published, value{m, p})
				v := published[rng.IntN(len(published))]
				mu.Unlock()
				readRandom(t, w, v, rng)
			}
		})
	}
	wg.Wait()
	if n := space.count(stStaging); n != 0 {
		t.Fatalf("%d blocks left staging", n)
	}
	for _, v := range published {
		readAll(t, w, v.m, v.p)
	}
	space.check(t)
}

type value struct {
	m cowio.Mapping
	p []byte
}

// readRandom reads a random range of v and checks it.
func readRandom(t *testing.T, w *cowio.Writer, v value, rng *rand.Rand) {
	if len(v.p) == 0 {
		return
	}
	off := rng.IntN(len(v.p))
	n := rng.IntN(len(v.p) - off + 1)
	got := make([]byte, n)
	k, err := w.ReadAt(v.m, int64(len(v.p)), got, int64(off))
	if k != n || (err != nil && off+n < len(v.p)) || string(got) != string(v.p[off:off+n]) {
		t.Errorf("ReadAt(%d bytes at %d) of %d = %d, %v", n, off, len(v.p), k, err)
	}
}
