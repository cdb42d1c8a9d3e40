package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/bulkhead-hv/bulkhead/abi"
	"github.com/bulkhead-hv/bulkhead/client"
)

// The broker is the one holder of an instance's host channel. QEMU's
// socket chardev accepts one client at a time, so a CLI that held it would
// keep every other CLI out; instead `bulkhead up` starts a broker in the
// background (`bulkhead __broker`), and CLIs talk to it on api.sock in
// the instance's directory, in the control partition's own protocol.
//
// It multiplexes: request ids are rewritten so that two clients' ids never
// collide, and each answer goes back to the client that asked; console
// events go to the clients attached to their VM (a run attaches its client
// to the VM it starts, "attach" any other), exit events to every client.
// A run request's payload is read whole from its client before anything is
// sent, then written with its header under one lock: a client that dies
// mid-upload leaves nothing half-sent on the channel, and no other request
// lands inside an upload. The broker exits when QEMU closes the channel.
const brokerCmd = "__broker"

const (
	// maxUpload bounds what the broker holds for one run, the image and
	// the initrd: what the control partition takes, so that nothing it
	// would refuse goes down the channel.
	maxUpload = abi.MaxUpload
	// uploadChunk is how much of an upload goes to QEMU between two
	// progress events.
	uploadChunk = 256 << 10
	// tailSize is how much of each VM's recent console the broker keeps,
	// replayed to a client that attaches.
	tailSize = 8 << 10
	// clientQueue is how many messages may wait for a client: one that
	// falls further behind is disconnected rather than stall the channel.
	clientQueue = 4096
)

type broker struct {
	ctl io.Writer
	wmu sync.Mutex // held over a request line and its payload

	mu      sync.Mutex // guards the rest
	next    int64
	pending map[int64]*pending
	clients map[*bclient]struct{}
	tails   map[string][]byte
	writers sync.WaitGroup
	log     *log.Logger
}

// pending is a request sent to the control partition, not yet answered.
type pending struct {
	c        *bclient        // nil for the broker's own requests
	id       json.RawMessage // the client's id, nil if it gave none
	op, name string
	attached bool // the run attached c to name
}

// bclient is a CLI connected to api.sock.
type bclient struct {
	out  chan []byte
	vms  map[string]bool // whose console it gets
	gone bool
}

func newBroker(ctl io.Writer, logger *log.Logger) *broker {
	return &broker{ctl: ctl, pending: map[int64]*pending{}, clients: map[*bclient]struct{}{},
		tails: map[string][]byte{}, log: logger}
}

// send queues a line for c; b.mu is held.
func (c *bclient) send(line []byte) {
	if c.gone {
		return
	}
	select {
	case c.out <- line:
	default:
		c.gone = true
		close(c.out)
	}
}

func (b *broker) answer(c *bclient, id json.RawMessage, err error) {
	m := map[string]any{"ok": err == nil}
	if id != nil {
		m["id"] = id
	}
	if err != nil {
		m["error"] = err.Error()
	}
	line, _ := json.Marshal(m)
	b.mu.Lock()
	c.send(append(line, '\n'))
	b.mu.Unlock()
}

// serveClient serves one CLI until it hangs up.
func (b *broker) serveClient(conn net.Conn) {
	c := &bclient{out: make(chan []byte, clientQueue), vms: map[string]bool{}}
	b.mu.Lock()
	b.clients[c] = struct{}{}
	b.writers.Add(1)
	b.mu.Unlock()
	go func() {
		defer b.writers.Done()
		for line := range c.out {
			if _, err := conn.Write(line); err != nil {
				break
			}
		}
		conn.Close()
	}()
	rd := bufio.NewReaderSize(conn, 64<<10)
	for {
		line, err := rd.ReadBytes('\n')
		if err != nil {
			break
		}
		if err := b.request(c, line, rd); err != nil {
			b.log.Printf("client: %v", err)
			break
		}
	}
	b.mu.Lock()
	delete(b.clients, c)
	if !c.gone {
		c.gone = true
		close(c.out)
	}
	b.mu.Unlock()
}

