package cowdb_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cowdb/cowdb"
)

// killOpts are the options of the SIGKILL test's store, parent and child.
func killOpts() *cowdb.Options {
	return &cowdb.Options{GroupSize: 4 << 20, WALSegmentSize: 1 << 20, CheckpointWALSize: 256 << 10}
}

// killValue is what the child writes at step i: the same bytes for the
// same i, so the parent can check them without being told.
func killValue(i int) []byte {
	rng := rand.New(rand.NewPCG(uint64(i), 77))
	n := 10
	switch i % 4 {
	case 1:
		n = 3000 // a value in extents
	case 2:
		n = 100 // a blob write, unaligned
	case 3:
		n = 4096 // a blob write, aligned
	}
	p := make([]byte, n)
	for j := range p {
		p[j] = byte(rng.Uint32())
	}
	return p
}

// killChild writes with SyncAlways until killed: puts of small and large
// values and blob writes, aligned and unaligned, printing "ack i" after
// each acknowledged write.
func killChild(dir string) {
	db, err := cowdb.Open(dir, killOpts())
	if err != nil {
		fmt.Println("open failed:", err)
		os.Exit(2)
	}
	b, err := db.OpenBlob([]byte("blob"))
	if errors.Is(err, cowdb.ErrNotFound) {
		b, err = db.CreateBlob([]byte("blob"))
	}
	if err != nil {
		fmt.Println("blob failed:", err)
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	start, _ := strconv.Atoi(os.Getenv("COWDB_TEST_KILL_START"))
	for i := start; ; i++ {
		v := killValue(i)
		switch i % 4 {
		case 0, 1:
			err = db.Put([]byte(fmt.Sprintf("k%06d", i)), v)
		default:
			_, err = b.WriteAt(v, killOffset(i))
		}
		if err != nil {
			fmt.Fprintln(out, "write failed:", err)
			out.Flush()
			os.Exit(2)
		}
		fmt.Fprintln(out, "ack", i)
		out.Flush()
	}
}

// killOffset is where step i writes in the blob: each step its own range,
// so every acknowledged write stays readable.
func killOffset(i int) int64 { return int64(i) * 4096 }

// TestKillProcess runs a child process writing with SyncAlways, kills it
// with SIGKILL at random times, and checks after each kill that the store
// opens, holds every write the child acknowledged (plus possibly the one
// in flight), and passes Check. The test binary re-executes itself as the
// child.
func TestKillProcess(t *testing.T) {
	if dir := os.Getenv("COWDB_TEST_KILL_DIR"); dir != "" {
		killChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("spawns processes")
	}
	rounds := 5
	if *long {
		rounds = 50
	}
	dir := filepath.Join(t.TempDir(), "db")
	rng := rand.New(rand.NewPCG(5, 5))
	next, acked := 0, 0
	for round := range rounds {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillProcess$")
		cmd.Env = append(os.Environ(), "COWDB_TEST_KILL_DIR="+dir, "COWDB_TEST_KILL_START="+strconv.Itoa(next))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Read acknowledgements until the kill, which comes after a random
		// number of them (and a random delay, so it can land anywhere in a
		// write).
		want := 20 + rng.IntN(200)
		sc := bufio.NewScanner(stdout)
		last := next - 1
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, "ack ") {
				t.Fatalf("round %d: child: %s\n%s", round, line, stderr.String())
			}
			last, _ = strconv.Atoi(line[4:])
			if last-next+1 >= want {
				time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond)
				cmd.Process.Signal(syscall.SIGKILL)
				break
			}
		}
		for sc.Scan() { // acknowledgements printed before the kill landed
			if line := sc.Text(); strings.HasPrefix(line, "ack ") {
				last, _ = strconv.Atoi(line[4:])
			}
		}
		cmd.Wait()
		acked += last - next + 1
		// The write after the last acknowledged one may or may not be
		// there; the next child starts after it, so it is never checked.
		skipped[last+1] = true
		if err := verifyKilled(dir, last); err != nil {
			t.Fatalf("round %d, killed after write %d: %v\nreproduce: go test -run '^TestKillProcess$' -count=1 .", round, last, err)
		}
		next = last + 2
	}
	t.Logf("%d kills, %d acknowledged writes verified each time", rounds, acked)
}

// verifyKilled opens the store a killed child left and checks every write
// up to last, and the whole store with Check.
func verifyKilled(dir string, last int) error {
	db, err := cowdb.Open(dir, killOpts())
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer db.Close()
	b, err := db.OpenBlob([]byte("blob"))
	if err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	defer b.Close()
	got := make([]byte, 4096)
	for i := 0; i <= last; i++ {
		want := killValue(i)
		switch i % 4 {
		case 0, 1:
			v, err := db.Get([]byte(fmt.Sprintf("k%06d", i)))
			if errors.Is(err, cowdb.ErrNotFound) && skipped[i] {
				continue // the write in flight at a kill: all or nothing
			}
			if err != nil || !bytes.Equal(v, want) {
				return fmt.Errorf("put %d: %v, value equal: %v", i, err, bytes.Equal(v, want))
			}
		default:
			n, err := b.ReadAt(got[:len(want)], killOffset(i))
			if err != nil || !bytes.Equal(got[:n], want) {
				if allZero(got[:n]) && skipped[i] {
					continue
				}
				return fmt.Errorf("blob write %d: %v, equal: %v", i, err, bytes.Equal(got[:n], want))
			}
		}
	}
	return db.Check()
}

// skipped records the steps in flight at a kill (never written again: the
// next child starts after them): present whole or absent.
var skipped = map[int]bool{}

func allZero(p []byte) bool {
	for _, c := range p {
		if c != 0 {
			return false
		}
	}
	return true
}
