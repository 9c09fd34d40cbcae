package format

import (
	"encoding/binary"
	"slices"
)

// WAL segment layout. A segment file is SegmentHeaderSize bytes of header
// block followed by a data region of record frames packed back to back, each
// starting at a multiple of FrameAlign.
//
// The header block holds two header slots, at offsets 0 and
// SegmentHeaderSlotStride, each in its own 512-byte sector. A segment is
// (re)headered by writing only the slot whose index is its new sequence
// number modulo 2, and the writer picks a new sequence number of the other
// parity than the current header's, so a write torn by a crash leaves the
// other slot, and the segment's previous identity, intact. The valid slot
// with the higher sequence number is the segment's header.
//
// Segment header slot (SegmentHeaderSlotSize bytes, little endian):
//
//	offset size field
//	     0    8 magic        "cowdbWAL"
//	     8    4 version      WALVersion
//	    12    4 reserved     must be 0
//	    16    8 store ID     the store the segment belongs to, never 0
//	    24    8 sequence     this life of the file; every frame repeats it
//	    32    8 first LSN    LSN of the first frame of this life
//	    40    8 durable LSN  every LSN up to this was durable when written
//	    48    8 size         segment size in bytes, header block included
//	    56    8 checksum     xxhash64 of bytes [0, 56)
//
// Record frame (FrameHeaderSize bytes, then the payload, then zero padding
// up to a multiple of FrameAlign; little endian):
//
//	offset size field
//	     0    8 checksum     xxhash64 of bytes [8, 40+length)
//	     8    4 length       payload bytes
//	    12    4 flags        must be 0 in version 1
//	    16    8 LSN          consecutive, never 0
//	    24    8 sequence     the segment's sequence number for this life
//	    32    8 durable LSN  every LSN up to this was durable when written
//	    40    n payload
//
// The sequence number inside the checksummed part is the recycling guard: a
// frame left over from a segment's previous life carries the old sequence
// number and fails validation in the new life. The durable LSN lets replay
// tell a torn tail from corruption: a valid frame that follows a bad one
// and claims the bad one's LSN was already durable proves the bad one was
// acknowledged.
//
// These constants are part of the on-disk format.
const (
	WALMagic                 = "cowdbWAL"
	WALVersion        uint32 = 1
	SegmentHeaderSize        = 4096
	// SegmentHeaderSlotSize is the encoded size of one header slot.
	SegmentHeaderSlotSize = 64
	// SegmentHeaderSlotStride is the distance between the two slots.
	SegmentHeaderSlotStride = 512
	FrameHeaderSize         = 40
	FrameAlign              = 8
	// FramePayloadMax bounds the length field whatever a caller allows, so
	// a hostile length can never ask for more than this.
	FramePayloadMax = 1 << 30
)

// SegmentHeader is one decoded header slot of a WAL segment.
type SegmentHeader struct {
	StoreID    uint64
	Seq        uint64 // sequence number of this life of the file
	FirstLSN   LSN    // LSN of the first frame written in this life
	DurableLSN LSN    // every LSN <= DurableLSN was durable when written
	Size       int64  // segment size in bytes, header block included
}

// EncodeSegmentHeader writes h into b, which must hold at least
// SegmentHeaderSlotSize bytes, and returns the encoded slot.
func EncodeSegmentHeader(b []byte, h SegmentHeader) []byte {
	b = b[:SegmentHeaderSlotSize]
	copy(b[0:8], WALMagic)
	binary.LittleEndian.PutUint32(b[8:], WALVersion)
	binary.LittleEndian.PutUint32(b[12:], 0)
	binary.LittleEndian.PutUint64(b[16:], h.StoreID)
	binary.LittleEndian.PutUint64(b[24:], h.Seq)
	binary.LittleEndian.PutUint64(b[32:], uint64(h.FirstLSN))
	binary.LittleEndian.PutUint64(b[40:], uint64(h.DurableLSN))
	binary.LittleEndian.PutUint64(b[48:], uint64(h.Size))
	binary.LittleEndian.PutUint64(b[56:], Checksum(b[:56]))
	return b
}

