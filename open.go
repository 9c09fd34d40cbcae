package cowdb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path"
	"time"

	"github.com/cowdb/cowdb/btree"
	"github.com/cowdb/cowdb/cache"
	"github.com/cowdb/cowdb/cowio"
	"github.com/cowdb/cowdb/extents"
	"github.com/cowdb/cowdb/internal/format"
	"github.com/cowdb/cowdb/snapshot"
	"github.com/cowdb/cowdb/vfs"
	"github.com/cowdb/cowdb/wal"
)

// Open opens the store in directory dir, creating it (and dir) if missing.
// opts nil means every default. A writer holds dir's LOCK exclusively
// (another opener gets ErrLocked); ReadOnly openers share it. Open replays
// the log written since the last checkpoint and, unless ReadOnly, writes a
// checkpoint when it replayed anything. A data file that is not a cowdb
// store, or is damaged, is ErrCorrupt naming the file; it is never
// reinitialized.
func Open(dir string, opts *Options) (*DB, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if o.WALSegmentSize != 0 && (o.WALSegmentSize%vfs.Alignment != 0 || o.WALSegmentSize < minWALSegmentSize) {
		return nil, fmt.Errorf("%w: WALSegmentSize is %d; it must be a multiple of %d and at least %d", ErrInvalidOptions, o.WALSegmentSize, vfs.Alignment, minWALSegmentSize)
	}
	fs := o.FS
	if !o.ReadOnly {
		if err := fs.MkdirAll(dir); err != nil {
			return nil, fmt.Errorf("cowdb: creating %s: %w", dir, err)
		}
		if err := fs.SyncDir(path.Dir(dir)); err != nil {
			return nil, fmt.Errorf("cowdb: %w", err)
		}
	}
	lock, err := fs.Lock(path.Join(dir, lockName), o.ReadOnly)
	if err != nil {
		if errors.Is(err, vfs.ErrLocked) {
			return nil, fmt.Errorf("%w: %s: %w", ErrLocked, dir, err)
		}
		return nil, fmt.Errorf("cowdb: locking %s: %w", dir, err)
	}
	db, err := open(dir, o, opts, lock)
	if err != nil {
		lock.Close()
		return nil, err
	}
	return db, nil
}

// open does Open's work once the lock is held.
func open(dir string, o Options, given *Options, lock io.Closer) (*DB, error) {
	dataPath := path.Join(dir, dataName)
	if _, err := o.FS.Stat(dataPath); errors.Is(err, vfs.ErrNotExist) {
		if o.ReadOnly {
			return nil, fmt.Errorf("cowdb: no store in %s to open ReadOnly: %w", dir, err)
		}
		if err := create(dir, o); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("cowdb: %w", err)
	}
	db, err := newDB(dir, o)
	if err != nil {
		return nil, err
	}
	db.lock = lock
	if err := db.openData(given); err != nil {
		db.closeFiles()
		return nil, err
	}
	if err := db.recover(); err != nil {
		db.closeFiles()
		return nil, err
	}
	if !o.ReadOnly {
		startCheckpointer(db)
	}
	return db, nil
}

// newDB returns a DB with its options set and no file open.
func newDB(dir string, o Options) (*DB, error) {
	c, err := cache.New(&cache.Options{MaxBytes: o.CacheSize})
	if err != nil {
		return nil, fmt.Errorf("%w: CacheSize: %w", ErrInvalidOptions, err)
	}
	db := &DB{dir: dir, opts: o, fs: o.FS, logger: o.Logger, cache: c, bs: o.BlockSize}
	return db, nil
}

// closeFiles closes whatever a failed Open had opened (not the lock).
func (db *DB) closeFiles() {
	if db.wal != nil {
		db.wal.Close()
	}
	if db.data != nil {
		db.data.Close()
	}
	db.cache.Close()
}