// request handles one request line from c, reading a run's payload from
// rd. An error ends the client's connection.
func (b *broker) request(c *bclient, line []byte, rd io.Reader) error {
	var req map[string]json.RawMessage
	if err := json.Unmarshal(line, &req); err != nil {
		b.answer(c, nil, fmt.Errorf("not a JSON request: %v", err))
		return nil
	}
	var op, name string
	json.Unmarshal(req["op"], &op)
	json.Unmarshal(req["name"], &name)
	id := req["id"]
	switch op {
	case "attach", "detach":
		if name == "" {
			b.answer(c, id, fmt.Errorf("%s: no VM name", op))
			return nil
		}
		b.mu.Lock()
		if op == "detach" {
			delete(c.vms, name)
		} else if !c.vms[name] {
			c.vms[name] = true
			if t := b.tails[name]; len(t) > 0 {
				ev, _ := json.Marshal(map[string]any{"event": "console", "vm": name, "data": t, "replay": true})
				c.send(append(ev, '\n'))
			}
		}
		b.mu.Unlock()
		b.answer(c, id, nil)
		return nil
	}
	var payload []byte
	if op == "run" {
		var size, initrd int64
		json.Unmarshal(req["size"], &size)
		json.Unmarshal(req["initrd_size"], &initrd)
		// Each bounded before they are added: two sizes near 2^62
		// summed past int64's range to a negative total, which passed
		// and made the allocation below panic, taking the broker down.
		if size < 0 || initrd < 0 || size > maxUpload || initrd > maxUpload-size {
			// Its payload cannot be skipped safely: hang up.
			b.answer(c, id, fmt.Errorf("run %s: %d bytes of image and %d of initrd: at most %d MiB in all", name, size, initrd, maxUpload>>20))
			return fmt.Errorf("refused an upload of %d+%d bytes", size, initrd)
		}
		payload = make([]byte, size+initrd)
		if n, err := io.ReadFull(rd, payload); err != nil {
			return fmt.Errorf("went away %d bytes into the %d-byte upload of %s (%v): nothing of it was sent", n, len(payload), name, err)
		}
	}
	p := &pending{c: c, id: id, op: op, name: name}
	b.mu.Lock()
	if op == "run" && !c.vms[name] {
		c.vms[name] = true
		p.attached = true
	}
	b.mu.Unlock()
	return b.forward(req, p, payload)
}

// forward sends a request and its payload to the control partition under
// a fresh id, reporting an upload's progress to its client.
func (b *broker) forward(req map[string]json.RawMessage, p *pending, payload []byte) error {
	b.mu.Lock()
	b.next++
	id := b.next
	b.pending[id] = p
	b.mu.Unlock()
	req["id"], _ = json.Marshal(id)
	hdr, _ := json.Marshal(req)
	b.wmu.Lock()
	defer b.wmu.Unlock()
	if _, err := b.ctl.Write(append(hdr, '\n')); err != nil {
		return fmt.Errorf("writing to the control partition: %v", err)
	}
	for off := 0; off < len(payload); {
		n := min(uploadChunk, len(payload)-off)
		// Reported as the chunk goes, not after: its answer may follow
		// the last byte at once, and must come after the last report.
		ev := map[string]any{"event": "upload", "sent": off + n, "total": len(payload)}
		if p.id != nil {
			ev["id"] = p.id
		}
		line, _ := json.Marshal(ev)
		b.mu.Lock()
		p.c.send(append(line, '\n'))
		b.mu.Unlock()
		if _, err := b.ctl.Write(payload[off : off+n]); err != nil {
			return fmt.Errorf("uploading %s to the control partition: %v", p.name, err)
		}
		off += n
	}
	return nil
}

// serveControl routes what the control partition says until the channel
// closes.
func (b *broker) serveControl(rd io.Reader) error {
	br := bufio.NewReaderSize(rd, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			return err
		}
		b.fromControl(line)
	}
}

func (b *broker) fromControl(line []byte) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(line, &m); err != nil {
		b.log.Printf("the control partition sent %q, not JSON", line)
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var ev, vm string
	if json.Unmarshal(m["event"], &ev); ev != "" {
		if ev == "ready" {
			b.restarted(line)
		}
		json.Unmarshal(m["vm"], &vm)
		if ev == "console" {
			var data []byte
			json.Unmarshal(m["data"], &data)
			t := append(b.tails[vm], data...)
			b.tails[vm] = t[max(0, len(t)-tailSize):]
		}
		for c := range b.clients {
			if ev != "console" || c.vms[vm] {
				c.send(line)
			}
		}
		return
	}
	var id int64
	json.Unmarshal(m["id"], &id)
	p := b.pending[id]
	if p == nil {
		b.log.Printf("the control partition answered no request: %s", line)
		return
	}
	delete(b.pending, id)
	var ok bool
	json.Unmarshal(m["ok"], &ok)
	if p.op == "run" {
		switch {
		case ok && p.c.gone:
			// Its client never learnt that it started: nobody would
			// know to stop it. Not under b.wmu here: an upload may be
			// waiting on the channel this loop drains.
			b.log.Printf("stopping %s: the client that ran it went away before it started", p.name)
			name, _ := json.Marshal(p.name)
			go b.forward(map[string]json.RawMessage{"op": json.RawMessage(`"stop"`), "name": name}, &pending{op: "stop", name: p.name}, nil)
			fallthrough
		case ok:
			delete(b.tails, p.name)
		case p.attached:
			delete(p.c.vms, p.name)
		}
	}
	if p.c == nil {
		if !ok {
			b.log.Printf("%s %s: %s", p.op, p.name, m["error"])
		}
		return
	}
	if p.id == nil {
		delete(m, "id")
	} else {
		m["id"] = p.id
	}
	out, _ := json.Marshal(m)
	p.c.send(append(out, '\n'))
}

