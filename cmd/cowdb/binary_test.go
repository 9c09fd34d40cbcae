package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBinary builds the tool and runs it as a user would, through
// $COWDB_DIR and pipes, checking output and exit statuses: 0, 1 for a
// missing key, 2 for a usage error.
//
// It does not run in parallel with the other tests: a process forked while
// another goroutine closes a store holds the store's lock until it execs
// (the flock belongs to the open file, which the child shares), so a
// command run right after would find the store locked.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	exe := filepath.Join(t.TempDir(), "cowdb")
	if out, err := exec.Command("go", "build", "-o", exe, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	store := filepath.Join(t.TempDir(), "store")
	cowdb := func(stdin string, args ...string) (stdout, stderr string, code int) {
		t.Helper()
		cmd := exec.Command(exe, args...)
		cmd.Env = append(os.Environ(), "COWDB_DIR="+store)
		cmd.Stdin = strings.NewReader(stdin)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &ee):
			code = ee.ExitCode()
		default:
			t.Fatalf("run %v: %v", args, err)
		}
		return out.String(), errb.String(), code
	}

	if _, stderr, code := cowdb("piped value", "put", "k", "-"); code != 0 {
		t.Fatalf("put k -: exit %d: %s", code, stderr)
	}
	if out, _, code := cowdb("", "get", "k"); code != 0 || out != "piped value" {
		t.Errorf("get k: exit %d, %q", code, out)
	}
	if out, _, code := cowdb("", "ls", "-l"); code != 0 || !strings.Contains(out, "11 B  k") {
		t.Errorf("ls -l: exit %d, %q", code, out)
	}
	if out, _, code := cowdb("", "check"); code != 0 || !strings.Contains(out, "consistent") {
		t.Errorf("check: exit %d, %q", code, out)
	}
	if _, stderr, code := cowdb("", "get", "x"); code != 1 || stderr != "cowdb: key \"x\" not found\n" {
		t.Errorf("get x: exit %d, stderr %q", code, stderr)
	}
	if _, stderr, code := cowdb("", "frobnicate"); code != 2 || !strings.Contains(stderr, `unknown command "frobnicate"`) {
		t.Errorf("frobnicate: exit %d, stderr %q", code, stderr)
	}
	if out, _, code := cowdb("", "--help"); code != 0 || !strings.Contains(out, "Usage:") {
		t.Errorf("--help: exit %d", code)
	}
}
