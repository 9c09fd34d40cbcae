package format_test

import (
	"fmt"

	"github.com/cowdb/cowdb/internal/format"
)

// Checkpoints 0, 1 and 2 are written alternately to blocks 0 and 1; the
// write of checkpoint 2 is torn, so open falls back to checkpoint 1.
func ExamplePickSuperblock() {
	sb := format.Superblock{
		BlockSize: 4096, BlocksPerAG: 32768, AGCount: 1, MaxAGCount: 8,
		AGStart: 2, StoreID: 0x5eed, NextInode: 1,
	}
	var disk [2][]byte
	for e := range format.Epoch(3) {
		sb.Epoch = e
		disk[format.SuperblockCopyIndex(e)] = sb.Encode(4096)
	}
	disk[0][50] ^= 1 // damage checkpoint 2's copy

	got, i, err := format.PickSuperblock(disk)
	fmt.Println("epoch", got.Epoch, "from copy", i, "err", err)

	disk[1][0] = 0 // and now the other copy too
	_, _, err = format.PickSuperblock(disk)
	fmt.Println(err)
	// Output:
	// epoch 1 from copy 1 err <nil>
	// cowdb/format: no valid superblock: superblock copy 0: cowdb/format: checksum mismatch (stored 0x4e18e4b5428ce003, computed 0x2bb8e668f937e839); superblock copy 1: cowdb/format: bad magic number (0x42532d6264776f00)
}
