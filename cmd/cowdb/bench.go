package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/cowdb/cowdb"
)

// benchCommand is "cowdb bench".
var benchCommand = &command{name: "bench", args: "[--store] [-t DIR] [--size N] [--time D]", run: runBench,
	summary: "a quick self-benchmark: blob MB/s, 4K ops/s, put/get ops/s",
	help: `Bench measures the store on this machine: sequential blob writes and
reads, random 4 KiB writes and reads inside a blob, and small puts (one
writer, and 16 at once) and gets. Every write is durable before it counts
(the default SyncAlways). By default it runs in a new temporary store under
DIR (-t, default the system's temporary directory: pick the file system to
measure) which it removes afterwards; with --store it runs in the store
itself, under keys it deletes afterwards. Each timed phase runs for --time.`}

// Bench's fixed sizes and bounds.
const (
	benchChunk   = 1 << 20 // bytes per sequential Write
	benchIOSize  = 4096    // bytes per random read or write
	benchValue   = 100     // bytes per put
	benchWriters = 16      // concurrent putters
	benchOpsMax  = 1 << 24 // ops per timed phase at most, whatever --time
	benchSizeMin = 1 << 20 // smallest --size
)

// benchResult is one line of bench's report.
type benchResult struct {
	name, work, result, note string
}

// bench is one run of the benchmark over an open store.
type bench struct {
	e      *env
	db     *cowdb.DB
	prefix string        // of every key it writes
	size   int64         // of the sequential blob
	phase  time.Duration // of each timed phase
	rng    *rand.Rand
	bar    *progress
	puts   atomic.Int64 // keys written by the put phases
	out    []benchResult
}

