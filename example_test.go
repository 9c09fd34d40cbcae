package cowdb_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/cowdb/cowdb"
)

// Example opens a store in a fresh directory, writes, reads, scans and
// closes it.
func Example() {
	dir, err := os.MkdirTemp("", "cowdb-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	db, err := cowdb.Open(filepath.Join(dir, "store"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	if err := db.Put([]byte("greeting"), []byte("hello, world")); err != nil {
		log.Fatal(err)
	}
	v, err := db.Get([]byte("greeting"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", v)

	if _, err := db.Get([]byte("missing")); err == cowdb.ErrNotFound {
		fmt.Println("missing: not found")
	}
	// Output:
	// hello, world
	// missing: not found
}

// ExampleDB_Update moves an amount between two accounts atomically: both
// writes are applied, durably, or neither is.
func ExampleDB_Update() {
	dir, _ := os.MkdirTemp("", "cowdb-example")
	defer os.RemoveAll(dir)
	db, err := cowdb.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	db.Put([]byte("alice"), []byte("10"))
	db.Put([]byte("bob"), []byte("5"))

	err = db.Update(func(tx *cowdb.Tx) error {
		if err := tx.Put([]byte("alice"), []byte("7")); err != nil {
			return err
		}
		return tx.Put([]byte("bob"), []byte("8"))
	})
	if err != nil {
		log.Fatal(err)
	}
	for it, err := range db.Scan(nil, nil) {
		if err != nil {
			log.Fatal(err)
		}
		v, _ := it.Value()
		fmt.Printf("%s=%s\n", it.Key, v)
	}
	// Output:
	// alice=7
	// bob=8
}

// ExampleDB_Prefix lists the keys under a prefix with their sizes, without
// reading the values.
func ExampleDB_Prefix() {
	dir, _ := os.MkdirTemp("", "cowdb-example")
	defer os.RemoveAll(dir)
	db, err := cowdb.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	db.Put([]byte("img/a.png"), make([]byte, 20000)) // stored in extents
	db.Put([]byte("img/b.png"), make([]byte, 300))   // stored inline
	db.Put([]byte("txt/c.txt"), []byte("hi"))

	for it, err := range db.Prefix([]byte("img/")) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(string(it.Key), it.Size)
	}
	// Output:
	// img/a.png 20000
	// img/b.png 300
}
