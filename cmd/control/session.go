//go:build tamago

package main

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/bulkhead-hv/bulkhead/abi"
	"github.com/bulkhead-hv/bulkhead/cpu"
)

// protocolVersion is the line protocol's (docs/protocol.md): the host
// channel's ready event and a network client's hello carry it.
const protocolVersion = 1

const (
	// maxLine bounds a request line: a client that sends more without a
	// newline is cut off (the host channel's bytes are dropped).
	maxLine = 64 << 10
	// progressEvery is how often, in bytes, a network client's upload
	// is acknowledged with an upload event.
	progressEvery = 256 << 10
	// tailSize is how much of each VM's console is kept for a client
	// that attaches later.
	tailSize = 8 << 10
)

// A transport carries a session's bytes: the host channel, or a network
// client's TLS connection (netctl.go). receive does not block, and what
// it returns is the session's until its next call; write reports false
// once the other end is gone.
type transport interface {
	receive() []byte
	write(line []byte) bool
	close(reason string)
	// ended reports that the other end hung up and every byte it sent
	// was received.
	ended() bool
	String() string
}

// session is one party managing the partition through the line protocol:
// the same requests, answers and events on every transport.
type session struct {
	t       transport
	pending []byte
	// upload is a run request whose image and initrd are still arriving.
	upload *request
	// active says the last requests call received bytes, or an upload
	// is under way.
	active bool
	// vms are the VMs whose console the session gets. nil for the host
	// channel, which gets every VM's (its broker picks).
	vms map[string]bool
	// network sessions report an upload's progress themselves (the
	// broker does it for the host's clients), and are cut off for
	// bytes that cannot be requests.
	network bool
	closed  bool
	// lastRecv is the counter when bytes last came: a network client
	// that stops mid-line or mid-upload for stallTicks is cut off.
	lastRecv uint64
}

func (s *session) send(v any) {
	if s.closed {
		return
	}
	b, _ := json.Marshal(v)
	if !s.t.write(append(b, '\n')) {
		s.shut("gone")
	}
}

// shut ends a session, freeing an upload it left half done.
func (s *session) shut(reason string) {
	if s.closed {
		return
	}
	s.closed = true
	if u := s.upload; u != nil {
		if u.staging != nil {
			placer.Free(u.stagePA)
		}
		fmt.Printf("control: %v: its upload of %s ends %d of %d bytes in: dropped\n", s.t, u.Name, u.got, u.Size+u.InitrdSize)
		s.upload = nil
	}
	s.pending = nil
	s.t.close(reason)
}

// attach gives the session the console of the VM named name.
func (s *session) attach(name string) {
	if s.vms != nil {
		s.vms[name] = true
	}
}

// refuse answers a request that cannot be served and, on the network,
// hangs up: what follows it cannot be told from requests.
func (s *session) refuse(id int, msg string) {
	s.send(map[string]any{"id": id, "ok": false, "error": msg})
	if s.network {
		s.shut(msg)
	}
}

// requests returns the complete requests received so far: up to
// receiveBudget bytes a round, so that the loop goes on to its other work.
func (s *session) requests(now uint64) []request {
	if s.closed {
		return nil
	}
	s.active = s.upload != nil
	var out []request
	for budget := receiveBudget; budget > 0 && !s.closed; {
		got := s.t.receive()
		if len(got) == 0 {
			break
		}
		s.lastRecv, s.active = now, true
		budget -= len(got)
		got = s.stage(got)
		s.pending = append(s.pending, got...)
		out = s.parse(out)
	}
	if !s.closed && s.t.ended() {
		s.shut("hung up") // what it sent before is parsed already
	}
	return out
}

// receiveBudget is how many bytes a session takes in a round.
const receiveBudget = 512 << 10

// stage copies what got holds of an upload under way straight into its
// staging memory, and returns the rest. Only bytes that follow a whole
// request line go through pending.
func (s *session) stage(got []byte) []byte {
	if s.upload == nil || len(s.pending) > 0 {
		return got
	}
	return got[s.take(s.upload, got):]
}

// take copies what b holds of upload u into its staging memory (nothing,
// if it is being read only to be thrown away), reports its progress to a
// network client, and returns how many bytes of b it took.
func (s *session) take(u *request, b []byte) uint64 {
	n := min(uint64(len(b)), u.Size+u.InitrdSize-u.got)
	if u.staging != nil {
		copy(u.staging[u.got:], b[:n])
	}
	before := u.got
	u.got += n
	total := u.Size + u.InitrdSize
	if n > 0 && s.network && (u.got/progressEvery != before/progressEvery || u.got == total) {
		s.send(map[string]any{"event": "upload", "id": u.ID, "sent": u.got, "total": total})
	}
	return n
}

// parse takes the requests out of pending, and an upload's bytes into
// its staging memory.
func (s *session) parse(out []request) []request {
	for !s.closed {
		if u := s.upload; u != nil {
			s.pending = s.pending[s.take(u, s.pending):]
			if u.got < u.Size+u.InitrdSize {
				return s.compact(out)
			}
			out = append(out, *u)
			s.upload = nil
		}
		i := bytes.IndexByte(s.pending, '\n')
		if i < 0 {
			if len(s.pending) > maxLine {
				s.pending = nil
				s.refuse(0, fmt.Sprintf("a request line of more than %d bytes", maxLine))
			}
			return s.compact(out)
		}
		line := s.pending[:i]
		s.pending = s.pending[i+1:]
		if i > maxLine {
			s.refuse(0, fmt.Sprintf("a request line of %d bytes: at most %d", i, maxLine))
			continue
		}
		var r request
		if err := json.Unmarshal(line, &r); err != nil {
			s.refuse(0, "not a JSON request: "+err.Error())
			continue
		}
		if r.Op == "run" {
			total := r.Size + r.InitrdSize
			if r.Size == 0 || total > abi.MaxUpload || total < r.Size {
				s.send(map[string]any{"id": r.ID, "ok": false, "error": fmt.Sprintf("image size %d, initrd size %d: want an image of 1 byte to %d MiB in all", r.Size, r.InitrdSize, abi.MaxUpload>>20)})
				// The bytes that follow cannot be told from requests.
				s.pending = nil
				if s.network {
					s.shut("an upload of a size refused")
				}
				continue
			}
			pa, err := placer.Place((total + 2<<20 - 1) &^ (2<<20 - 1))
			if err != nil {
				r.refused = fmt.Sprintf("no room to receive %d MiB: %v", total>>20, err)
			} else {
				r.stagePA, r.staging = pa, mem(pa, total)
			}
			s.upload = &r
			continue
		}
		out = append(out, r)
	}
	return out
}

// compact lets go of pending's consumed front once nothing is left in it,
// so that the next bytes do not grow a slice that only ever moves on.
func (s *session) compact(out []request) []request {
	if len(s.pending) == 0 {
		s.pending = nil
	}
	return out
}

// stalled reports whether a network client has stopped mid-line or
// mid-upload for longer than stallSeconds.
func (s *session) stalled(now uint64) bool {
	if !s.network || s.closed || (len(s.pending) == 0 && s.upload == nil) {
		return false
	}
	return now-s.lastRecv > stallSeconds*cpu.ReadCNTFRQ()
}

// stallSeconds is how long a network client may stop mid-frame.
const stallSeconds = 15

// broadcast sends an event about VM name to every session that follows
// it: console output to those attached, the rest to all.
func (c *control) broadcast(event, name string, v any) {
	for _, s := range c.sessions {
		if event == "console" && s.vms != nil && !s.vms[name] {
			continue
		}
		s.send(v)
	}
}
