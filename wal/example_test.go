package wal_test

import (
	"fmt"

	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/vfs"
	"github.com/cowdb/cowdb/wal"
)

// A log is opened, replayed from the checkpoint's LSN (here: from the
// start), and then appended to; after a reopen, replay yields the records.
func Example() {
	fs := vfs.NewMem()
	opts := wal.Options{StoreID: 42, SegmentSize: 1 << 20}
	l, err := wal.Open(fs, "store/wal", opts)
	if err != nil {
		panic(err)
	}
	if err := l.Replay(1, func(format.LSN, []byte) error { return nil }); err != nil {
		panic(err)
	}
	for _, batch := range []string{"put a=1", "put b=2", "delete a"} {
		if _, err := l.Commit([]byte(batch), 0); err != nil {
			panic(err)
		}
	}
	l.Close()

	l, err = wal.Open(fs, "store/wal", opts)
	if err != nil {
		panic(err)
	}
	defer l.Close()
	err = l.Replay(2, func(lsn format.LSN, payload []byte) error {
		fmt.Printf("%d: %s\n", lsn, payload)
		return nil
	})
	fmt.Println(err)
	// Output:
	// 2: put b=2
	// 3: delete a
	// <nil>
}
