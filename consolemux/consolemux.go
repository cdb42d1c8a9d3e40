// Package consolemux carries a container's streams over a VM's one serial
// console: its standard output and error, its exit status and a start
// failure from the guest's init to the host, and standard input and
// signals the other way.
//
// The console is a byte stream that the guest kernel may also print on
// (a panic, a warning past loglevel=0), so each message is a line of its
// own that nothing else can produce by accident: SOH (0x01), a tag byte,
// the payload in standard base64, and a newline. The kernel's printk strips
// SOH from its own lines, so a line that starts with SOH is a frame;
// anything else is noise, passed on for the log.
package consolemux

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"strconv"
	"sync"
)

// Tags of the frames. Upper-case letters, so a frame is plain ASCII after
// its SOH.
const (
	// From the guest.
	Stdout  = 'O' // bytes the process wrote to its standard output
	Stderr  = 'E' // ... to its standard error
	Exit    = 'X' // the process's exit status, decimal (128+N for signal N)
	Failure = 'F' // why the process could not be started, as text
	// Ready: the init has the console in raw mode. The host sends nothing
	// before it: what comes while the guest boots is lost (the kernel's
	// serial driver drops input for a port no one has opened), or would
	// be echoed by a terminal in cooked mode.
	Ready = 'R' // no payload
	// To the guest.
	Stdin      = 'I' // bytes for the process's standard input
	CloseStdin = 'C' // end of standard input
	Signal     = 'K' // a signal number, decimal, for the process
	Resize     = 'W' // the terminal's size, "COLUMNS ROWS" in decimal
)

const soh = 0x01

// MaxChunk is the most payload bytes one frame carries; a longer write is
// split. It keeps a frame's line (4/3 of it, plus 3) well under MaxLine.
const MaxChunk = 3 << 10

// MaxLine bounds a line the Decoder buffers. A longer line cannot be a
// frame of an Encoder; it is passed on as noise in pieces of this size.
const MaxLine = 16 << 10

// Encoder writes frames to a console. Its methods may be called from
// several goroutines: each frame is one Write of w.
type Encoder struct {
	mu sync.Mutex
	w  io.Writer
}

func NewEncoder(w io.Writer) *Encoder { return &Encoder{w: w} }

// Frame writes payload as frames of tag, split into MaxChunk pieces. An
// empty payload is one empty frame (CloseStdin carries nothing).
func (e *Encoder) Frame(tag byte, payload []byte) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for first := true; first || len(payload) > 0; first = false {
		n := min(len(payload), MaxChunk)
		line := make([]byte, 2, 3+base64.StdEncoding.EncodedLen(n))
		line[0], line[1] = soh, tag
		line = base64.StdEncoding.AppendEncode(line, payload[:n])
		line = append(line, '\n')
		if _, err := e.w.Write(line); err != nil {
			return err
		}
		payload = payload[n:]
	}
	return nil
}

// Status writes a status frame (Exit or Signal) holding n.
func (e *Encoder) Status(tag byte, n int) error {
	return e.Frame(tag, strconv.AppendInt(nil, int64(n), 10))
}

// Stream is an io.Writer whose writes become frames of one tag: a
// process's stdout or stderr.
func (e *Encoder) Stream(tag byte) io.Writer { return stream{e, tag} }

type stream struct {
	e   *Encoder
	tag byte
}

func (s stream) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	if err := s.e.Frame(s.tag, b); err != nil {
		return 0, err
	}
	return len(b), nil
}

// Decoder splits a console stream into frames and noise. Feed it the
// bytes as they come, in any pieces.
type Decoder struct {
	// Frame receives each frame's tag and decoded payload.
	Frame func(tag byte, payload []byte)
	// Noise receives everything that is not a frame, a line at a time
	// (with its newline, if it had one), and malformed frames whole.
	Noise func(line []byte)
	line  []byte
	// long is set once part of the current line went out as noise for
	// its length: the rest of it is noise too.
	long bool
}

// Write feeds b; it never fails, so a Decoder can be the end of io.Copy.
func (d *Decoder) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		piece := b
		if i >= 0 {
			piece = b[:i+1]
		}
		b = b[len(piece):]
		d.line = append(d.line, piece...)
		for len(d.line) > MaxLine {
			d.noise(d.line[:MaxLine])
			d.line = append(d.line[:0], d.line[MaxLine:]...)
			d.long = true
		}
		if i >= 0 {
			if d.long {
				d.noise(d.line)
			} else {
				d.end(d.line)
			}
			d.line, d.long = d.line[:0], false
		}
	}
	return n, nil
}

// Flush passes on a last line without its newline, as noise: a frame is
// only whole with its newline.
func (d *Decoder) Flush() {
	if len(d.line) > 0 {
		d.noise(d.line)
	}
	d.line, d.long = d.line[:0], false
}

func (d *Decoder) end(line []byte) {
	if len(line) < 3 || line[0] != soh {
		d.noise(line)
		return
	}
	body := line[2 : len(line)-1]
	// A console that adds a carriage return before the newline (a tty
	// with ONLCR) still carries a frame.
	body = bytes.TrimSuffix(body, []byte{'\r'})
	payload, err := base64.StdEncoding.AppendDecode(nil, body)
	if err != nil {
		d.noise(line)
		return
	}
	if d.Frame != nil {
		d.Frame(line[1], payload)
	}
}

func (d *Decoder) noise(b []byte) {
	if d.Noise != nil {
		d.Noise(append([]byte(nil), b...))
	}
}

// ParseStatus reads the number of an Exit or Signal frame.
func ParseStatus(payload []byte) (int, error) {
	n, err := strconv.Atoi(string(payload))
	if err != nil || n < 0 || n > 255 {
		return 0, fmt.Errorf("consolemux: status %q is not a number from 0 to 255", payload)
	}
	return n, nil
}
