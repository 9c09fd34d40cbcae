package cowdb

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestOptionsDefaults checks that nil and zero Options get every documented
// default.
func TestOptionsDefaults(t *testing.T) {
	for _, in := range []*Options{nil, {}} {
		o, err := in.withDefaults()
		if err != nil {
			t.Fatalf("withDefaults(%v): %v", in, err)
		}
		if o.FS == nil || o.Logger == nil {
			t.Fatalf("FS or Logger not defaulted: %+v", o)
		}
		if o.BlockSize != 4096 || o.GroupSize != 128<<20 || o.InitialSize != 128<<20 ||
			o.GrowSize != 128<<20 || o.CacheSize != 64<<20 || o.InlineMax != 512 ||
			o.CheckpointInterval != 30*time.Second || o.CheckpointWALSize != 64<<20 ||
			o.Sync != SyncAlways || o.DirectIO != DirectIOAuto || o.MaxSize != 0 {
			t.Fatalf("wrong defaults: %+v", o)
		}
	}
}

// TestOptionsInvalid checks that each out-of-range field is refused with
// ErrInvalidOptions and a message naming the field, and that the caller's
// Options are not modified.
func TestOptionsInvalid(t *testing.T) {
	cases := []struct {
		field string
		opts  Options
	}{
		{"BlockSize", Options{BlockSize: 1000}},
		{"BlockSize", Options{BlockSize: 2048}},
		{"BlockSize", Options{BlockSize: 1 << 17}},
		{"GroupSize", Options{GroupSize: 4096*64 + 1}},
		{"GroupSize", Options{GroupSize: 4096 * 63}},
		{"InitialSize", Options{InitialSize: -1}},
		{"MaxSize", Options{MaxSize: -1}},
		{"MaxSize", Options{InitialSize: 1 << 30, MaxSize: 1 << 20}},
		{"GrowSize", Options{GrowSize: -5}},
		{"CacheSize", Options{CacheSize: 100}},
		{"Sync", Options{Sync: 7}},
		{"InlineMax", Options{InlineMax: -1}},
		{"InlineMax", Options{InlineMax: maxInline + 1}},
		{"DeferredWriteMax", Options{DeferredWriteMax: 2 << 20}},
		{"CheckpointInterval", Options{CheckpointInterval: -time.Second}},
		{"CheckpointWALSize", Options{CheckpointWALSize: -1}},
		{"DirectIO", Options{DirectIO: 9}},
	}
	for _, c := range cases {
		before := c.opts
		_, err := c.opts.withDefaults()
		if !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%s: got %v, want ErrInvalidOptions", c.field, err)
			continue
		}
		if !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: error %q does not name the field", c.field, err)
		}
		if c.opts != before {
			t.Errorf("%s: withDefaults modified the caller's Options", c.field)
		}
	}
}
