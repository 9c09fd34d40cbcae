module github.com/cowdb/cowdb

go 1.26.0

require (
	github.com/cespare/xxhash/v2 v2.3.0
	github.com/dgraph-io/ristretto/v2 v2.4.2
	golang.org/x/sys v0.50.0
	pgregory.net/rapid v1.3.0
)

require github.com/dustin/go-humanize v1.0.1 // indirect
