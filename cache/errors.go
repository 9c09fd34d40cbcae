package cache

import "errors"

// ErrInvalidOptions is returned by New when an Options field is negative or
// ristretto refuses the configuration.
var ErrInvalidOptions = errors.New("cowdb/cache: invalid options")
