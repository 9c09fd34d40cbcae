package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// damageBlock overwrites, in the store's data file, the first 4 KiB block
// that holds block (a block of some value, which must be unique in the
// file) with other bytes, as a failing disk would.
func damageBlock(t *testing.T, dir string, block []byte) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, dataFile), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4<<20)
	for off := int64(0); ; off += int64(len(buf)) {
		n, err := f.ReadAt(buf, off)
		for i := 0; i+len(block) <= n; i += 4096 {
			if bytes.Equal(buf[i:i+len(block)], block) {
				bad := bytes.Repeat([]byte{0xA5}, len(block))
				if _, err := f.WriteAt(bad, off+int64(i)); err != nil {
					t.Fatal(err)
				}
				return
			}
		}
		if err == io.EOF {
			t.Fatal("the block to damage is not in the data file")
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestCheckAndScrubClean checks a store with values, a clone and a
// snapshot: check and scrub (also --all) find nothing and exit with 0.
func TestCheckAndScrubClean(t *testing.T) {
	t.Parallel()
	tl := newTool(t)
	tl.fails(exitError, "no store in", "check")
	tl.fails(exitError, "no store in", "check", "--offline")
	tl.fails(exitError, "no store in", "scrub")
	tl.ok("put", "small", "s")
	tl.ok("put", "big", string(randomBytes(200<<10, 9)))
	tl.ok("snapshot", "create", "s")
	tl.ok("clone", "big", "big2")
	if out := tl.ok("check"); !strings.Contains(out, "store is consistent") {
		t.Errorf("check: %q", out)
	}
	if out := tl.ok("check", "--offline"); !strings.Contains(out, "store is consistent") {
		t.Errorf("check --offline: %q", out)
	}
	if out := tl.ok("scrub"); !strings.Contains(out, "scrubbed 3 values") || !strings.Contains(out, "0 unreadable") {
		t.Errorf("scrub: %q", out)
	}
	if out := tl.ok("scrub", "--all"); !strings.Contains(out, "scrubbed 5 values") {
		t.Errorf("scrub --all: %q", out)
	}
}

// TestCheckAndScrubDamaged damages one data block of a value on disk and
// requires check to list the violation and scrub to name the key, both
// with exit status 1.
func TestCheckAndScrubDamaged(t *testing.T) {
	t.Parallel()
	tl := newTool(t)
	data := randomBytes(64<<10, 10)
	tl.ok("put", "fine", string(randomBytes(64<<10, 11)))
	tl.ok("put", "victim", string(data))
	damageBlock(t, tl.dir, data[8192:12288])

	r := tl.fails(exitError, "store is damaged: 1 violation found", "check")
	if !strings.Contains(r.stdout, "checksum") {
		t.Errorf("check does not list a checksum violation:\n%s", r.stdout)
	}
	r = tl.fails(exitError, "store is damaged", "check", "--offline")
	if !strings.Contains(r.stdout, "checksum") {
		t.Errorf("check --offline does not list a checksum violation:\n%s", r.stdout)
	}
	r = tl.fails(exitError, "scrub found 1 unreadable value", "scrub")
	if !strings.Contains(r.stderr, `key "victim"`) || strings.Contains(r.stderr, `"fine"`) {
		t.Errorf("scrub does not name the damaged key (only):\n%s", r.stderr)
	}
	if !strings.Contains(r.stdout, "scrubbed 2 values") {
		t.Errorf("scrub summary: %q", r.stdout)
	}
	tl.fails(exitError, "store is damaged", "get", "victim")
	if got := tl.ok("get", "fine"); len(got) != 64<<10 {
		t.Errorf("the undamaged value reads %d bytes", len(got))
	}
}

// TestCheckUnopenable damages both superblock copies: the store no longer
// opens, and check falls back to checking it offline, which reports the
// superblock, with exit status 1.
func TestCheckUnopenable(t *testing.T) {
	t.Parallel()
	tl := newTool(t)
	tl.ok("put", "k", "v")
	f, err := os.OpenFile(filepath.Join(tl.dir, dataFile), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, 2*4096), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	r := tl.fails(exitError, "store is damaged", "check")
	if !strings.Contains(r.stderr, "checking its last checkpoint offline") || !strings.Contains(r.stdout, "superblock") {
		t.Errorf("check of a store that does not open: %+v", r)
	}
	tl.fails(exitError, "is damaged", "get", "k")
}