// openDataFile opens name with the DirectIO policy, logging a fallback.
func (db *DB) openDataFile(name string, flag vfs.OpenFlag) (vfs.File, error) {
	f, fellBack, err := vfs.OpenDirect(db.fs, name, flag, db.opts.DirectIO)
	if err != nil {
		return nil, fmt.Errorf("cowdb: opening %s: %w", name, err)
	}
	if fellBack {
		db.logger.Info("cowdb: direct I/O unavailable, using buffered I/O with fdatasync", "file", name)
	}
	return f, nil
}

// setup sets the geometry-dependent parts of db: block size, forest,
// inline limit.
func (db *DB) setup(bs int) error {
	db.bs = bs
	db.nodes = newBlockStore(db)
	f, err := btree.New(btree.Options{Store: db.nodes, Cache: db.cache, BlockSize: bs})
	if err != nil {
		return fmt.Errorf("%w: BlockSize: %w", ErrInvalidOptions, err)
	}
	db.forest = f
	db.inlineMax = min(db.opts.InlineMax, format.NodeValueMax(bs)-format.InodeHeaderSize)
	return nil
}

// create makes a new store's data file: written whole under a temporary
// name (every allocation group's bitmaps, both superblock copies, the first
// checkpoint), synced, then renamed into place and the directory synced,
// so a crash during creation leaves either no data file or a whole one.
func create(dir string, o Options) error {
	fs := o.FS
	tmp := path.Join(dir, dataTmpName)
	if names, err := fs.ReadDir(path.Join(dir, walDirName)); err == nil && len(names) > 0 {
		return format.Corruptf(path.Join(dir, walDirName), format.ErrMalformed, "log segments without a data file")
	}
	if err := fs.Remove(tmp); err != nil && !errors.Is(err, vfs.ErrNotExist) {
		return fmt.Errorf("cowdb: %w", err)
	}
	db, err := newDB(dir, o)
	if err != nil {
		return err
	}
	defer db.cache.Close()
	if err := db.setup(o.BlockSize); err != nil {
		return err
	}
	bpa := uint32(o.GroupSize / int64(o.BlockSize))
	agCount := uint32(max(1, (o.InitialSize+o.GroupSize-1)/o.GroupSize))
	maxAG := uint32(extents.MaxAGCountDefault)
	if o.MaxSize > 0 {
		maxAG = uint32(max(int64(agCount), o.MaxSize/o.GroupSize))
	}
	db.storeID = rand.Uint64() | 1
	db.created = time.Now().UnixNano()
	alloc, err := extents.New(&extents.Options{StoreID: db.storeID, BlockSize: o.BlockSize, BlocksPerAG: bpa, MaxAGCount: maxAG}, agCount)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidOptions, err)
	}
	db.geo = alloc.Geometry()
	db.mu.alloc = alloc
	db.mu.live = db.forest.Empty(kindNamespace)
	db.mu.snaps = map[string]*snapState{}
	db.mu.catalog = db.forest.Empty(kindCatalog)
	db.mu.refcount = db.forest.Empty(kindRefcount)
	db.mu.nextInode = 1
	db.cur.Store(&version{ns: db.mu.live})

	f, err := db.openDataFile(tmp, vfs.Create|vfs.ReadWrite)
	if err != nil {
		return err
	}
	db.data = f
	err = db.initData()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("cowdb: creating %s: %w", tmp, err)
	}
	if err := fs.Rename(tmp, path.Join(dir, dataName)); err != nil {
		return fmt.Errorf("cowdb: %w", err)
	}
	if err := fs.SyncDir(dir); err != nil {
		return fmt.Errorf("cowdb: %w", err)
	}
	return nil
}

// initData reserves the new data file's space, zeroes both superblock
// slots (so no leftover superblock is ever picked) and writes checkpoint 1.
func (db *DB) initData() error {
	size := int64(db.geo.TotalBlocks()) * int64(db.bs)
	if err := db.data.Fallocate(0, size); err != nil {
		return err
	}
	if err := db.writeBlocks(0, make([]byte, 2*db.bs)); err != nil {
		return err
	}
	return db.checkpoint()
}

