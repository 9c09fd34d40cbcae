package record

import (
	"encoding/binary"
	"fmt"

	"github.com/cowdb/cowdb/internal/format"
)

// Decode decodes a batch written by Append. The byte slices of the returned
// operations (Key, Dst, Value) alias b: copy what outlives b. Any malformed
// input gives an error wrapping format.ErrCorrupt, never a panic, and no
// allocation larger than a small multiple of len(b).
func Decode(b []byte) ([]Op, error) {
	d := decoder{buf: b}
	if v := d.byte(); d.err == nil && v != Version {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrBadBatch, v, Version)
	}
	n := d.uvarint()
	if d.err != nil {
		return nil, d.err
	}
	// Every operation takes at least one byte, which bounds a hostile count.
	if n == 0 || n > OpsPerBatchMax || n > uint64(len(d.buf)) {
		return nil, fmt.Errorf("%w: %d operations in %d bytes", ErrBadBatch, n, len(b))
	}
	ops := make([]Op, n)
	for i := range ops {
		d.op(&ops[i])
		if d.err != nil {
			return nil, fmt.Errorf("operation %d of %d: %w", i, n, d.err)
		}
	}
	if len(d.buf) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last operation", ErrBadBatch, len(d.buf))
	}
	return ops, nil
}

// decoder consumes buf; the first error sticks and makes every later read
// return zero values, so callers check once at the end of a unit.
type decoder struct {
	buf []byte
	err error
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.buf = nil
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.buf) == 0 {
		d.fail(ErrTruncated)
		return 0
	}
	v := d.buf[0]
	d.buf = d.buf[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.fail(ErrTruncated)
		return 0
	}
	// binary.Uvarint accepts overlong encodings (a trailing 0x00 group);
	// refusing them keeps the encoding canonical, one byte string per batch.
	if n > 1 && d.buf[n-1] == 0 {
		d.fail(fmt.Errorf("%w: overlong varint", ErrBadBatch))
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

// bytes reads a length-prefixed byte string of at most max bytes.
func (d *decoder) bytes(what string, max uint64) []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > max {
		d.fail(fmt.Errorf("%w: %s of %d bytes exceeds %d", ErrBadBatch, what, n, max))
		return nil
	}
	if n > uint64(len(d.buf)) {
		d.fail(ErrTruncated)
		return nil
	}
	v := d.buf[:n:n]
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) op(op *Op) {
	op.Kind = Kind(d.byte())
	if d.err != nil {
		return
	}
	if int(op.Kind) >= len(layout) || layout[op.Kind] == 0 {
		d.fail(fmt.Errorf("%w: unknown operation kind %d", ErrBadBatch, op.Kind))
		return
	}
	f := layout[op.Kind]
	if f&fKey != 0 {
		op.Key = d.bytes("key", KeySizeMax)
	}
	if f&fDst != 0 {
		op.Dst = d.bytes("destination key", KeySizeMax)
	}
	if f&fName != 0 {
		op.Name = string(d.bytes("name", NameSizeMax))
	}
	if f&fInode != 0 {
		op.Inode = format.InodeID(d.uvarint())
	}
	if f&fSize != 0 {
		op.Size = int64(d.uvarint())
	}
	if f&fFlags != 0 {
		op.Flags = d.byte()
	}
	if f&fFileBlock != 0 {
		op.FileBlock = d.uvarint()
	}
	if f&fPhys != 0 {
		op.Phys = format.Block(d.uvarint())
	}
	if f&fLen != 0 {
		op.Len = d.uvarint()
	}
	if f&fOff != 0 {
		op.Off = int64(d.uvarint())
	}
	if f&fTime != 0 {
		op.Time = int64(d.uvarint())
	}
	if f&fValue != 0 {
		op.Value = d.bytes("value", uint64(len(d.buf)))
	}
	if f&fSums != 0 {
		d.sums(op)
	}
	if d.err == nil {
		if err := op.check(); err != nil {
			d.fail(fmt.Errorf("%w: %w", ErrBadBatch, err))
		}
	}
}

func (d *decoder) sums(op *Op) {
	n := d.uvarint()
	if d.err != nil {
		return
	}
	if n > uint64(len(d.buf))/8 {
		d.fail(ErrTruncated)
		return
	}
	op.Sums = make([]uint64, n)
	for i := range op.Sums {
		op.Sums[i] = binary.LittleEndian.Uint64(d.buf[8*i:])
	}
	d.buf = d.buf[8*n:]
}
