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
// store's median ops/s relative to the fastest store of that workload.
func (t *table) writeSVG(w io.Writer) {
	rows := 0
	for _, wl := range t.workloads {
		for _, st := range t.stores {
			if _, ok := t.get(wl, st, "ops/s"); ok {
				rows++
			}
		}
	}
	height := 40 + len(t.workloads)*(svgHead+8) + rows*(svgBar+svgGap)
	fmt.Fprintf(w, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n", svgWidth, height)
	fmt.Fprintf(w, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n")
	fmt.Fprintf(w, "<text x=\"10\" y=\"22\" font-size=\"15\" font-weight=\"bold\">ops/s, median of runs (bar: relative to the fastest of each workload)</text>\n")
	y := 40
	for _, wl := range t.workloads {
		fmt.Fprintf(w, "<text x=\"10\" y=\"%d\" font-size=\"13\" font-weight=\"bold\">%s</text>\n", y+18, html.EscapeString(wl))
		y += svgHead
		best := 0.0
		for _, st := range t.stores {
			if s, ok := t.get(wl, st, "ops/s"); ok {
				best = max(best, s.median)
			}
		}
		for i, st := range t.stores {
			s, ok := t.get(wl, st, "ops/s")
			if !ok {
				continue
			}
			length := max(1, int(s.median/best*svgBarMax))
			fmt.Fprintf(w, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>\n", svgLabel-6, y+svgBar-5, html.EscapeString(st))
			fmt.Fprintf(w, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\"/>\n", svgLabel, y, length, svgBar, svgColors[i%len(svgColors)])
			fmt.Fprintf(w, "<text x=\"%d\" y=\"%d\">%s</text>\n", svgLabel+length+6, y+svgBar-5, num(s.median))
			y += svgBar + svgGap
		}
		y += 8
	}
	fmt.Fprintln(w, "</svg>")
}
