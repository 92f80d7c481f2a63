package admin

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"strconv"
	"strings"
)

// The dashboard's charts are SVG drawn here, inline in the page: no
// script, no external asset, readable without a network. Every text that
// goes into a chart is escaped with svgText.

// palette colours the upstreams (by their sorted position), distinct
// enough for a legend and for readers with the common colour blindnesses
// (Okabe–Ito).
var palette = []string{"#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"}

// colorOf is the colour of the i-th series.
func colorOf(i int) string { return palette[i%len(palette)] }

// series is one upstream in a chart.
type series struct {
	Name  string
	Color string
}

// column is one bar of a stacked bar chart: a value per series.
type column struct {
	// Label is written under the bar when not empty.
	Label string
	// Title is the bar's tooltip (the date or hour it covers).
	Title  string
	Values []float64
}

// chart geometry, in SVG user units (the SVG scales to its container).
const (
	chartLeft   = 44
	chartRight  = 12
	chartTop    = 12
	chartBottom = 34
	legendRow   = 18
)

func svgText(s string) string { return html.EscapeString(s) }

func num(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// niceScale returns a rounded top for an axis that holds hi, and the step
// between its ticks (about four of them).
func niceScale(hi float64) (top, step float64) {
	if hi <= 0 || math.IsNaN(hi) {
		return 1, 1
	}
	raw := hi / 4
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if step = m * mag; step >= raw {
			break
		}
	}
	top = math.Ceil(hi/step) * step
	return top, step
}

