// Command report turns the RESULT lines of the benchmark programs into one
// table (weft, each peer, and the ratio peer/weft: above 1 means weft is
// faster or smaller), a JSON file and a PNG chart of the ratios.
//
// Usage: report -in results.txt -json results.json -png ratios.png
//
// Every figure is the median over repetitions; CPU time per operation is
// shown next to wall time because spinning can buy latency with CPU.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
)

type sample struct{ value, cpu float64 }

type key struct{ bench, metric, workers string }

type series struct {
	unit    string
	params  string
	samples []sample
}

type Figure struct {
	Impl    string  `json:"impl"`
	Median  float64 `json:"median"`
	CPU     float64 `json:"cpu_median"`
	Samples int     `json:"samples"`
	Params  string  `json:"params"`
}

type Row struct {
	Bench   string             `json:"bench"`
	Metric  string             `json:"metric"`
	Workers string             `json:"workers,omitempty"`
	Unit    string             `json:"unit"`
	Weft    *Figure            `json:"weft"`
	Peers   []Figure           `json:"peers"`
	Ratios  map[string]float64 `json:"ratios"`
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func workersOf(params string) string {
	for _, p := range strings.Split(params, ",") {
		if strings.HasPrefix(p, "workers=") {
			return strings.TrimPrefix(p, "workers=")
		}
		if strings.HasPrefix(p, "gomaxprocs=") {
			return strings.TrimPrefix(p, "gomaxprocs=")
		}
	}
	return ""
}

func figure(impl string, s *series) *Figure {
	var v, c []float64
	for _, x := range s.samples {
		v = append(v, x.value)
		c = append(c, x.cpu)
	}
	return &Figure{impl, median(v), median(c), len(v), s.params}
}

func main() {
	in := flag.String("in", "results.txt", "RESULT lines")
	jsonOut := flag.String("json", "", "JSON output")
	pngOut := flag.String("png", "", "PNG chart of the ratios")
	flag.Parse()
	f, err := os.Open(*in)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	data := map[key]map[string]*series{}
	var order []key
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 8 || fs[0] != "RESULT" {
			continue
		}
		v, err1 := strconv.ParseFloat(fs[4], 64)
		c, err2 := strconv.ParseFloat(fs[6], 64)
		if err1 != nil || err2 != nil {
			continue
		}
		k := key{fs[1], fs[2], workersOf(fs[7])}
		if data[k] == nil {
			data[k] = map[string]*series{}
			order = append(order, k)
		}
		s := data[k][fs[3]]
		if s == nil {
			s = &series{unit: fs[5], params: fs[7]}
			data[k][fs[3]] = s
		}
		s.samples = append(s.samples, sample{v, c})
	}
	var rows []Row
	for _, k := range order {
		w := data[k]["weft"]
		if w == nil {
			continue
		}
		row := Row{Bench: k.bench, Metric: k.metric, Workers: k.workers, Unit: w.unit,
			Weft: figure("weft", w), Ratios: map[string]float64{}}
		peers := map[string]*series{}
		for impl, s := range data[k] {
			if impl != "weft" {
				peers[impl] = s
			}
		}
		// A peer measured without a worker count (pthread) stands beside
		// every worker count of weft.
		if k.workers != "" {
			for impl, s := range data[key{k.bench, k.metric, ""}] {
				if impl != "weft" && peers[impl] == nil {
					peers[impl] = s
				}
			}
		}
		var names []string
		for impl := range peers {
			names = append(names, impl)
		}
		sort.Strings(names)
		for _, impl := range names {
			p := figure(impl, peers[impl])
			row.Peers = append(row.Peers, *p)
			if row.Weft.Median > 0 {
				row.Ratios[impl] = p.Median / row.Weft.Median
			}
		}
		rows = append(rows, row)
	}
	printTable(rows)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(rows, "", "  ")
		os.WriteFile(*jsonOut, append(b, '\n'), 0o644)
	}
	if *pngOut != "" {
		if err := drawChart(rows, *pngOut); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}

