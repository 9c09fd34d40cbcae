package extents

import (
	"fmt"

	"github.com/cowdb/cowdb/internal/format"
)

// Block is a block number in the data file; the whole code base shares
// format's type.
type Block = format.Block

// NoBlock is block 0, a superblock copy: as an Alloc goal it means "no
// goal".
const NoBlock = format.NoBlock

// Epoch numbers checkpoints; format's type.
type Epoch = format.Epoch

// LSN is a WAL position; every free is tagged with the LSN of the operation
// that freed the block, and reader pins are LSNs too (the version a reader
// sees is the state after every operation at or before its LSN).
type LSN = format.LSN

// Extent is a run of contiguous blocks [Start, Start+Len). An extent handed
// out or accepted by an Allocator never crosses an AG boundary, so Len never
// exceeds Geometry.BlocksPerAG.
type Extent struct {
	Start Block
	Len   uint64
}

// End returns the first block after e.
func (e Extent) End() Block { return e.Start + Block(e.Len) }

func (e Extent) String() string { return fmt.Sprintf("[%d,+%d)", e.Start, e.Len) }

// Defaults and bounds of Options.
const (
	// BlockSizeDefault is the default block size in bytes.
	BlockSizeDefault = 4096
	// AGBytesDefault is the default size of an allocation group in bytes.
	AGBytesDefault = 128 << 20
	// MaxAGCountDefault is the default maximum number of AGs (1 PiB of
	// 128 MiB AGs).
	MaxAGCountDefault = 1 << 23
	// RefcountMaxDefault is the default saturation count: XFS's MAXREFCOUNT.
	RefcountMaxDefault = 1<<31 - 1
	// NearSearchMaxDefault is how many free extents on each side of the goal
	// a near-fit search examines before falling back to best-fit.
	NearSearchMaxDefault = 64
	// PinsMaxDefault bounds the number of reader pins held at once.
	PinsMaxDefault = 1 << 20
	// ReservationsMaxDefault bounds the number of open reservations.
	ReservationsMaxDefault = 1 << 20
	// BlocksPerAGMax is the largest AG the in-memory indexes address
	// (offsets inside an AG are 32-bit).
	BlocksPerAGMax = 1 << 31
)

// Options configures an Allocator. A nil *Options means all defaults; a
// zero field means its default.
type Options struct {
	// StoreID is stamped into every AG bitmap image and checked on load.
	// Required (non-zero) for Seal and NewLoader; 0 means unset.
	StoreID uint64
	// BlockSize is the block size in bytes, a power of two >= 512. 0 means
	// BlockSizeDefault.
	BlockSize int
	// BlocksPerAG is the number of blocks in each allocation group,
	// header included. 0 means AGBytesDefault / BlockSize. It must leave
	// room for the two bitmap copies and at least one more block, and be at
	// most BlocksPerAGMax. Tests use small AGs (64 blocks).
	BlocksPerAG uint32
	// MaxAGCount is the number of AGs Grow may reach. 0 means
	// MaxAGCountDefault.
	MaxAGCount uint32
	// RefcountMax is the count at which a shared range saturates (>= 2).
	// 0 means RefcountMaxDefault.
	RefcountMax uint32
	// NearSearchMax is how many free extents on each side of a goal Alloc
	// examines before best-fit. 0 means NearSearchMaxDefault.
	NearSearchMax int
	// PinsMax and ReservationsMax bound the pin and reservation tables. 0
	// means PinsMaxDefault and ReservationsMaxDefault.
	PinsMax, ReservationsMax int
}

