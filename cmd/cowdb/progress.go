package main

import (
	"fmt"
	"io"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/schollz/progressbar/v3"
)

// progress is the progress bar of one piece of long work, drawn on stderr
// when it is a terminal and -q is not given. A nil *progress draws nothing,
// so the work calls it unconditionally.
type progress struct {
	bar *progressbar.ProgressBar
}

// newProgress starts a bar towards total bytes (-1: unknown yet), showing
// the rate and the time left; desc names the work. It returns nil when no
// bar is to be drawn.
func (e *env) newProgress(total int64, desc string) *progress {
	return e.startBar(total, desc, progressbar.OptionShowBytes(true), progressbar.OptionUseIECUnits(true))
}

// newCountProgress starts a bar towards total things (blocks, phases);
// with rate it shows how many go by per second.
func (e *env) newCountProgress(total int64, desc, things string, rate bool) *progress {
	opts := []progressbar.Option{progressbar.OptionSetItsString(things)}
	if rate {
		opts = append(opts, progressbar.OptionShowIts())
	}
	return e.startBar(total, desc, opts...)
}

func (e *env) startBar(total int64, desc string, extra ...progressbar.Option) *progress {
	if !e.terminal || e.quiet {
		return nil
	}
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(e.stderr),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100 * time.Millisecond),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true), // the ETA
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetRenderBlankState(true),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(e.stderr) }),
	}
	return &progress{bar: progressbar.NewOptions64(total, append(opts, extra...)...)}
}

// add moves the bar on by n.
func (p *progress) add(n int64) {
	if p != nil {
		p.bar.Add64(n)
	}
}

// set moves the bar to done of total (total may change as work is found).
func (p *progress) set(done, total int64) {
	if p != nil {
		if total != p.bar.GetMax64() {
			p.bar.ChangeMax64(total)
		}
		p.bar.Set64(done)
	}
}

// describe changes the bar's description.
func (p *progress) describe(desc string) {
	if p != nil {
		p.bar.Describe(desc)
	}
}

// finish completes the bar (and ends its line) if the work is done, or
// leaves it where it stopped otherwise.
func (p *progress) finish(done bool) {
	if p == nil {
		return
	}
	if done {
		p.bar.Finish()
	} else {
		p.bar.Exit()
	}
}

// warnf prints a line on stderr above the bar, or just on stderr when
// there is none.
func (e *env) warnf(p *progress, format string, args ...any) {
	if p != nil {
		progressbar.Bprintf(p.bar, "cowdb: "+format+"\n", args...)
		return
	}
	fmt.Fprintf(e.stderr, "cowdb: "+format+"\n", args...)
}

// summaryf prints a summary line of long work on stdout, unless -q.
func (e *env) summaryf(format string, args ...any) {
	if !e.quiet {
		fmt.Fprintf(e.stdout, format+"\n", args...)
	}
}

// countingReader counts the bytes read through it into a progress bar.
type countingReader struct {
	r io.Reader
	p *progress
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	c.p.add(int64(n))
	return n, err
}

// countingWriter counts the bytes written through it into a progress bar.
type countingWriter struct {
	w io.Writer
	p *progress
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	c.p.add(int64(n))
	return n, err
}

// size formats a byte count: "1.5 MiB".
func size(n int64) string {
	if n < 0 {
		return "-" + humanize.IBytes(uint64(-n))
	}
	return humanize.IBytes(uint64(n))
}

// rate formats n bytes in d as a rate: "312 MiB/s".
func rate(n int64, d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return humanize.IBytes(uint64(float64(n)/d.Seconds())) + "/s"
}

// opsRate formats n operations in d: "12,345 ops/s".
func opsRate(n int64, d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return humanize.Comma(int64(float64(n)/d.Seconds())) + " ops/s"
}

// count formats a count with thousands separators.
func count(n int64) string {
	return humanize.Comma(n)
}

// plural formats n things: "1 file", "2 files".
func plural(n int64, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return count(n) + " " + thing + "s"
}

// duration rounds d for people.
func duration(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	case d >= time.Microsecond:
		return d.Round(time.Microsecond).String()
	}
	return d.String()
}
