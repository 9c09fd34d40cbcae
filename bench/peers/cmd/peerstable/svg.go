package main

import (
	"fmt"
	"html"
	"io"
)

// Layout of the chart, in SVG user units (pixels).
const (
	svgWidth  = 760
	svgLabel  = 90  // width of the store names' column
	svgBarMax = 520 // length of the fastest store's bar
	svgBar    = 18  // height of one bar
	svgGap    = 4   // between bars
	svgHead   = 28  // a workload's title line
)

// svgColors gives each store, by its position in the table, a colour.
var svgColors = []string{"#d95f02", "#1b9e77", "#7570b3", "#e7298a", "#666666", "#66a61e"}

// writeSVG draws one group of horizontal bars per workload: each bar is a
// store's median rate (ops/s or MB/s, named in the workload's title)
// relative to the fastest store of that workload, labelled with the rate
// and, where the store reported it, its write amplification (wa).
func (t *table) writeSVG(w io.Writer) {
	rows, groups := 0, 0
	for _, wl := range t.workloads {
		unit := t.unit(wl)
		if unit == "" {
			continue
		}
		groups++
		for _, st := range t.stores {
			if _, ok := t.get(wl, st, unit); ok {
				rows++
			}
		}
	}
	top := 40
	if t.hasWA() {
		top += 16 // a line saying what wa is
	}
	height := top + groups*(svgHead+8) + rows*(svgBar+svgGap)
	fmt.Fprintf(w, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n", svgWidth, height)
	fmt.Fprintf(w, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n")
	fmt.Fprintf(w, "<text x=\"10\" y=\"22\" font-size=\"15\" font-weight=\"bold\">median of runs (bar: relative to the fastest store of each workload)</text>\n")
	if t.hasWA() {
		fmt.Fprintf(w, "<text x=\"10\" y=\"40\">wa: bytes written to the device per byte the workload wrote</text>\n")
	}
	y := top
	for _, wl := range t.workloads {
		unit := t.unit(wl)
		if unit == "" {
			continue
		}
		title := fmt.Sprintf("%s (%s)", wl, unit)
		fmt.Fprintf(w, "<text x=\"10\" y=\"%d\" font-size=\"13\" font-weight=\"bold\">%s</text>\n", y+18, html.EscapeString(title))
		y += svgHead
		best := 0.0
		for _, st := range t.stores {
			if s, ok := t.get(wl, st, unit); ok {
				best = max(best, s.median)
			}
		}
		for i, st := range t.stores {
			s, ok := t.get(wl, st, unit)
			if !ok {
				continue
			}
			label := num(s.median)
			if wa, ok := t.get(wl, st, "wa"); ok {
				label += " · wa " + num(wa.median) + "×"
			}
			length := max(1, int(s.median/best*svgBarMax))
			fmt.Fprintf(w, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>\n", svgLabel-6, y+svgBar-5, html.EscapeString(st))
			fmt.Fprintf(w, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\"/>\n", svgLabel, y, length, svgBar, svgColors[i%len(svgColors)])
			fmt.Fprintf(w, "<text x=\"%d\" y=\"%d\">%s</text>\n", svgLabel+length+6, y+svgBar-5, html.EscapeString(label))
			y += svgBar + svgGap
		}
		y += 8
	}
	fmt.Fprintln(w, "</svg>")
}

// hasWA says whether any store of any workload reported wa.
func (t *table) hasWA() bool {
	for k := range t.values {
		if k[2] == "wa" {
			return true
		}
	}
	return false
}
