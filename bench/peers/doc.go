// Package peers compares cowdb with its peers, bbolt, badger and pebble,
// and with the raw device, on the key-value workloads of the library's own
// bench_test.go (issue 5): batched durable puts, random gets, and durable
// puts committed alone from 1 and from 64 goroutines; and on the blob
// workloads of its bench_blob_test.go: streaming ingest, random 4 KiB
// overwrites, durable 100-byte writes and cold 4 KiB reads. The peers,
// which have no blobs, store one as 64 KiB chunks under keys
// blob/<name>/<chunk index> and write into it by read-modify-write of the
// chunks a write touches (chunkBlobs).
//
// It owns the adapters that put each store behind one small interface
// (store for key-value pairs, blobStore for blobs), and the benchmarks; the
// figures and how to reproduce them are in docs/peers.md. It is a nested module with its own go.mod so that the
// library itself keeps its few dependencies: `go test ./...` at the
// repository root does not descend into it. It runs on Linux only: the raw
// floor needs O_DIRECT and fdatasync.
//
// Every store runs in its durable mode: a write has reached stable storage
// when the call returns (cowdb SyncAlways, bbolt's fsync per Update, badger
// SyncWrites, pebble.Sync), or, in the blob workloads, when the commit
// that follows it returns (where a workload commits every 16 writes,
// cowdb runs under SyncNever and commits with DB.Sync; the peers write
// their pending chunks in one batch, durable as above). The package must
// never trade that away for speed, or the comparison is meaningless.
//
// Concurrency: every key-value adapter is safe for concurrent use by many
// goroutines (the 64-goroutine workload needs it), because each store it
// wraps is. The blob adapters are used from one goroutine and are not:
// they keep open handles and pending chunks unguarded.
package peers
