package vfs_test

import (
	"errors"
	"testing"

	"github.com/cowdb/cowdb/vfs"
)

// TestOpenDirectModes checks the three DirectIO modes against a MemFS that
// accepts direct I/O and one that refuses it like old tmpfs: Auto uses
// direct I/O where it can and otherwise falls back to a buffered file (with
// Direct() false, so unaligned I/O works) and says so; Required fails with
// ErrDirectUnsupported; Off never asks for it.
func TestOpenDirectModes(t *testing.T) {
	for _, supported := range []bool{true, false} {
		fs := vfs.NewMem()
		fs.SetDirectSupported(supported)
		for _, mode := range []vfs.DirectIO{vfs.DirectIOAuto, vfs.DirectIORequired, vfs.DirectIOOff} {
			f, fellBack, err := vfs.OpenDirect(fs, "/data", vfs.Create, mode)
			wantDirect := supported && mode != vfs.DirectIOOff
			if !supported && mode == vfs.DirectIORequired {
				if !errors.Is(err, vfs.ErrDirectUnsupported) || f != nil {
					t.Errorf("supported=%v %v: %v; want ErrDirectUnsupported", supported, mode, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("supported=%v %v: %v", supported, mode, err)
			}
			if f.Direct() != wantDirect || fellBack != (!supported && mode == vfs.DirectIOAuto) {
				t.Errorf("supported=%v %v: Direct() %v, fellBack %v", supported, mode, f.Direct(), fellBack)
			}
			_, err = f.WriteAt([]byte("unaligned"), 3)
			if wantDirect != errors.Is(err, vfs.ErrUnaligned) {
				t.Errorf("supported=%v %v: unaligned write: %v", supported, mode, err)
			}
			f.Close()
		}
	}
	if _, _, err := vfs.OpenDirect(vfs.NewMem(), "/x", vfs.Create, vfs.DirectIO(7)); err == nil {
		t.Error("OpenDirect accepted an unknown mode")
	}
	if s := vfs.DirectIO(7).String(); s != "DirectIO(7)" || vfs.DirectIOAuto.String() != "DirectIOAuto" {
		t.Errorf("String: %q", s)
	}
}
