package cowdb_test

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/cowdb/cowdb"
	"github.com/cowdb/cowdb/vfs"
)

// TestConcurrent runs writers, readers, scanners, transactions and
// checkpoints at once (meant for -race). Each writer owns its keys and
// writes increasing counters, so readers can check that a value never goes
// backwards and that a transaction's two keys are always seen equal.
func TestConcurrent(t *testing.T) {
	db := mustOpen(t, vfs.NewMem(), "/db")
	defer db.Close()
	const writers, rounds = 4, 150
	var wg sync.WaitGroup
	errc := make(chan error, 64)
	report := func(err error) {
		select {
		case errc <- err:
		default:
		}
	}
	stop := make(chan struct{})
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				v := []byte(strconv.Itoa(i))
				if err := db.Put([]byte(fmt.Sprintf("w%d", w)), v); err != nil {
					report(err)
					return
				}
				err := db.Update(func(tx *cowdb.Tx) error {
					if err := tx.Put([]byte(fmt.Sprintf("tx%d-a", w)), v); err != nil {
						return err
					}
					return tx.Put([]byte(fmt.Sprintf("tx%d-b", w)), v)
				})
				if err != nil {
					report(err)
					return
				}
			}
		}()
	}
	// Two writers of large values, each value one repeated byte, and a
	// reader checking that every value it reads is whole.
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				v := bytes.Repeat([]byte{byte(i)}, 5000+i*700)
				if err := db.Put([]byte(fmt.Sprintf("big%d", w)), v); err != nil {
					report(err)
					return
				}
			}
		}()
	}
	var readers sync.WaitGroup
	readers.Add(1)
	go func() {
		defer readers.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for w := range 2 {
				v, err := db.Get([]byte(fmt.Sprintf("big%d", w)))
				if errors.Is(err, cowdb.ErrNotFound) {
					continue
				}
				if err != nil || len(v) < 5000 || !bytes.Equal(v, bytes.Repeat(v[:1], len(v))) || len(v) != 5000+int(v[0])*700 {
					report(fmt.Errorf("big%d read torn or failed: %d bytes, %v", w, len(v), err))
					return
				}
			}
		}
	}()
	for r := range 4 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			last := map[string]int{}
			for {
				select {
				case <-stop:
					return
				default:
				}
				switch r % 3 {
				case 0:
					for w := range writers {
						k := fmt.Sprintf("w%d", w)
						v, err := db.Get([]byte(k))
						if errors.Is(err, cowdb.ErrNotFound) {
							continue
						}
						n, _ := strconv.Atoi(string(v))
						if err != nil || n < last[k] {
							report(fmt.Errorf("Get(%s) = %q, %v after %d", k, v, err, last[k]))
							return
						}
						last[k] = n
					}
				case 1:
					db.View(func(tx *cowdb.Tx) error {
						for w := range writers {
							a, ea := tx.Get([]byte(fmt.Sprintf("tx%d-a", w)))
							b, eb := tx.Get([]byte(fmt.Sprintf("tx%d-b", w)))
							if (ea == nil) != (eb == nil) || string(a) != string(b) {
								report(fmt.Errorf("transaction seen half applied: %q %v / %q %v", a, ea, b, eb))
							}
						}
						return nil
					})
				case 2:
					seen := map[string]string{}
					for it, err := range db.Prefix([]byte("tx")) {
						if err != nil {
							report(err)
							return
						}
						v, err := it.Value()
						if err != nil {
							report(err)
							return
						}
						seen[string(it.Key)] = string(v)
					}
					for w := range writers {
						if a, b := seen[fmt.Sprintf("tx%d-a", w)], seen[fmt.Sprintf("tx%d-b", w)]; a != b {
							report(fmt.Errorf("scan saw a transaction half applied: %q %q", a, b))
						}
					}
				}
			}
		}()
	}
	readers.Add(1)
	go func() {
		defer readers.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := db.Checkpoint(); err != nil {
				report(err)
				return
			}
		}
	}()
	wg.Wait()
	close(stop)
	readers.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	for w := range writers {
		if v, err := db.Get([]byte(fmt.Sprintf("w%d", w))); err != nil || string(v) != strconv.Itoa(rounds-1) {
			t.Fatalf("final w%d = %q, %v", w, v, err)
		}
	}
}
