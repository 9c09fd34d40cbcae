//go:build !race

package cowio_test

import (
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/cowdb/cowdb/cowio"
)

// TestSteadyStateReusesBuffers checks that repeated WriteNew and ReadAt
// calls take their I/O buffers from the pool instead of allocating them:
// over many 1 MiB writes and reads, the bytes allocated stay a small
// fraction of the bytes moved. It uses a real file, since MemFS keeps a
// copy of every unsynced write. (Not under -race, whose sync.Pool drops
// items at random on purpose.)
func TestSteadyStateReusesBuffers(t *testing.T) {
	const size, rounds = 1 << 20, 32
	space := newFakeSpace(1024, 0)
	w := newWriter(t, openData(t, onOS), space, &cowio.Options{IOSize: 256 << 10, InFlight: 2})
	p := placed(randBytes(rand.New(rand.NewPCG(1, 1)), size), false) // copied through the pool
	got := make([]byte, size+1)                                      // unaligned destination: bounced through the pool
	round := func() {
		m, err := w.WriteNew(p, 0)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := w.ReadAt(m, size, got[1:], 0); n != size {
			t.Fatal("short read")
		}
		space.ReleaseStaging(m.Extents())
	}
	round() // fill the pool
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range rounds {
		round()
	}
	runtime.ReadMemStats(&after)
	moved := uint64(2 * size * rounds)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > moved/8 {
		t.Fatalf("allocated %d bytes to move %d", alloc, moved)
	}
}
