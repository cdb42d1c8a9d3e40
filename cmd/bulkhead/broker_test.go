package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-hv/bulkhead/client"
)

// socketpair is a connected pair of unix sockets, as QEMU's chardev and
// api.sock are.
func socketpair(t *testing.T) (net.Conn, net.Conn) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	require.NoError(t, err)
	var conns [2]net.Conn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "socketpair")
		conns[i], err = net.FileConn(f)
		f.Close()
		require.NoError(t, err)
	}
	t.Cleanup(func() { conns[0].Close(); conns[1].Close() })
	return conns[0], conns[1]
}

// fakeControl plays the control partition's side of the channel, as
// cmd/control does: it answers ping, ps, run (reading the payload that
// follows), stop (then an exit event), input (echoed as console output)
// and records every request. A payload must be len bytes of one
// repeated byte, the first of the VM's name: an upload that another
// request interleaved breaks that, and the framing after it.
type fakeControl struct {
	t    *testing.T
	conn net.Conn
	wmu  sync.Mutex

	mu   sync.Mutex
	reqs []map[string]any
	vms  map[string]int
	errs []string
	// hold, if set, delays run answers until it is closed; received
	// then says the payload is in.
	hold, received chan struct{}
}

func newFakeControl(t *testing.T) (*broker, *fakeControl) {
	ours, theirs := socketpair(t)
	b := newBroker(ours, log.New(io.Discard, "broker: ", 0))
	fc := &fakeControl{t: t, conn: theirs, vms: map[string]int{}}
	go b.serveControl(ours)
	go fc.serve()
	return b, fc
}

func (fc *fakeControl) send(v any) {
	b, _ := json.Marshal(v)
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	fc.conn.Write(append(b, '\n'))
}

func (fc *fakeControl) fail(format string, args ...any) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.errs = append(fc.errs, fmt.Sprintf(format, args...))
}

func (fc *fakeControl) serve() {
	rd := bufio.NewReader(fc.conn)
	for {
		line, err := rd.ReadBytes('\n')
		if err != nil {
			return
		}
		var req map[string]any
		if err := json.Unmarshal(line, &req); err != nil {
			fc.fail("not a request line: %q", line)
			return
		}
		fc.mu.Lock()
		fc.reqs = append(fc.reqs, req)
		fc.mu.Unlock()
		id, name := req["id"], fmt.Sprint(req["name"])
		switch req["op"] {
		case "ping":
			fc.send(map[string]any{"id": id, "ok": true, "abi": "1.0"})
		case "ps":
			fc.mu.Lock()
			list := []map[string]any{}
			for n, h := range fc.vms {
				list = append(list, map[string]any{"name": n, "vm": h, "state": "running"})
			}
			fc.mu.Unlock()
			fc.send(map[string]any{"id": id, "ok": true, "vms": list})
		case "run":
			size, _ := req["size"].(float64)
			initrd, _ := req["initrd_size"].(float64)
			payload := make([]byte, int(size+initrd))
			if _, err := io.ReadFull(rd, payload); err != nil {
				fc.fail("run %s: payload: %v", name, err)
				return
			}
			if want := bytes.Repeat([]byte{name[0]}, len(payload)); !bytes.Equal(payload, want) {
				fc.fail("run %s: the payload is not its own: interleaved", name)
			}
			if fc.hold != nil {
				close(fc.received)
				<-fc.hold
			}
			fc.mu.Lock()
			_, dup := fc.vms[name]
			if !dup {
				fc.vms[name] = len(fc.reqs)
			}
			fc.mu.Unlock()
			if dup {
				fc.send(map[string]any{"id": id, "ok": false, "error": fmt.Sprintf("a VM named %q exists", name)})
			} else {
				fc.send(map[string]any{"id": id, "ok": true, "vm": len(fc.reqs)})
			}
		case "stop":
			fc.mu.Lock()
			_, ok := fc.vms[name]
			delete(fc.vms, name)
			fc.mu.Unlock()
			if !ok {
				fc.send(map[string]any{"id": id, "ok": false, "error": fmt.Sprintf("no VM named %q", name)})
				continue
			}
			fc.send(map[string]any{"id": id, "ok": true})
			fc.send(map[string]any{"event": "exit", "vm": name, "status": 143})
		case "input":
			fc.send(map[string]any{"id": id, "ok": true})
			fc.send(map[string]any{"event": "console", "vm": name, "data": req["data"]})
		default:
			fc.send(map[string]any{"id": id, "ok": false, "error": "unknown op"})
		}
	}
}

func (fc *fakeControl) requests(op string) []map[string]any {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	var out []map[string]any
	for _, r := range fc.reqs {
		if op == "" || r["op"] == op {
			out = append(out, r)
		}
	}
	return out
}

func (fc *fakeControl) check() {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	assert.Empty(fc.t, fc.errs, "what the control partition got")
}

// dial connects a CLI client to the broker.
func dial(t *testing.T, b *broker) *client.Client {
	ours, theirs := socketpair(t)
	go b.serveClient(theirs)
	return client.New(ours)
}

func (b *broker) clientCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.clients)
}

