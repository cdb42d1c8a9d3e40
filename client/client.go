// Package client is the host side of an instance's broker protocol: it
// finds an instance that is up from its state directory and speaks the
// JSON-lines requests, answers and events of its api.sock (see
// cmd/bulkhead's broker).
package client

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"time"
)

// Client is a connection to an instance's broker (api.sock).
type Client struct {
	conn net.Conn
	wmu  sync.Mutex
	mu   sync.Mutex
	next int
	// msgs carries every answer and event, in order; it is closed when
	// the broker hangs up (the instance went down), err then says why.
	msgs chan *Message
	err  error
}

// Message is an answer or an event. Data is the decoded base64 of console
// events and input requests.
type Message struct {
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

// VMName is the VM an event is about.
func (m *Message) VMName() string { s, _ := m.VM.(string); return s }

// Raw is the message's line as the broker sent it, for the fields
// Message does not decode.
func (m *Message) Raw() []byte { return m.raw }

// Connect connects to the broker of an instance that is up, or to its
// network control plane if it is remote.
func Connect(in *Instance) (*Client, error) {
	if in.Remote != nil {
		c, _, err := DialRemote(*in.Remote)
		return c, err
	}
	conn, err := net.Dial("unix", in.API)
	if err != nil {
		return nil, fmt.Errorf("cannot reach instance %q's broker at %s: %v (its log: %s)", in.Name, in.API, err, in.BrokerLog)
	}
	return New(conn), nil
}

// New is a client speaking the broker's protocol on conn.
func New(conn net.Conn) *Client {
	c := &Client{conn: conn, next: 1, msgs: make(chan *Message, 256)}
	go func() {
		rd := bufio.NewReaderSize(conn, 64<<10)
		for {
			line, err := rd.ReadBytes('\n')
			if err != nil {
				c.err = err
				close(c.msgs)
				return
			}
			m := &Message{raw: line}
			if err := json.Unmarshal(line, m); err != nil {
				continue
			}
			c.msgs <- m
		}
	}()
	return c
}

// Msgs carries every answer and event, in order; it is closed when the
// broker hangs up (the instance went down), Lost then says why.
func (c *Client) Msgs() <-chan *Message { return c.msgs }

// Err is why the broker hung up, once Msgs is closed.
func (c *Client) Err() error { return c.err }

// Close hangs up.
func (c *Client) Close() { c.conn.Close() }

// Send writes a request and its payload, and returns the request's id.
func (c *Client) Send(req map[string]any, payload ...[]byte) (int, error) {
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

// AnswerTimeout bounds the wait for an answer. It is long: the channel
// is one byte stream, so a request waits behind an upload in progress,
// and a Linux kernel with its initrd takes a while.
const AnswerTimeout = 3 * time.Minute

// Call sends a request and waits for its answer, dropping events; a
// refusal is an error whose text is the control partition's.
func (c *Client) Call(req map[string]any, timeout time.Duration) (*Message, error) {
	op := req["op"]
	id, err := c.Send(req)
	if err != nil {
		return nil, err
	}
	deadline := time.After(timeout)
	for {
		select {
		case m, ok := <-c.msgs:
			if !ok {
				return nil, c.Lost()
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

// Lost is the error for a broker that hung up, once Msgs is closed.
func (c *Client) Lost() error {
	return fmt.Errorf("lost the connection to the instance (%v): it went down", c.err)
}

// VMInfo is a VM as ps lists it.
type VMInfo struct {
	Name   string `json:"name"`
	VM     int    `json:"vm"`
	State  string `json:"state"`
	Status int    `json:"status"`
	Mem    uint64 `json:"mem"`
	CPUs   int    `json:"cpus"`
	Disks  []Disk `json:"disks"`
	Net    *NIC   `json:"net"`
}

// NIC is a VM's network device on the instance's uplink, and its
// counters.
type NIC struct {
	Dev       string `json:"dev"`
	MAC       string `json:"mac"`
	TxFrames  uint64 `json:"tx_frames"`
	TxBytes   uint64 `json:"tx_bytes"`
	RxFrames  uint64 `json:"rx_frames"`
	RxBytes   uint64 `json:"rx_bytes"`
	RxDropped uint64 `json:"rx_dropped"`
	Errors    uint64 `json:"errors"`
}

// Disk is one of a VM's disks: the instance's drive behind it, the
// guest's device name, and its counters.
type Disk struct {
	Drive        string `json:"drive"`
	Dev          string `json:"dev"`
	RO           bool   `json:"ro"`
	Reads        uint64 `json:"reads"`
	Writes       uint64 `json:"writes"`
	Flushes      uint64 `json:"flushes"`
	Errors       uint64 `json:"errors"`
	ReadBytes    uint64 `json:"read_bytes"`
	WrittenBytes uint64 `json:"written_bytes"`
}

// PS lists the instance's VMs, with the raw list for --json.
func (c *Client) PS() ([]VMInfo, json.RawMessage, error) {
	m, err := c.Call(map[string]any{"op": "ps"}, AnswerTimeout)
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
	var vms []VMInfo
	if err := json.Unmarshal(v.VMs, &vms); err != nil {
		return nil, nil, fmt.Errorf("ps: the control partition's list: %v", err)
	}
	return vms, v.VMs, nil
}

// Find returns the VM named name: the running one if there is one, else
// the latest.
func Find(vms []VMInfo, name string) (VMInfo, bool) {
	var found VMInfo
	ok := false
	for _, v := range vms {
		if v.Name == name && (!ok || found.State != "running") {
			found, ok = v, true
		}
	}
	return found, ok
}
