package cowio_test

import (
	"bytes"
	"io"
	"testing"

	"pgregory.net/rapid"

	"github.com/cowdb/cowdb/cowio"
	"github.com/cowdb/cowdb/internal/format"
)

// TestModel draws a Writer configuration (I/O size, in-flight limit,
// fragmentation of the space) and a sequence of values, writes them, and
// checks random reads of random earlier values against the bytes written,
// then that every block handed out is accounted for: committed blocks are
// exactly the values' blocks, none shared between two values.
func TestModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		ioBlocks := rapid.IntRange(1, 8).Draw(rt, "ioBlocks")
		space := newFakeSpace(2048, uint64(rapid.IntRange(0, 6).Draw(rt, "maxRun")))
		w := newWriter(rt, openData(rt, onMem), space, &cowio.Options{
			IOSize:   ioBlocks * bs,
			InFlight: rapid.IntRange(1, 8).Draw(rt, "inFlight"),
		})
		var values []value
		owner := map[format.Block]int{}
		for range rapid.IntRange(1, 12).Draw(rt, "ops") {
			if len(values) == 0 || rapid.Bool().Draw(rt, "write") {
				p := rapid.SliceOfN(rapid.Byte(), 0, 30*bs).Draw(rt, "value")
				m, err := w.WriteNew(p, format.Block(rapid.IntRange(0, 2047).Draw(rt, "goal")))
				if err != nil {
					rt.Fatal(err)
				}
				checkMapping(rt, m, p)
				space.commit(rt, m)
				for _, e := range m.Entries {
					for b := e.Start; b < e.Start+format.Block(e.Len); b++ {
						if prev, ok := owner[b]; ok {
							rt.Fatalf("block %d given to values %d and %d", b, prev, len(values))
						}
						owner[b] = len(values)
					}
				}
				values = append(values, value{m, p})
				continue
			}
			v := values[rapid.IntRange(0, len(values)-1).Draw(rt, "which")]
			off := rapid.IntRange(0, len(v.p)+bs).Draw(rt, "off")
			got := make([]byte, rapid.IntRange(0, 3*ioBlocks*bs).Draw(rt, "n"))
			n, err := w.ReadAt(v.m, int64(len(v.p)), got, int64(off))
			want := max(0, min(len(got), len(v.p)-off))
			var wantErr error
			if want < len(got) || off >= len(v.p) {
				wantErr = io.EOF // io.ReaderAt: also at or past the end
			}
			if n != want || err != wantErr {
				rt.Fatalf("ReadAt(%d at %d) of %d = %d, %v", len(got), off, len(v.p), n, err)
			}
			if !bytes.Equal(got[:n], v.p[min(off, len(v.p)):][:n]) {
				rt.Fatalf("ReadAt(%d at %d) returned wrong bytes", len(got), off)
			}
		}
		if c := space.count(stCommitted); c != len(owner) {
			rt.Fatalf("%d blocks committed, values hold %d", c, len(owner))
		}
		space.check(rt)
	})
}
