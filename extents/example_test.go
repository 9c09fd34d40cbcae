package extents_test

import (
	"fmt"

	"github.com/cowdb/cowdb/extents"
)

// The life of a blob's blocks: allocated as staging for an in-flight write,
// committed when the write is remapped, shared by a snapshot, freed, busy
// until a checkpoint covering the free is durable, then free again.
func Example() {
	opts := extents.Options{StoreID: 1, BlockSize: 512, BlocksPerAG: 64}
	a, _ := extents.New(&opts, 1)

	e, _ := a.Alloc(8, extents.NoBlock) // staging
	_ = a.Commit(e)                     // the remap is logged at LSN 1
	_ = a.Inc(e)                        // a snapshot shares it
	_ = a.Dec(e, 2)                     // the live tree drops it: count 1
	_ = a.Dec(e, 3)                     // the snapshot is deleted: busy
	s := a.Stats()
	fmt.Println("busy:", s.BusyBlocks, "free:", s.FreeBlocks)

	cp, _ := a.Seal(1, 3) // checkpoint 1 covers LSN 3
	for img := range cp.Images() {
		fmt.Printf("write AG %d bitmap at block %d (%d bytes)\n", img.AG, img.Block, len(img.Data))
	}
	_ = a.CheckpointDurable(cp)
	s = a.Stats()
	fmt.Println("busy:", s.BusyBlocks, "free:", s.FreeBlocks)
	// Output:
	// busy: 8 free: 54
	// write AG 0 bitmap at block 2 (512 bytes)
	// busy: 0 free: 62
}
