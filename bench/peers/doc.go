// Package peers compares cowdb with its peers, bbolt, badger and pebble,
// and with the raw device, on the key-value workloads of the library's own
// bench_test.go (issue 5): batched durable puts, random gets, and durable
// puts committed alone from 1 and from 64 goroutines.
//
// It owns the adapters that put each store behind one small interface, and
// the benchmarks; the figures and how to reproduce them are in
// docs/peers.md. It is a nested module with its own go.mod so that the
// library itself keeps its few dependencies: `go test ./...` at the
// repository root does not descend into it. It runs on Linux only: the raw
// floor needs O_DIRECT and fdatasync.
//
// Every store runs in its durable mode: a write has reached stable storage
// when the call returns (cowdb SyncAlways, bbolt's fsync per Update, badger
// SyncWrites, pebble.Sync). The package must never trade that away for
// speed, or the comparison is meaningless.
//
// Concurrency: every adapter is safe for concurrent use by many goroutines
// (the 64-goroutine workload needs it), because each store it wraps is.
package peers