// openData opens the data file, picks the superblock and loads the
// allocator, the catalog and the live root from the checkpoint.
func (db *DB) openData(given *Options) error {
	name := path.Join(db.dir, dataName)
	flag := vfs.ReadWrite
	if db.opts.ReadOnly {
		flag = 0
	}
	f, err := db.openDataFile(name, flag)
	if err != nil {
		return err
	}
	db.data = f
	sb, err := db.readSuperblock(name)
	if err != nil {
		return err
	}
	if given != nil && given.BlockSize != 0 && given.BlockSize != int(sb.BlockSize) {
		return fmt.Errorf("%w: BlockSize is %d but the store in %s has %d", ErrInvalidOptions, given.BlockSize, db.dir, sb.BlockSize)
	}
	if given != nil && given.GroupSize != 0 && given.GroupSize != int64(sb.BlocksPerAG)*int64(sb.BlockSize) {
		return fmt.Errorf("%w: GroupSize is %d but the store in %s has %d", ErrInvalidOptions, given.GroupSize, db.dir, int64(sb.BlocksPerAG)*int64(sb.BlockSize))
	}
	if err := db.setup(int(sb.BlockSize)); err != nil {
		return err
	}
	db.storeID, db.created = sb.StoreID, sb.CreatedUnixNano
	// One data cache for both writers, in the budget the node cache uses.
	co := &cowio.Options{Cache: db.cache}
	if db.cw, err = cowio.NewWriter(f, db.bs, dataSpace{db: db}, co); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidOptions, err)
	}
	if db.cwLocked, err = cowio.NewWriter(f, db.bs, dataSpace{db: db, locked: true}, co); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidOptions, err)
	}
	if db.inodes, err = cowio.NewTable(db.cw, 0, nil); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidOptions, err)
	}
	if err := db.loadAllocator(name, sb); err != nil {
		return err
	}
	db.mu.catalog = db.forest.Open(kindCatalog, sb.CatalogRoot)
	if err := db.loadCatalog(); err != nil {
		return fmt.Errorf("cowdb: %s: %w", name, err)
	}
	// A blob leaves an index entry ('i', even when empty) and extent
	// records ('x'); the keys sort 'i' < 'k' < 'x'.
	for _, p := range []byte{format.KeyPrefixBlobKey, format.KeyPrefixExtent} {
		e, ok, err := db.mu.live.SeekGE([]byte{p})
		if err != nil {
			return fmt.Errorf("cowdb: %s: %w", name, err)
		}
		db.mu.hasBlobs = db.mu.hasBlobs || ok && e.Key[0] == p
	}
	db.mu.nextInode = sb.NextInode
	db.mu.epoch, db.mu.cpLSN, db.mu.lastLSN = sb.Epoch, sb.CheckpointLSN, sb.CheckpointLSN
	db.cur.Store(&version{ns: db.mu.live, lsn: sb.CheckpointLSN})
	return nil
}

