// Package vqtest plays the hypervisor's side of a mediated virtqueue for
// the device models' host tests: a guest's posted chains in memory, with
// the refusals of the real mediation (bytes outside a chain, a chain the
// device does not hold).
package vqtest

import (
	"errors"

	"github.com/bulkhead-hv/bulkhead/vdev/virtiommio"
)

// Chain is a chain as the guest posted it: the bytes the device may read
// and those it may write. Pushed is the bytes the device said it wrote,
// -1 until it gives the chain back.
type Chain struct {
	R, W   []byte
	Pushed int
}

// ErrDenied is what the mediation answers for anything not posted.
var ErrDenied = errors.New("DENIED")

// Queue is a virtiommio.Queue over chains in memory.
type Queue struct {
	posted []*Chain
	held   map[uint16]*Chain
	next   uint16
	// Broken makes Pop report a queue the guest broke.
	Broken bool
}

// Post makes c available to the device.
func (q *Queue) Post(c *Chain) { c.Pushed = -1; q.posted = append(q.posted, c) }

func (q *Queue) Pop() (uint16, uint32, uint32, bool, error) {
	if q.Broken {
		return 0, 0, 0, false, virtiommio.ErrNeedsReset
	}
	if len(q.posted) == 0 {
		return 0, 0, 0, false, nil
	}
	c := q.posted[0]
	q.posted = q.posted[1:]
	if q.held == nil {
		q.held = map[uint16]*Chain{}
	}
	q.next++
	q.held[q.next] = c
	return q.next, uint32(len(c.R)), uint32(len(c.W)), true, nil
}

func (q *Queue) Read(head uint16, off uint32, b []byte) error {
	c := q.held[head]
	if c == nil || int(off)+len(b) > len(c.R) {
		return ErrDenied
	}
	copy(b, c.R[off:])
	return nil
}

func (q *Queue) Write(head uint16, off uint32, b []byte) error {
	c := q.held[head]
	if c == nil || int(off)+len(b) > len(c.W) {
		return ErrDenied
	}
	copy(c.W[off:], b)
	return nil
}

func (q *Queue) Push(head uint16, n uint32) error {
	c := q.held[head]
	if c == nil {
		return ErrDenied
	}
	delete(q.held, head)
	c.Pushed = int(n)
	return nil
}
