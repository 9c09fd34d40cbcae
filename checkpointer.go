package cowdb

import (
	"errors"
	"sync"
	"time"

	"github.com/cowdb/cowdb/wal"
)

// checkpointTick is how often the background checkpointer looks at its
// triggers besides being kicked by writers.
const checkpointTick = time.Second

// dirtyShareOfCache divides CacheSize into the memory dirty nodes may take
// before a checkpoint is started to write them: all of it. A copy-on-write
// tree rewrites a whole leaf per changed key, so checkpointing less often
// lets many changes to one leaf share one write; measured on the batch
// benchmark, a quarter of CacheSize wrote about 2.8 KiB per 150-byte put and
// cut throughput several times over.
const dirtyShareOfCache = 1

// dropStepsPerWake bounds the drop steps the checkpointer runs before it
// looks at its other work again.
const dropStepsPerWake = 16

// checkpointer runs checkpoints in the background (DESIGN §6) when the log
// has grown by CheckpointWALSize since the last one, when dirty nodes
// take more memory than CacheSize, when half the log's segments are in
// use, or when CheckpointInterval has
// passed with writes to checkpoint. Writers kick it after each commit;
// the kick never blocks.
type checkpointer struct {
	db    *DB
	kickC chan struct{}
	stopC chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
}

// startCheckpointer starts db's checkpointer and sets db.bg to it before
// it runs (the loop itself calls db.bg.kick).
func startCheckpointer(db *DB) *checkpointer {
	c := &checkpointer{db: db, kickC: make(chan struct{}, 1), stopC: make(chan struct{})}
	db.bg = c
	c.wg.Add(1)
	go c.run()
	if _, steps := db.dropWork(); steps {
		c.kick() // drops resumed from the catalog
	}
	return c
}

// kick tells the checkpointer to look at its triggers; nil-safe.
func (c *checkpointer) kick() {
	if c == nil {
		return
	}
	select {
	case c.kickC <- struct{}{}:
	default:
	}
}

// stop ends the checkpointer and waits for it; nil-safe and idempotent.
func (c *checkpointer) stop() {
	if c == nil {
		return
	}
	c.once.Do(func() { close(c.stopC) })
	c.wg.Wait()
}

func (c *checkpointer) run() {
	defer c.wg.Done()
	t := time.NewTicker(min(checkpointTick, c.db.opts.CheckpointInterval))
	defer t.Stop()
	last := time.Now()
	for {
		timer := false
		select {
		case <-c.stopC:
			return
		case <-c.kickC:
		case <-t.C:
			timer = true
		}
		needCP, steps := c.db.dropWork()
		if steps {
			// Reclaim in slices, so that checkpoints and the stop signal
			// are looked at in between.
			more, err := c.db.dropSteps(dropStepsPerWake)
			if err != nil {
				c.db.logger.Error("cowdb: background drop failed", "dir", c.db.dir, "err", err)
				return
			}
			if more {
				c.kick()
			}
		}
		if !needCP && !c.due(timer && time.Since(last) >= c.db.opts.CheckpointInterval) {
			continue
		}
		if err := c.db.checkpoint(); err != nil {
			if errors.Is(err, ErrNoSpace) {
				// Not a failure of the store: the space check refused
				// to start. Try again at the next trigger.
				c.db.logger.Warn("cowdb: background checkpoint postponed", "dir", c.db.dir, "err", err)
				continue
			}
			c.db.logger.Error("cowdb: background checkpoint failed", "dir", c.db.dir, "err", err)
			return // the store has failed; writes report it
		}
		last = time.Now()
	}
}

// due reports whether a trigger fires; interval says the time one did.
func (c *checkpointer) due(interval bool) bool {
	db := c.db
	st := &db.stats
	if st.walBytes.Load()-st.walBytesAtCheckpoint.Load() >= db.opts.CheckpointWALSize {
		return true
	}
	if db.forest.Stats().DirtyBytes >= db.opts.CacheSize/dirtyShareOfCache {
		return true
	}
	// Half the log's segments in use: checkpoint long before appends could
	// find the log full (wal.ErrLogFull), whatever CheckpointWALSize says.
	if ws := db.wal.Stats(); ws.Segments-ws.FreeSegments >= wal.MaxSegmentsDefault/2 {
		return true
	}
	if interval {
		db.mu.Lock()
		changed := db.mu.lastLSN != db.mu.cpLSN
		db.mu.Unlock()
		return changed
	}
	return false
}
