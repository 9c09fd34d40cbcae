package cowdb

import (
	"bytes"
	"errors"
	"testing"

	"github.com/cowdb/cowdb/extents"
	"github.com/cowdb/cowdb/internal/format"
)

// FuzzDecodeRefcount checks the refcount tree entry decoder the same way.
func FuzzDecodeRefcount(f *testing.F) {
	k, v := refcountEntry(extents.Record{Start: 100, Len: 5, Count: 3})
	f.Add(k, v)
	f.Add([]byte{1}, []byte{})
	f.Fuzz(func(t *testing.T, k, v []byte) {
		r, err := decodeRefcount(k, v)
		if err != nil {
			if !errors.Is(err, format.ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		k2, v2 := refcountEntry(r)
		if !bytes.Equal(k, k2) || !bytes.Equal(v, v2) {
			t.Fatalf("%x %x does not re-encode", k, v)
		}
	})
}