// DecodeSegmentHeader decodes and validates one header slot: magic,
// version, checksum, then the fields (reserved bytes zero, store ID non-zero,
// FirstLSN non-zero, DurableLSN below FirstLSN, size a multiple of 4096
// larger than the header block). It never panics; every error wraps
// ErrCorrupt. It does not check the store ID against an expected one.
func DecodeSegmentHeader(b []byte) (SegmentHeader, error) {
	var h SegmentHeader
	if len(b) < SegmentHeaderSlotSize {
		return h, Corruptf("wal segment header", ErrTruncated, "%d bytes", len(b))
	}
	if string(b[0:8]) != WALMagic {
		return h, Corruptf("wal segment header", ErrBadMagic, "%q", b[0:8])
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != WALVersion {
		return h, Corruptf("wal segment header", ErrBadVersion, "version %d", v)
	}
	stored, sum := binary.LittleEndian.Uint64(b[56:]), Checksum(b[:56])
	if stored != sum {
		return h, Corruptf("wal segment header", ErrBadChecksum, "stored %#x computed %#x", stored, sum)
	}
	h.StoreID = binary.LittleEndian.Uint64(b[16:])
	h.Seq = binary.LittleEndian.Uint64(b[24:])
	h.FirstLSN = LSN(binary.LittleEndian.Uint64(b[32:]))
	h.DurableLSN = LSN(binary.LittleEndian.Uint64(b[40:]))
	size := binary.LittleEndian.Uint64(b[48:])
	switch {
	case binary.LittleEndian.Uint32(b[12:]) != 0:
		return h, Corruptf("wal segment header", ErrMalformed, "reserved bytes set")
	case h.StoreID == 0 || h.Seq == 0 || h.FirstLSN == 0:
		return h, Corruptf("wal segment header", ErrMalformed, "zero store ID, sequence or first LSN")
	case h.DurableLSN >= h.FirstLSN:
		return h, Corruptf("wal segment header", ErrMalformed, "durable LSN %d not below first LSN %d", h.DurableLSN, h.FirstLSN)
	case size <= SegmentHeaderSize || size%SegmentHeaderSize != 0 || size > 1<<40:
		return h, Corruptf("wal segment header", ErrMalformed, "segment size %d", size)
	}
	h.Size = int64(size)
	return h, nil
}

// Frame is a decoded record frame. Payload aliases the decoded buffer.
type Frame struct {
	LSN        LSN
	Seq        uint64 // the segment sequence number the frame was written for
	DurableLSN LSN    // every LSN <= DurableLSN was durable when written
	Payload    []byte
}

// FrameSize returns the bytes a frame with an n-byte payload occupies,
// padding included.
func FrameSize(n int) int {
	return (FrameHeaderSize + n + FrameAlign - 1) &^ (FrameAlign - 1)
}

// AppendFrame appends the encoding of f, zero padding included, to b and
// returns the extended slice. It allocates only if b lacks capacity.
func AppendFrame(b []byte, f Frame) []byte {
	start := len(b)
	size := FrameSize(len(f.Payload))
	b = slices.Grow(b, size)[:start+size]
	fr := b[start:]
	binary.LittleEndian.PutUint32(fr[8:], uint32(len(f.Payload)))
	binary.LittleEndian.PutUint32(fr[12:], 0)
	binary.LittleEndian.PutUint64(fr[16:], uint64(f.LSN))
	binary.LittleEndian.PutUint64(fr[24:], f.Seq)
	binary.LittleEndian.PutUint64(fr[32:], uint64(f.DurableLSN))
	n := copy(fr[FrameHeaderSize:], f.Payload)
	clear(fr[FrameHeaderSize+n:])
	binary.LittleEndian.PutUint64(fr[0:], Checksum(fr[8:FrameHeaderSize+n]))
	return b
}

// FrameSeqAt returns the sequence field of a frame starting at b[0], without
// validating anything, or 0 if b is too short. Replay uses it to skip
// cheaply over positions that cannot hold a frame of the current life.
func FrameSeqAt(b []byte) uint64 {
	if len(b) < FrameHeaderSize {
		return 0
	}
	return binary.LittleEndian.Uint64(b[24:])
}

// FrameDurableAt returns the durable-LSN field of a frame starting at b[0],
// without validating anything, or 0 if b is too short.
func FrameDurableAt(b []byte) LSN {
	if len(b) < FrameHeaderSize {
		return 0
	}
	return LSN(binary.LittleEndian.Uint64(b[32:]))
}

// DecodeFrame decodes and validates the frame at the start of b, accepting
// payloads of at most maxPayload bytes. It returns the frame and the bytes
// it occupies (padding included). The length field is checked against
// maxPayload and against len(b) before anything is read, so a hostile
// length costs nothing; the payload aliases b. It never panics; every error
// wraps ErrCorrupt. Sequence and LSN continuity are the caller's to check.
func DecodeFrame(b []byte, maxPayload int) (Frame, int, error) {
	var f Frame
	if len(b) < FrameHeaderSize {
		return f, 0, Corruptf("wal frame", ErrTruncated, "%d bytes", len(b))
	}
	n := uint64(binary.LittleEndian.Uint32(b[8:]))
	if maxPayload > FramePayloadMax || maxPayload < 0 {
		maxPayload = FramePayloadMax
	}
	if n > uint64(maxPayload) {
		return f, 0, Corruptf("wal frame", ErrMalformed, "payload length %d above %d", n, maxPayload)
	}
	size := FrameSize(int(n))
	if size > len(b) {
		return f, 0, Corruptf("wal frame", ErrTruncated, "frame of %d bytes, %d available", size, len(b))
	}
	stored, sum := binary.LittleEndian.Uint64(b[0:]), Checksum(b[8:FrameHeaderSize+int(n)])
	if stored != sum {
		return f, 0, Corruptf("wal frame", ErrBadChecksum, "stored %#x computed %#x", stored, sum)
	}
	if flags := binary.LittleEndian.Uint32(b[12:]); flags != 0 {
		return f, 0, Corruptf("wal frame", ErrMalformed, "flags %#x", flags)
	}
	f.LSN = LSN(binary.LittleEndian.Uint64(b[16:]))
	f.Seq = binary.LittleEndian.Uint64(b[24:])
	f.DurableLSN = LSN(binary.LittleEndian.Uint64(b[32:]))
	if f.LSN == 0 || f.Seq == 0 || f.DurableLSN >= f.LSN {
		return f, 0, Corruptf("wal frame", ErrMalformed, "LSN %d, sequence %d, durable LSN %d", f.LSN, f.Seq, f.DurableLSN)
	}
	f.Payload = b[FrameHeaderSize : FrameHeaderSize+int(n)]
	return f, size, nil
}