// readSuperblock reads both superblock copies and picks the newest valid
// one, checking that the file is as large as it says.
func (db *DB) readSuperblock(name string) (format.Superblock, error) {
	buf := vfs.AlignedBuf(2 * format.BlockSizeMax)
	n, err := db.data.ReadAt(buf, 0)
	if n < 2*format.BlockSizeMin {
		if err == nil {
			err = errors.New("short read")
		}
		return format.Superblock{}, format.Corruptf(name, format.ErrTruncated, "%d bytes: %v", n, err)
	}
	// Copy 1 sits one block in, at the block size the copies declare:
	// learn it from copy 0, else from a copy 1 found at its own offset.
	bs := db.bs
	if sb, err := format.DecodeSuperblock(buf); err == nil {
		bs = int(sb.BlockSize)
	} else {
		for try := format.NodeBlockSizeMin; 2*try <= n; try *= 2 {
			if sb, err := format.DecodeSuperblock(buf[try:]); err == nil && int(sb.BlockSize) == try {
				bs = try
				break
			}
		}
	}
	if 2*bs > n {
		return format.Superblock{}, format.Corruptf(name, format.ErrTruncated, "%d bytes", n)
	}
	sb, _, err := format.PickSuperblock([2][]byte{buf[:bs], buf[bs : 2*bs]})
	if err != nil {
		return format.Superblock{}, fmt.Errorf("cowdb: %s is not a usable cowdb data file: %w", name, err)
	}
	// The format allows AG 0 to start anywhere after the superblocks, but
	// extents always places it right after them; a store that says
	// otherwise would have its bitmaps and data read from the wrong blocks.
	if sb.AGStart != format.SuperblockCopies {
		return format.Superblock{}, format.Corruptf(name, format.ErrBadGeometry, "AG 0 starts at block %d, want %d", sb.AGStart, format.SuperblockCopies)
	}
	fi, err := db.data.Stat()
	if err != nil {
		return format.Superblock{}, fmt.Errorf("cowdb: %w", err)
	}
	want := (int64(sb.AGStart) + int64(sb.AGCount)*int64(sb.BlocksPerAG)) * int64(sb.BlockSize)
	if fi.Size < want {
		return format.Superblock{}, format.Corruptf(name, format.ErrTruncated, "%d bytes, the superblock needs %d", fi.Size, want)
	}
	return sb, nil
}

// loadAllocator rebuilds the allocator from every AG's bitmap copies and
// the refcount tree.
func (db *DB) loadAllocator(name string, sb format.Superblock) error {
	eo := &extents.Options{StoreID: sb.StoreID, BlockSize: int(sb.BlockSize), BlocksPerAG: sb.BlocksPerAG, MaxAGCount: sb.MaxAGCount}
	ld, err := extents.NewLoader(eo, sb.AGCount, sb.Epoch)
	if err != nil {
		return format.Corruptf(name, format.ErrBadGeometry, "%v", err)
	}
	geo := extents.Geometry{BlockSize: int(sb.BlockSize), BlocksPerAG: sb.BlocksPerAG, AGStart: sb.AGStart}
	bm := uint32(format.AGBitmapBlocks(sb.BlocksPerAG, int(sb.BlockSize)))
	buf := vfs.AlignedBuf(2 * int(bm) * db.bs)
	for ag := range sb.AGCount {
		first := geo.AGStart + format.Block(ag)*format.Block(sb.BlocksPerAG)
		if err := db.readBlocks(first, buf); err != nil {
			return fmt.Errorf("cowdb: %s: reading AG %d bitmaps: %w", name, ag, err)
		}
		half := int(bm) * db.bs
		slot, err := ld.LoadAG(ag, [2][]byte{buf[:half], buf[half:]})
		if err != nil {
			return fmt.Errorf("cowdb: %s: %w", name, format.Locate(err, fmt.Sprintf("AG %d bitmap", ag)))
		}
		c := buf[slot*half : (slot+1)*half]
		picked, err := format.DecodeAGBitmap(c)
		if err != nil {
			return fmt.Errorf("cowdb: %s: %w", name, err)
		}
		db.mu.agCopies = append(db.mu.agCopies, agCopy{epoch: uint64(picked.Epoch), sum: format.Checksum(c)})
	}
	if sb.BitmapDigest != 0 && bitmapDigest(db.mu.agCopies) != sb.BitmapDigest {
		return fmt.Errorf("cowdb: %s: %w", name, format.Corruptf("AG bitmaps", format.ErrMalformed,
			"the newest bitmap copies are not the ones checkpoint %d wrote (a lost, misdirected or damaged bitmap write)", sb.Epoch))
	}
	db.mu.refcount = db.forest.Open(kindRefcount, sb.RefcountRoot)
	for e, err := range db.mu.refcount.Range(nil, nil) {
		if err != nil {
			return fmt.Errorf("cowdb: %s: refcount tree: %w", name, err)
		}
		r, err := decodeRefcount(e.Key, e.Value)
		if err != nil {
			return fmt.Errorf("cowdb: %s: %w", name, err)
		}
		if err := ld.LoadRecord(r); err != nil {
			return fmt.Errorf("cowdb: %s: refcount record %v: %w", name, r, err)
		}
	}
	a, err := ld.Finish(sb.CheckpointLSN)
	if err != nil {
		return fmt.Errorf("cowdb: %s: %w", name, err)
	}
	db.mu.alloc = a
	db.geo = a.Geometry()
	return nil
}

