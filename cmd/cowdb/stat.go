package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/cowdb/cowdb"
)

// statCommand is "cowdb stat".
var statCommand = &command{name: "stat", args: "[--json]", run: runStat,
	summary: "show the store's space, snapshots, log and cache figures",
	help: `Stat shows where the store's space goes (total, free, waiting for a
checkpoint, shared between snapshots and clones, and what each snapshot
alone holds), the write-ahead log and the last checkpoint, and the caches.
Cache and I/O counters count since the store was opened, that is by this
command. --json prints the same figures as one JSON object.`}

// statJSON is what stat --json prints.
type statJSON struct {
	Dir       string               `json:"dir"`
	Stats     cowdb.Stats          `json:"stats"`
	Snapshots []cowdb.SnapshotInfo `json:"snapshots"`
}

func runStat(e *env, c *command, args []string) (err error) {
	fs := flagSet(e, c)
	asJSON := fs.Bool("json", false, "print the figures as JSON")
	if args, err = parse(e, c, fs, args); err != nil {
		return err
	}
	if err := operands(c, args, 0, 0); err != nil {
		return err
	}
	dir, err := e.storeDir()
	if err != nil {
		return err
	}
	db, err := e.open(readOnly, nil)
	if err != nil {
		return err
	}
	defer closeDB(db, &err)
	snaps, err := db.Snapshots()
	if err != nil {
		return storeErr(err)
	}
	st := db.Stats()
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(statJSON{Dir: dir, Stats: st, Snapshots: snaps})
	}
	return printStat(e.stdout, dir, st, snaps)
}

func printStat(w io.Writer, dir string, st cowdb.Stats, snaps []cowdb.SnapshotInfo) error {
	bs := int64(st.BlockSize)
	blocks := func(n int64) string {
		return fmt.Sprintf("%s\t%s", size(n*bs), plural(n, "block"))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "store\t%s\n", dir)
	fmt.Fprintf(tw, "block size\t%s\n", size(bs))
	fmt.Fprintln(tw, "space\t")
	fmt.Fprintf(tw, "  total\t%s\n", blocks(st.TotalBlocks))
	fmt.Fprintf(tw, "  free\t%s\n", blocks(st.FreeBlocks))
	fmt.Fprintf(tw, "  busy\t%s\t(freed; reusable after the next checkpoint)\n", blocks(st.BusyBlocks))
	fmt.Fprintf(tw, "  in use\t%s\t(reachable from the live store and snapshots)\n", blocks(st.CommittedBlocks))
	fmt.Fprintf(tw, "  shared\t%s\t(referenced more than once: snapshots, clones)\n", blocks(st.SharedBlocks))
	fmt.Fprintf(tw, "  headers\t%s\t(superblocks, allocation bitmaps)\n", blocks(st.HeaderBlocks))
	if st.StagingBlocks > 0 {
		fmt.Fprintf(tw, "  in flight\t%s\t(large writes not yet committed)\n", blocks(st.StagingBlocks))
	}
	fmt.Fprintf(tw, "snapshots\t%d", st.Snapshots)
	if st.Dropping > 0 {
		fmt.Fprintf(tw, "\t(%d more being reclaimed)", st.Dropping)
	}
	fmt.Fprintln(tw)
	for _, s := range snaps {
		fmt.Fprintf(tw, "  %s\t%s exclusive\t%s referenced, taken %s\n", s.Name, size(s.ExclusiveBytes),
			size(s.ReferencedBytes), s.Created.Local().Format(time.DateTime))
	}
	fmt.Fprintf(tw, "log\t%s\tdurable up to LSN %d; %s replayed at open\n",
		plural(int64(st.WALSegments), "segment"), st.WALDurableLSN, plural(st.Replayed, "record"))
	fmt.Fprintf(tw, "checkpoint\tepoch %d\tat LSN %d\n", st.Epoch, st.CheckpointLSN)
	fmt.Fprintf(tw, "dirty pages\t%s\t%s awaiting writeback\n", size(st.PageBytes), plural(st.DirtyBlocks, "block"))
	fmt.Fprintf(tw, "cache\t%s hits\t%s misses (since open)\n", count(int64(st.CacheHits)), count(int64(st.CacheMisses)))
	fmt.Fprintf(tw, "data read\t%s\t%s (since open)\n", size(st.DataBytesRead), plural(st.DataBlocksRead, "block"))
	return tw.Flush()
}
