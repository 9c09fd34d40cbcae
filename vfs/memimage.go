package vfs

// memFileSizeMax bounds a memory file's size, so that offset arithmetic can
// never overflow; past it, writes, truncations and fallocations fail as a
// real file system's do with EFBIG.
const memFileSizeMax = 1 << 48

// memPageSize is the granularity at which a memory file stores its bytes.
// Pages never written are absent and read as zeros, so fallocating or
// extending a file costs nothing until it is written.
const memPageSize = 4096

// memImage is the content of a memory file: a size and sparse pages. Every
// byte at or beyond size is zero in the pages (truncate keeps it so), which
// lets growing the file simply move size. It is not safe for concurrent
// use; MemFS guards it.
type memImage struct {
	size  int64
	pages map[int64]*[memPageSize]byte // page index -> bytes
}

func (im *memImage) readAt(p []byte, off int64) int {
	if off >= im.size {
		return 0
	}
	n := int(min(int64(len(p)), im.size-off))
	for done := 0; done < n; {
		pos := off + int64(done)
		idx, in := pos/memPageSize, int(pos%memPageSize)
		chunk := min(n-done, memPageSize-in)
		if pg := im.pages[idx]; pg != nil {
			copy(p[done:done+chunk], pg[in:in+chunk])
		} else {
			clear(p[done : done+chunk])
		}
		done += chunk
	}
	return n
}

func (im *memImage) writeAt(p []byte, off int64) {
	if im.pages == nil {
		im.pages = make(map[int64]*[memPageSize]byte)
	}
	for done := 0; done < len(p); {
		pos := off + int64(done)
		idx, in := pos/memPageSize, int(pos%memPageSize)
		chunk := min(len(p)-done, memPageSize-in)
		pg := im.pages[idx]
		if pg == nil {
			pg = new([memPageSize]byte)
			im.pages[idx] = pg
		}
		copy(pg[in:in+chunk], p[done:done+chunk])
		done += chunk
	}
	im.size = max(im.size, off+int64(len(p)))
}

// truncate sets the size, zeroing everything cut off so that a later
// extension reads zeros there.
func (im *memImage) truncate(size int64) {
	if size >= im.size {
		im.size = size
		return
	}
	if in := int(size % memPageSize); in != 0 {
		if pg := im.pages[size/memPageSize]; pg != nil {
			clear(pg[in:])
		}
	}
	first := (size + memPageSize - 1) / memPageSize // first page wholly cut
	last := (im.size - 1) / memPageSize
	if last-first+1 < int64(len(im.pages)) {
		for idx := first; idx <= last; idx++ {
			delete(im.pages, idx)
		}
	} else {
		for idx := range im.pages {
			if idx >= first {
				delete(im.pages, idx)
			}
		}
	}
	im.size = size
}

// fallocate extends the size to cover [off, off+length); the new range
// reads as zeros and existing bytes are untouched, as with fallocate mode 0.
func (im *memImage) fallocate(off, length int64) {
	im.size = max(im.size, off+length)
}

func (im *memImage) clone() memImage {
	c := memImage{size: im.size, pages: make(map[int64]*[memPageSize]byte, len(im.pages))}
	for idx, pg := range im.pages {
		cp := *pg
		c.pages[idx] = &cp
	}
	return c
}

// memOpKind names an unsynced change to a memory file.
type memOpKind uint8

const (
	memWrite memOpKind = iota
	memTruncate
	memFallocate
)

// memOp is one unsynced change to a memory file, kept until the next sync
// so that a crash can decide its fate.
type memOp struct {
	kind memOpKind
	off  int64  // write, fallocate: offset; truncate: new size
	n    int64  // fallocate: length
	data []byte // write: a private copy of the bytes
}

func (im *memImage) apply(op memOp) {
	switch op.kind {
	case memWrite:
		im.writeAt(op.data, op.off)
	case memTruncate:
		im.truncate(op.off)
	case memFallocate:
		im.fallocate(op.off, op.n)
	}
}
