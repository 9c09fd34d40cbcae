package main

import (
	"os"
	"strings"
	"testing"
)

// TestBench runs a very short bench in a temporary store, which it must
// remove, and in a user's store, which it must leave as it found it.
func TestBench(t *testing.T) {
	t.Parallel()
	tl := newTool(t)
	tmp := t.TempDir()
	out := tl.ok("bench", "-t", tmp, "--size", "1MiB", "--time", "10ms")
	for _, want := range []string{"a temporary store in " + tmp, "sequential write", "sequential read", "MiB/s",
		"random 4K write", "random 4K read", "ops/s", "put 100 B", "16 writers", "get 100 B"} {
		if !strings.Contains(out, want) {
			t.Errorf("bench output lacks %q:\n%s", want, out)
		}
	}
	if left, err := os.ReadDir(tmp); err != nil || len(left) != 0 {
		t.Errorf("bench left %v in its temporary directory (%v)", left, err)
	}

	tl.ok("put", "mine", "v")
	out = tl.ok("bench", "--store", "--size", "1MiB", "--time", "10ms")
	if !strings.Contains(out, "the store "+tl.dir) {
		t.Errorf("bench --store output:\n%s", out)
	}
	if got := lines(tl.ok("ls")); len(got) != 1 || got[0] != "mine" {
		t.Errorf("bench --store left keys behind: %q", got)
	}
}