func fmtNum(v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case v >= 1000:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func printTable(rows []Row) {
	fmt.Printf("%-11s %-20s %-3s %-4s %12s %12s   %-8s %12s %12s %8s\n",
		"benchmark", "metric", "w", "unit", "weft", "weft cpu", "peer", "peer", "peer cpu", "ratio")
	fmt.Println(strings.Repeat("-", 114))
	for _, r := range rows {
		w := r.Workers
		if w == "" {
			w = "-"
		}
		if len(r.Peers) == 0 {
			fmt.Printf("%-11s %-20s %-3s %-4s %12s %12s   %-8s\n", r.Bench, r.Metric, w, r.Unit,
				fmtNum(r.Weft.Median), fmtNum(r.Weft.CPU), "(none)")
			continue
		}
		for i, p := range r.Peers {
			b, m, ww, u, wv, wc := r.Bench, r.Metric, w, r.Unit, fmtNum(r.Weft.Median), fmtNum(r.Weft.CPU)
			if i > 0 {
				b, m, ww, u, wv, wc = "", "", "", "", "", ""
			}
			fmt.Printf("%-11s %-20s %-3s %-4s %12s %12s   %-8s %12s %12s %7.2fx\n", b, m, ww, u, wv, wc,
				p.Impl, fmtNum(p.Median), fmtNum(p.CPU), r.Ratios[p.Impl])
		}
	}
	fmt.Println("ratio = peer / weft (above 1: weft is faster or smaller); cpu = CPU time per operation; medians of the repetitions")
}

// --- the chart: one bar per (row, peer), log scale around ratio 1 -------

var font = map[rune][7]string{
	'A': {".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},
	'B': {"####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."},
	'C': {".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."},
	'D': {"####.", "#...#", "#...#", "#...#", "#...#", "#...#", "####."},
	'E': {"#####", "#....", "#....", "####.", "#....", "#....", "#####"},
	'F': {"#####", "#....", "#....", "####.", "#....", "#....", "#...."},
	'G': {".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"},
	'H': {"#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},
	'I': {"#####", "..#..", "..#..", "..#..", "..#..", "..#..", "#####"},
	'J': {"..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."},
	'K': {"#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"},
	'L': {"#....", "#....", "#....", "#....", "#....", "#....", "#####"},
	'M': {"#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"},
	'N': {"#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#", "#...#"},
	'O': {".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."},
	'P': {"####.", "#...#", "#...#", "####.", "#....", "#....", "#...."},
	'Q': {".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"},
	'R': {"####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"},
	'S': {".####", "#....", "#....", ".###.", "....#", "....#", "####."},
	'T': {"#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."},
	'U': {"#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."},
	'V': {"#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."},
	'W': {"#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."},
	'X': {"#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"},
	'Y': {"#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."},
	'Z': {"#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"},
	'0': {".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."},
	'1': {"..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."},
	'2': {".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"},
	'3': {"####.", "....#", "....#", ".###.", "....#", "....#", "####."},
	'4': {"...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."},
	'5': {"#####", "#....", "####.", "....#", "....#", "#...#", ".###."},
	'6': {".###.", "#....", "#....", "####.", "#...#", "#...#", ".###."},
	'7': {"#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."},
	'8': {".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."},
	'9': {".###.", "#...#", "#...#", ".####", "....#", "....#", ".###."},
	'.': {".....", ".....", ".....", ".....", ".....", ".##..", ".##.."},
	'_': {".....", ".....", ".....", ".....", ".....", ".....", "#####"},
	'=': {".....", ".....", "#####", ".....", "#####", ".....", "....."},
	'-': {".....", ".....", ".....", "#####", ".....", ".....", "....."},
	'/': {"....#", "...#.", "...#.", "..#..", ".#...", ".#...", "#...."},
	'(': {"...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."},
	')': {".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."},
	':': {".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."},
	' ': {".....", ".....", ".....", ".....", ".....", ".....", "....."},
}

func text(img *image.RGBA, x, y int, s string, c color.Color) {
	for _, r := range strings.ToUpper(s) {
		g, ok := font[r]
		if !ok {
			g = font['-']
		}
		for row := 0; row < 7; row++ {
			for col := 0; col < 5; col++ {
				if g[row][col] == '#' {
					img.Set(x+col, y+row, c)
				}
			}
		}
		x += 6
	}
}

func fill(img *image.RGBA, x0, y0, x1, y1 int, c color.Color) {
	if x0 > x1 {
		x0, x1 = x1, x0
	}
	for y := y0; y < y1; y++ {
		for x := x0; x < x1; x++ {
			img.Set(x, y, c)
		}
	}
}

func drawChart(rows []Row, path string) error {
	type bar struct {
		label string
		ratio float64
	}
	var bars []bar
	for _, r := range rows {
		for _, p := range r.Peers {
			l := fmt.Sprintf("%s %s", r.Bench, r.Metric)
			if r.Workers != "" {
				l += " w" + r.Workers
			}
			l += " vs " + p.Impl
			if x := r.Ratios[p.Impl]; x > 0 && !math.IsInf(x, 0) {
				bars = append(bars, bar{l, x})
			}
		}
	}
	const left, width, rowH, top = 330, 900, 14, 30
	h := top + rowH*len(bars) + 30
	img := image.NewRGBA(image.Rect(0, 0, width, h))
	fill(img, 0, 0, width, h, color.White)
	text(img, 10, 8, "WEFT: PEER TIME / WEFT TIME (LOG SCALE; RIGHT OF 1 = WEFT FASTER)", color.Black)
	// Scale: 1/100 .. 10000 mapped to the plot width.
	plotW := width - left - 20
	lo, hi := math.Log10(0.01), math.Log10(10000)
	xOf := func(r float64) int {
		v := math.Log10(r)
		v = math.Max(lo, math.Min(hi, v))
		return left + int((v-lo)/(hi-lo)*float64(plotW))
	}
	gray := color.RGBA{200, 200, 200, 255}
	for _, g := range []float64{0.01, 0.1, 1, 10, 100, 1000, 10000} {
		x := xOf(g)
		fill(img, x, top-4, x+1, h-24, gray)
		text(img, x-10, h-18, fmtNum(g), color.Black)
	}
	one := xOf(1)
	for i, b := range bars {
		y := top + i*rowH
		text(img, 5, y+3, b.label, color.Black)
		c := color.RGBA{40, 160, 60, 255}
		if b.ratio < 1 {
			c = color.RGBA{200, 50, 50, 255}
		}
		fill(img, one, y+2, xOf(b.ratio), y+rowH-2, c)
		text(img, xOf(math.Max(b.ratio, 1))+4, y+3, fmt.Sprintf("%.2fx", b.ratio), color.Black)
	}
	fill(img, one, top-4, one+2, h-24, color.Black)
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	defer out.Close()
	return png.Encode(out, img)
}
