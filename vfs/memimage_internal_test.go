package vfs

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// FuzzMemImage checks the sparse page store under MemFS against a flat byte
// slice: the input is decoded into writes, truncations and fallocations
// (offsets and lengths up to a few pages, so page edges are hit), applied
// to both, and after every step the sizes and full contents must agree and
// a clone must be equal and independent. Any input is a valid program.
func FuzzMemImage(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 0x10, 0x00, 0x00, 0x20, 1, 0x00, 0x08, 0, 0, 2, 0x30, 0x00, 0x00, 0x10})
	f.Add(bytes.Repeat([]byte{0, 0xff, 0x0f, 0xff, 0x01}, 8))
	f.Add([]byte{2, 0x00, 0x00, 0x40, 0x00, 1, 0x0f, 0xff, 0, 0, 0, 0x10, 0x01, 0x10, 0x01})
	f.Fuzz(func(t *testing.T, prog []byte) {
		var im memImage
		var flat []byte
		for step := 0; len(prog) >= 5; step++ {
			kind := prog[0] % 3
			off := int64(binary.BigEndian.Uint16(prog[1:3])) % (5 * memPageSize)
			n := int64(binary.BigEndian.Uint16(prog[3:5]))%(2*memPageSize) + 1
			prog = prog[5:]
			switch kind {
			case 0:
				data := bytes.Repeat([]byte{byte(step + 1)}, int(n))
				im.writeAt(data, off)
				if end := off + n; end > int64(len(flat)) {
					flat = append(flat, make([]byte, end-int64(len(flat)))...)
				}
				copy(flat[off:], data)
			case 1:
				im.truncate(off)
				if off <= int64(len(flat)) {
					flat = flat[:off]
				} else {
					flat = append(flat, make([]byte, off-int64(len(flat)))...)
				}
			case 2:
				im.fallocate(off, n)
				if end := off + n; end > int64(len(flat)) {
					flat = append(flat, make([]byte, end-int64(len(flat)))...)
				}
			}
			compareImage(t, step, &im, flat)
		}
		c := im.clone()
		compareImage(t, -1, &c, flat)
		c.writeAt([]byte{0xee}, 0)
		compareImage(t, -2, &im, flat)
	})
}

func compareImage(t *testing.T, step int, im *memImage, flat []byte) {
	t.Helper()
	if im.size != int64(len(flat)) {
		t.Fatalf("step %d: size %d, model %d", step, im.size, len(flat))
	}
	got := make([]byte, len(flat)+10)
	if n := im.readAt(got, 0); n != len(flat) || !bytes.Equal(got[:n], flat) {
		t.Fatalf("step %d: content differs from the model (read %d)", step, n)
	}
}
