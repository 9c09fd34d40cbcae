package cowdb_test

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/cowdb/cowdb"
)

func TestBlobSmoke(t *testing.T) {
	dir := t.TempDir()
	db, err := cowdb.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := db.CreateBlob([]byte("b"))
	if err != nil {
		t.Fatal(err)
	}
	var model []byte
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 300; i++ {
		var off, n int64
		switch rng.IntN(4) {
		case 0:
			off, n = int64(rng.IntN(64))*4096, int64(rng.IntN(16)+1)*4096
		case 1:
			off, n = int64(rng.IntN(300000)), int64(rng.IntN(200)+1)
		case 2:
			off, n = int64(rng.IntN(300000)), int64(rng.IntN(200000)+1)
		case 3:
			sz := int64(rng.IntN(400000))
			if err := b.Truncate(sz); err != nil {
				t.Fatal(err)
			}
			if sz < int64(len(model)) {
				model = model[:sz]
			} else {
				model = append(model, make([]byte, sz-int64(len(model)))...)
			}
			continue
		}
		p := make([]byte, n)
		for j := range p {
			p[j] = byte(rng.Uint32())
		}
		if _, err := b.WriteAt(p, off); err != nil {
			t.Fatal(i, err)
		}
		if off+n > int64(len(model)) {
			model = append(model, make([]byte, off+n-int64(len(model)))...)
		}
		copy(model[off:], p)
		if i%37 == 0 {
			if err := db.Checkpoint(); err != nil {
				t.Fatal(err)
			}
		}
		got := make([]byte, len(model))
		nr, err := b.ReadAt(got, 0)
		if err != nil && err != io.EOF || nr != len(model) {
			t.Fatalf("step %d: read %d of %d: %v", i, nr, len(model), err)
		}
		if !bytes.Equal(got, model) {
			t.Fatalf("step %d: mismatch", i)
		}
		if b.Size() != int64(len(model)) {
			t.Fatalf("size %d want %d", b.Size(), len(model))
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = cowdb.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	v, err := db.Get([]byte("b"))
	if err != nil || !bytes.Equal(v, model) {
		t.Fatalf("after reopen: %v equal=%v", err, bytes.Equal(v, model))
	}
}