// Refcount tree entries: key = start block (8, BE), value = length (8, LE)
// and count (4, LE).
func refcountEntry(r extents.Record) (k, v []byte) {
	k = binary.BigEndian.AppendUint64(nil, uint64(r.Start))
	v = binary.LittleEndian.AppendUint64(nil, r.Len)
	return k, binary.LittleEndian.AppendUint32(v, r.Count)
}

func decodeRefcount(k, v []byte) (extents.Record, error) {
	if len(k) != 8 || len(v) != 12 {
		return extents.Record{}, format.Corruptf("refcount record", format.ErrMalformed, "key %d bytes, value %d bytes", len(k), len(v))
	}
	return extents.Record{
		Start: format.Block(binary.BigEndian.Uint64(k)),
		Len:   binary.LittleEndian.Uint64(v),
		Count: binary.LittleEndian.Uint32(v[8:]),
	}, nil
}

// loadCatalog reads the catalog: the live root, the snapshots and the
// drops in progress.
func (db *DB) loadCatalog() error {
	db.mu.snaps = map[string]*snapState{}
	live := false
	for e, err := range db.mu.catalog.Range(nil, nil) {
		if err != nil {
			return err
		}
		kind, name, dropID, err := snapshot.ParseKey(e.Key)
		if err != nil {
			return err
		}
		rec, err := snapshot.DecodeRecord(e.Value)
		if err != nil {
			return fmt.Errorf("catalog entry %q: %w", e.Key, err)
		}
		switch {
		case kind == snapshot.KeyLive && rec.Kind == snapshot.RootLive:
			db.mu.live = db.forest.Open(kindNamespace, rec.Root)
			live = true
		case kind == snapshot.KeySnapshot && rec.Kind == snapshot.RootSnapshot:
			db.mu.snaps[name] = &snapState{tree: db.forest.Open(kindNamespace, rec.Root), created: rec.Created}
		case kind == snapshot.KeyDrop && rec.Kind == snapshot.RootDropping:
			d, err := db.forest.ResumeDrop(rec.Cursor)
			if err != nil {
				return fmt.Errorf("catalog entry %q: %w", e.Key, err)
			}
			db.mu.drops = append(db.mu.drops, &dropState{id: dropID, d: d, persisted: true, created: rec.Created})
		default:
			return format.Corruptf("catalog", format.ErrMalformed, "entry %q holds a root of kind %d", e.Key, rec.Kind)
		}
	}
	if !live {
		return format.Corruptf("catalog", format.ErrMalformed, "no live root")
	}
	return nil
}

// openWAL opens the log directory with the store's ID.
func (db *DB) openWAL() error {
	seg := db.opts.WALSegmentSize
	if seg == 0 {
		seg = wal.SegmentSizeDefault
	}
	db.recordMax = int(min(walRecordMax, seg/4))
	l, err := wal.Open(db.fs, path.Join(db.dir, walDirName), wal.Options{
		StoreID:       db.storeID,
		SegmentSize:   seg,
		MaxRecordSize: db.recordMax,
		DirectIO:      db.opts.DirectIO,
		BeforeFlush:   db.data.Datasync,
		Logger:        db.logger,
	})
	if err != nil {
		return fmt.Errorf("cowdb: %s: %w", path.Join(db.dir, walDirName), err)
	}
	db.wal = l
	return nil
}
