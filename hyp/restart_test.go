package hyp

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-hv/bulkhead/abi"
	"github.com/bulkhead-hv/bulkhead/vcpu"
)

// controlBase is the control partition's first page in the rig, its boot
// information page; its image is linked one page above.
const controlBase = ramBase + hypPages*4096

// restartableControl gives the rig's control partition an image to be
// restarted from, and returns that image's text.
func restartableControl(r *rig, resets *int) []byte {
	text := []byte("CONTROL-TEXT")
	img := makeELF(elf.EM_AARCH64, elf.ET_EXEC, controlBase+0x1000, seg{paddr: controlBase + 0x1000, data: text, memsz: 0x2000})
	r.h.SetControlImage(ControlImage{ELF: img, Info: controlBase, ResetDevices: func() { *resets++ }})
	return text
}

// A control partition that crashes (here, a Go panic's EXIT(2)) while it
// has a guest's forwarded access in hand is started again from its image:
// the image overwritten in its memory is whole again, its vCPU starts at
// the entry with x0 = the boot information page, which says it is a
// restart; its devices were reset; the guest never stopped, its access is
// handed out again, and VM_LIST tells the new partition what runs.
func TestControlRestart(t *testing.T) {
	r := newRig(t)
	gpa := uint64(ramBase + 0x20_0000)
	cv, vm, gv := r.controlAndGuest(t, "survivor", gpa)
	resets := 0
	text := restartableControl(r, &resets)
	h := uint64(vm.ID)
	buf := uint64(ramBase + 0x80_0000)
	const dev = 0x0901_0000
	words := func(n int) []uint64 {
		b := make([]byte, 8*n)
		r.phys.Read(buf, b)
		w := make([]uint64, n)
		for i := range w {
			w[i] = binary.LittleEndian.Uint64(b[8*i:])
		}
		return w
	}
	answered := false
	s := &script{t: t, steps: map[*vcpu.Context][]func(*vcpu.Context){}}
	s.steps[&gv.Ctx] = []func(*vcpu.Context){
		access(dev, false, 4, 5, false, false),
		check(func(c *vcpu.Context) {
			answered = true
			assert.Equal(t, uint64(0x1234), c.X[5], "the new partition's answer")
			hvc(abi.EXIT, 7)(c)
		}),
	}
	s.steps[&cv.Ctx] = []func(*vcpu.Context){
		hvc(abi.VM_MMIO_MAP, h, dev, 0x1000),
		hvc(abi.YIELD),
		hvc(abi.VM_MMIO_NEXT, buf, 4096),
		check(func(c *vcpu.Context) {
			require.Equal(t, uint64(1), c.X[1], "the access is taken")
			// The partition scribbles over its own image, then panics.
			r.phys.Write(controlBase+0x1000, []byte("garbage-----"))
			hvc(abi.EXIT, 2)(c)
		}),
		// The new partition.
		check(func(c *vcpu.Context) {
			assert.Equal(t, uint64(controlBase+0x1000), c.PC, "at the image's entry")
			assert.Equal(t, uint64(controlBase), c.X[0], "x0: the boot information page")
			info := make([]byte, 16)
			r.phys.Read(controlBase, info)
			assert.Equal(t, "restart=1", string(bytes.TrimRight(info, "\x00")))
			got := make([]byte, len(text))
			r.phys.Read(controlBase+0x1000, got)
			assert.Equal(t, text, got, "the image is reloaded from the hypervisor's copy")
			assert.Equal(t, 1, resets, "its devices were reset")
			assert.Equal(t, Running, vm.State, "the guest never stopped")
			assert.False(t, answered)
			hvc(abi.VM_LIST, 0, buf, 8)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.INVALID_PARAMETER, "a buffer shorter than one entry")
			hvc(abi.VM_LIST, 0, gpa, 4096)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.INVALID_PARAMETER, "a guest's page is no buffer of the caller's")
			hvc(abi.VM_LIST, 0, buf, 4096)(c)
		}),
		check(func(c *vcpu.Context) {
			wantRet(t, c, abi.SUCCESS, "list")
			assert.Equal(t, []uint64{1, 1}, c.X[1:3], "one entry written, one in all")
			w := words(abi.ListWords)
			var name [16]byte
			binary.LittleEndian.PutUint64(name[:], w[abi.ListName])
			binary.LittleEndian.PutUint64(name[8:], w[abi.ListName+1])
			assert.Equal(t, "survivor", string(bytes.TrimRight(name[:], "\x00")))
			assert.Equal(t, []uint64{h, abi.StateRunning, 0, 0, 1}, w[:abi.ListName])
			assert.Equal(t, []uint64{gpa, guestIPA, 1 << 20}, w[abi.ListPA:])
			hvc(abi.VM_LIST, 1, buf, 4096)(c)
		}),
		check(func(c *vcpu.Context) {
			assert.Equal(t, []uint64{0, 1}, c.X[1:3], "nothing from entry 1 on")
			hvc(abi.VM_MMIO_NEXT, buf, 4096)(c)
		}),
		check(func(c *vcpu.Context) {
			require.Equal(t, uint64(1), c.X[1], "the access the crashed partition took is handed out again")
			assert.Equal(t, []uint64{h, 0, dev, 4, 0, 0}, words(abi.MMIOWords))
			hvc(abi.VM_MMIO_REPLY, h, 0, 0x1234)(c)
		}),
		hvc(abi.YIELD), hvc(abi.YIELD),
		// Its main's own verdict on a run with trouble: its end, not a crash.
		hvc(abi.EXIT, 1),
	}
	r.h.RunAll(s)
	assert.True(t, answered)
	assert.Equal(t, int64(7), vm.Status)
	assert.Equal(t, uint64(1), r.h.restarts)
	assert.Equal(t, "exited with status 1", r.h.Control().Reason, "EXIT(1) is not restarted")
	assert.Contains(t, r.out.String(), "the control partition crashed (exited with status 2): restarting it")
	assert.Contains(t, r.out.String(), "control partition restarted from its image (restart 1); 1 guest(s) kept running")
	_, _, mapped := r.h.Control().Translate(gpa)
	assert.False(t, mapped, "the guest's pages are not in the new partition's map")
	assert.Zero(t, r.h.violations)
	assert.NotZero(t, r.h.checks, "the invariants are checked after the restart")
}