// next returns the next message, failing the test after 5s.
func next(t *testing.T, c *client.Client) *client.Message {
	t.Helper()
	select {
	case m, ok := <-c.Msgs():
		if !ok {
			t.Fatalf("the broker hung up: %v", c.Err())
		}
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message from the broker within 5s")
		return nil
	}
}

// quiet checks that nothing but the answer to a ping is queued for c.
func quiet(t *testing.T, c *client.Client) {
	t.Helper()
	id, err := c.Send(map[string]any{"op": "ping"})
	require.NoError(t, err)
	m := next(t, c)
	assert.Equal(t, id, m.ID, "expected only the ping's answer, got %s", m.Raw())
}

func run(t *testing.T, c *client.Client, name string, size int) int {
	t.Helper()
	id, err := c.Send(map[string]any{"op": "run", "name": name, "size": size}, bytes.Repeat([]byte{name[0]}, size))
	require.NoError(t, err)
	return id
}

// answer waits for the answer to id, skipping upload progress.
func answer(t *testing.T, c *client.Client, id int) *client.Message {
	t.Helper()
	for {
		m := next(t, c)
		if m.Event == "upload" {
			continue
		}
		require.Equal(t, "", m.Event, "an event before the answer: %s", m.Raw())
		require.Equal(t, id, m.ID, "%s", m.Raw())
		return m
	}
}

// Every client numbers its requests from 1: the broker keeps them apart
// on the channel, and each answer reaches the client that asked.
func TestBrokerRewritesIDs(t *testing.T) {
	b, fc := newFakeControl(t)
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		c := dial(t, b)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 25; j++ {
				m, err := c.Call(map[string]any{"op": "ping"}, 5*time.Second)
				if assert.NoError(t, err) {
					assert.Equal(t, j+1, m.ID)
				}
			}
		}()
	}
	wg.Wait()
	seen := map[float64]bool{}
	for _, r := range fc.requests("ping") {
		id := r["id"].(float64)
		assert.False(t, seen[id], "id %v sent twice", id)
		seen[id] = true
	}
	assert.Len(t, seen, 100)
	fc.check()
}

// Console output goes to the clients attached to its VM (the one that ran
// it, and any that attach); exits go to everyone; a client that attaches
// gets the recent output first.
func TestBrokerRoutesEvents(t *testing.T) {
	b, fc := newFakeControl(t)
	a, bb, other := dial(t, b), dial(t, b), dial(t, b)
	// other sends nothing: the broker must have taken it in before the
	// exit is broadcast, which it does in a goroutine of its own.
	require.Eventually(t, func() bool { return b.clientCount() == 3 }, 5*time.Second, time.Millisecond)
	assert.True(t, answer(t, a, run(t, a, "a", 10)).OK)
	assert.True(t, answer(t, bb, run(t, bb, "b", 10)).OK)
	fc.send(map[string]any{"event": "console", "vm": "a", "data": []byte("from a\n")})
	fc.send(map[string]any{"event": "console", "vm": "b", "data": []byte("from b\n")})
	fc.send(map[string]any{"event": "exit", "vm": "a", "status": 3})

	m := next(t, a)
	assert.Equal(t, "console", m.Event)
	assert.Equal(t, "from a\n", string(m.Data))
	m = next(t, a)
	assert.Equal(t, "exit", m.Event)
	assert.Equal(t, 3, m.Status)
	m = next(t, bb)
	assert.Equal(t, "from b\n", string(m.Data), "b gets its own console, not a's")
	assert.Equal(t, "exit", next(t, bb).Event, "exits go to everyone")
	assert.Equal(t, "exit", next(t, other).Event, "exits go to everyone")
	quiet(t, other)

	// Attaching replays what b printed, then b's output follows.
	late := dial(t, b)
	id, _ := late.Send(map[string]any{"op": "attach", "name": "b"})
	m = next(t, late)
	assert.Equal(t, "console", m.Event)
	assert.Equal(t, "from b\n", string(m.Data))
	assert.True(t, answer(t, late, id).OK)
	fc.send(map[string]any{"event": "console", "vm": "b", "data": []byte("more\n")})
	assert.Equal(t, "more\n", string(next(t, late).Data))
	assert.Equal(t, "more\n", string(next(t, bb).Data))
	quiet(t, a)

	// Input reaches the VM's console (the fake echoes it).
	_, err := late.Call(map[string]any{"op": "input", "name": "b", "data": []byte("ls\r")}, 5*time.Second)
	require.NoError(t, err)
	assert.Equal(t, "ls\r", string(next(t, late).Data))
	fc.check()
}

// A refused run does not leave its client attached to the VM that made it
// fail, and a run replaces the name's replayed output only when it starts.
func TestBrokerRefusedRunDetaches(t *testing.T) {
	b, fc := newFakeControl(t)
	first, second := dial(t, b), dial(t, b)
	assert.True(t, answer(t, first, run(t, first, "x", 1)).OK)
	m := answer(t, second, run(t, second, "x", 1))
	assert.False(t, m.OK)
	assert.Contains(t, m.Error, `a VM named "x" exists`)
	fc.send(map[string]any{"event": "console", "vm": "x", "data": []byte("first's\n")})
	assert.Equal(t, "first's\n", string(next(t, first).Data))
	quiet(t, second)
	fc.check()
}

