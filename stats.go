package cowdb

import (
	"sync/atomic"
	"time"
)

// Stats are a store's figures at one moment. Block counts are in blocks of
// BlockSize bytes.
type Stats struct {
	BlockSize int

	// Space (DESIGN §8): TotalBlocks is the data file; FreeBlocks can be
	// allocated now; BusyBlocks were freed but wait for a durable
	// checkpoint (or an old reader) before reuse; SharedBlocks are
	// referenced more than once (snapshots, clones); HeaderBlocks hold the
	// superblocks and allocation-group bitmaps; CommittedBlocks are
	// reachable from the live roots.
	TotalBlocks     int64
	FreeBlocks      int64
	BusyBlocks      int64
	SharedBlocks    int64
	HeaderBlocks    int64
	CommittedBlocks int64
	// StagingBlocks are allocated to large-value writes in flight, not
	// yet mapped by a logged record.
	StagingBlocks int64

	// Writes counts committed write calls (Put, Delete, Update with
	// changes); Replayed the log records applied by the last Open.
	Writes   int64
	Replayed int64
	// LargeValues counts values written to extents since Open, and
	// Remaps the extents their log records mapped.
	LargeValues int64
	Remaps      int64

	// Log: records and bytes appended, flush groups (each one fdatasync of
	// the log, shared by every commit in it), data syncs done before a
	// flush, segment files and the last durable LSN.
	WALRecords    int64
	WALBytes      int64
	WALGroups     int64
	WALDataSyncs  int64
	WALSegments   int
	WALDurableLSN uint64

	// Checkpoints written since Open, the last durable one's epoch and
	// LSN, and the nodes waiting for the next one.
	Checkpoints int64
	// CheckpointBlocks counts the blocks checkpoints wrote (nodes, AG
	// bitmaps, superblocks); CheckpointTime their total duration.
	CheckpointBlocks int64
	CheckpointTime   time.Duration
	Epoch            uint64
	CheckpointLSN    uint64
	DirtyNodes       int64

	// Metadata I/O on the data file, in blocks: node reads (cache misses)
	// and checkpoint writes. The data of large values goes through cowio
	// and is not counted here. Then the node cache's hits and misses.
	BlockReads  int64
	BlockWrites int64
	CacheHits   uint64
	CacheMisses uint64

	// Data path: blocks read from the data file for values (cache misses
	// and bypassing reads), bytes returned, and the clean data cache's
	// hits and misses (reads above 128 KiB bypass it). CacheHits and
	// CacheMisses above count nodes and data blocks together.
	DataBlocksRead  int64
	DataBytesRead   int64
	DataCacheHits   int64
	DataCacheMisses int64

	// Blob dirty pages (DESIGN §7): blocks whose newest bytes are only in
	// the log and in memory, the page bytes held (dirty, or kept for
	// readers of older versions), and the blocks writeback has written.
	DirtyBlocks     int64
	PageBytes       int64
	WritebackBlocks int64

	// Snapshots: how many exist, the roots still being reclaimed in the
	// background (deleted snapshots, roots replaced by Restore), and the
	// logged reclaim steps done since Open.
	Snapshots int
	Dropping  int
	DropSteps int64
}

// counters are the store's own atomic figures.
type counters struct {
	writes               atomic.Int64
	replayed             atomic.Int64
	largeValues          atomic.Int64
	remaps               atomic.Int64
	walBytes             atomic.Int64 // payload bytes appended since Open
	walBytesAtCheckpoint atomic.Int64
	checkpoints          atomic.Int64
	checkpointBlocks     atomic.Int64
	checkpointNanos      atomic.Int64
	blockReads           atomic.Int64
	blockWrites          atomic.Int64
	writebacks           atomic.Int64
	dropSteps            atomic.Int64
}

// Stats returns the store's figures. After Close it returns the zero
// Stats.
func (db *DB) Stats() Stats {
	if db.closed.Load() {
		return Stats{}
	}
	db.mu.Lock()
	as := db.mu.alloc.Stats()
	epoch, cpLSN := db.mu.epoch, db.mu.cpLSN
	snaps, dropping := len(db.mu.snaps), len(db.mu.drops)
	db.mu.Unlock()
	ws := db.wal.Stats()
	cs := db.cache.Stats()
	dirty, pageBytes := db.pages.stats()
	rs, rsl := db.cw.Stats(), db.cwLocked.Stats()
	return Stats{
		BlockSize:        db.bs,
		TotalBlocks:      as.TotalBlocks,
		FreeBlocks:       as.FreeBlocks,
		BusyBlocks:       as.BusyBlocks,
		SharedBlocks:     as.SharedBlocks,
		HeaderBlocks:     as.HeaderBlocks,
		CommittedBlocks:  as.CommittedBlocks,
		StagingBlocks:    as.StagingBlocks,
		Writes:           db.stats.writes.Load(),
		Replayed:         db.stats.replayed.Load(),
		LargeValues:      db.stats.largeValues.Load(),
		Remaps:           db.stats.remaps.Load(),
		WALRecords:       ws.Records,
		WALBytes:         ws.BytesWritten,
		WALGroups:        ws.Groups,
		WALDataSyncs:     ws.DataSyncs,
		WALSegments:      ws.Segments,
		WALDurableLSN:    uint64(ws.DurableLSN),
		Checkpoints:      db.stats.checkpoints.Load(),
		CheckpointBlocks: db.stats.checkpointBlocks.Load(),
		CheckpointTime:   time.Duration(db.stats.checkpointNanos.Load()),
		Epoch:            uint64(epoch),
		CheckpointLSN:    uint64(cpLSN),
		DirtyNodes:       db.forest.Stats().DirtyNodes,
		BlockReads:       db.stats.blockReads.Load(),
		BlockWrites:      db.stats.blockWrites.Load(),
		CacheHits:        cs.Hits,
		CacheMisses:      cs.Misses,
		DataBlocksRead:   int64(rs.BlocksRead + rsl.BlocksRead),
		DataBytesRead:    int64(rs.BytesRead + rsl.BytesRead),
		DataCacheHits:    int64(rs.CacheHits + rsl.CacheHits),
		DataCacheMisses:  int64(rs.CacheMisses + rsl.CacheMisses),
		DirtyBlocks:      dirty,
		PageBytes:        pageBytes,
		WritebackBlocks:  db.stats.writebacks.Load(),
		Snapshots:        snaps,
		Dropping:         dropping,
		DropSteps:        db.stats.dropSteps.Load(),
	}
}
