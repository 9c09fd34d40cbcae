package vfs_test

import (
	"errors"
	"fmt"

	"github.com/cowdb/cowdb/vfs"
)

// A crash test in miniature: what was synced, and whose directory entry was
// synced, survives the power loss; the rest may not.
func ExampleMemFS_Crash() {
	fs := vfs.NewMem()
	f, _ := fs.OpenFile("/log", vfs.Create)
	f.WriteAt([]byte("committed"), 0)
	f.Datasync()    // the bytes and the size are durable
	fs.SyncDir("/") // and so is the name
	g, _ := fs.OpenFile("/tmp", vfs.Create)
	g.WriteAt([]byte("scratch"), 0)
	g.Datasync() // durable bytes, but the name was never synced

	fs.Crash(42)
	names, _ := fs.ReadDir("/")
	fmt.Println(names)
	h, _ := fs.OpenFile("/log", 0)
	buf := make([]byte, 9)
	h.ReadAt(buf, 0)
	fmt.Println(string(buf))
	_, err := f.WriteAt([]byte("x"), 0)
	fmt.Println(errors.Is(err, vfs.ErrClosed))
	// Output:
	// [log]
	// committed
	// true
}

// Failing the second write with ENOSPC, once.
func ExampleFault() {
	fs := vfs.WithErrors(vfs.NewMem(), &vfs.Fault{Kind: vfs.OpWrite, Index: 2, Err: vfs.ErrNoSpace})
	f, _ := fs.OpenFile("/data", vfs.Create)
	for i := range 3 {
		_, err := f.WriteAt([]byte("x"), int64(i))
		fmt.Println(i, errors.Is(err, vfs.ErrNoSpace))
	}
	fmt.Println(fs.Injected(), fs.Count(vfs.OpWrite))
	// Output:
	// 0 false
	// 1 true
	// 2 false
	// 1 3
}

// DirectIOAuto on a file system that refuses direct I/O, as tmpfs did
// before Linux 6.6: the file is opened buffered and the caller is told.
func ExampleOpenDirect() {
	fs := vfs.NewMem()
	fs.SetDirectSupported(false)
	f, fellBack, err := vfs.OpenDirect(fs, "/data", vfs.Create, vfs.DirectIOAuto)
	fmt.Println(err, fellBack, f.Direct())
	_, _, err = vfs.OpenDirect(fs, "/data", vfs.Create, vfs.DirectIORequired)
	fmt.Println(errors.Is(err, vfs.ErrDirectUnsupported))
	// Output:
	// <nil> true false
	// true
}
