package cowio

import (
	"reflect"
	"testing"

	"pgregory.net/rapid"

	"github.com/cowdb/cowdb/internal/format"
)

// TestEntryListModel checks the leaved entryList against the flat list
// functions it is built on (which TestInodeModel and the others check
// through the Inode): random splices of random ranges, with replacement
// entries that sometimes continue their neighbours on disk (so they merge),
// over enough entries to span many leaves; after each one, every query
// (all, within, gaps, neighbour) must agree with the flat list, the leaves
// must be non-empty and at most leafMax long, and the removed parts must
// be equal.
func TestEntryListModel(t *testing.T) {
	maxLeaves := 0
	rapid.Check(t, func(rt *rapid.T) {
		// Start from many separate entries, so the list spans leaves.
		var flat []Entry
		for i := range rapid.IntRange(0, 1000).Draw(rt, "initial") {
			flat = append(flat, Entry{FileBlock: FileBlock(2 * i), Start: format.Block(10*i + 2), Len: 1})
		}
		list := newEntryList(flat)
		span := FileBlock(rapid.IntRange(10, 2000).Draw(rt, "span"))
		for range rapid.IntRange(1, 300).Draw(rt, "ops") {
			a := FileBlock(rapid.IntRange(0, int(span)).Draw(rt, "a"))
			b := a + FileBlock(rapid.IntRange(0, 60).Draw(rt, "len"))
			if rapid.IntRange(0, 50).Draw(rt, "truncate") == 0 {
				b = fileBlockMax
			}
			var repl []Entry
			if b != fileBlockMax && rapid.IntRange(0, 4).Draw(rt, "hole") != 0 {
				for fb := a; fb < b; {
					n := FileBlock(rapid.IntRange(1, min(3, int(b-fb))).Draw(rt, "n"))
					start := format.Block(rapid.IntRange(2, 1<<20).Draw(rt, "start"))
					if g, _, ok := neighbour(flat, fb); ok && rapid.Bool().Draw(rt, "contiguous") {
						start = max(g, 2)
					}
					var sums []uint64
					if rapid.Bool().Draw(rt, "sums") {
						sums = make([]uint64, n)
					}
					repl = append(repl, Entry{FileBlock: fb, Start: start, Len: uint64(n), Sums: sums})
					fb += n
				}
			}
			var wantRemoved []Entry
			flat, wantRemoved = splice(flat, a, b, append([]Entry(nil), repl...))
			removed := list.splice(a, b, append([]Entry(nil), repl...))
			if !reflect.DeepEqual(removed, wantRemoved) {
				rt.Fatalf("splice [%d,%d): removed %v, want %v", a, b, removed, wantRemoved)
			}
			checkEntryList(rt, &list, flat, span)
			maxLeaves = max(maxLeaves, len(list.leaves))
		}
	})
	if maxLeaves < 3 {
		t.Fatalf("the lists never spanned more than %d leaves", maxLeaves)
	}
}

// checkEntryList compares every query of list with the flat list.
func checkEntryList(rt *rapid.T, list *entryList, flat []Entry, span FileBlock) {
	if got := list.all(); !reflect.DeepEqual(got, flat) && (len(got) != 0 || len(flat) != 0) {
		rt.Fatalf("list holds %v, want %v", got, flat)
	}
	for _, lf := range list.leaves {
		if len(lf) == 0 || len(lf) > leafMax {
			rt.Fatalf("leaf of %d entries", len(lf))
		}
	}
	if err := (Mapping{Entries: flat}).Validate(4096); err != nil {
		rt.Fatal(err)
	}
	a := FileBlock(rapid.IntRange(0, int(span)+50).Draw(rt, "qa"))
	b := a + FileBlock(rapid.IntRange(0, 200).Draw(rt, "qlen"))
	if got, want := list.within(a, b), within(flat, a, b); !reflect.DeepEqual(got, want) {
		rt.Fatalf("within [%d,%d) = %v, want %v", a, b, got, want)
	}
	if got, want := list.gaps(a, b), gaps(flat, a, b); !reflect.DeepEqual(got, want) {
		rt.Fatalf("gaps [%d,%d) = %v, want %v", a, b, got, want)
	}
	g1, d1, ok1 := list.neighbour(a)
	g2, d2, ok2 := neighbour(flat, a)
	if g1 != g2 || d1 != d2 || ok1 != ok2 {
		rt.Fatalf("neighbour(%d) = %d, %d, %v; want %d, %d, %v", a, g1, d1, ok1, g2, d2, ok2)
	}
}
