package vfs

import "math/rand/v2"

// Crash simulates power loss and reboot. The file system afterwards holds
// what the disk would: the entries of each directory as of its last
// SyncDir (plus, with SetEntryJournal on, a prefix of the later changes),
// starting from the root (so a subtree whose own entry was never made
// durable is gone), and for each file its durable content followed by
// each unsynced change, in order, independently lost or kept:
//
//   - a write is lost, kept, or torn with equal odds; a torn write keeps
//     each SectorSize sector it touches with even odds;
//   - a truncation or fallocation is lost or kept with even odds.
//
// So after a crash every synced byte is present, every unsynced sector holds
// the content of some write to it or what was there before, and an unsynced
// fallocated range is absent or zeros. The fates are drawn from seed and
// each file's identity, so the same history and seed always give the same
// result, whatever the order of map iteration.
//
// Every File and lock obtained before the crash is dead: their methods fail
// with ErrClosed and the locks are released. A crash point armed by
// CrashAfter is disarmed and the machine is alive again.
func (m *MemFS) Crash(seed int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.replayJournalLocked(seed)
	m.mu.root = recoverNode(m.mu.root, make(map[*memNode]*memNode), func(n *memNode) memImage {
		return crashImage(n, seed)
	})
	m.mu.boot++
	m.mu.locks = make(map[*memNode]*memLockState)
	m.mu.dead = false
	m.mu.crashIn = -1
}

// replayJournalLocked makes durable a prefix, drawn from seed, of the
// journaled directory changes (none unless SetEntryJournal is on), then
// empties the journal.
func (m *MemFS) replayJournalLocked(seed int64) {
	if len(m.mu.journal) == 0 {
		return
	}
	// Stream 0 is free: file fates use the node identities, which start at 1.
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	for _, rec := range m.mu.journal[:rng.IntN(len(m.mu.journal)+1)] {
		for _, c := range rec {
			if c.node == nil {
				delete(c.dir.durable, c.name)
			} else {
				c.dir.durable[c.name] = c.node
			}
		}
	}
	m.mu.journal = nil
}

// CloneDurable returns a new MemFS holding m's durable image: what Crash
// would leave if every unsynced change were lost. m is unchanged; the clone
// shares nothing with it, has default settings and no crash point.
func (m *MemFS) CloneDurable() *MemFS {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := NewMem()
	c.mu.root = recoverNode(m.mu.root, make(map[*memNode]*memNode), func(n *memNode) memImage {
		return n.dur.clone()
	})
	c.mu.nextID = m.mu.nextID
	return c
}

// recoverNode rebuilds the durable tree under n: directories from their
// durable entries, files from image. Nodes keep their identities. seen maps
// old nodes to new ones, so a node reachable by two names (a rename between
// two directories of which only one was synced) stays one node, and the
// walk ends even on the cycles such partial renames can produce.
func recoverNode(n *memNode, seen map[*memNode]*memNode, image func(*memNode) memImage) *memNode {
	if r := seen[n]; r != nil {
		return r
	}
	r := &memNode{id: n.id, dir: n.dir}
	seen[n] = r
	if !n.dir {
		r.cur = image(n)
		r.dur = r.cur.clone()
		return r
	}
	r.live = make(map[string]*memNode, len(n.durable))
	r.durable = make(map[string]*memNode, len(n.durable))
	for name, child := range n.durable {
		rc := recoverNode(child, seen, image)
		r.live[name] = rc
		r.durable[name] = rc
	}
	return r
}

// crashImage returns what a power loss leaves of file n: its durable image
// with each pending change lost, kept or torn as drawn from seed and n.id.
func crashImage(n *memNode, seed int64) memImage {
	im := n.dur.clone()
	rng := rand.New(rand.NewPCG(uint64(seed), n.id))
	for _, c := range n.pending {
		if c.kind != memWrite {
			if rng.IntN(2) == 1 {
				im.apply(c)
			}
			continue
		}
		switch rng.IntN(3) {
		case 0: // lost
		case 1:
			im.apply(c)
		case 2:
			tearWrite(&im, c, rng)
		}
	}
	return im
}

// tearWrite applies the sectors of write c that survive, each with even
// odds.
func tearWrite(im *memImage, c memOp, rng *rand.Rand) {
	end := c.off + int64(len(c.data))
	for start := c.off; start < end; {
		next := min(end, (start/SectorSize+1)*SectorSize)
		if rng.IntN(2) == 1 {
			im.writeAt(c.data[start-c.off:next-c.off], start)
		}
		start = next
	}
}