// fmtTick writes an axis value without trailing zeros.
func fmtTick(v float64) string {
	if v == math.Trunc(v) {
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// svgOpen starts a chart ("chart wide" stretches to its container).
func svgOpen(b *strings.Builder, id, class, label string, w, h int) {
	fmt.Fprintf(b, `<svg id="%s" class="%s" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s">`,
		svgText(id), class, w, h, w, h, svgText(label))
	fmt.Fprintf(b, `<title>%s</title>`, svgText(label))
}

// yAxis draws the horizontal grid lines and their labels for [0, top].
func yAxis(b *strings.Builder, top, step float64, plotW, plotH int, unit string) {
	b.WriteString(`<g class="axis y">`)
	for v := 0.0; v <= top+step/2; v += step {
		y := float64(chartTop+plotH) - v/top*float64(plotH)
		fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%s" y2="%s" stroke="#ddd"/>`, chartLeft, chartLeft+plotW, num(y), num(y))
		fmt.Fprintf(b, `<text x="%d" y="%s" text-anchor="end" dominant-baseline="middle">%s%s</text>`,
			chartLeft-5, num(y), svgText(fmtTick(v)), svgText(unit))
	}
	b.WriteString(`</g>`)
}

// legend draws one coloured square and name per series below the plot.
func legend(b *strings.Builder, ss []series, y int, width int) int {
	b.WriteString(`<g class="legend">`)
	x := chartLeft
	for _, s := range ss {
		w := 22 + 7*len([]rune(s.Name))
		if x+w > width && x > chartLeft {
			x, y = chartLeft, y+legendRow
		}
		fmt.Fprintf(b, `<g class="legend-item" data-series="%s"><rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d" dominant-baseline="middle">%s</text></g>`,
			svgText(s.Name), x, y, s.Color, x+16, y+6, svgText(s.Name))
		x += w + 12
	}
	b.WriteString(`</g>`)
	return y + legendRow
}

// legendHeight is the height legend needs for ss in width.
func legendHeight(ss []series, width int) int {
	rows, x := 1, chartLeft
	for _, s := range ss {
		w := 22 + 7*len([]rune(s.Name))
		if x+w > width && x > chartLeft {
			rows, x = rows+1, chartLeft
		}
		x += w + 12
	}
	return rows * legendRow
}

// stackedBars draws columns of bars stacked by series, with a y axis, the
// columns' labels and a legend. Each bar segment carries a tooltip.
func stackedBars(id, label string, cols []column, ss []series, width, plotH int) template.HTML {
	height := chartTop + plotH + chartBottom + legendHeight(ss, width)
	var b strings.Builder
	svgOpen(&b, id, "chart wide", label, width, height)
	plotW := width - chartLeft - chartRight
	maxV := 0.0
	for _, c := range cols {
		sum := 0.0
		for _, v := range c.Values {
			sum += v
		}
		maxV = math.Max(maxV, sum)
	}
	top, step := niceScale(maxV)
	yAxis(&b, top, step, plotW, plotH, "")
	slot := float64(plotW) / float64(max(len(cols), 1))
	barW := math.Max(slot*0.75, 1)
	base := float64(chartTop + plotH)
	b.WriteString(`<g class="bars">`)
	for i, c := range cols {
		x := float64(chartLeft) + float64(i)*slot + (slot-barW)/2
		y := base
		for si, v := range c.Values {
			if v <= 0 || si >= len(ss) {
				continue
			}
			h := v / top * float64(plotH)
			y -= h
			fmt.Fprintf(&b, `<rect class="bar" data-series="%s" x="%s" y="%s" width="%s" height="%s" fill="%s"><title>%s: %s %s</title></rect>`,
				svgText(ss[si].Name), num(round2(x)), num(round2(y)), num(round2(barW)), num(round2(h)), ss[si].Color,
				svgText(c.Title), svgText(ss[si].Name), svgText(fmtTick(v)))
		}
	}
	b.WriteString(`</g><g class="axis x">`)
	fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%s" y2="%s" stroke="#888"/>`, chartLeft, chartLeft+plotW, num(base), num(base))
	for i, c := range cols {
		if c.Label == "" {
			continue
		}
		x := float64(chartLeft) + float64(i)*slot + slot/2
		fmt.Fprintf(&b, `<line x1="%s" x2="%s" y1="%s" y2="%s" stroke="#888"/>`, num(round2(x)), num(round2(x)), num(base), num(base+4))
		fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="middle">%s</text>`, num(round2(x)), num(base+16), svgText(c.Label))
	}
	b.WriteString(`</g>`)
	legend(&b, ss, chartTop+plotH+chartBottom-4, width)
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // #nosec: every text above is escaped
}

// hbar is one row of a horizontal bar chart.
type hbar struct {
	Label string
	N     int
}

// hbars draws one horizontal bar per row, labelled, longest first as given.
func hbars(id, label string, rows []hbar, color string, width int) template.HTML {
	const rowH, labelW = 22, 210
	height := chartTop + rowH*max(len(rows), 1) + 8
	var b strings.Builder
	svgOpen(&b, id, "chart", label, width, height)
	maxN := 0
	for _, r := range rows {
		maxN = max(maxN, r.N)
	}
	plotW := float64(width - labelW - 60)
	b.WriteString(`<g class="bars">`)
	for i, r := range rows {
		y := chartTop + i*rowH
		w := 0.0
		if maxN > 0 {
			w = math.Max(float64(r.N)/float64(maxN)*plotW, 2)
		}
		name := r.Label
		if rs := []rune(name); len(rs) > 30 {
			name = string(rs[:29]) + "…"
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" dominant-baseline="middle">%s<title>%s</title></text>`,
			labelW-6, y+rowH/2-2, svgText(name), svgText(r.Label))
		fmt.Fprintf(&b, `<rect class="bar" x="%d" y="%d" width="%s" height="%d" fill="%s"><title>%s: %d</title></rect>`,
			labelW, y+2, num(round2(w)), rowH-8, color, svgText(r.Label), r.N)
		fmt.Fprintf(&b, `<text x="%s" y="%d" dominant-baseline="middle">%d</text>`, num(round2(float64(labelW)+w+5)), y+rowH/2-2, r.N)
	}
	b.WriteString(`</g></svg>`)
	return template.HTML(b.String()) // #nosec: every text above is escaped
}

// lineChart draws one line of points per series over the columns' x
// positions; NaN values are gaps. unit follows the y axis labels.
func lineChart(id, label string, cols []column, ss []series, unit string, width, plotH int) template.HTML {
	height := chartTop + plotH + chartBottom + legendHeight(ss, width)
	var b strings.Builder
	svgOpen(&b, id, "chart wide", label, width, height)
	plotW := width - chartLeft - chartRight
	maxV := 0.0
	for _, c := range cols {
		for _, v := range c.Values {
			if !math.IsNaN(v) {
				maxV = math.Max(maxV, v)
			}
		}
	}
	top, step := niceScale(maxV)
	yAxis(&b, top, step, plotW, plotH, unit)
	slot := float64(plotW) / float64(max(len(cols), 1))
	base := float64(chartTop + plotH)
	xOf := func(i int) float64 { return round2(float64(chartLeft) + float64(i)*slot + slot/2) }
	yOf := func(v float64) float64 { return round2(base - v/top*float64(plotH)) }
	b.WriteString(`<g class="lines">`)
	for si, s := range ss {
		var path strings.Builder
		pen := false
		for i, c := range cols {
			if si >= len(c.Values) || math.IsNaN(c.Values[si]) {
				pen = false
				continue
			}
			cmd := "L"
			if !pen {
				cmd = "M"
			}
			fmt.Fprintf(&path, "%s%s %s ", cmd, num(xOf(i)), num(yOf(c.Values[si])))
			pen = true
		}
		if path.Len() > 0 {
			fmt.Fprintf(&b, `<path d="%s" fill="none" stroke="%s" stroke-width="2"/>`, strings.TrimSpace(path.String()), s.Color)
		}
		for i, c := range cols {
			if si >= len(c.Values) || math.IsNaN(c.Values[si]) {
				continue
			}
			fmt.Fprintf(&b, `<circle class="point" data-series="%s" cx="%s" cy="%s" r="3" fill="%s"><title>%s: %s %s%s</title></circle>`,
				svgText(s.Name), num(xOf(i)), num(yOf(c.Values[si])), s.Color, svgText(c.Title), svgText(s.Name),
				svgText(fmtTick(c.Values[si])), svgText(unit))
		}
	}
	b.WriteString(`</g><g class="axis x">`)
	fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%s" y2="%s" stroke="#888"/>`, chartLeft, chartLeft+plotW, num(base), num(base))
	for i, c := range cols {
		if c.Label != "" {
			fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="middle">%s</text>`, num(xOf(i)), num(base+16), svgText(c.Label))
		}
	}
	b.WriteString(`</g>`)
	legend(&b, ss, chartTop+plotH+chartBottom-4, width)
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // #nosec: every text above is escaped
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }
