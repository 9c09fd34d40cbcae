package format_test

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/cowdb/cowdb/internal/format"
)

// TestKindsAreDistinctCorruption checks that every damage sentinel is
// ErrCorrupt, is not any other sentinel, and carries the package prefix.
func TestKindsAreDistinctCorruption(t *testing.T) {
	for name, k := range damageKinds {
		if !errors.Is(k, format.ErrCorrupt) {
			t.Errorf("%s is not ErrCorrupt", name)
		}
		for other, o := range damageKinds {
			if other != name && errors.Is(k, o) {
				t.Errorf("%s is %s", name, other)
			}
		}
		if msg := k.Error(); len(msg) < 14 || msg[:13] != "cowdb/format:" {
			t.Errorf("%s message %q lacks the package prefix", name, msg)
		}
	}
}

// TestCorruptErrorFormatAndLocate checks the message of a CorruptError and
// that Locate moves it to a new place without losing its kind, leaves the
// original alone, wraps foreign errors, and keeps nil nil.
func TestCorruptErrorFormatAndLocate(t *testing.T) {
	err := format.Corruptf("superblock", format.ErrBadChecksum, "stored %#x", 5)
	if got, want := err.Error(), "superblock: cowdb/format: checksum mismatch (stored 0x5)"; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	moved := format.Locate(fmt.Errorf("reading: %w", err), "superblock copy 1")
	requireDamage(t, moved, format.ErrBadChecksum, "superblock copy 1")
	requireDamage(t, err, format.ErrBadChecksum, "superblock")
	noDetail := &format.CorruptError{Err: format.ErrBadMagic}
	if got := noDetail.Error(); got != "cowdb/format: bad magic number" {
		t.Errorf("message without place or detail: %q", got)
	}
	wrapped := format.Locate(io.ErrUnexpectedEOF, "AG 2 bitmap copy 0")
	var ce *format.CorruptError
	if !errors.As(wrapped, &ce) || ce.Where != "AG 2 bitmap copy 0" || !errors.Is(wrapped, io.ErrUnexpectedEOF) {
		t.Errorf("Locate of a plain error gave %v", wrapped)
	}
	if format.Locate(nil, "x") != nil {
		t.Errorf("Locate(nil) is not nil")
	}
}