func runBench(e *env, c *command, args []string) (err error) {
	fs := flagSet(e, c)
	inStore := fs.Bool("store", false, "run in the store (-d, $COWDB_DIR) instead of a temporary one")
	tmp := fs.String("t", "", "create the temporary store under `DIR` (default: the system's)")
	sizeArg := fs.String("size", "64MiB", "`BYTES` of the sequential blob, e.g. 256MiB")
	phase := fs.Duration("time", time.Second, "how long each timed phase runs")
	if args, err = parse(e, c, fs, args); err != nil {
		return err
	}
	e.stoppable.Store(true) // it checks e.ctx between values
	if err := operands(c, args, 0, 0); err != nil {
		return err
	}
	n, perr := humanize.ParseBytes(*sizeArg)
	if perr != nil || n < benchSizeMin || n > cowdb.MaxBlobSize {
		return usagef(c, "bench: --size %q: want a size from 1MiB to 1TiB, like 64MiB", *sizeArg)
	}
	if *phase <= 0 {
		return usagef(c, "bench: --time must be positive")
	}
	b := &bench{e: e, size: int64(n) / benchIOSize * benchIOSize, phase: *phase, rng: rand.New(rand.NewPCG(1, 2))}
	where := ""
	if *inStore {
		dir, err := e.storeDir()
		if err != nil {
			return err
		}
		if b.db, err = e.open(readWrite, nil); err != nil {
			return err
		}
		b.prefix = fmt.Sprintf("\x00cowdb/bench-%d/", time.Now().UnixNano())
		where = fmt.Sprintf("the store %s (under keys %q, deleted afterwards)", dir, b.prefix)
	} else {
		dir, err := os.MkdirTemp(*tmp, "cowdb-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if b.db, err = e.openAt(filepath.Join(dir, "store"), create, nil); err != nil {
			return err
		}
		where = "a temporary store in " + dir
	}
	defer closeDB(b.db, &err)
	// The results are bench's output: -q only turns the bar off.
	fmt.Fprintf(e.stdout, "cowdb bench: %s; %s blocks, every write durable\n", where, size(int64(b.db.Stats().BlockSize)))
	err = b.run()
	if *inStore {
		if cerr := b.cleanup(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return err
	}
	return b.report()
}

// run runs every phase in order.
func (b *bench) run() error {
	phases := []struct {
		name string
		fn   func() error
	}{
		{"sequential write", b.seqWrite},
		{"sequential read", b.seqRead},
		{"random 4K write", b.randWrite},
		{"random 4K read", b.randRead},
		{"put, 1 writer", func() error { return b.put(1) }},
		{fmt.Sprintf("put, %d writers", benchWriters), func() error { return b.put(benchWriters) }},
		{"get", b.get},
	}
	b.bar = b.e.newCountProgress(int64(len(phases)), fmt.Sprintf("%-16s", "bench"), "phases", false)
	for _, p := range phases {
		if b.e.ctx.Err() != nil {
			b.bar.finish(false)
			return errors.New("bench interrupted")
		}
		b.bar.describe(fmt.Sprintf("%-16s", p.name))
		if err := p.fn(); err != nil {
			b.bar.finish(false)
			return fmt.Errorf("bench: %s: %w", p.name, storeErr(err))
		}
		b.bar.add(1)
	}
	b.bar.finish(true)
	return nil
}

func (b *bench) key(name string) []byte { return []byte(b.prefix + name) }

// seqWrite streams size bytes into a new blob in 1 MiB writes and closes
// it, which makes them durable.
func (b *bench) seqWrite() error {
	chunk := make([]byte, benchChunk)
	rand.NewChaCha8([32]byte{1}).Read(chunk)
	start := time.Now()
	blob, err := b.db.CreateBlob(b.key("seq"))
	if err != nil {
		return err
	}
	for off := int64(0); off < b.size; off += benchChunk {
		if _, err := blob.Write(chunk[:min(benchChunk, b.size-off)]); err != nil {
			blob.Close()
			return err
		}
	}
	if err := blob.Close(); err != nil {
		return err
	}
	d := time.Since(start)
	b.out = append(b.out, benchResult{"sequential write", size(b.size) + " in " + duration(d), rate(b.size, d), "1 MiB writes, durable at Close"})
	return nil
}

func (b *bench) seqRead() error {
	start := time.Now()
	blob, err := b.db.OpenBlob(b.key("seq"))
	if err != nil {
		return err
	}
	defer blob.Close()
	n, err := blob.WriteTo(io.Discard)
	if err != nil {
		return err
	}
	d := time.Since(start)
	b.out = append(b.out, benchResult{"sequential read", size(n) + " in " + duration(d), rate(n, d), ""})
	return nil
}

// timed calls op until the phase's time is up, and returns how many calls
// it made and how long they took.
func (b *bench) timed(op func() error) (int64, time.Duration, error) {
	start := time.Now()
	deadline := start.Add(b.phase)
	var n int64
	for n < benchOpsMax && b.e.ctx.Err() == nil {
		if err := op(); err != nil {
			return n, 0, err
		}
		n++
		if time.Now().After(deadline) {
			break
		}
	}
	return n, time.Since(start), nil
}

func (b *bench) randWrite() error {
	blob, err := b.db.OpenBlob(b.key("seq"))
	if err != nil {
		return err
	}
	defer blob.Close()
	buf := make([]byte, benchIOSize)
	blocks := b.size / benchIOSize
	n, d, err := b.timed(func() error {
		buf[0]++
		_, err := blob.WriteAt(buf, b.rng.Int64N(blocks)*benchIOSize)
		return err
	})
	if err != nil {
		return err
	}
	b.out = append(b.out, benchResult{"random 4K write", count(n) + " in " + duration(d), opsRate(n, d),
		"each durable, " + duration(d/time.Duration(max(n, 1))) + " each"})
	return nil
}

func (b *bench) randRead() error {
	blob, err := b.db.OpenBlob(b.key("seq"))
	if err != nil {
		return err
	}
	defer blob.Close()
	buf := make([]byte, benchIOSize)
	blocks := b.size / benchIOSize
	before := b.db.Stats()
	n, d, err := b.timed(func() error {
		_, err := blob.ReadAt(buf, b.rng.Int64N(blocks)*benchIOSize)
		return err
	})
	if err != nil {
		return err
	}
	after := b.db.Stats()
	note := ""
	if hits, misses := after.DataCacheHits-before.DataCacheHits, after.DataCacheMisses-before.DataCacheMisses; hits+misses > 0 {
		note = fmt.Sprintf("%d%% from the cache", 100*hits/(hits+misses))
	}
	b.out = append(b.out, benchResult{"random 4K read", count(n) + " in " + duration(d), opsRate(n, d), note})
	return nil
}

// put runs writers goroutines each putting small values under new keys.
func (b *bench) put(writers int) error {
	value := make([]byte, benchValue)
	start := time.Now()
	deadline := start.Add(b.phase)
	var (
		wg    sync.WaitGroup
		ops   atomic.Int64
		errMu sync.Mutex
		first error
	)
	for range writers {
		wg.Go(func() {
			for ops.Load() < benchOpsMax && b.e.ctx.Err() == nil && time.Now().Before(deadline) {
				i := b.puts.Add(1) - 1
				if err := b.db.Put(b.key(fmt.Sprintf("kv/%09d", i)), value); err != nil {
					errMu.Lock()
					first = cmp.Or(first, err)
					errMu.Unlock()
					return
				}
				ops.Add(1)
			}
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	d, n := time.Since(start), ops.Load()
	work := "1 writer"
	if writers > 1 {
		work = fmt.Sprintf("%d writers", writers)
	}
	b.out = append(b.out, benchResult{fmt.Sprintf("put %d B", benchValue), work, opsRate(n, d), "each durable"})
	return nil
}

// get reads the keys the put phases wrote, at random.
func (b *bench) get() error {
	keys := b.puts.Load()
	if keys == 0 {
		return errors.New("no keys were put")
	}
	n, d, err := b.timed(func() error {
		_, err := b.db.Get(b.key(fmt.Sprintf("kv/%09d", b.rng.Int64N(keys))))
		return err
	})
	if err != nil {
		return err
	}
	b.out = append(b.out, benchResult{fmt.Sprintf("get %d B", benchValue), count(keys) + " keys", opsRate(n, d), ""})
	return nil
}

// cleanup deletes the keys bench wrote into a user's store.
func (b *bench) cleanup() error {
	keys, err := keysWithPrefixes(b.db, [][]byte{[]byte(b.prefix)})
	for err == nil && len(keys) > 0 {
		batch := keys[:min(len(keys), rmBatch)]
		keys = keys[len(batch):]
		_, err = deleteKeys(b.db, batch)
	}
	return err
}

func (b *bench) report() error {
	tw := tabwriter.NewWriter(b.e.stdout, 0, 0, 3, ' ', 0)
	for _, r := range b.out {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.name, r.work, r.result, r.note)
	}
	return tw.Flush()
}
