// Command peerstable turns the output of one or more runs of the peers
// benchmarks (go test -bench, concatenated) into the markdown tables of
// docs/peers.md: for each workload and store, the median rate over the
// runs (ops/s, or MB/s for a workload that reports no ops/s, such as blob
// ingest), the spread (lowest and highest run), the ratios of the median
// to cowdb's and to the raw device's, and the medians of the other
// metrics (latencies, write amplification "wa", ...).
//
// With -ratios=runs the two ratio columns are instead the median, over the
// runs, of each run's own ratio: on a shared machine the load changes
// from run to run, and a ratio taken within one run compares stores
// measured close together in time. It pairs a store's k-th result with
// the reference's k-th, so every run must report every store.
//
// With -svg it writes instead an SVG chart of the same medians: one group
// of bars per workload, each bar's length the store's median relative to
// the fastest store of that workload, labelled with its rate and, where
// the workload reports it, its write amplification.
//
// It reads standard input and writes standard output; it never runs
// benchmarks itself. Usage:
//
//	go run ./cmd/peerstable < runs.txt > table.md
//	go run ./cmd/peerstable -ratios=runs < runs.txt > table.md
//	go run ./cmd/peerstable -svg < runs.txt > chart.svg
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

// sample is one benchmark result line: workload, store, and its metrics
// by unit.
type sample struct {
	workload, store string
	metrics         map[string]float64
}

// parseLine parses a result line such as
// "BenchmarkGet/cowdb-2  1  5991 ns/op  166907 ops/s"; ok is false for any
// other line.
func parseLine(line string) (s sample, ok bool) {
	f := strings.Fields(line)
	if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
		return s, false
	}
	name := strings.TrimPrefix(f[0], "Benchmark")
	if i := strings.LastIndexByte(name, '-'); i > 0 {
		if _, err := strconv.Atoi(name[i+1:]); err == nil {
			name = name[:i] // the GOMAXPROCS suffix
		}
	}
	workload, store, found := strings.Cut(name, "/")
	if !found {
		return s, false
	}
	s = sample{workload: workload, store: store, metrics: map[string]float64{}}
	for i := 2; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return s, false
		}
		s.metrics[f[i+1]] = v
	}
	return s, true
}

// stat is the median and range of one metric over the runs.
type stat struct{ median, lo, hi float64 }

func summarize(vs []float64) stat {
	vs = slices.Clone(vs)
	slices.Sort(vs)
	n := len(vs)
	m := vs[n/2]
	if n%2 == 0 {
		m = (vs[n/2-1] + vs[n/2]) / 2
	}
	return stat{m, vs[0], vs[n-1]}
}

// table collects samples in the order workloads and stores first appear.
type table struct {
	workloads, stores []string
	values            map[[3]string][]float64 // workload, store, unit; in input order
	perRun            bool                    // ratios within runs (-ratios=runs)
}

func (t *table) add(s sample) {
	if !slices.Contains(t.workloads, s.workload) {
		t.workloads = append(t.workloads, s.workload)
	}
	if !slices.Contains(t.stores, s.store) {
		t.stores = append(t.stores, s.store)
	}
	for unit, v := range s.metrics {
		k := [3]string{s.workload, s.store, unit}
		t.values[k] = append(t.values[k], v)
	}
}

// get returns the summary of a metric and whether any run reported it.
func (t *table) get(workload, store, unit string) (stat, bool) {
	vs := t.values[[3]string{workload, store, unit}]
	if len(vs) == 0 {
		return stat{}, false
	}
	return summarize(vs), true
}

