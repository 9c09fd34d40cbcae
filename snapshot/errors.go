package snapshot

import "errors"

// ErrInvalidName is returned by ValidName for a name that is not a valid
// snapshot name (see NameMax). The error it returns wraps it and says what
// is wrong: the name is empty, too long, or which byte is refused where.
var ErrInvalidName = errors.New("cowdb/snapshot: invalid snapshot name")