// restarted handles a ready event after the first: the hypervisor
// restarted the control partition after it crashed (docs/abi.md, "Control
// partition restarts"). Requests the crashed partition had not answered
// never will be: their clients are told so. The new partition needs the
// host's time for the guests' clocks it takes back. b.mu is held.
func (b *broker) restarted(line []byte) {
	b.log.Printf("the control partition was restarted: %s", bytes.TrimSpace(line))
	for id, p := range b.pending {
		delete(b.pending, id)
		if p.c == nil {
			continue
		}
		m := map[string]any{"ok": false, "error": fmt.Sprintf("%s: the control partition crashed before it answered, and was restarted: ask again", p.op)}
		if p.id != nil {
			m["id"] = p.id
		}
		if p.attached {
			delete(p.c.vms, p.name)
		}
		out, _ := json.Marshal(m)
		p.c.send(append(out, '\n'))
	}
	// Not under b.wmu here, as in fromControl.
	go b.sendTime()
}

// sendTime gives the control partition the host's time, for the guests'
// real-time clocks (run requests carry it too).
func (b *broker) sendTime() {
	t, _ := json.Marshal(time.Now().Unix())
	b.forward(map[string]json.RawMessage{"op": json.RawMessage(`"time"`), "time": t}, &pending{op: "time"}, nil)
}

// closeClients hangs up on every client once what is queued for it is
// written, waiting at most timeout.
func (b *broker) closeClients(timeout time.Duration) {
	b.mu.Lock()
	for c := range b.clients {
		if !c.gone {
			c.gone = true
			close(c.out)
		}
	}
	b.mu.Unlock()
	done := make(chan struct{})
	go func() { b.writers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
	}
}

// cmdBroker is the broker's process: `bulkhead __broker --name N --qemu
// PID [--owner PID]`, started by `up` (or a private run, the owner) with
// its output in the instance's broker.log.
func cmdBroker(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("bulkhead "+brokerCmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "default", "the instance")
	qemu := fs.Int("qemu", 0, "QEMU's pid")
	owner := fs.Int("owner", 0, "for a private instance: the pid whose exit ends it")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	logger := log.New(stderr, "broker: ", log.LstdFlags|log.Lmicroseconds)
	dir := client.StateDir(*name)
	ctlPath, apiPath := filepath.Join(dir, "ctl.sock"), filepath.Join(dir, "api.sock")
	kill := func() {
		if *qemu > 0 {
			syscall.Kill(*qemu, syscall.SIGKILL)
		}
	}

	// QEMU listens (wait=on) before it boots the machine.
	var conn net.Conn
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if conn, err = net.Dial("unix", ctlPath); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		logger.Printf("cannot reach QEMU's channel at %s: %v; killing QEMU", ctlPath, err)
		kill()
		return exitInternal
	}
	// The control partition announces itself once booted. A broker whose
	// `up` died while waiting must not leave QEMU behind.
	rd := bufio.NewReaderSize(conn, 64<<10)
	conn.SetReadDeadline(time.Now().Add(2 * time.Minute))
	for {
		line, err := rd.ReadBytes('\n')
		if err != nil {
			logger.Printf("no ready event from the control partition: %v; killing QEMU", err)
			kill()
			return exitInternal
		}
		var ev struct{ Event string }
		if json.Unmarshal(line, &ev); ev.Event == "ready" {
			logger.Printf("instance %q: the control partition is ready: %s", *name, line)
			break
		}
		logger.Printf("before ready, the control partition sent %q", line)
	}
	conn.SetReadDeadline(time.Time{})

	os.Remove(apiPath)
	ln, err := net.Listen("unix", apiPath)
	if err != nil {
		logger.Printf("%v; killing QEMU", err)
		kill()
		return exitInternal
	}
	b := newBroker(conn, logger)
	go b.sendTime()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go b.serveClient(c)
		}
	}()
	if *owner > 0 {
		go func() {
			for client.Alive(*owner) {
				time.Sleep(500 * time.Millisecond)
			}
			logger.Printf("the private instance's owner (pid %d) is gone: killing QEMU", *owner)
			kill()
		}()
	}
	err = b.serveControl(rd)
	ln.Close()
	os.Remove(apiPath)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	logger.Printf("QEMU closed the channel (%v): exiting", err)
	b.closeClients(5 * time.Second)
	// A private instance's owner killed outright dies as QEMU does (its
	// parent-death signal): it may still be exiting, not yet a zombie.
	// Give it a moment; an owner that lives on tears the instance down
	// itself, once this broker is gone.
	if *owner > 0 && waitGone(*owner, time.Second) {
		if err := os.RemoveAll(dir); err != nil {
			logger.Printf("removing the private instance's state: %v", err)
		}
	}
	return 0
}
