package cowio_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cowdb/cowdb/cowio"
	"github.com/cowdb/cowdb/internal/format"
)

// TestTable checks the inode table: concurrent Acquires of one ID load it
// once and share one Inode; a failed load keeps nothing; idle Inodes beyond
// the size are dropped least recently used first, with their reserved
// blocks released, while pinned ones and ones with writes in flight stay;
// and a Release without an Acquire panics.
func TestTable(t *testing.T) {
	space := newFakeSpace(4096, 0)
	w := newWriter(t, openData(t, onMem), space, nil)
	st := &testStore{space: space}
	tab, err := cowio.NewTable(w, 2, &cowio.InodeOptions{CowExtSize: 8})
	if err != nil {
		t.Fatal(err)
	}
	var loads atomic.Int32
	load := func() (cowio.Mapping, error) { loads.Add(1); return cowio.Mapping{}, nil }
	got := make([]*cowio.Inode, 8)
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() {
			ino, err := tab.Acquire(1, load)
			if err != nil {
				t.Error(err)
			}
			got[i] = ino
		})
	}
	wg.Wait()
	for _, ino := range got {
		if ino != got[0] {
			t.Fatal("two Inodes for one ID")
		}
	}
	if loads.Load() != 1 {
		t.Fatalf("%d loads of one inode", loads.Load())
	}
	boom := errors.New("boom")
	if _, err := tab.Acquire(9, func() (cowio.Mapping, error) { return cowio.Mapping{}, boom }); !errors.Is(err, boom) || tab.Len() != 1 {
		t.Fatalf("failed load: %v, %d inodes held", err, tab.Len())
	}
	// Give inode 1 reserved blocks, then release every pin.
	r, err := got[0].WriteAt(make([]byte, bs), 0)
	if err != nil {
		t.Fatal(err)
	}
	st.commit(t, got[0], r)
	for range got {
		tab.Release(got[0])
	}
	if space.count(stStaging) == 0 {
		t.Fatal("the hint reserved nothing")
	}
	// Inodes 2 and 3 idle, 4 pinned with a write in flight: 1 is the
	// least recently used and goes, with its reservation.
	for id := format.InodeID(2); id <= 4; id++ {
		ino, err := tab.Acquire(id, load)
		if err != nil {
			t.Fatal(err)
		}
		if id == 4 {
			if _, err := ino.WriteAt(make([]byte, bs), 0); err != nil {
				t.Fatal(err)
			}
			continue
		}
		tab.Release(ino)
	}
	if tab.Len() != 3 || space.count(stStaging) != 8 {
		t.Fatalf("%d inodes held, %d blocks staging; want 3 and inode 4's 8", tab.Len(), space.count(stStaging))
	}
	if n := tab.ReleaseReserved(); n != 7 || space.count(stStaging) != 1 {
		t.Fatalf("ReleaseReserved released %d, %d blocks left staging; want 7 and the write's 1", n, space.count(stStaging))
	}
	if tab.Drop(4) {
		t.Fatal("dropped a pinned inode")
	}
	if !tab.Drop(2) || tab.Len() != 2 {
		t.Fatal("Drop of an idle inode failed")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("releasing an inode not acquired did not panic")
		}
	}()
	tab.Release(got[0])
}
