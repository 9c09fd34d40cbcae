package format_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/cowdb/cowdb/internal/format"
)

func sampleWALSegmentHeader() format.SegmentHeader {
	return format.SegmentHeader{StoreID: 0xC0DB, Seq: 7, FirstLSN: 100, DurableLSN: 99, Size: 64 << 20}
}

// TestWALSegmentHeaderRoundTrip encodes a header, decodes it back, and checks
// that damage to each part gives its own error kind, all ErrCorrupt.
func TestWALSegmentHeaderRoundTrip(t *testing.T) {
	h := sampleWALSegmentHeader()
	b := format.EncodeSegmentHeader(make([]byte, format.SegmentHeaderSlotSize), h)
	got, err := format.DecodeSegmentHeader(b)
	if err != nil || got != h {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for _, tc := range []struct {
		off  int
		kind error
	}{{0, format.ErrBadMagic}, {8, format.ErrBadVersion}, {20, format.ErrBadChecksum}, {60, format.ErrBadChecksum}} {
		d := bytes.Clone(b)
		d[tc.off] ^= 1
		if _, err := format.DecodeSegmentHeader(d); !errors.Is(err, tc.kind) || !errors.Is(err, format.ErrCorrupt) {
			t.Errorf("byte %d flipped: %v, want %v", tc.off, err, tc.kind)
		}
	}
	if _, err := format.DecodeSegmentHeader(b[:10]); !errors.Is(err, format.ErrTruncated) {
		t.Errorf("short header: %v", err)
	}
	bad := h
	bad.DurableLSN = bad.FirstLSN
	if _, err := format.DecodeSegmentHeader(format.EncodeSegmentHeader(make([]byte, 64), bad)); !errors.Is(err, format.ErrMalformed) {
		t.Errorf("durable LSN not below first LSN: %v", err)
	}
}

// TestWALFrameRoundTrip encodes frames of several sizes back to back, decodes
// them in order, and checks damage, truncation and hostile lengths.
func TestWALFrameRoundTrip(t *testing.T) {
	var buf []byte
	var frames []format.Frame
	for i, n := range []int{0, 1, 7, 8, 100, 4096} {
		f := format.Frame{LSN: format.LSN(10 + i), Seq: 3, DurableLSN: format.LSN(9 + i), Payload: bytes.Repeat([]byte{byte(i)}, n)}
		frames = append(frames, f)
		buf = format.AppendFrame(buf, f)
		if len(buf)%format.FrameAlign != 0 {
			t.Fatalf("frame %d leaves buffer unaligned: %d", i, len(buf))
		}
	}
	rest := buf
	for i, want := range frames {
		f, n, err := format.DecodeFrame(rest, 1<<20)
		if err != nil || n != format.FrameSize(len(want.Payload)) || f.LSN != want.LSN || f.Seq != want.Seq ||
			f.DurableLSN != want.DurableLSN || !bytes.Equal(f.Payload, want.Payload) {
			t.Fatalf("frame %d: %+v, %d, %v", i, f, n, err)
		}
		rest = rest[n:]
	}
	if _, _, err := format.DecodeFrame(buf[:format.FrameSize(0)+10], 1<<20); err != nil {
		t.Fatalf("frame with trailing bytes: %v", err)
	}
	d := bytes.Clone(buf)
	d[format.FrameHeaderSize-1] ^= 0x80
	if _, _, err := format.DecodeFrame(d, 1<<20); !errors.Is(err, format.ErrBadChecksum) {
		t.Errorf("flipped header bit: %v", err)
	}
	big := format.AppendFrame(nil, frames[5])
	if _, _, err := format.DecodeFrame(big, 100); !errors.Is(err, format.ErrMalformed) {
		t.Errorf("payload above limit: %v", err)
	}
	if _, _, err := format.DecodeFrame(big[:len(big)-8], 1<<20); !errors.Is(err, format.ErrTruncated) {
		t.Errorf("truncated frame: %v", err)
	}
	hostile := bytes.Clone(big[:format.FrameHeaderSize])
	hostile[8], hostile[9], hostile[10], hostile[11] = 0xff, 0xff, 0xff, 0xff
	if _, _, err := format.DecodeFrame(hostile, -1); !errors.Is(err, format.ErrCorrupt) {
		t.Errorf("hostile length: %v", err)
	}
}

// FuzzDecodeWALFrame feeds arbitrary bytes to the frame decoder: it must never
// panic, must report every failure as ErrCorrupt, and whatever it accepts
// must re-encode to the same bytes.
func FuzzDecodeWALFrame(f *testing.F) {
	f.Add(format.AppendFrame(nil, format.Frame{LSN: 1, Seq: 1, Payload: []byte("hello")}))
	f.Add(format.AppendFrame(nil, format.Frame{LSN: 5, Seq: 2, DurableLSN: 4}))
	f.Add(make([]byte, 64))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, n, err := format.DecodeFrame(b, 1<<16)
		if err != nil {
			if !errors.Is(err, format.ErrCorrupt) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			return
		}
		if n > len(b) || len(fr.Payload) > 1<<16 {
			t.Fatalf("accepted %d bytes of %d, payload %d", n, len(b), len(fr.Payload))
		}
		if re := format.AppendFrame(nil, fr); !bytes.Equal(re[:format.FrameHeaderSize+len(fr.Payload)], b[:format.FrameHeaderSize+len(fr.Payload)]) {
			t.Fatalf("re-encoding differs")
		}
	})
}

// FuzzDecodeWALSegmentHeader feeds arbitrary bytes to the segment header
// decoder: never a panic, every failure ErrCorrupt, and an accepted header
// re-encodes to the same bytes.
func FuzzDecodeWALSegmentHeader(f *testing.F) {
	f.Add(format.EncodeSegmentHeader(make([]byte, 64), sampleWALSegmentHeader()))
	f.Add(make([]byte, 64))
	f.Add([]byte("cowdbWAL"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := format.DecodeSegmentHeader(b)
		if err != nil {
			if !errors.Is(err, format.ErrCorrupt) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			return
		}
		if re := format.EncodeSegmentHeader(make([]byte, 64), h); !bytes.Equal(re, b[:64]) {
			t.Fatalf("re-encoding differs")
		}
	})
}
