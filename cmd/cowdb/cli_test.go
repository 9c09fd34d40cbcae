package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cowdb/cowdb"
)

// result is what one in-process run of the tool gave.
type result struct {
	code           int
	stdout, stderr string
}

// tool runs command lines in-process against one store, the way a shell
// would run the binary.
type tool struct {
	t   *testing.T
	dir string
	// env settings for every run
	terminal       bool
	putInMemoryMax int64
	ctx            context.Context
}

// newTool returns a tool over a new (not yet created) store in a
// temporary directory.
func newTool(t *testing.T) *tool {
	t.Helper()
	return &tool{t: t, dir: filepath.Join(t.TempDir(), "store")}
}

// runIn runs args with stdin, the store given by $COWDB_DIR.
func (tl *tool) runIn(stdin string, args ...string) result {
	tl.t.Helper()
	var out, errb bytes.Buffer
	e := &env{
		ctx:            tl.ctx,
		stdin:          strings.NewReader(stdin),
		stdout:         &out,
		stderr:         &errb,
		getenv:         func(k string) string { return map[string]string{"COWDB_DIR": tl.dir}[k] },
		terminal:       tl.terminal,
		putInMemoryMax: tl.putInMemoryMax,
		options:        smallStore,
	}
	code := run(e, args)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

func (tl *tool) run(args ...string) result {
	tl.t.Helper()
	return tl.runIn("", args...)
}

// ok runs args, requires exit status 0 and returns stdout.
func (tl *tool) ok(args ...string) string {
	tl.t.Helper()
	r := tl.run(args...)
	if r.code != exitOK {
		tl.t.Fatalf("cowdb %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// fails runs args and requires exit status code and an error message on
// stderr containing want.
func (tl *tool) fails(code int, want string, args ...string) result {
	tl.t.Helper()
	r := tl.run(args...)
	if r.code != code {
		tl.t.Fatalf("cowdb %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, want) {
		tl.t.Fatalf("cowdb %s: stderr %q does not contain %q", strings.Join(args, " "), r.stderr, want)
	}
	return r
}

// smallStore makes the tests' stores small: their files are created and
// opened in every run.
func smallStore(o *cowdb.Options) {
	o.GroupSize = 8 << 20
	o.WALSegmentSize = 4 << 20
}

// lines splits output into its lines.
func lines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// TestUsageErrors checks that command lines that make no sense exit with
// status 2 and say what is wrong, and that help exits with 0.
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	tl := newTool(t)
	tl.ok("put", "k", "v") // a store, so that errors are about usage only
	cases := []struct {
		args []string
		want string
	}{
		{nil, "no command given"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"-z", "ls"}, "flag provided but not defined: -z"},
		{[]string{"ls", "-z"}, "ls: flag provided but not defined: -z"},
		{[]string{"ls", "a", "b"}, "ls: too many arguments"},
		{[]string{"put"}, "put: missing arguments"},
		{[]string{"put", "k"}, "give one of VALUE, -f FILE"},
		{[]string{"put", "k", "v", "-f", "x"}, "give one of VALUE, -f FILE"},
		{[]string{"get"}, "get: missing arguments"},
		{[]string{"cat"}, "cat: missing arguments"},
		{[]string{"rm"}, "rm: missing arguments"},
		{[]string{"clone", "a"}, "clone: missing arguments"},
		{[]string{"import"}, "import: missing arguments"},
		{[]string{"export", "a", "b", "c"}, "export: too many arguments"},
		{[]string{"snapshot"}, "missing subcommand"},
		{[]string{"snapshot", "frob"}, `unknown subcommand "frob"`},
		{[]string{"snapshot", "create"}, "snapshot create: missing arguments"},
		{[]string{"snapshot", "diff"}, "snapshot diff: missing arguments"},
		{[]string{"snapshot", "ls", "x"}, "snapshot ls: too many arguments"},
		{[]string{"stat", "x"}, "stat: too many arguments"},
		{[]string{"check", "--max", "x"}, "invalid value"},
		{[]string{"bench", "--size", "lots"}, "--size"},
		{[]string{"bench", "--time", "-1s"}, "--time must be positive"},
		{[]string{"help", "frob"}, `unknown command "frob"`},
	}
	for _, c := range cases {
		r := tl.fails(exitUsage, c.want, c.args...)
		if !strings.Contains(r.stderr, "--help' for usage") {
			t.Errorf("cowdb %v: no hint to --help in %q", c.args, r.stderr)
		}
	}
	// No store directory at all is a usage error too.
	var out, errb bytes.Buffer
	if code := run(&env{stdout: &out, stderr: &errb}, []string{"ls"}); code != exitUsage ||
		!strings.Contains(errb.String(), "give -d DIR or set COWDB_DIR") {
		t.Fatalf("ls without a store: exit %d, stderr %q", code, errb.String())
	}
}

// TestHelp checks that every command and the tool answer --help with their
// usage on stdout and exit status 0.
func TestHelp(t *testing.T) {
	t.Parallel()
	tl := newTool(t)
	out := tl.ok("--help")
	for _, c := range append(append([]*command{}, commands...), snapshotCommands...) {
		if c != snapshotGroup && !strings.Contains(out, "  "+c.name+" ") {
			t.Errorf("cowdb --help does not list %q", c.name)
		}
		args := append(strings.Fields(c.name), "--help")
		help := tl.ok(args...)
		if !strings.Contains(help, "Usage: cowdb "+c.name) {
			t.Errorf("cowdb %s --help:\n%s", c.name, help)
		}
		if help2 := tl.ok(append([]string{"help"}, strings.Fields(c.name)...)...); help2 != help {
			t.Errorf("cowdb help %s differs from cowdb %s --help", c.name, c.name)
		}
	}
	if out := tl.ok("help"); !strings.Contains(out, "Commands:") {
		t.Errorf("cowdb help:\n%s", out)
	}
	if got := tl.ok("put", "-h"); !strings.Contains(got, "-f FILE") {
		t.Errorf("cowdb put -h does not describe -f:\n%s", got)
	}
}

// TestStoreDirFromFlagOrEnv checks that -d wins over $COWDB_DIR, before or
// after the command.
func TestStoreDirFromFlagOrEnv(t *testing.T) {
	t.Parallel()
	tl := newTool(t)
	other := filepath.Join(t.TempDir(), "other")
	tl.ok("put", "where", "env")
	tl.ok("-d", other, "put", "where", "flag")
	if got := tl.ok("get", "where"); got != "env" {
		t.Errorf("get from $COWDB_DIR = %q", got)
	}
	if got := tl.ok("-d", other, "get", "where"); got != "flag" {
		t.Errorf("get -d before the command = %q", got)
	}
	if got := tl.ok("get", "where", "-d", other); got != "flag" {
		t.Errorf("get -d after the command = %q", got)
	}
}

// TestShowKey checks that ls prints printable keys as they are and quotes
// the rest, so every key is one line.
func TestShowKey(t *testing.T) {
	t.Parallel()
	for key, want := range map[string]string{
		"a/b.txt":     "a/b.txt",
		"héllo wörld": "héllo wörld",
		"two\nlines":  `"two\nlines"`,
		" padded":     `" padded"`,
		"\x00bin":     `"\x00bin"`,
		"\xff":        `"\xff"`,
		`"quoted"`:    `"\"quoted\""`,
	} {
		if got := showKey([]byte(key)); got != want {
			t.Errorf("showKey(%q) = %s, want %s", key, got, want)
		}
	}
}
