package format_test

import (
	"bytes"
	"testing"

	"github.com/cowdb/cowdb/internal/format"
	"pgregory.net/rapid"
)

// TestBlobKeyKeyRoundTrip checks that blob index keys round-trip, sort by
// inode ID, and sort below every inode and extent key, which a diff that
// meets a tree's changes in key order relies on.
func TestBlobKeyKeyRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		id := format.InodeID(rapid.Uint64Min(1).Draw(t, "id"))
		other := format.InodeID(rapid.Uint64Min(1).Draw(t, "other"))
		k := format.BlobKeyKey([]byte("pre"), id)[3:]
		if len(k) != format.BlobKeyKeySize {
			t.Fatalf("key %x is %d bytes, want %d", k, len(k), format.BlobKeyKeySize)
		}
		got, ok := format.ParseBlobKeyKey(k)
		if !ok || got != id {
			t.Fatalf("blob key round trip of %d: %d %v", id, got, ok)
		}
		if c := bytes.Compare(k, format.BlobKeyKey(nil, other)); c != cmpID(id, other) {
			t.Fatalf("keys of %d and %d compare %d", id, other, c)
		}
		user := rapid.SliceOfN(rapid.Byte(), 1, 64).Draw(t, "user")
		if bytes.Compare(k, format.InodeKey(nil, user)) >= 0 || bytes.Compare(k, format.ExtentKey(nil, other, 0)) >= 0 {
			t.Fatalf("blob key %x does not sort below inode and extent keys", k)
		}
	})
}

func cmpID(a, b format.InodeID) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TestParseBlobKeyKeyRejects checks that keys of another shape are refused.
func TestParseBlobKeyKeyRejects(t *testing.T) {
	good := format.BlobKeyKey(nil, 7)
	for name, k := range map[string][]byte{
		"empty":   nil,
		"short":   good[:8],
		"long":    append(bytes.Clone(good), 0),
		"prefix":  append([]byte{format.KeyPrefixInode}, good[1:]...),
		"extent":  format.ExtentKey(nil, 7, 0),
		"zero id": format.BlobKeyKey(nil, 0),
	} {
		if id, ok := format.ParseBlobKeyKey(k); ok {
			t.Errorf("%s: %x parsed as inode %d", name, k, id)
		}
	}
}
