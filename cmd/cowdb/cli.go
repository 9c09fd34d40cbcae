package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/cowdb/cowdb"
)

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// env is what a command runs with: its streams, its environment and the
// global flags. Tests build one over buffers and call run in-process.
type env struct {
	ctx            context.Context // canceled on interrupt
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// terminal says stderr is a terminal, where progress bars are drawn.
	terminal bool

	// Global flags: the store directory (-d, else $COWDB_DIR) and -q.
	dir   string
	quiet bool

	// putInMemoryMax, if set, replaces the constant of that name (tests
	// stream small values through blobs with it).
	putInMemoryMax int64
	// stoppable is set by long commands that check ctx between two
	// values: an interrupt cancels ctx instead of ending the process.
	stoppable atomic.Bool
	// options, if set, adjusts the options of every Open (tests make
	// stores small with it).
	options func(*cowdb.Options)
}

// command is one command of the tool, or one subcommand of a group
// ("snapshot create").
type command struct {
	name    string // as typed: "put", "snapshot create"
	args    string // the synopsis after the name
	summary string // one line for the command list
	help    string // what it does, in a few sentences
	run     func(e *env, c *command, args []string) error
}

// storeCommands look after the store as a whole.
var storeCommands = []*command{statCommand, checkCommand, scrubCommand, benchCommand}

// commands are the tool's commands in the order the help lists them; the
// snapshot group is dispatched by runSnapshot.
var commands = slices.Concat(valueCommands, transferCommands, []*command{snapshotGroup}, storeCommands)

// errHelp is returned by a command whose --help was asked for: its help
// has been printed and the exit status is 0.
var errHelp = errors.New("help requested")

// usageError is a command line that does not make sense: exit status 2.
type usageError struct {
	cmd string // the command, for the "--help" hint; "" for the tool
	msg string
}

func (e *usageError) Error() string { return e.msg }

func usagef(c *command, format string, args ...any) error {
	name := ""
	if c != nil {
		name = c.name
	}
	return &usageError{cmd: name, msg: fmt.Sprintf(format, args...)}
}

// run runs the command line args (without the program name) and returns
// the exit status. Errors go to e.stderr as "cowdb: message".
func run(e *env, args []string) int {
	if e.ctx == nil {
		e.ctx = context.Background()
	}
	if e.getenv == nil {
		e.getenv = func(string) string { return "" }
	}
	err := dispatch(e, args)
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, errHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(e.stderr, "cowdb: %s\n", ue.msg)
		if ue.cmd != "" {
			fmt.Fprintf(e.stderr, "Run 'cowdb %s --help' for usage.\n", ue.cmd)
		} else {
			fmt.Fprintln(e.stderr, "Run 'cowdb --help' for usage.")
		}
		return exitUsage
	default:
		fmt.Fprintf(e.stderr, "cowdb: %s\n", message(err))
		return exitError
	}
}

// dispatch parses the global flags and runs the command they are followed
// by.
func dispatch(e *env, args []string) error {
	fs := flag.NewFlagSet("cowdb", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	addGlobalFlags(e, fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printToolHelp(e.stdout)
			return errHelp
		}
		return usagef(nil, "%v", err)
	}
	args = fs.Args()
	if len(args) == 0 {
		printToolHelp(e.stderr)
		return &usageError{msg: "no command given"}
	}
	name, rest := args[0], args[1:]
	if name == "help" {
		return runHelp(e, rest)
	}
	c := findCommand(name)
	if c == nil {
		return usagef(nil, "unknown command %q", name)
	}
	return c.run(e, c, rest)
}

func findCommand(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// runHelp is "cowdb help [COMMAND [SUBCOMMAND]]".
func runHelp(e *env, args []string) error {
	if len(args) == 0 {
		printToolHelp(e.stdout)
		return nil
	}
	c := findCommand(args[0])
	if c == nil {
		return usagef(nil, "unknown command %q", args[0])
	}
	if c == snapshotGroup && len(args) > 1 {
		if c = findSnapshotCommand(args[1]); c == nil {
			return usagef(snapshotGroup, "unknown snapshot command %q", args[1])
		}
	}
	return c.run(e, c, []string{"--help"})
}

func addGlobalFlags(e *env, fs *flag.FlagSet) {
	fs.StringVar(&e.dir, "d", e.dir, "the store directory `DIR` (default $COWDB_DIR)")
	fs.BoolVar(&e.quiet, "q", e.quiet, "quiet: no progress bars or summaries")
}

const toolHelp = `cowdb reads and writes a cowdb store: an embedded key-value and blob store
with copy-on-write snapshots.

Usage:
  cowdb [-d DIR] [-q] COMMAND [ARGS]

The store is the directory DIR, or $COWDB_DIR.

Commands:
`

const toolHelpEnd = `
Global flags (also accepted after the command):
  -d DIR   the store directory (default $COWDB_DIR)
  -q       quiet: no progress bars or summaries

Run 'cowdb COMMAND --help' for a command's flags and details.
Exit status: 0 on success, 1 on error, 2 on a usage error.
`

func printToolHelp(w io.Writer) {
	io.WriteString(w, toolHelp)
	list := slices.Concat(valueCommands, transferCommands, snapshotCommands, storeCommands)
	const width = 30 // a longer synopsis puts its summary on the next line
	for _, c := range list {
		if syn := c.name + " " + c.args; len(syn) <= width {
			fmt.Fprintf(w, "  %-*s  %s\n", width, syn, c.summary)
		} else {
			fmt.Fprintf(w, "  %s\n  %-*s  %s\n", syn, width, "", c.summary)
		}
	}
	io.WriteString(w, toolHelpEnd)
}

// flagSet returns the flag set of command c, with the global flags on it
// so that they may also follow the command. Its usage text is c's help.
func flagSet(e *env, c *command) *flag.FlagSet {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	addGlobalFlags(e, fs)
	return fs
}

// parse parses args against fs, flags and operands interleaved as people
// type them ("ls PREFIX -l"); "--" ends the flags. It returns the operands,
// errHelp after printing c's help for -h or --help, or a usage error.
func parse(e *env, c *command, fs *flag.FlagSet, args []string) ([]string, error) {
	var operands []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				printCommandHelp(e.stdout, c, fs)
				return nil, errHelp
			}
			return nil, usagef(c, "%s: %v", c.name, err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return operands, nil
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(operands, rest...), nil
		}
		operands = append(operands, rest[0])
		args = rest[1:]
	}
}

// operands checks that a command got between lo and hi operands.
func operands(c *command, args []string, lo, hi int) error {
	switch {
	case len(args) < lo:
		return usagef(c, "%s: missing arguments (usage: cowdb %s %s)", c.name, c.name, c.args)
	case len(args) > hi:
		return usagef(c, "%s: too many arguments (usage: cowdb %s %s)", c.name, c.name, c.args)
	}
	return nil
}

func printCommandHelp(w io.Writer, c *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: cowdb %s %s\n\n%s\n", c.name, c.args, strings.TrimSpace(c.help))
	fmt.Fprintln(w, "\nFlags:")
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}
