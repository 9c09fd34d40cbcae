package snapshot_test

import (
	"fmt"

	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/snapshot"
)

func ExampleValidName() {
	fmt.Println(snapshot.ValidName("nightly-2024.06.01@db1"))
	fmt.Println(snapshot.ValidName("my snapshot"))
	// Output:
	// <nil>
	// cowdb/snapshot: invalid snapshot name: byte 0x20 at position 2 of "my snapshot" (letters, digits and "-_.:@" only)
}

func ExampleDecodeRecord() {
	b := snapshot.AppendRecord(nil, snapshot.Record{Kind: snapshot.RootSnapshot, Root: format.Ref{Block: 12, Sum: 0xfeed}, Created: 1})
	r, err := snapshot.DecodeRecord(b)
	fmt.Println(len(b), r.Kind, r.Root.Block, err)
	// Output:
	// 25 snapshot 12 <nil>
}
