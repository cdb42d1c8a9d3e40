package hyp

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-hv/bulkhead/abi"
	"github.com/bulkhead-hv/bulkhead/cpu"
	"github.com/bulkhead-hv/bulkhead/vcpu"
)

// clock is the counter every fake CPU reads.
var clock atomic.Uint64

// smpCPU is one physical CPU of a fake SMP machine: each runs its own
// goroutine, as each core runs its own scheduler loop. Its guests are
// programs of exits; kicks and the EL2 timer are its interrupts.
type smpCPU struct {
	id       int
	all      []*smpCPU
	mu       sync.Mutex
	irqs     []uint32
	kick     chan struct{}
	el2Timer uint64
	lrs      [4]uint64
	program  func(c *vcpu.Context)
	runs     atomic.Int64 // guest entries
	kicks    atomic.Int64 // kicks received
}

const kickSGI = 8

func (s *smpCPU) SyncSys(c *vcpu.Context)                                    {}
func (s *smpCPU) Release(c *vcpu.Context)                                    {}
func (s *smpCPU) ReadLR(i int) uint64                                        { return s.lrs[i] }
func (s *smpCPU) WriteLR(i int, v uint64)                                    { s.lrs[i] = v }
func (s *smpCPU) WriteICHHCR(v uint64)                                       {}
func (s *smpCPU) EnterVCPU(ctl, cval, cntvoff, vmcr, ap0r, ap1r, hcr uint64) {}
func (s *smpCPU) LeaveVCPU() (ctl, cval, vmcr, ap0r, ap1r uint64)            { return }
func (s *smpCPU) LoadVTimer(ctl, cval, cntvoff uint64)                       {}
func (s *smpCPU) SaveVTimer() (uint64, uint64)                               { return 0, 0 }
func (s *smpCPU) MaskVTimer(bool)                                            {}
func (s *smpCPU) Counter() uint64                                            { return clock.Add(10) }
func (s *smpCPU) SetEL2Timer(cval uint64)                                    { s.el2Timer = cval }
func (s *smpCPU) EOI(intid uint32)                                           {}
func (s *smpCPU) PriorityDrop(intid uint32)                                  {}
func (s *smpCPU) interrupt(id uint32) {
	if id == kickSGI {
		s.kicks.Add(1)
	}
	s.mu.Lock()
	s.irqs = append(s.irqs, id)
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *smpCPU) Ack() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.irqs) == 0 {
		return 1023
	}
	id := s.irqs[0]
	s.irqs = s.irqs[1:]
	return id
}

func (s *smpCPU) WaitForInterrupt() {
	select {
	case <-s.kick:
	case <-time.After(time.Millisecond):
		s.interrupt(26) // the EL2 timer
	}
}

func (s *smpCPU) Resume(c *vcpu.Context) { s.Run(c) }

func (s *smpCPU) Run(c *vcpu.Context) {
	s.runs.Add(1)
	select {
	case <-s.kick: // an interrupt: the guest exits for it
		c.Exit = vcpu.Exit{Vector: vcpu.VectorIRQ64}
		return
	default:
	}
	s.program(c)
}

