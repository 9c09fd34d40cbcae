package cowdb

import (
	"bytes"
	"errors"
	"testing"

	"github.com/cowdb/cowdb/extents"
	"github.com/cowdb/cowdb/internal/format"
)

// FuzzDecodeRootRecord checks that the catalog's root record decoder never
// panics, reports damage as ErrCorrupt, and accepts only what re-encodes
// to the same bytes.
func FuzzDecodeRootRecord(f *testing.F) {
	f.Add(appendRootRecord(nil, rootLive, format.Ref{Block: 9, Sum: 77}, 1234))
	f.Add(appendRootRecord(nil, rootSnapshot, format.Ref{}, 0))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		kind, r, err := decodeRootRecord(b)
		if err != nil {
			if !errors.Is(err, format.ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		created := int64(0)
		if len(b) == rootRecordSize {
			created = int64(uint64(b[17]) | uint64(b[18])<<8 | uint64(b[19])<<16 | uint64(b[20])<<24 |
				uint64(b[21])<<32 | uint64(b[22])<<40 | uint64(b[23])<<48 | uint64(b[24])<<56)
		}
		if !bytes.Equal(appendRootRecord(nil, kind, r, created), b) {
			t.Fatalf("%x does not re-encode", b)
		}
	})
}

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