// withDefaults returns a copy of o with defaults filled in and validated.
func (o *Options) withDefaults() (Options, error) {
	var r Options
	if o != nil {
		r = *o
	}
	if r.BlockSize == 0 {
		r.BlockSize = BlockSizeDefault
	}
	if r.BlockSize < 512 || r.BlockSize&(r.BlockSize-1) != 0 {
		return r, fmt.Errorf("%w: block size %d", ErrInvalid, r.BlockSize)
	}
	if r.BlocksPerAG == 0 {
		r.BlocksPerAG = uint32(AGBytesDefault / r.BlockSize)
	}
	hdr := 2 * uint64(format.AGBitmapBlocks(r.BlocksPerAG, r.BlockSize))
	if r.BlocksPerAG > BlocksPerAGMax || uint64(r.BlocksPerAG) <= hdr {
		return r, fmt.Errorf("%w: %d blocks per AG (header %d)", ErrInvalid, r.BlocksPerAG, hdr)
	}
	if r.MaxAGCount == 0 {
		r.MaxAGCount = MaxAGCountDefault
	}
	if r.RefcountMax == 0 {
		r.RefcountMax = RefcountMaxDefault
	}
	if r.RefcountMax < 2 {
		return r, fmt.Errorf("%w: refcount max %d", ErrInvalid, r.RefcountMax)
	}
	if r.NearSearchMax <= 0 {
		r.NearSearchMax = NearSearchMaxDefault
	}
	if r.PinsMax <= 0 {
		r.PinsMax = PinsMaxDefault
	}
	if r.ReservationsMax <= 0 {
		r.ReservationsMax = ReservationsMaxDefault
	}
	return r, nil
}

// Geometry describes the data file: blocks [0, AGStart) hold the superblock
// copies, then AGCount allocation groups of BlocksPerAG blocks each. AG g
// occupies [AGStart + g×BlocksPerAG, AGStart + (g+1)×BlocksPerAG); its
// first HeaderBlocks blocks are its two bitmap copies (copy 0 then copy 1,
// BitmapBlocks each).
type Geometry struct {
	BlockSize    int
	BlocksPerAG  uint32
	AGCount      uint32
	MaxAGCount   uint32
	AGStart      Block  // format.SuperblockCopies
	BitmapBlocks uint32 // blocks of one bitmap copy
}

// HeaderBlocks returns the blocks at the start of every AG that hold its
// two bitmap copies and are never allocatable.
func (g Geometry) HeaderBlocks() uint32 { return 2 * g.BitmapBlocks }

// TotalBlocks returns the size of the data file in blocks.
func (g Geometry) TotalBlocks() uint64 {
	return uint64(g.AGStart) + uint64(g.AGCount)*uint64(g.BlocksPerAG)
}

// AGFirst returns the first block of AG ag.
func (g Geometry) AGFirst(ag uint32) Block {
	return g.AGStart + Block(ag)*Block(g.BlocksPerAG)
}

// BitmapCopy returns the first block of copy slot (0 or 1) of AG ag's
// bitmap.
func (g Geometry) BitmapCopy(ag uint32, slot int) Block {
	return g.AGFirst(ag) + Block(slot)*Block(g.BitmapBlocks)
}

// AGOf returns the AG holding block b and b's offset inside it; ok is
// false for a superblock block or a block past the end of the file.
func (g Geometry) AGOf(b Block) (ag uint32, off uint32, ok bool) {
	if b < g.AGStart {
		return 0, 0, false
	}
	rel := uint64(b - g.AGStart)
	a := rel / uint64(g.BlocksPerAG)
	if a >= uint64(g.AGCount) {
		return 0, 0, false
	}
	return uint32(a), uint32(rel % uint64(g.BlocksPerAG)), true
}

// locate validates that e lies inside one AG, clear of its header, and
// returns the AG and e's offset inside it.
func (g Geometry) locate(e Extent) (ag uint32, off uint32, err error) {
	if e.Len == 0 || e.Len > uint64(g.BlocksPerAG) {
		return 0, 0, fmt.Errorf("%w: extent %v length", ErrInvalid, e)
	}
	ag, off, ok := g.AGOf(e.Start)
	if !ok || off < g.HeaderBlocks() || uint64(off)+e.Len > uint64(g.BlocksPerAG) {
		return 0, 0, fmt.Errorf("%w: extent %v outside the AGs' data blocks", ErrInvalid, e)
	}
	return ag, off, nil
}
