//go:build !linux

package vfs

import (
	"errors"
	"io"
)

// OS would be the operating system's file system, but cowdb's OS
// implementation (O_DIRECT, fdatasync, fallocate, flock) exists for Linux
// only: here every operation fails with an error wrapping
// errors.ErrUnsupported. MemFS works everywhere.
var OS FS = unsupportedFS{}

// Default returns OS, the file system cowdb uses when Options.FS is nil.
func Default() FS { return OS }

type unsupportedFS struct{}

func unsupported(op, name string) error {
	return &PathError{Op: op, Path: name, Sys: errors.ErrUnsupported}
}

func (unsupportedFS) OpenFile(name string, _ OpenFlag) (File, error) {
	return nil, unsupported("open", name)
}
func (unsupportedFS) Remove(name string) error { return unsupported("remove", name) }
func (unsupportedFS) Rename(oldname, newname string) error {
	return unsupported("rename", oldname+" -> "+newname)
}
func (unsupportedFS) MkdirAll(dir string) error { return unsupported("mkdir", dir) }
func (unsupportedFS) ReadDir(dir string) ([]string, error) {
	return nil, unsupported("readdir", dir)
}
func (unsupportedFS) SyncDir(dir string) error { return unsupported("syncdir", dir) }
func (unsupportedFS) Stat(name string) (FileInfo, error) {
	return FileInfo{}, unsupported("stat", name)
}
func (unsupportedFS) Lock(name string, _ bool) (io.Closer, error) {
	return nil, unsupported("flock", name)
}
