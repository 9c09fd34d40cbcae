package main

import (
	"encoding/xml"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestParseLine checks that result lines are split into workload, store
// and metrics (the GOMAXPROCS suffix dropped), and that other lines are
// refused.
func TestParseLine(t *testing.T) {
	s, ok := parseLine("BenchmarkPutAlone1/cowdb-2   1   118436 ns/op   118.4 mean-µs   8443 ops/s")
	if !ok || s.workload != "PutAlone1" || s.store != "cowdb" {
		t.Fatalf("got %+v, %v", s, ok)
	}
	if s.metrics["ops/s"] != 8443 || s.metrics["mean-µs"] != 118.4 || s.metrics["ns/op"] != 118436 {
		t.Fatalf("metrics %v", s.metrics)
	}
	for _, bad := range []string{"PASS", "goos: linux", "BenchmarkGet/cowdb-2 1 x ns/op", "BenchmarkGet-2 1 5 ns/op", "--- FAIL: BenchmarkGet/cowdb"} {
		if _, ok := parseLine(bad); ok {
			t.Errorf("parseLine(%q) accepted", bad)
		}
	}
}

// TestNum checks the human formatting of figures.
func TestNum(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 8: "8", 117.66: "117.7", 999: "999", 1000: "1,000", 74874.4: "74,874", 3968876: "3,968,876"} {
		if got := num(v); got != want {
			t.Errorf("num(%v) = %q, want %q", v, got, want)
		}
	}
}

// TestTable checks medians, spreads and ratios of a small two-run input:
// the median of 2 runs is their mean, ratios divide medians, other
// metrics are listed by their median, and a workload without a raw row
// shows "–".
func TestTable(t *testing.T) {
	in := `BenchmarkGet/cowdb-2 1 1 ns/op 100 ops/s 7 warm-ops/s
BenchmarkGet/bbolt-2 1 1 ns/op 300 ops/s
BenchmarkGet/raw-2 1 1 ns/op 50 ops/s
BenchmarkGet/cowdb-2 1 1 ns/op 200 ops/s 9 warm-ops/s
BenchmarkGet/bbolt-2 1 1 ns/op 300 ops/s
BenchmarkGet/raw-2 1 1 ns/op 50 ops/s
BenchmarkPut/cowdb-2 1 1 ns/op 10 ops/s
`
	tb := &table{values: map[[3]string][]float64{}}
	for _, l := range strings.Split(in, "\n") {
		if s, ok := parseLine(l); ok {
			tb.add(s)
		}
	}
	var out strings.Builder
	tb.write(&out)
	for _, want := range []string{
		"| cowdb | 150 | 100 – 200 | 2 | 1.00× | 3.00× | warm-ops/s 8 |",
		"| bbolt | 300 | 300 – 300 | 2 | 2.00× | 6.00× |  |",
		"| raw | 50 | 50 – 50 | 2 | 0.33× | 1.00× |  |",
		"| cowdb | 10 | 10 – 10 | 1 | 1.00× | – |  |",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestSVG checks that the chart is well-formed XML with one bar per store
// and workload, the fastest store's bar at full length and a slower one's
// in proportion, and no line on wa when no store reported it.
func TestSVG(t *testing.T) {
	tb := &table{values: map[[3]string][]float64{}}
	for _, l := range []string{
		"BenchmarkGet/cowdb-2 1 1 ns/op 100 ops/s",
		"BenchmarkGet/bbolt-2 1 1 ns/op 400 ops/s",
		"BenchmarkPut/cowdb-2 1 1 ns/op 10 ops/s",
	} {
		s, _ := parseLine(l)
		tb.add(s)
	}
	var out strings.Builder
	tb.writeSVG(&out)
	d := xml.NewDecoder(strings.NewReader(out.String()))
	var widths []string
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed: %v\n%s", err, out.String())
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
			for _, a := range se.Attr {
				if a.Name.Local == "width" {
					widths = append(widths, a.Value)
				}
			}
		}
	}
	if strings.Contains(out.String(), "wa:") {
		t.Errorf("a chart without wa explains wa:\n%s", out.String())
	}
	full, quarter := strconv.Itoa(svgBarMax), strconv.Itoa(svgBarMax/4)
	want := []string{"100%", quarter, full, full} // background, Get cowdb, Get bbolt, Put cowdb
	if !slices.Equal(widths, want) {
		t.Fatalf("rect widths %v, want %v", widths, want)
	}
}

// TestRateUnit checks a workload that reports MB/s and no ops/s (blob
// ingest): its table is in MB/s, its ratios divide MB/s, and MB/s is not
// repeated among the other metrics, while wa is (and labels the bars,
// with a line saying what it is); a workload with neither unit is left
// out.
func TestRateUnit(t *testing.T) {
	tb := &table{values: map[[3]string][]float64{}}
	for _, l := range []string{
		"BenchmarkBlobIngest/cowdb-2 1 9 ns/op 200 MB/s 1.5 wa",
		"BenchmarkBlobIngest/raw-2 1 9 ns/op 800 MB/s 1 wa",
		"BenchmarkOdd/cowdb-2 1 9 ns/op 3 things",
	} {
		s, ok := parseLine(l)
		if !ok {
			t.Fatalf("parseLine(%q) refused", l)
		}
		tb.add(s)
	}
	var out strings.Builder
	tb.write(&out)
	for _, want := range []string{
		"| store | MB/s (median) |",
		"| cowdb | 200 | 200 – 200 | 1 | 1.00× | 0.25× | wa 1.5 |",
		"| raw | 800 | 800 – 800 | 1 | 4.00× | 1.00× | wa 1 |",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "Odd") {
		t.Errorf("a workload without a rate got a table:\n%s", out.String())
	}
	var svg strings.Builder
	tb.writeSVG(&svg)
	for _, want := range []string{">BlobIngest (MB/s)<", ">200 · wa 1.5×<", ">800 · wa 1×<", ">wa: bytes written to the device per byte"} {
		if !strings.Contains(svg.String(), want) {
			t.Errorf("chart lacks %q:\n%s", want, svg.String())
		}
	}
	if strings.Contains(svg.String(), "Odd") {
		t.Errorf("a workload without a rate got bars:\n%s", svg.String())
	}
}

// TestRunRatios checks -ratios=runs: each ratio column is the median of
// the runs' own ratios (3 and 1.5 here, so 2.25), where the ratio of the
// medians would be 2.
func TestRunRatios(t *testing.T) {
	tb := &table{values: map[[3]string][]float64{}, perRun: true}
	for _, l := range []string{
		"BenchmarkGet/cowdb-2 1 1 ns/op 100 ops/s",
		"BenchmarkGet/bbolt-2 1 1 ns/op 300 ops/s",
		"BenchmarkGet/raw-2 1 1 ns/op 300 ops/s",
		"BenchmarkGet/cowdb-2 1 1 ns/op 200 ops/s",
		"BenchmarkGet/bbolt-2 1 1 ns/op 300 ops/s",
		"BenchmarkGet/raw-2 1 1 ns/op 100 ops/s",
	} {
		s, _ := parseLine(l)
		tb.add(s)
	}
	var out strings.Builder
	tb.write(&out)
	for _, want := range []string{
		"| store | ops/s (median) | spread (min – max) | runs | run's ratio to cowdb | run's ratio to raw |",
		"| bbolt | 300 | 300 – 300 | 2 | 2.25× | 2.00× |  |",
		"| cowdb | 150 | 100 – 200 | 2 | 1.00× | 1.17× |  |",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