// A control partition that crashes again and again right after starting
// is given up on: the guests stop, with the reason, and the machine ends
// rather than loop.
func TestControlCrashLoop(t *testing.T) {
	r := newRig(t)
	cv, vm, gv := r.controlAndGuest(t, "bystander", ramBase+0x20_0000)
	resets := 0
	restartableControl(r, &resets)
	s := &script{t: t, steps: map[*vcpu.Context][]func(*vcpu.Context){}}
	var spin []func(*vcpu.Context)
	for i := 0; i < 100; i++ {
		spin = append(spin, hvc(abi.YIELD))
	}
	s.steps[&gv.Ctx] = spin
	s.steps[&cv.Ctx] = []func(*vcpu.Context){
		hvc(abi.EXIT, 2),
		hvc(abi.EXIT, 2),
		func(c *vcpu.Context) { // a fault it has no handler for: a stage 2 fault loop is one too
			c.Exit = vcpu.Exit{Vector: vcpu.VectorSError64}
		},
		hvc(abi.EXIT, 2),
	}
	r.h.RunAll(s)
	assert.Equal(t, uint64(maxQuickCrashes), r.h.restarts)
	assert.Equal(t, maxQuickCrashes, resets)
	assert.Equal(t, Stopped, vm.State)
	assert.Equal(t, "the control partition kept crashing", vm.Reason)
	assert.Contains(t, r.out.String(), "crashed 4 times in a row within 10 s of its start: not restarting it")
}
