package snapshot_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/cowdb/cowdb/snapshot"
	"pgregory.net/rapid"
)

// TestValidName checks names at and past the limits, and that an error
// says what is wrong.
func TestValidName(t *testing.T) {
	for _, name := range []string{"a", "Z", "0", "nightly-2024.06.01T12:00@host_1", strings.Repeat("x", snapshot.NameMax)} {
		if err := snapshot.ValidName(name); err != nil {
			t.Errorf("%q: %v", name, err)
		}
	}
	for name, says := range map[string]string{
		"":                                      "empty",
		strings.Repeat("x", snapshot.NameMax+1): "256 bytes",
		"a b":                                   "byte 0x20 at position 1",
		"a/b":                                   "byte 0x2f at position 1",
		"\x00":                                  "byte 0x00 at position 0",
		"caf\u00e9":                             "byte 0xc3 at position 3",
		"ok" + strings.Repeat("-", 200) + "\n":  "position 202",
		"ok+":                                   "byte 0x2b",
	} {
		err := snapshot.ValidName(name)
		if !errors.Is(err, snapshot.ErrInvalidName) || !strings.Contains(err.Error(), says) {
			t.Errorf("%q: got %v, want ErrInvalidName saying %q", name, err, says)
		}
	}
}

// TestValidNameBytes checks ValidName against the definition, byte by
// byte: a name is valid exactly when it is 1 to NameMax bytes, each a
// letter, digit or one of "-_.:@".
func TestValidNameBytes(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		// Mostly name bytes, so that valid names are drawn as well.
		b := rapid.OneOf(rapid.SampledFrom([]byte("az09AZ-_.:@")), rapid.Byte(), rapid.SampledFrom([]byte("az09AZ-_.:@")))
		name := string(rapid.SliceOfN(b, 0, snapshot.NameMax+2).Draw(t, "name"))
		want := len(name) >= 1 && len(name) <= snapshot.NameMax
		for _, c := range []byte(name) {
			if !strings.ContainsRune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:@", rune(c)) {
				want = false
			}
		}
		if err := snapshot.ValidName(name); (err == nil) != want {
			t.Fatalf("%q: got %v, want valid %v", name, err, want)
		}
	})
}
