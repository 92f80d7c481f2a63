package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// The dashboard reads the end of the audit log, never all of it: the log
// is one JSON line per event in the order they were recorded, so the first
// line of a time window is found by bisecting the file on the lines'
// times, and a window is read from there, at most a fixed number of bytes.

// errNoAuditFile: the audit log is not a file the dashboard can read
// (audit.file is "-" or empty).
var errNoAuditFile = errors.New("the audit log is not written to a file")

// auditSkew is how far out of order two lines may be (events are stamped
// before the write that serialises them).
const auditSkew = time.Minute

// auditWindow is the part of the audit log a page reads.
type auditWindow struct {
	f *os.File
	// start and end are the byte range of whole lines to read.
	start, end int64
	// Truncated: the range was cut to maxBytes, so it starts after since.
	Truncated bool
}

// openAuditWindow opens path and finds the lines written at or after since
// (a zero since: from the start), keeping at most maxBytes of the newest.
func openAuditWindow(path string, since time.Time, maxBytes int64) (*auditWindow, error) {
	if path == "" || path == "-" {
		return nil, errNoAuditFile
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		// Nothing recorded yet: an empty window.
		return &auditWindow{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close() // read only: the error to report is err
		return nil, fmt.Errorf("audit log: %w", err)
	}
	w := &auditWindow{f: f, end: fi.Size()}
	if !since.IsZero() {
		if w.start, err = firstLineSince(f, w.end, since.Add(-auditSkew)); err != nil {
			_ = f.Close() // as above
			return nil, err
		}
	}
	if w.end-w.start > maxBytes {
		if w.start, err = lineStartAfter(f, w.end-maxBytes, w.end); err != nil {
			_ = f.Close() // as above
			return nil, err
		}
		w.Truncated = true
	}
	return w, nil
}

// Reader returns a new reader over the window (each call starts again).
func (w *auditWindow) Reader() io.Reader {
	if w.f == nil {
		return bytes.NewReader(nil)
	}
	return io.NewSectionReader(w.f, w.start, w.end-w.start)
}

// Close closes the file.
func (w *auditWindow) Close() {
	if w != nil && w.f != nil {
		_ = w.f.Close() // read only: nothing lost on a close error
	}
}

// lineStartAfter returns the offset of the first line that starts at or
// after off (off itself when it follows a newline), or end.
func lineStartAfter(r io.ReaderAt, off, end int64) (int64, error) {
	if off <= 0 {
		return 0, nil
	}
	buf := make([]byte, 4096)
	// The line starts after the newline at off-1 or later.
	for pos := off - 1; pos < end; {
		n, err := r.ReadAt(buf[:min(int64(len(buf)), end-pos)], pos)
		if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 {
			return pos + int64(i) + 1, nil
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("audit log: %w", err)
		}
		if n == 0 {
			break
		}
		pos += int64(n)
	}
	return end, nil
}

// lineTime reads the time of the line that starts at off. ok is false for
// a line that is not an event (a torn write).
func lineTime(r io.ReaderAt, off, end int64) (t time.Time, ok bool, err error) {
	const maxLine = 1 << 20
	buf := make([]byte, min(16<<10, end-off))
	for {
		n, rerr := r.ReadAt(buf, off)
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			return time.Time{}, false, fmt.Errorf("audit log: %w", rerr)
		}
		line := buf[:n]
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line = line[:i]
		} else if int64(n) < end-off && n < maxLine {
			buf = make([]byte, min(int64(2*len(buf)), end-off, maxLine))
			continue
		}
		var e struct {
			Time time.Time `json:"time"`
		}
		if json.Unmarshal(line, &e) != nil || e.Time.IsZero() {
			// rerr is nil or io.EOF (the last line): a line that is no
			// event is ok=false, not an error.
			return time.Time{}, false, nil //nolint:nilerr // see above
		}
		return e.Time, true, nil
	}
}

// firstLineSince bisects the file for the first line whose time is at or
// after since, and returns its offset (end when there is none).
func firstLineSince(r io.ReaderAt, end int64, since time.Time) (int64, error) {
	lo, hi := int64(0), end // the answer is a line start in [lo, hi]
	for lo < hi {
		mid := lo + (hi-lo)/2
		start, err := lineStartAfter(r, mid, end)
		if err != nil {
			return 0, err
		}
		if start >= hi {
			// No line starts in [mid, hi): the answer is before mid.
			hi = mid
			continue
		}
		t, ok, err := lineTime(r, start, end)
		if err != nil {
			return 0, err
		}
		if ok && t.Before(since) {
			lo = start + 1
		} else {
			hi = start
		}
	}
	return lineStartAfter(r, lo, end)
}
