package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	e := &env{
		ctx:      ctx,
		stdin:    os.Stdin,
		stdout:   os.Stdout,
		stderr:   os.Stderr,
		getenv:   os.Getenv,
		terminal: isTerminal(os.Stderr),
	}
	// An interrupt ends a short command at once, as it would without a
	// handler: the store is crash-safe. Long commands that stop between
	// two values (e.stoppable) get one chance to stop and close the store
	// cleanly; a second interrupt ends them at once.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		if !e.stoppable.Load() {
			os.Exit(128 + int(sig.(syscall.Signal)))
		}
		signal.Stop(sigs)
		fmt.Fprintln(os.Stderr, "\ncowdb: interrupted: stopping after the current value (interrupt again to quit at once)")
		cancel()
	}()
	os.Exit(run(e, os.Args[1:]))
}

// isTerminal reports whether f is a character device, which is what a
// terminal is; a pipe or a file is not.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