// num formats v for a person: whole numbers from 1,000 up with thousands
// separators, smaller ones with up to 4 significant digits.
func num(v float64) string {
	if v < 1000 {
		return strconv.FormatFloat(v, 'g', 4, 64)
	}
	digits := strconv.FormatFloat(v, 'f', 0, 64)
	var b strings.Builder
	for i, c := range digits {
		if i > 0 && (len(digits)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// rateUnits are the units a workload's rate may be reported in, in order
// of preference.
var rateUnits = []string{"ops/s", "MB/s"}

// unit returns the unit of workload's rate: the first of rateUnits that
// any store reported for it, or "" if none did.
func (t *table) unit(workload string) string {
	for _, u := range rateUnits {
		for _, st := range t.stores {
			if _, ok := t.get(workload, st, u); ok {
				return u
			}
		}
	}
	return ""
}

// ratio formats the ratio of store's rate to ref's in workload, or "–"
// when ref has none: the ratio of their medians, or with perRun the
// median of their ratios run by run.
func (t *table) ratio(workload, store, ref, unit string) string {
	if !t.perRun {
		a, _ := t.get(workload, store, unit)
		b, ok := t.get(workload, ref, unit)
		return ratioOf(a, b, ok)
	}
	as, bs := t.values[[3]string{workload, store, unit}], t.values[[3]string{workload, ref, unit}]
	var rs []float64
	for k := range min(len(as), len(bs)) {
		if bs[k] != 0 {
			rs = append(rs, as[k]/bs[k])
		}
	}
	if len(rs) == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", summarize(rs).median)
}

// ratioOf formats a/b, or "–" when b is missing.
func ratioOf(a stat, b stat, ok bool) string {
	if !ok || b.median == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a.median/b.median)
}

// write prints one markdown table per workload.
func (t *table) write(w io.Writer) {
	for _, wl := range t.workloads {
		unit := t.unit(wl)
		if unit == "" {
			continue
		}
		fmt.Fprintf(w, "\n#### %s\n\n", wl)
		vs := "vs"
		if t.perRun {
			vs = "run's ratio to"
		}
		fmt.Fprintf(w, "| store | %s (median) | spread (min – max) | runs | %s cowdb | %s raw | other metrics (median) |\n", unit, vs, vs)
		fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | --- |")
		for _, st := range t.stores {
			s, ok := t.get(wl, st, unit)
			if !ok {
				continue
			}
			n := len(t.values[[3]string{wl, st, unit}])
			fmt.Fprintf(w, "| %s | %s | %s – %s | %d | %s | %s | %s |\n",
				st, num(s.median), num(s.lo), num(s.hi), n, t.ratio(wl, st, "cowdb", unit), t.ratio(wl, st, "raw", unit), t.others(wl, st))
		}
	}
}

// others lists the medians of the metrics other than the workload's rate
// and ns/op, by unit name, e.g. "p99-µs 180, warm-ops/s 487270".
func (t *table) others(workload, store string) string {
	var units []string
	rate := t.unit(workload)
	for k := range t.values {
		if k[0] == workload && k[1] == store && k[2] != rate && k[2] != "ns/op" {
			units = append(units, k[2])
		}
	}
	slices.Sort(units)
	var parts []string
	for _, u := range units {
		s, _ := t.get(workload, store, u)
		parts = append(parts, u+" "+num(s.median))
	}
	return strings.Join(parts, ", ")
}

func main() {
	svg := flag.Bool("svg", false, "write an SVG chart instead of markdown tables")
	ratios := flag.String("ratios", "medians", "ratio columns: medians (ratio of the medians) or runs (median of each run's ratio)")
	flag.Parse()
	if *ratios != "medians" && *ratios != "runs" {
		fmt.Fprintf(os.Stderr, "peerstable: -ratios=%s: want medians or runs\n", *ratios)
		os.Exit(2)
	}
	t := &table{values: map[[3]string][]float64{}, perRun: *ratios == "runs"}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if s, ok := parseLine(sc.Text()); ok {
			t.add(s)
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "peerstable:", err)
		os.Exit(1)
	}
	if len(t.workloads) == 0 {
		fmt.Fprintln(os.Stderr, "peerstable: no benchmark lines on standard input")
		os.Exit(1)
	}
	if *svg {
		t.writeSVG(os.Stdout)
		return
	}
	t.write(os.Stdout)
}
