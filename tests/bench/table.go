package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// table is a markdown table of measurements: leading columns naming what
// was measured, then the median, range and count of its samples and, when
// ratioHead is set, each row's ratio to its baseline, then extra columns.
type table struct {
	title, note string
	head        []string // names of the leading columns
	ratioHead   string   // "" for no ratio column
	tail        []string // names of the trailing columns
	format      func(float64) string
	rows        []row
}

type row struct {
	head    []string
	samples []float64
	// base is what the ratio divides by: the same measurement of the
	// baseline runtime; nil leaves the cell "-".
	base []float64
	tail []string
	// format overrides the table's, for a row in another unit.
	format func(float64) string
}

func (tb *table) add(r row) { tb.rows = append(tb.rows, r) }

func (tb *table) print() {
	cols := append(slices.Clone(tb.head), "median", "min - max", "n")
	if tb.ratioHead != "" {
		cols = append(cols, tb.ratioHead)
	}
	cols = append(cols, tb.tail...)
	var rows [][]string
	for _, r := range tb.rows {
		format := tb.format
		if r.format != nil {
			format = r.format
		}
		med, lo, hi := stats(r.samples)
		cells := append(slices.Clone(r.head), format(med), format(lo)+" - "+format(hi), strconv.Itoa(len(r.samples)))
		if tb.ratioHead != "" {
			cells = append(cells, ratio(r.samples, r.base))
		}
		rows = append(rows, append(cells, r.tail...))
	}
	printMarkdown(tb.title, tb.note, cols, rows)
}

// printMarkdown prints a titled markdown table.
func printMarkdown(title, note string, cols []string, rows [][]string) {
	fmt.Printf("### %s\n\n", title)
	if note != "" {
		fmt.Printf("%s\n\n", note)
	}
	fmt.Printf("| %s |\n|%s\n", strings.Join(cols, " | "), strings.Repeat("---|", len(cols)))
	for _, cells := range rows {
		fmt.Printf("| %s |\n", strings.Join(cells, " | "))
	}
	fmt.Println()
}

// ratio is median(a)/median(b), "-" without b.
func ratio(a, b []float64) string {
	ma, _, _ := stats(a)
	mb, _, _ := stats(b)
	if len(b) == 0 || mb == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", ma/mb)
}

func stats(s []float64) (med, lo, hi float64) {
	if len(s) == 0 {
		return 0, 0, 0
	}
	s = slices.Sorted(slices.Values(s))
	med = s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return med, s[0], s[len(s)-1]
}

// msec turns durations into the milliseconds the latency tables show.
func msec(d []time.Duration) []float64 {
	out := make([]float64, len(d))
	for i, v := range d {
		out[i] = ms(v)
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func fmtMs(v float64) string  { return fmt.Sprintf("%.1f ms", v) }
func fmtSec(v float64) string { return fmt.Sprintf("%.2f s", v) }
func fmtMiB(v float64) string { return fmt.Sprintf("%.1f MiB", v) }
func fmtInt(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
