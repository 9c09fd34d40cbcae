package snapshot

import "fmt"

const (
	// NameMax is the longest snapshot name, in bytes. A name is 1 to
	// NameMax bytes of ASCII letters, digits and "-_.:@": printable in any
	// shell or log line without quoting, and never the live root's catalog
	// key (LiveKey, a zero byte).
	NameMax = 255

	// MaxSnapshots bounds the named snapshots one store holds at a time
	// (roots still being dropped in the background do not count). It
	// bounds what listing, opening and checking the catalog cost: at most
	// 10000 entries of at most 1+NameMax bytes of key and one root record
	// each, a few MiB. The root package refuses a Snapshot beyond it; a
	// store that needs more should delete old snapshots as it takes new
	// ones.
	MaxSnapshots = 10000
)

// ValidName returns nil if name is a valid snapshot name: 1 to NameMax
// bytes, each an ASCII letter or digit or one of "-_.:@". Otherwise it
// returns an error wrapping ErrInvalidName that says what is wrong.
func ValidName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrInvalidName)
	case len(name) > NameMax:
		return fmt.Errorf("%w: %d bytes, limit %d", ErrInvalidName, len(name), NameMax)
	}
	for i := 0; i < len(name); i++ {
		if !nameByte(name[i]) {
			return fmt.Errorf("%w: byte %#02x at position %d of %q (letters, digits and \"-_.:@\" only)", ErrInvalidName, name[i], i, name)
		}
	}
	return nil
}

// nameByte reports whether c may appear in a snapshot name.
func nameByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '_', '.', ':', '@':
		return true
	}
	return false
}
