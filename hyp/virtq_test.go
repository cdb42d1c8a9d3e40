package hyp

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-hv/bulkhead/abi"
	"github.com/bulkhead-hv/bulkhead/vcpu"
	"github.com/bulkhead-hv/bulkhead/virtio/mmioreg"
)

// The control partition reaches a guest's virtqueue only through
// VM_VIRTQ_*: the chain the guest posted, within its bounds, until it is
// pushed back. Everything else is refused and changes nothing in the
// guest's memory. A notification does not hold the guest up.
func TestMediatedVirtqueue(t *testing.T) {
	r := newRig(t)
	gpa := uint64(ramBase + 0x20_0000) // the guest's RAM, at guestIPA
	cv, vm, gv := r.controlAndGuest(t, "disk", gpa)
	h := uint64(vm.ID)
	buf := uint64(ramBase + 0x80_0000) // the control partition's page
	const dev = 0x0a00_0000
	require.NoError(t, r.h.ForwardMMIO(vm, dev, 0x1000, true))

	// The guest's driver has set up queue 0 of 8 (registers observed as
	// its writes reach the hypervisor) and posted a virtio-blk read:
	// header (16 bytes, readable), data (4096) and status (1), writable.
	const desc, avail, used = guestIPA + 0x1000, guestIPA + 0x2000, guestIPA + 0x3000
	const hdr, data, status = guestIPA + 0x4000, guestIPA + 0x5000, guestIPA + 0x7000
	tr := vm.transport(dev)
	for _, w := range [][2]uint64{{mmioreg.QueueSel, 0}, {mmioreg.QueueNum, 8},
		{mmioreg.QueueDescLow, desc}, {mmioreg.QueueDriverLow, avail}, {mmioreg.QueueDeviceLow, used},
		{mmioreg.QueueReady, 1}} {
		tr.Observe(w[0], uint32(w[1]))
	}
	at := func(ipa uint64) uint64 { return gpa + ipa - guestIPA }
	putDesc := func(i int, addr uint64, n uint32, flags, next uint16) {
		var e [16]byte
		binary.LittleEndian.PutUint64(e[:], addr)
		binary.LittleEndian.PutUint32(e[8:], n)
		binary.LittleEndian.PutUint16(e[12:], flags)
		binary.LittleEndian.PutUint16(e[14:], next)
		r.phys.Write(at(desc)+16*uint64(i), e[:])
	}
	putDesc(3, hdr, 16, 1, 5)
	putDesc(5, data, 4096, 3, 1)
	putDesc(1, status, 1, 2, 0)
	r.phys.Write(at(avail), []byte{0, 0, 1, 0, 3, 0}) // idx 1, ring[0] = 3
	header := []byte("read sector 1234")
	r.phys.Write(at(hdr), header)
	before := make([]byte, 0x8000)
	r.phys.Read(gpa, before)

	read := func(pa uint64, n int) []byte {
		b := make([]byte, n)
		r.phys.Read(pa, b)
		return b
	}
	done := false
	var guestSteps []func(*vcpu.Context)
	guestSteps = append(guestSteps,
		access(dev+mmioreg.QueueNotify, true, 4, 31, false, false), // str wzr, [QueueNotify]
		check(func(c *vcpu.Context) {
			assert.False(t, done, "the notification completed before the control partition ran")
			hvc(abi.YIELD)(c)
		}))
	for i := 0; i < 40; i++ {
		guestSteps = append(guestSteps, check(func(c *vcpu.Context) {
			if done {
				hvc(abi.EXIT, 0)(c)
				return
			}
			hvc(abi.YIELD)(c)
		}))
	}
	s := &script{t: t, steps: map[*vcpu.Context][]func(*vcpu.Context){&gv.Ctx: guestSteps}}
	words := func() []uint64 {
		b := read(buf, abi.MMIOWords*8)
		w := make([]uint64, abi.MMIOWords)
		for i := range w {
			w[i] = binary.LittleEndian.Uint64(b[8*i:])
		}
		return w
	}
	s.steps[&cv.Ctx] = []func(*vcpu.Context){
		hvc(abi.VM_MMIO_MAP, h, dev+0x1000, 0x1000, 2),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.INVALID_PARAMETER, "unknown flags")
			hvc(abi.YIELD)(c)
		}),
		hvc(abi.VM_MMIO_NEXT, buf, 4096),
		check(func(c *vcpu.Context) {
			require.Equal(t, uint64(1), c.X[1], "the notification waits")
			assert.Equal(t, []uint64{h, abi.MMIONoVCPU, dev + mmioreg.QueueNotify, 4, abi.MMIONotify, 0}, words())
			hvc(abi.VM_MMIO_NEXT, buf, 4096)(c)
		}),
		check(func(c *vcpu.Context) {
			assert.Equal(t, uint64(0), c.X[1], "handed out once")
			hvc(abi.VM_VIRTQ_POP, h, dev, 0)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.SUCCESS, "pop")
			assert.Equal(t, []uint64{1, 3, 16<<32 | 4097}, c.X[1:4])
			hvc(abi.VM_VIRTQ_READ, h, dev, 0, 3, 0, buf, 16)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.SUCCESS, "read the header")
			assert.Equal(t, header, read(buf, 16))
			hvc(abi.VM_VIRTQ_READ, h, dev, 0, 3, 1, buf, 16)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.DENIED, "past the readable bytes")
			hvc(abi.VM_VIRTQ_READ, h, dev, 0, 5, 0, buf, 1)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.DENIED, "a descriptor that is not a posted head")
			hvc(abi.VM_VIRTQ_WRITE, h, dev, 0, 3, 4097, buf, 1)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.DENIED, "past the writable bytes")
			hvc(abi.VM_VIRTQ_WRITE, h, dev, 0, 3, 0, gpa, 16)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.INVALID_PARAMETER, "a buffer that is not the caller's")
			hvc(abi.VM_VIRTQ_READ, h, dev, 0, 3, 0, buf+4090, abi.VirtqMaxCopy+1)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.INVALID_PARAMETER, "longer than one copy")
			assert.Equal(t, before, read(gpa, len(before)), "no refused call touched the guest")
			r.phys.Write(buf, []byte("0123456"))
			hvc(abi.VM_VIRTQ_WRITE, h, dev, 0, 3, 4090, buf, 7)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.SUCCESS, "write across the data and the status")
			assert.Equal(t, []byte("012345"), read(at(data)+4090, 6))
			assert.Equal(t, []byte("6"), read(at(status), 1))
			hvc(abi.VM_VIRTQ_PUSH, h, dev, 0, 3, 4097)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.SUCCESS, "push")
			assert.Equal(t, []byte{0, 0, 1, 0, 3, 0, 0, 0, 0x01, 0x10, 0, 0}, read(at(used), 12), "used ring: idx 1, (3, 4097)")
			hvc(abi.VM_VIRTQ_READ, h, dev, 0, 3, 0, buf, 1)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.DENIED, "a chain already returned")
			hvc(abi.VM_VIRTQ_PUSH, h, dev, 0, 3, 0)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.DENIED, "pushed twice")
			hvc(abi.VM_VIRTQ_POP, h, dev, 0)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.SUCCESS, "pop of an empty ring")
			assert.Equal(t, uint64(0), c.X[1])
			hvc(abi.VM_VIRTQ_POP, h, dev, 1)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.BUSY, "a queue the guest has not enabled")
			hvc(abi.VM_VIRTQ_POP, h, dev, 2)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.INVALID_PARAMETER, "no such queue")
			hvc(abi.VM_VIRTQ_POP, h, dev+0x1000, 0)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.INVALID_PARAMETER, "no such device")
			// The guest breaks its ring: the head is past the queue.
			r.phys.Write(at(avail), []byte{0, 0, 2, 0, 3, 0, 9, 0})
			hvc(abi.VM_VIRTQ_POP, h, dev, 0)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.NEEDS_RESET, "a broken ring")
			done = true
			hvc(abi.YIELD)(c)
		}),
		hvc(abi.YIELD), hvc(abi.YIELD), hvc(abi.YIELD),
		hvc(abi.EXIT, 0),
	}
	r.h.RunAll(s)
	assert.True(t, done)
	assert.Equal(t, Stopped, vm.State)
	after := read(gpa, len(before))
	changed := 0
	for i := range after {
		if after[i] != before[i] {
			changed++
		}
	}
	// The 7 bytes written, 4 non-zero bytes of the used ring (index, id,
	// length) and the 2 the test's guest changed in its available ring.
	assert.Equal(t, 7+4+2, changed, "the guest's memory changed only where written and in the used ring")
	assert.True(t, bytes.Equal(after[0x5000:0x5000+4090], before[0x5000:0x5000+4090]))
}
