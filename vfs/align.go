package vfs

import "unsafe"

// AlignedBuf returns a zeroed buffer of length n whose first byte sits at an
// address that is a multiple of Alignment, so it can be used for direct
// I/O. Its capacity is n rounded up to a multiple of Alignment, so a caller
// may reslice it to a whole number of aligned blocks. AlignedBuf panics if n
// is negative.
func AlignedBuf(n int) []byte {
	if n < 0 {
		panic("cowdb: assertion failed: vfs.AlignedBuf of negative size")
	}
	capacity := (n + Alignment - 1) &^ (Alignment - 1)
	// Over-allocate by one Alignment so an aligned start always exists
	// inside the allocation; the garbage collector keeps the whole backing
	// array alive through the interior pointer.
	raw := make([]byte, capacity+Alignment)
	skip := 0
	if r := int(addrOf(raw) % Alignment); r != 0 {
		skip = Alignment - r
	}
	return raw[skip : skip+n : skip+capacity]
}

// IsAligned reports whether p can be used as a direct I/O buffer: its length
// is a multiple of Alignment and, unless it is empty, its first byte is at
// an address that is a multiple of Alignment.
func IsAligned(p []byte) bool {
	return len(p)%Alignment == 0 && (len(p) == 0 || addrOf(p)%Alignment == 0)
}

// addrOf returns the address of p's first byte; p must not be empty.
func addrOf(p []byte) uintptr {
	return uintptr(unsafe.Pointer(unsafe.SliceData(p)))
}

// checkDirect enforces the Direct flag's contract before any byte moves:
// offset, length and buffer address must all be multiples of Alignment.
// Every implementation calls it, so tests on MemFS catch what the kernel
// would refuse (or, worse, on some file systems silently accept).
func checkDirect(op, path string, p []byte, off int64) error {
	if off%Alignment != 0 || !IsAligned(p) {
		return pathError(op, path, ErrUnaligned)
	}
	return nil
}
