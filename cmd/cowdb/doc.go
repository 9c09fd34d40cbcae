// Command cowdb is the command-line tool of cowdb: it reads and writes the
// values of a store, moves files in and out of it, manages its snapshots,
// and checks, scrubs and measures it.
//
//	cowdb [-d DIR] [-q] COMMAND [ARGS]
//
// The store is the directory given by -d, or else by $COWDB_DIR. Commands
// that only read (get, cat, ls, export, stat, scrub, snapshot ls and diff)
// open it read-only, so several of them can run at once; the others take it
// exclusively, and fail at once with "store ... is locked by another
// process" while anyone else has it open. Only put and import create a
// store that does not exist yet.
//
// Commands:
//
//	put KEY [VALUE | -f FILE | -]   store a value
//	get KEY [-o FILE]               write one value to standard output or FILE
//	cat KEY...                      stream values to standard output
//	rm KEY...                       delete keys
//	ls [PREFIX] [-l]                list keys (and sizes)
//	clone SRC DST [--from SNAP]     copy a value by sharing its blocks
//	import SRC [PREFIX]             store a file or a directory tree
//	export [PREFIX] DEST            write keys back as files
//	snapshot create|ls|rm|restore|diff
//	stat                            space, snapshots, log and cache figures
//	check                           verify every invariant (fsck)
//	scrub                           read every value, verifying its data
//	bench                           a quick self-benchmark
//
// Every command takes --help. The exit status is 0 on success, 1 when the
// command failed (a missing key, a damaged store, a file that could not be
// read), and 2 for a usage error (an unknown command or flag, missing
// arguments, no store directory).
//
// Long work (import, export, check, scrub, bench) draws a progress bar with
// its rate and the time left on standard error when that is a terminal, and
// nothing otherwise or with -q. The bar is github.com/schollz/progressbar/v3
// and human-readable sizes come from github.com/dustin/go-humanize: both are
// small, widely used and well kept, so the tool does not grow its own.
//
// The commands are functions of their arguments and of an env holding the
// standard streams, so the tests run them in-process; main only wires the
// process to run.
package main
