package vfs

import (
	"errors"
	"fmt"
	"strconv"
)

// DirectIO says whether files that want direct I/O get it (DESIGN §13). The
// zero value is DirectIOAuto.
type DirectIO int

const (
	// DirectIOAuto opens with direct I/O and, where the file system refuses
	// it (tmpfs before Linux 6.6, procfs, some FUSE), falls back to
	// buffered I/O and reports that it did, so the caller can log it once.
	DirectIOAuto DirectIO = iota
	// DirectIORequired opens with direct I/O or fails with
	// ErrDirectUnsupported.
	DirectIORequired
	// DirectIOOff never uses direct I/O.
	DirectIOOff
)

// String returns the mode's name, such as "DirectIOAuto".
func (d DirectIO) String() string {
	switch d {
	case DirectIOAuto:
		return "DirectIOAuto"
	case DirectIORequired:
		return "DirectIORequired"
	case DirectIOOff:
		return "DirectIOOff"
	}
	return "DirectIO(" + strconv.Itoa(int(d)) + ")"
}

// OpenDirect opens name on fs with flag, adding or removing the Direct flag
// as mode says. fellBack is true when mode is DirectIOAuto and the file
// system refused direct I/O, so the file was opened buffered instead: its
// Direct() is then false and the alignment contract does not apply. A mode
// that is none of the three constants is an error wrapping errInvalid.
//
// Whether the buffered fallback is safe is the caller's business: buffered
// writes reach the disk only at Datasync, exactly like direct ones, so a
// caller that already syncs before acknowledging keeps its guarantees.
func OpenDirect(fs FS, name string, flag OpenFlag, mode DirectIO) (f File, fellBack bool, err error) {
	switch mode {
	case DirectIOOff:
		f, err = fs.OpenFile(name, flag&^Direct)
		return f, false, err
	case DirectIOAuto, DirectIORequired:
	default:
		return nil, false, fmt.Errorf("open %s: unknown %v: %w", name, mode, errInvalid)
	}
	f, err = fs.OpenFile(name, flag|Direct)
	if err == nil || mode == DirectIORequired || !errors.Is(err, ErrDirectUnsupported) {
		return f, false, err
	}
	f, err = fs.OpenFile(name, flag&^Direct)
	if err != nil {
		return nil, false, err
	}
	return f, true, nil
}
