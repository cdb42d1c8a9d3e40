package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"time"
)

// client is a connection to an instance's broker (api.sock).
type client struct {
	conn net.Conn
	wmu  sync.Mutex
	mu   sync.Mutex
	next int
	// msgs carries every answer and event, in order; it is closed when
	// the broker hangs up (the instance went down), err then says why.
	msgs chan *message
	err  error
}

// message is an answer or an event. Data is the decoded base64 of console
// events and input requests.
type message struct {
	ID     int    `json:"id"`
	OK     bool   `json:"ok"`
	Error  string `json:"error"`
	Event  string `json:"event"`
	VM     any    `json:"vm"` // a name in events, a handle in run answers
	Data   []byte `json:"data"`
	Status int    `json:"status"`
	Sent   int64  `json:"sent"`
	Total  int64  `json:"total"`
	raw    []byte
}

// vmName is the VM an event is about.
func (m *message) vmName() string { s, _ := m.VM.(string); return s }

func connect(in *instance) (*client, error) {
	conn, err := net.Dial("unix", in.API)
	if err != nil {
		return nil, fmt.Errorf("cannot reach instance %q's broker at %s: %v (its log: %s)", in.Name, in.API, err, in.BrokerLog)
	}
	return newClient(conn), nil
}

func newClient(conn net.Conn) *client {
	c := &client{conn: conn, next: 1, msgs: make(chan *message, 256)}
	go func() {
		rd := bufio.NewReaderSize(conn, 64<<10)
		for {
			line, err := rd.ReadBytes('\n')
			if err != nil {
				c.err = err
				close(c.msgs)
				return
			}
			m := &message{raw: line}
			if err := json.Unmarshal(line, m); err != nil {
				continue
			}
			c.msgs <- m
		}
	}()
	return c
}

func (c *client) close() { c.conn.Close() }

// send writes a request and its payload, and returns the request's id.
func (c *client) send(req map[string]any, payload ...[]byte) (int, error) {
	c.mu.Lock()
	id := c.next
	c.next++
	c.mu.Unlock()
	req["id"] = id
	line, err := json.Marshal(req)
	if err != nil {
		return 0, err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if _, err := c.conn.Write(append(line, '\n')); err != nil {
		return 0, fmt.Errorf("writing to the instance's broker: %v", err)
	}
	for _, p := range payload {
		if _, err := c.conn.Write(p); err != nil {
			return 0, fmt.Errorf("uploading to the instance's broker: %v", err)
		}
	}
	return id, nil
}

// answerTimeout bounds the wait for an answer. It is long: the channel
// is one byte stream, so a request waits behind an upload in progress,
// and a Linux kernel with its initrd takes a while.
const answerTimeout = 3 * time.Minute

// call sends a request and waits for its answer, dropping events; a
// refusal is an error whose text is the control partition's.
func (c *client) call(req map[string]any, timeout time.Duration) (*message, error) {
	op := req["op"]
	id, err := c.send(req)
	if err != nil {
		return nil, err
	}
	deadline := time.After(timeout)
	for {
		select {
		case m, ok := <-c.msgs:
			if !ok {
				return nil, c.lost()
			}
			if m.Event != "" || m.ID != id {
				continue
			}
			if !m.OK {
				return m, fmt.Errorf("%s", m.Error)
			}
			return m, nil
		case <-deadline:
			return nil, fmt.Errorf("%s: no answer from the instance within %v", op, timeout)
		}
	}
}

func (c *client) lost() error {
	return fmt.Errorf("lost the connection to the instance (%v): it went down", c.err)
}

// A VM as ps lists it.
type vmInfo struct {
	Name   string `json:"name"`
	VM     int    `json:"vm"`
	State  string `json:"state"`
	Status int    `json:"status"`
	Mem    uint64 `json:"mem"`
	CPUs   int    `json:"cpus"`
}

// ps lists the instance's VMs, with the raw list for --json.
func (c *client) ps() ([]vmInfo, json.RawMessage, error) {
	m, err := c.call(map[string]any{"op": "ps"}, answerTimeout)
	if err != nil {
		return nil, nil, fmt.Errorf("ps: %v", err)
	}
	var v struct {
		VMs json.RawMessage `json:"vms"`
	}
	json.Unmarshal(m.raw, &v)
	if len(v.VMs) == 0 || string(v.VMs) == "null" {
		v.VMs = json.RawMessage("[]")
	}
	var vms []vmInfo
	if err := json.Unmarshal(v.VMs, &vms); err != nil {
		return nil, nil, fmt.Errorf("ps: the control partition's list: %v", err)
	}
	return vms, v.VMs, nil
}

// find returns the VM named name: the running one if there is one, else
// the latest.
func find(vms []vmInfo, name string) (vmInfo, bool) {
	var found vmInfo
	ok := false
	for _, v := range vms {
		if v.Name == name && (!ok || found.State != "running") {
			found, ok = v, true
		}
	}
	return found, ok
}

func unknownVM(name, inst string) error {
	ps := "bulkhead ps"
	if inst != "default" {
		ps += " --name " + inst
	}
	return fmt.Errorf("no VM named %s in instance %s; %s lists them", name, inst, ps)
}
