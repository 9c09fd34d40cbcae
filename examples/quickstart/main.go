// Command quickstart shows cowdb's key-value API in a temporary directory:
// it opens a store, writes small and large values, reads them back, runs a
// transaction, scans, closes and reopens the store, and checks every
// result, printing what it does. It exits non-zero if anything is wrong.
//
//	go run ./examples/quickstart
package main

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/cowdb/cowdb"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart failed:", err)
		os.Exit(1)
	}
	fmt.Println("all checks passed")
}

func run() error {
	tmp, err := os.MkdirTemp("", "cowdb-quickstart")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "store")
	// Small allocation groups keep the demo's files small.
	opts := &cowdb.Options{GroupSize: 8 << 20, WALSegmentSize: 4 << 20,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}

	db, err := cowdb.Open(dir, opts)
	if err != nil {
		return err
	}
	fmt.Println("opened a new store in", dir)

	if err := db.Put([]byte("greeting"), []byte("hello, cowdb")); err != nil {
		return err
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB: stored in extents
	if err := db.Put([]byte("big"), big); err != nil {
		return err
	}
	fmt.Printf("put a %d-byte value and a %d-byte value (durable on return)\n", len("hello, cowdb"), len(big))

	err = db.Update(func(tx *cowdb.Tx) error {
		for i := range 3 {
			if err := tx.Put(fmt.Appendf(nil, "item/%d", i), fmt.Appendf(nil, "value %d", i)); err != nil {
				return err
			}
		}
		return tx.Delete([]byte("greeting"))
	})
	if err != nil {
		return err
	}
	fmt.Println("committed a transaction: 3 puts and a delete, atomically")

	if _, err := db.Get([]byte("greeting")); !errors.Is(err, cowdb.ErrNotFound) {
		return fmt.Errorf("deleted key: got %v, want ErrNotFound", err)
	}
	if err := db.Close(); err != nil {
		return err
	}
	fmt.Println("closed the store (a checkpoint was written)")

	db, err = cowdb.Open(dir, opts)
	if err != nil {
		return err
	}
	defer db.Close()
	fmt.Println("reopened it; scanning:")
	n := 0
	for it, err := range db.Scan(nil, nil) {
		if err != nil {
			return err
		}
		fmt.Printf("  %-8s %8d bytes\n", it.Key, it.Size)
		n++
	}
	if n != 4 {
		return fmt.Errorf("scan found %d keys, want 4", n)
	}
	got, err := db.Get([]byte("big"))
	if err != nil {
		return err
	}
	if !bytes.Equal(got, big) {
		return errors.New("the large value did not read back byte for byte")
	}
	fmt.Println("the large value reads back byte for byte")
	st := db.Stats()
	fmt.Printf("stats: %d of %d blocks free, %d log records since open\n", st.FreeBlocks, st.TotalBlocks, st.WALRecords)
	return db.Close()
}
