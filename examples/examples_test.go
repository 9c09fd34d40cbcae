// Package examples holds cowdb's runnable example programs, one per
// directory, each run as go run ./examples/NAME. This test builds and runs
// every one of them, so an example that stops compiling or whose own checks
// fail breaks the build.
package examples_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestExamplesRun builds each example into a temporary directory, runs it,
// and requires a zero exit status and the "all checks passed" line every
// example prints last.
func TestExamplesRun(t *testing.T) {
	dirs, err := filepath.Glob("*/main.go")
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) == 0 {
		t.Fatal("no examples found")
	}
	bin := t.TempDir()
	for _, main := range dirs {
		name := filepath.Dir(main)
		t.Run(name, func(t *testing.T) {
			exe := filepath.Join(bin, name)
			build := exec.Command("go", "build", "-o", exe, "./"+name)
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("go build ./examples/%s: %v\n%s", name, err, out)
			}
			run := exec.Command(exe)
			run.Env = append(os.Environ(), "TMPDIR="+t.TempDir())
			out, err := run.CombinedOutput()
			if err != nil {
				t.Fatalf("examples/%s: %v\n%s", name, err, out)
			}
			if !strings.Contains(string(out), "all checks passed") {
				t.Fatalf("examples/%s did not report its checks passing:\n%s", name, out)
			}
		})
	}
}