// Uploads from several clients at once reach the control partition each
// in one piece, with the others' requests between them, never inside;
// each uploader sees its progress.
func TestBrokerUploadsAreAtomic(t *testing.T) {
	b, fc := newFakeControl(t)
	const size = 3<<20 + 12345
	var wg sync.WaitGroup
	for _, name := range []string{"p", "q", "r", "s"} {
		c := dial(t, b)
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := c.Send(map[string]any{"op": "run", "name": name, "size": size - 1000, "initrd_size": 1000}, bytes.Repeat([]byte{name[0]}, size))
			if !assert.NoError(t, err) {
				return
			}
			var last int64
			for m := range c.Msgs() {
				if m.Event == "upload" {
					assert.Equal(t, id, m.ID)
					assert.Greater(t, m.Sent, last)
					last = m.Sent
					assert.Equal(t, int64(size), m.Total)
					continue
				}
				assert.Equal(t, id, m.ID)
				assert.True(t, m.OK, m.Error)
				break
			}
			assert.Equal(t, int64(size), last, "progress up to the last byte")
		}()
	}
	pinger := dial(t, b)
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			_, err := pinger.Call(map[string]any{"op": "ping"}, 10*time.Second)
			assert.NoError(t, err)
		}
	}()
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	assert.Len(t, fc.requests("run"), 4)
	assert.NotEmpty(t, fc.requests("ping"))
	fc.check()
}

// A client that dies halfway through an upload leaves nothing on the
// channel: the next request is read as a request, not as image bytes.
func TestBrokerClientDiesMidUpload(t *testing.T) {
	b, fc := newFakeControl(t)
	ours, theirs := socketpair(t)
	go b.serveClient(theirs)
	fmt.Fprintf(ours, `{"id":1,"op":"run","name":"half","size":%d}`+"\n", 1<<20)
	ours.Write(bytes.Repeat([]byte{'h'}, 1000))
	ours.Close()
	require.Eventually(t, func() bool { return b.clientCount() == 0 }, 5*time.Second, 10*time.Millisecond)

	c := dial(t, b)
	assert.True(t, answer(t, c, run(t, c, "whole", 4096)).OK)
	runs := fc.requests("run")
	require.Len(t, runs, 1)
	assert.Equal(t, "whole", runs[0]["name"])
	fc.check()
}

// A VM whose client went away before it started is stopped: nobody else
// knows it is there.
func TestBrokerStopsOrphanedRun(t *testing.T) {
	b, fc := newFakeControl(t)
	fc.hold, fc.received = make(chan struct{}), make(chan struct{})
	c := dial(t, b)
	run(t, c, "orphan", 100)
	select {
	case <-fc.received:
	case <-time.After(5 * time.Second):
		t.Fatal("the upload did not arrive")
	}
	c.Close()
	require.Eventually(t, func() bool { return b.clientCount() == 0 }, 5*time.Second, 10*time.Millisecond)
	close(fc.hold)
	require.Eventually(t, func() bool { return len(fc.requests("stop")) == 1 }, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, "orphan", fc.requests("stop")[0]["name"])
	fc.check()
}

// A client that sends a line that is not JSON is told so, and served on.
func TestBrokerBadLines(t *testing.T) {
	b, fc := newFakeControl(t)
	ours, theirs := socketpair(t)
	go b.serveClient(theirs)
	c := client.New(ours)
	fmt.Fprintf(ours, "hello\n")
	m := next(t, c)
	assert.False(t, m.OK)
	assert.Contains(t, m.Error, "not a JSON request")
	quiet(t, c)
	// An upload too big to hold is refused, and the client hung up on.
	fmt.Fprintf(ours, `{"id":7,"op":"run","name":"big","size":%d}`+"\n", maxUpload+1)
	m = next(t, c)
	assert.Equal(t, 7, m.ID)
	assert.Contains(t, m.Error, "at most")
	_, ok := <-c.Msgs()
	assert.False(t, ok, "hung up")
	assert.Empty(t, fc.requests("run"))
	fc.check()
}

// When QEMU closes the channel, every client is told so by its end.
func TestBrokerEndsWithTheChannel(t *testing.T) {
	ours, theirs := socketpair(t)
	b := newBroker(ours, log.New(io.Discard, "", 0))
	done := make(chan error, 1)
	go func() { done <- b.serveControl(ours) }()
	c := dial(t, b)
	require.Eventually(t, func() bool { return b.clientCount() == 1 }, 5*time.Second, time.Millisecond)
	theirs.Write([]byte(`{"event":"exit","vm":"z","status":0}` + "\n"))
	assert.Equal(t, "exit", next(t, c).Event)
	theirs.Close()
	select {
	case err := <-done:
		assert.ErrorIs(t, err, io.EOF)
	case <-time.After(5 * time.Second):
		t.Fatal("serveControl did not return")
	}
	b.closeClients(5 * time.Second)
	_, ok := <-c.Msgs()
	assert.False(t, ok)
}
