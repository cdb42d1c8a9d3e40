//go:build tamago

package main

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/bulkhead-hv/bulkhead/abi"
	vm "github.com/bulkhead-hv/bulkhead/board/bulkheadvm"
	"github.com/bulkhead-hv/bulkhead/hyp"
	"github.com/bulkhead-hv/bulkhead/virtio"
)

// The host channel: a virtio console, carrying one JSON object per line.
// Requests carry an "id" the answer repeats, so several can share it.
type channel struct {
	rx, tx  *virtio.Queue
	pending []byte
	// upload is a run request whose image is still arriving.
	upload *request
}

// virtio-mmio transports on QEMU virt, which the hypervisor passes through.
func transports() []uint64 {
	var out []uint64
	for i := uint64(0); i < 32; i++ {
		out = append(out, 0x0a000000+0x200*i)
	}
	return out
}

var dma vm.DMA

func openChannel() *channel {
	base, err := virtio.Find(vm.MMIO{}, transports(), virtio.DeviceConsole)
	if err != nil {
		fmt.Printf("control: no host channel: %v\n", err)
		return nil
	}
	d, err := virtio.Init(vm.MMIO{}, &dma, base, 0)
	if err != nil {
		fmt.Printf("control: host channel: %v\n", err)
		return nil
	}
	// virtio console port 0: receiveq 0, transmitq 1 (VIRTIO 1.2, 5.3.2).
	rx, err1 := d.Queue(0, 16, 4096)
	tx, err2 := d.Queue(1, 16, 4096)
	if err1 != nil || err2 != nil {
		fmt.Printf("control: host channel queues: %v %v\n", err1, err2)
		return nil
	}
	d.Ready()
	rx.Fill()
	fmt.Printf("control: host channel on the virtio console at %#x\n", base)
	return &channel{rx: rx, tx: tx}
}

func (c *channel) send(v any) {
	b, _ := json.Marshal(v)
	c.tx.Send(append(b, '\n'), func() { vm.Hypercall(abi.YIELD) })
}

type request struct {
	ID int    `json:"id"`
	Op string `json:"op"`
	// run: the VM, and the size of the ELF image that follows the line.
	Name  string `json:"name,omitempty"`
	Size  int    `json:"size,omitempty"`
	Mem   uint64 `json:"mem,omitempty"`
	CPUs  int    `json:"cpus,omitempty"`
	Arg   uint64 `json:"arg,omitempty"`
	image []byte
}

// maxImage bounds an upload: it is held in the control partition's heap.
const maxImage = 32 << 20

// requests returns the complete request lines received so far.
func (c *channel) requests() []request {
	c.pending = append(c.pending, c.rx.Receive()...)
	var out []request
	for {
		if u := c.upload; u != nil {
			n := copy(u.image[len(u.image):cap(u.image)], c.pending)
			u.image = u.image[:len(u.image)+n]
			c.pending = c.pending[n:]
			if len(u.image) < cap(u.image) {
				return out
			}
			out = append(out, *u)
			c.upload = nil
		}
		i := bytes.IndexByte(c.pending, '\n')
		if i < 0 {
			return out
		}
		line := c.pending[:i]
		c.pending = c.pending[i+1:]
		var r request
		if err := json.Unmarshal(line, &r); err != nil {
			c.send(map[string]any{"ok": false, "error": "not a JSON request: " + err.Error()})
			continue
		}
		if r.Op == "run" {
			if r.Size <= 0 || r.Size > maxImage {
				c.send(map[string]any{"id": r.ID, "ok": false, "error": fmt.Sprintf("image size %d: want 1 to %d bytes", r.Size, maxImage)})
				continue
			}
			r.image = make([]byte, 0, r.Size)
			c.upload = &r
			continue
		}
		out = append(out, r)
	}
}

// serve answers one request; it reports whether the host asked to shut
// down.
func serve(c *channel, r request, guests *[]*guest) bool {
	switch r.Op {
	case "run":
		s := hyp.GuestSpec{Name: r.Name, Arg: r.Arg, Mem: r.Mem, CPUs: r.CPUs}
		if s.Mem == 0 {
			s.Mem = hyp.DefaultGuestMem
		}
		if s.CPUs == 0 {
			s.CPUs = 1
		}
		if s.Name == "" || len(s.Name) > 16 || s.Mem%(2<<20) != 0 || s.CPUs > hyp.MaxVCPUs {
			c.send(map[string]any{"id": r.ID, "ok": false, "error": "bad name (1-16 bytes), memory (multiple of 2M) or vCPUs (1-16)"})
			return false
		}
		for _, g := range *guests {
			if g.spec.Name == s.Name && !g.done {
				c.send(map[string]any{"id": r.ID, "ok": false, "error": fmt.Sprintf("a VM named %q is running", s.Name)})
				return false
			}
		}
		g, err := start(s, r.image)
		if err != nil {
			c.send(map[string]any{"id": r.ID, "ok": false, "error": err.Error()})
			return false
		}
		*guests = append(*guests, g)
		c.send(map[string]any{"id": r.ID, "ok": true, "vm": g.handle})
	case "ping":
		c.send(map[string]any{"id": r.ID, "ok": true, "abi": fmt.Sprintf("%d.%d", abi.VersionMajor, abi.VersionMinor)})
	case "ps":
		var list []map[string]any
		for _, g := range *guests {
			state := "stopped"
			if !g.done {
				state = "running"
			}
			list = append(list, map[string]any{"name": g.spec.Name, "vm": g.handle, "state": state})
		}
		c.send(map[string]any{"id": r.ID, "ok": true, "vms": list})
	case "shutdown":
		c.send(map[string]any{"id": r.ID, "ok": true})
		return true
	default:
		c.send(map[string]any{"id": r.ID, "ok": false, "error": fmt.Sprintf("unknown op %q (known: ping, ps, run, shutdown)", r.Op)})
	}
	return false
}
