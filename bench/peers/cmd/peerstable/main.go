// Command peerstable turns the output of one or more runs of the peers
// benchmarks (go test -bench, concatenated) into the markdown tables of
// docs/peers.md: for each workload and store, the median ops/s over the
// runs, the spread (lowest and highest run), and the ratios of the median
// to cowdb's and to the raw device's.
//
// With -svg it writes instead an SVG chart of the same medians: one group
// of bars per workload, each bar's length the store's median relative to
// the fastest store of that workload, labelled with its ops/s.
//
// It reads standard input and writes standard output; it never runs
// benchmarks itself. Usage:
//
//	go run ./cmd/peerstable < runs.txt > table.md
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
	values            map[[3]string][]float64 // workload, store, unit
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

// ratio formats a/b, or "–" when b is missing.
func ratio(a stat, b stat, ok bool) string {
	if !ok || b.median == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a.median/b.median)
}

// write prints one markdown table per workload.
func (t *table) write(w io.Writer) {
	for _, wl := range t.workloads {
		fmt.Fprintf(w, "\n#### %s\n\n", wl)
		fmt.Fprintln(w, "| store | ops/s (median) | spread (min – max) | runs | vs cowdb | vs raw | other metrics (median) |")
		fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | --- |")
		cow, cowOK := t.get(wl, "cowdb", "ops/s")
		raw, rawOK := t.get(wl, "raw", "ops/s")
		for _, st := range t.stores {
			s, ok := t.get(wl, st, "ops/s")
			if !ok {
				continue
			}
			n := len(t.values[[3]string{wl, st, "ops/s"}])
			fmt.Fprintf(w, "| %s | %s | %s – %s | %d | %s | %s | %s |\n",
				st, num(s.median), num(s.lo), num(s.hi), n, ratio(s, cow, cowOK), ratio(s, raw, rawOK), t.others(wl, st))
		}
	}
}

// others lists the medians of the metrics other than ops/s and ns/op,
// by unit name, e.g. "p99-µs 180, warm-ops/s 487270".
func (t *table) others(workload, store string) string {
	var units []string
	for k := range t.values {
		if k[0] == workload && k[1] == store && k[2] != "ops/s" && k[2] != "ns/op" {
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
	flag.Parse()
	t := &table{values: map[[3]string][]float64{}}
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