// Guests on four CPUs run in parallel: VMs with vCPUs on several CPUs
// send each other SGIs, yield and exit, while the control partition on
// CPU 0 creates, starts, waits for and destroys them, again and again.
// Under go test -race this checks the scheduler's locking.
func TestSMPStress(t *testing.T) {
	const ncpu, rounds, vms = 4, 25, 3
	r := newRig(t)
	cpus := make([]*smpCPU, ncpu)
	r.h.cfg.CPUs = ncpu
	r.h.cfg.PPIs.Kick = kickSGI
	r.h.cfg.Kick = func(id int) { cpus[id].interrupt(kickSGI) }
	r.h.pcpus = nil
	for i := 0; i < ncpu; i++ {
		r.h.pcpus = append(r.h.pcpus, &pcpu{id: i})
		cpus[i] = &smpCPU{id: i, all: cpus, kick: make(chan struct{}, 1)}
	}
	ctl, err := r.h.CreateControl("control")
	require.NoError(t, err)
	cv := r.h.AddVCPU(ctl, ramBase+hypPages*4096, 0)
	ctl.Echo = true
	require.NoError(t, r.h.StartDevices(ctl))

	// Guest vCPUs: 20 rounds of an SGI to both vCPUs and a YIELD, then
	// EXIT. Their state lives in the context registers, so any CPU can
	// play any of them.
	guest := func(c *vcpu.Context) {
		switch {
		case c.X[20] >= 40:
			c.X[0], c.X[1] = abi.EXIT, 0
			c.Exit = vcpu.Exit{Vector: vcpu.VectorSync64, ESR: cpu.EC_HVC64<<cpu.ESR_EC_SHIFT | cpu.ESR_IL}
		case c.X[20]%2 == 0:
			c.X[5] = 0b11 // ICC_SGI1R_EL1: SGI 0 to both vCPUs
			c.Exit = vcpu.Exit{Vector: vcpu.VectorSync64, ESR: cpu.EC_SYS64<<cpu.ESR_EC_SHIFT | cpu.ESR_IL |
				3<<20 | 6<<17 | 0<<14 | 12<<10 | 5<<5 | 11<<1}
		default:
			c.X[0] = abi.YIELD
			c.Exit = vcpu.Exit{Vector: vcpu.VectorSync64, ESR: cpu.EC_HVC64<<cpu.ESR_EC_SHIFT | cpu.ESR_IL}
		}
		c.X[20]++
	}
	// The control partition, a state machine on CPU 0: per round, create
	// vms VMs of 2 vCPUs on CPUs 1-3, start them, wait for each, destroy.
	var (
		round, step int
		moves       int
		handles     []uint64
		destroyed   int
		statuses    []uint64
	)
	control := func(c *vcpu.Context) {
		hv := func(fid uint32, args ...uint64) {
			c.X[0] = uint64(fid)
			for i := 1; i < 8; i++ {
				c.X[i] = 0
			}
			copy(c.X[1:], args)
			c.Exit = vcpu.Exit{Vector: vcpu.VectorSync64, ESR: cpu.EC_HVC64<<cpu.ESR_EC_SHIFT | cpu.ESR_IL}
		}
		if round == rounds {
			hv(abi.EXIT, 0)
			return
		}
		n := len(handles)
		switch step {
		case 0: // create
			hv(abi.VM_CREATE, uint64('g'+n))
			step = 1
		case 1:
			if !assert.Equal(t, uint64(abi.SUCCESS), c.X[0], "create") {
				hv(abi.EXIT, 1) // not FailNow: this is CPU 0's goroutine
				return
			}
			handles = append(handles, c.X[1])
			pa := uint64(ramBase + 0x20_0000 + uint64(n)*0x20_0000)
			hv(abi.VM_DONATE, c.X[1], pa, guestIPA, 1<<20, 7)
			step = 2
		case 2:
			if !assert.Equal(t, uint64(abi.SUCCESS), c.X[0], "donate") {
				hv(abi.EXIT, 1) // not FailNow: this is CPU 0's goroutine
				return
			}
			h := handles[n-1]
			hv(abi.VCPU_CREATE, h, guestIPA, 0, 0, uint64(2+(n%3))) // CPU 1-3
			step = 3
		case 3:
			if !assert.Equal(t, uint64(abi.SUCCESS), c.X[0], "vCPU 0") {
				hv(abi.EXIT, 1) // not FailNow: this is CPU 0's goroutine
				return
			}
			hv(abi.VCPU_CREATE, handles[n-1], guestIPA, 0, 0, uint64(2+((n+1)%3)))
			step = 4
		case 4:
			if !assert.Equal(t, uint64(abi.SUCCESS), c.X[0], "vCPU 1") {
				hv(abi.EXIT, 1) // not FailNow: this is CPU 0's goroutine
				return
			}
			hv(abi.VM_START, handles[n-1])
			step = 5
		case 5:
			if !assert.Equal(t, uint64(abi.SUCCESS), c.X[0], "start") {
				hv(abi.EXIT, 1) // not FailNow: this is CPU 0's goroutine
				return
			}
			if len(handles) < vms {
				step = 0
				hv(abi.YIELD)
				return
			}
			step = 6
			hv(abi.YIELD)
		case 6: // poll each VM until stopped, moving one of its vCPUs each time, then destroy it
			moves++
			hv(abi.VCPU_MOVE, handles[destroyed], uint64(moves%2), uint64(1+moves%3))
			step = 9
		case 9:
			if !assert.Equal(t, uint64(abi.SUCCESS), c.X[0], "move") {
				hv(abi.EXIT, 1) // not FailNow: this is CPU 0's goroutine
				return
			}
			hv(abi.VM_STATUS, handles[destroyed])
			step = 7
		case 7:
			if c.X[1] != abi.StateStopped {
				step = 6
				hv(abi.YIELD)
				return
			}
			statuses = append(statuses, c.X[2])
			hv(abi.VM_DESTROY, handles[destroyed])
			step = 8
		case 8:
			if c.X[0] == abi.Word(abi.BUSY) {
				hv(abi.VM_DESTROY, handles[destroyed]) // still leaving a CPU
				return
			}
			if !assert.Equal(t, uint64(abi.SUCCESS), c.X[0], "destroy") {
				hv(abi.EXIT, 1) // not FailNow: this is CPU 0's goroutine
				return
			}
			destroyed++
			if destroyed == vms {
				handles, destroyed, round = nil, 0, round+1
				step = 0
			} else {
				step = 6
			}
			hv(abi.YIELD)
		}
	}
	cpus[0].program = func(c *vcpu.Context) {
		if c == &cv.Ctx {
			control(c)
			return
		}
		guest(c)
	}
	for i := 1; i < ncpu; i++ {
		cpus[i].program = guest
	}
	var wg sync.WaitGroup
	for i := 0; i < ncpu; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r.h.Run(i, cpus[i])
		}(i)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the CPUs did not finish")
	}
	assert.Equal(t, rounds*vms, len(statuses), "every VM ran to its exit")
	assert.Equal(t, r.boot, r.h.Ledger.Count(), "ledger back at its boot figures")
	require.NoError(t, r.h.Ledger.Check())
	for _, s := range statuses {
		assert.Zero(t, s)
	}
	// The vCPU of each VM that exited entered its guest 41 times, all on
	// CPUs 1-3; each of them ran guests and was kicked (SGIs from the
	// other CPU, starts, stops).
	var runs int64
	for i := 1; i < ncpu; i++ {
		runs += cpus[i].runs.Load()
		assert.NotZero(t, cpus[i].runs.Load(), "CPU %d ran guests", i)
		assert.NotZero(t, cpus[i].kicks.Load(), "CPU %d was kicked", i)
	}
	assert.GreaterOrEqual(t, runs, int64(rounds*vms*41))
	// Every poll asked to move a vCPU, running or not. Each moves on its
	// old CPU, which alone can release its registers: at its exit, or at
	// that CPU's next turn, so a later poll may overtake a move, and a VM
	// may stop first. Every CPU the guests ran on moved some away.
	for i := 1; i < ncpu; i++ {
		assert.Contains(t, r.out.String(), fmt.Sprintf("moved from physical CPU %d to", i))
	}
	t.Logf("%d moves for %d polls", strings.Count(r.out.String(), "moved from physical CPU"), moves)
}
