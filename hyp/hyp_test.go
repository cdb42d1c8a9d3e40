package hyp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-hv/bulkhead/abi"
	"github.com/bulkhead-hv/bulkhead/cpu"
	"github.com/bulkhead-hv/bulkhead/hyp/ledger"
	"github.com/bulkhead-hv/bulkhead/mmu"
	"github.com/bulkhead-hv/bulkhead/vcpu"
)

const (
	ramBase  = 0x4000_0000
	ramPages = 4096 // 16 MiB
	hypPages = 256  // the first 1 MiB is the hypervisor's
	poolBase = ramBase
	guestIPA = 0x4000_0000
)

// fakePhys is physical memory as a map of pages.
type fakePhys struct {
	pages  map[uint64]*[mmu.PageSize]byte
	tables map[uint64]*[mmu.Entries]uint64
	fail   map[uint64]bool // pages whose zeroing fails
}

func newPhys() *fakePhys {
	return &fakePhys{pages: map[uint64]*[mmu.PageSize]byte{}, tables: map[uint64]*[mmu.Entries]uint64{},
		fail: map[uint64]bool{}}
}

func (p *fakePhys) Table(pa uint64) *[mmu.Entries]uint64 {
	if p.tables[pa] == nil {
		p.tables[pa] = new([mmu.Entries]uint64)
	}
	return p.tables[pa]
}

func (p *fakePhys) page(pa uint64) *[mmu.PageSize]byte {
	pg := pa &^ (mmu.PageSize - 1)
	if p.pages[pg] == nil {
		p.pages[pg] = new([mmu.PageSize]byte)
	}
	return p.pages[pg]
}

func (p *fakePhys) Zero(pa uint64) error {
	if p.fail[pa&^(mmu.PageSize-1)] {
		return errors.New("fake: zeroing failed")
	}
	*p.page(pa) = [mmu.PageSize]byte{}
	return nil
}

func (p *fakePhys) Write(pa uint64, b []byte) {
	for i, c := range b {
		p.page(pa + uint64(i))[(pa+uint64(i))%mmu.PageSize] = c
	}
}

func (p *fakePhys) Read(pa uint64, b []byte) {
	for i := range b {
		b[i] = p.read(pa + uint64(i))
	}
}

func (p *fakePhys) read(pa uint64) byte { return p.page(pa)[pa%mmu.PageSize] }

type fakeTLB struct{ ipas, all int }

func (t *fakeTLB) InvalidateIPA(vmid uint16, ipa uint64, level int) { t.ipas++ }
func (t *fakeTLB) InvalidateAll()                                   { t.all++ }

type rig struct {
	h    *Hyp
	phys *fakePhys
	tlb  *fakeTLB
	out  *bytes.Buffer
	boot ledger.Counts
}

func newRig(t *testing.T) *rig {
	phys := newPhys()
	l := ledger.New(ramBase, ramPages, phys)
	require.NoError(t, l.Assign(ramBase, hypPages*mmu.PageSize, ledger.Hypervisor))
	require.NoError(t, l.Assign(ramBase+hypPages*mmu.PageSize, (ramPages-hypPages)*mmu.PageSize, ledger.Control))
	pool := NewTablePool(phys, poolBase, 64)
	tlb := &fakeTLB{}
	out := &bytes.Buffer{}
	h := New(l, pool, phys, tlb, Config{IPABits: 40, VMID16: true, MIDR: 0x410fd0c1,
		NumLRs: 4, Slice: 10000, PPIs: PPIs{Maintenance: 25, HypTimer: 26, VTimer: 27}}, out)
	return &rig{h: h, phys: phys, tlb: tlb, out: out, boot: l.Count()}
}

// guest makes a VM with 1 MiB of RAM at guestIPA, from the control
// partition's pages at pa.
func (r *rig) guest(t *testing.T, name string, pa uint64) (*VM, *VCPU) {
	vm, err := r.h.CreateVM(name)
	require.NoError(t, err)
	vm.Echo = true
	require.NoError(t, r.h.Donate(vm, pa, guestIPA, 1<<20, mmu.Read|mmu.Write|mmu.Exec))
	v := r.h.AddVCPU(vm, guestIPA, 0)
	require.NoError(t, r.h.StartDevices(vm))
	return vm, v
}

// script plays a guest: each Run applies the next step, which sets the
// registers and the exit the guest would produce. It also stands for the
// CPU's GIC and timers: the test reads and drives them through its fields.
type script struct {
	t     *testing.T
	steps map[*vcpu.Context][]func(c *vcpu.Context)

	now      uint64 // CNTPCT, advanced 100 ticks per Run
	lrs      [4]uint64
	hcr      uint64
	vctl     uint64
	vcval    uint64
	vmasked  bool // MaskVTimer
	cntvoff  uint64
	el2Timer uint64
	irqs     []uint32 // pending physical interrupts, in Ack order
	eois     []uint32
	drops    []uint32
	idles    int
	last     *vcpu.Context // the context the last Run or Resume entered
	synced   bool          // SyncSys since then
}

func (s *script) SyncSys(c *vcpu.Context) { s.synced = true }
func (s *script) Release(c *vcpu.Context) {}
func (s *script) ReadLR(i int) uint64     { return s.lrs[i] }
func (s *script) WriteLR(i int, v uint64) { s.lrs[i] = v }
func (s *script) WriteICHHCR(v uint64)    { s.hcr = v }
func (s *script) EnterVCPU(ctl, cval, cntvoff, vmcr, ap0r, ap1r, hcr uint64) {
	s.vctl, s.vcval, s.cntvoff, s.hcr = ctl, cval, cntvoff, hcr
}
func (s *script) LeaveVCPU() (ctl, cval, vmcr, ap0r, ap1r uint64) {
	ctl, cval = s.vctl, s.vcval
	s.vctl, s.hcr = 0, 0
	return ctl, cval, 0, 0, 0
}
func (s *script) LoadVTimer(ctl, cval, cntvoff uint64) {
	s.vctl, s.vcval, s.cntvoff = ctl, cval, cntvoff
}
func (s *script) SaveVTimer() (uint64, uint64) { return s.vctl, s.vcval }
func (s *script) Counter() uint64              { return s.now }
func (s *script) SetEL2Timer(cval uint64)      { s.el2Timer = cval }
func (s *script) MaskVTimer(masked bool)       { s.vmasked = masked }
func (s *script) EOI(intid uint32)             { s.eois = append(s.eois, intid) }
func (s *script) PriorityDrop(intid uint32)    { s.drops = append(s.drops, intid) }

func (s *script) Ack() uint32 {
	if len(s.irqs) == 0 {
		return 1023
	}
	id := s.irqs[0]
	s.irqs = s.irqs[1:]
	return id
}

// WaitForInterrupt jumps the clock to the EL2 timer and raises it.
func (s *script) WaitForInterrupt() {
	s.idles++
	if s.el2Timer > s.now {
		s.now = s.el2Timer
	}
	s.irqs = append(s.irqs, 26)
}

// Resume may only enter again the context that has just exited, with its
// registers untouched since.
func (s *script) Resume(c *vcpu.Context) {
	if c != s.last || s.synced {
		s.t.Fatalf("Resume of a context that did not just exit untouched")
	}
	s.Run(c)
}

func (s *script) Run(c *vcpu.Context) {
	s.last, s.synced = c, false
	s.now += 100
	if s.el2Timer != 0 && s.now >= s.el2Timer {
		// The EL2 timer fires while the guest runs: an IRQ exit.
		s.irqs = append(s.irqs, 26)
		c.Exit = vcpu.Exit{Vector: vcpu.VectorIRQ64}
		return
	}
	steps := s.steps[c]
	if len(steps) == 0 {
		s.t.Fatalf("guest ran past the end of its script")
	}
	s.steps[c] = steps[1:]
	steps[0](c)
}

func hvc(fid uint32, args ...uint64) func(c *vcpu.Context) {
	return func(c *vcpu.Context) {
		c.X[0] = uint64(fid)
		copy(c.X[1:], args)
		c.Exit = vcpu.Exit{Vector: vcpu.VectorSync64, ESR: cpu.EC_HVC64<<cpu.ESR_EC_SHIFT | cpu.ESR_IL}
		c.PC += 4
	}
}

func smc(fid uint32, args ...uint64) func(c *vcpu.Context) {
	return func(c *vcpu.Context) {
		c.X[0] = uint64(fid)
		copy(c.X[1:], args)
		c.Exit = vcpu.Exit{Vector: vcpu.VectorSync64, ESR: cpu.EC_SMC64<<cpu.ESR_EC_SHIFT | cpu.ESR_IL}
	}
}

func check(fn func(c *vcpu.Context)) func(c *vcpu.Context) { return fn }

func consoleArgs(s string) []uint64 {
	var buf [abi.ConsoleChunk]byte
	copy(buf[:], s)
	args := []uint64{uint64(len(s))}
	for i := 0; i < 6; i++ {
		args = append(args, binary.LittleEndian.Uint64(buf[8*i:]))
	}
	return args
}

func TestDonateDerivesStage2FromLedger(t *testing.T) {
	r := newRig(t)
	pa := uint64(ramBase + 0x20_0000)
	vm, _ := r.guest(t, "a", pa)
	got, perm, ok := vm.Translate(guestIPA + 0x1234)
	require.True(t, ok)
	assert.Equal(t, pa+0x1234, got)
	assert.Equal(t, mmu.Read|mmu.Write|mmu.Exec, perm)
	o, _, _ := r.h.Ledger.Owner(pa)
	assert.Equal(t, vm.ID, o)

	// Refused donations change neither the ledger nor the tables.
	before := r.h.Ledger.Count()
	for _, tc := range []struct {
		pa, ipa, size uint64
	}{
		{ramBase, guestIPA + 1<<20, mmu.PageSize},                    // hypervisor page
		{pa, guestIPA + 1<<20, mmu.PageSize},                         // already the VM's
		{pa + 2<<20, guestIPA, mmu.PageSize},                         // IPA already used
		{pa + 2<<20, guestIPA + 1<<20 + 1, mmu.PageSize},             // unaligned IPA
		{pa + 2<<20, 1 << 40, mmu.PageSize},                          // beyond the IPA space
		{ramBase + ramPages*mmu.PageSize, 0x8000_0000, mmu.PageSize}, // not RAM
	} {
		assert.Error(t, r.h.Donate(vm, tc.pa, tc.ipa, tc.size, mmu.Read))
		assert.Equal(t, before, r.h.Ledger.Count())
		if tc.ipa != guestIPA {
			_, _, ok := vm.Translate(tc.ipa &^ (mmu.PageSize - 1))
			assert.False(t, ok, "IPA %#x mapped by a refused donation", tc.ipa)
		}
	}
}

func TestHypercallsAndExit(t *testing.T) {
	r := newRig(t)
	vm, v := r.guest(t, "hello", ramBase+0x20_0000)
	s := &script{t: t, steps: map[*vcpu.Context][]func(*vcpu.Context){}}
	s.steps[&v.Ctx] = []func(*vcpu.Context){
		hvc(abi.SMCCC_VERSION),
		check(func(c *vcpu.Context) {
			assert.Equal(t, uint64(abi.SMCCCVersion1_1), c.X[0])
			hvc(abi.VENDOR_HYP_REVISION)(c)
		}),
		check(func(c *vcpu.Context) {
			assert.Equal(t, uint64(abi.VersionMajor), c.X[0])
			assert.Equal(t, uint64(abi.VersionMinor), c.X[1])
			hvc(abi.CONSOLE_WRITE, consoleArgs("hello, ")...)(c)
		}),
		check(func(c *vcpu.Context) {
			assert.Equal(t, uint64(7), c.X[0])
			hvc(abi.CONSOLE_WRITE, consoleArgs("world\n")...)(c)
		}),
		hvc(abi.CONSOLE_WRITE, 49),
		check(func(c *vcpu.Context) {
			assert.Equal(t, abi.Word(abi.INVALID_PARAMETER), c.X[0], "more than 48 bytes")
			hvc(0xc6001234)(c)
		}),
		check(func(c *vcpu.Context) {
			assert.Equal(t, abi.Word(abi.NOT_SUPPORTED), c.X[0])
			hvc(abi.EXIT, 42)(c)
		}),
	}
	r.h.RunAll(s)
	assert.Equal(t, Stopped, vm.State)
	assert.Equal(t, int64(42), vm.Status)
	assert.Equal(t, "hello, world\n", vm.Console())
	assert.Contains(t, r.out.String(), "hello| hello, world\n")
	assert.Contains(t, r.out.String(), "bulkhead: vm hello stopped: exited with status 42")
	assert.Equal(t, 7, vm.exits()[ExitHVC])
	assert.Equal(t, map[string]int{"hvc": 7}, vm.ExitCounts())
}

func TestStage2FaultIsContained(t *testing.T) {
	r := newRig(t)
	vm, v := r.guest(t, "adversary", ramBase+0x20_0000)
	v.Ctx.Sys.VBAR_EL1 = guestIPA + 0x800
	fault := func(ipa uint64, write bool) func(c *vcpu.Context) {
		return func(c *vcpu.Context) {
			iss := uint32(0b000111) // translation fault, level 3
			if write {
				iss |= cpu.ISS_DA_WnR
			}
			c.Exit = vcpu.Exit{Vector: vcpu.VectorSync64, ESR: cpu.EC_DABT_LOW<<cpu.ESR_EC_SHIFT | cpu.ESR_IL | uint64(iss),
				FAR: ipa, HPFAR: (ipa >> 12) << 4}
		}
	}
	s := &script{t: t, steps: map[*vcpu.Context][]func(*vcpu.Context){}}
	s.steps[&v.Ctx] = []func(*vcpu.Context){
		fault(0x0900_0000, true),
		check(func(c *vcpu.Context) {
			esr := cpu.ESR(c.Sys.ESR_EL1)
			assert.Equal(t, uint8(cpu.EC_DABT_CUR), esr.EC())
			name, _ := esr.FaultStatus()
			assert.Equal(t, "Synchronous External abort", name)
			assert.True(t, esr.Write())
			assert.Equal(t, uint64(0x0900_0000), c.Sys.FAR_EL1)
			assert.Equal(t, uint64(guestIPA+0x800+0x200), c.PC)
			hvc(abi.EXIT, 0)(c)
		}),
	}
	r.h.RunAll(s)
	assert.Equal(t, 1, vm.Faults)
	assert.Contains(t, r.out.String(), "stage 2 fault: write at IPA 0x9000000")

	// A guest that faults forever is stopped, not looped on.
	vm2, v2 := r.guest(t, "looper", ramBase+0x40_0000)
	var loop []func(*vcpu.Context)
	for i := 0; i <= maxFaultsInARow; i++ {
		loop = append(loop, fault(0x10, false))
	}
	s.steps[&v2.Ctx] = loop
	r.h.RunAll(s)
	assert.Equal(t, Stopped, vm2.State)
	assert.Contains(t, vm2.Reason, "stage 2 faults in a row")
}

func TestPSCIAndUnexpectedExits(t *testing.T) {
	r := newRig(t)
	vm, v := r.guest(t, "psci", ramBase+0x20_0000)
	s := &script{t: t, steps: map[*vcpu.Context][]func(*vcpu.Context){}}
	pc := v.Ctx.PC
	s.steps[&v.Ctx] = []func(*vcpu.Context){
		smc(abi.PSCI_VERSION),
		check(func(c *vcpu.Context) {
			assert.Equal(t, uint64(abi.PSCI_VERSION_1_1), c.X[0])
			assert.Equal(t, pc+4, c.PC, "a trapped SMC is skipped")
			smc(abi.PSCI_FEATURES, abi.PSCI_SYSTEM_OFF)(c)
		}),
		check(func(c *vcpu.Context) {
			assert.Zero(t, c.X[0])
			smc(abi.PSCI_FEATURES, 0xc4000005)(c) // MIGRATE: not offered
		}),
		check(func(c *vcpu.Context) {
			assert.Equal(t, abi.Word(abi.PSCI_NOT_SUPPORTED), c.X[0])
			// MRS x3, ID_AA64DFR0_EL1 (TID3): the guest's view.
			c.Exit = vcpu.Exit{Vector: vcpu.VectorSync64, ESR: cpu.EC_SYS64<<cpu.ESR_EC_SHIFT | cpu.ESR_IL |
				3<<20 | 0<<17 | 0<<14 | 0<<10 | 3<<5 | 5<<1 | 1}
		}),
		check(func(c *vcpu.Context) {
			assert.Equal(t, r.h.cfg.IDRegs[idDFR0], c.X[3])
			assert.Equal(t, uint64(6), c.X[3]&0xf, "Armv8.0 debug")
			assert.Zero(t, c.X[3]>>8&0xf, "no PMU")
			// MSR PMCR_EL0, x2 (TPMCR): ignored.
			c.Exit = vcpu.Exit{Vector: vcpu.VectorSync64, ESR: cpu.EC_SYS64<<cpu.ESR_EC_SHIFT | cpu.ESR_IL |
				3<<20 | 0<<17 | 3<<14 | 9<<10 | 2<<5 | 12<<1}
		}),
		check(func(c *vcpu.Context) {
			// MRS x3, S3_0_C15_C0_0, implementation defined: undefined
			// instruction injected.
			c.Exit = vcpu.Exit{Vector: vcpu.VectorSync64, ESR: cpu.EC_SYS64<<cpu.ESR_EC_SHIFT | cpu.ESR_IL |
				3<<20 | 0<<17 | 0<<14 | 15<<10 | 3<<5 | 0<<1 | 1}
		}),
		check(func(c *vcpu.Context) {
			assert.Equal(t, uint8(cpu.EC_UNKNOWN), cpu.ESR(c.Sys.ESR_EL1).EC())
			smc(abi.PSCI_SYSTEM_OFF)(c)
		}),
	}
	r.h.cfg.IDRegs = GuestIDRegs([32]uint64{idDFR0: 0x1_0000_0f00_6_0_9}, 40)
	r.h.RunAll(s)
	assert.Equal(t, Stopped, vm.State)
	assert.Equal(t, "PSCI SYSTEM_OFF", vm.Reason)
	assert.Contains(t, r.out.String(), "trapped read of S3_0_C15_C0_0 (x3)")
	assert.NotContains(t, r.out.String(), "PMCR", "PMU accesses are absorbed")

	vm2, v2 := r.guest(t, "weird", ramBase+0x40_0000)
	s.steps[&v2.Ctx] = []func(*vcpu.Context){func(c *vcpu.Context) {
		c.Exit = vcpu.Exit{Vector: vcpu.VectorSync64, ESR: cpu.EC_BRK64<<cpu.ESR_EC_SHIFT | cpu.ESR_IL}
	}}
	vm3, v3 := r.guest(t, "serror", ramBase+0x60_0000)
	s.steps[&v3.Ctx] = []func(*vcpu.Context){func(c *vcpu.Context) {
		c.Exit = vcpu.Exit{Vector: vcpu.VectorSError64}
	}}
	r.h.RunAll(s)
	assert.Contains(t, vm2.Reason, "unexpected exit")
	assert.Contains(t, vm2.Reason, "BRK in AArch64")
	assert.Contains(t, vm3.Reason, "SError")
}

func TestDestroyReturnsEverything(t *testing.T) {
	r := newRig(t)
	freeTables := r.h.pool.Free()
	vm, v := r.guest(t, "a", ramBase+0x20_0000)
	vmB, _ := r.guest(t, "b", ramBase+0x40_0000)
	entryPA := uint64(ramBase + 0x20_0000)
	r.phys.Write(entryPA, []byte("secret"))
	s := &script{t: t, steps: map[*vcpu.Context][]func(*vcpu.Context){&v.Ctx: {hvc(abi.EXIT, 1)}}}
	_, err := r.h.DestroyVM(vmB)
	assert.ErrorIs(t, err, ErrVMRunning)
	r.h.RunAll(s.with(&vmB.VCPUs[0].Ctx, hvc(abi.EXIT, 2)))

	for _, x := range []*VM{vm, vmB} {
		n, err := r.h.DestroyVM(x)
		require.NoError(t, err)
		assert.Equal(t, 256, n)
	}
	assert.Equal(t, r.boot, r.h.Ledger.Count(), "ledger back at its boot figures")
	assert.Equal(t, freeTables, r.h.pool.Free(), "every stage 2 table page back in the pool")
	assert.Zero(t, r.phys.read(entryPA), "reclaimed memory was zeroed")
	assert.Positive(t, r.tlb.ipas, "unmapping invalidated the TLBs")
	assert.Empty(t, r.h.VMs())
	_, err = r.h.DestroyVM(vm)
	assert.ErrorIs(t, err, ErrNoSuchVM)
}

func TestDestroyRetryAfterDirtyReturn(t *testing.T) {
	r := newRig(t)
	freeTables := r.h.pool.Free()
	pa := uint64(ramBase + 0x20_0000)
	vm, _ := r.guest(t, "a", pa)
	require.NoError(t, r.h.AssignIRQ(vm, 40))
	vm.State = Stopped
	r.phys.Write(pa, []byte("secret"))
	bad := pa + 10*mmu.PageSize
	r.phys.fail[bad] = true

	n, err := r.h.DestroyVM(vm)
	require.ErrorIs(t, err, ledger.ErrDirtyReturn)
	assert.Equal(t, 10, n, "the pages before the dirty one are reclaimed")
	assert.Contains(t, r.h.VMs(), vm, "the VM stays until all its pages are back")
	assert.Equal(t, freeTables, r.h.pool.Free(), "its tables are freed anyway")
	o, _, _ := r.h.Ledger.Owner(bad)
	assert.Equal(t, vm.ID, o, "the dirty page stays with the dead guest")
	_, _, ok := vm.Translate(guestIPA)
	assert.False(t, ok, "a torn down VM translates nothing")
	_, _, ok = vm.Translate(0)
	assert.False(t, ok)
	assert.ErrorIs(t, r.h.Donate(vm, ramBase+0x40_0000, guestIPA+1<<20, mmu.PageSize, mmu.Read), ErrVMTornDown)
	assert.ErrorIs(t, r.h.Donate(vm, ramBase+0x40_0000, guestIPA, mmu.PageSize, mmu.Read), ErrVMTornDown)
	other, err := r.h.CreateVM("b")
	require.NoError(t, err)
	require.NoError(t, r.h.AssignIRQ(other, 40), "the interrupt was released")
	other.State = Stopped

	// Still failing: the retry fails the same way, reclaiming nothing.
	n, err = r.h.DestroyVM(vm)
	require.ErrorIs(t, err, ledger.ErrDirtyReturn)
	assert.Zero(t, n)

	delete(r.phys.fail, bad)
	n, err = r.h.DestroyVM(vm)
	require.NoError(t, err)
	assert.Equal(t, 256-10, n)
	assert.NotContains(t, r.h.VMs(), vm)
	_, err = r.h.DestroyVM(other)
	require.NoError(t, err)
	assert.Equal(t, r.boot, r.h.Ledger.Count(), "ledger back at its boot figures")
	assert.Equal(t, r.h.pool.Size(), r.h.pool.Free(), "the table pool is all free")
	assert.Zero(t, r.phys.read(pa), "reclaimed memory was zeroed")
	_, err = r.h.DestroyVM(vm)
	assert.ErrorIs(t, err, ErrNoSuchVM)
}

func TestDestroyRetryRemapsControl(t *testing.T) {
	r := newRig(t)
	ctl, err := r.h.CreateControl("control")
	require.NoError(t, err)
	pa := uint64(ramBase + 0x20_0000)
	vm, _ := r.guest(t, "g", pa)
	lent, err := r.h.Share(vm, guestIPA+20*mmu.PageSize, mmu.PageSize)
	require.NoError(t, err)
	_, _, ok := ctl.Translate(lent)
	require.True(t, ok, "the lent page is in the control partition's map")
	vm.State = Stopped
	bad := pa + 10*mmu.PageSize
	r.phys.fail[bad] = true

	_, err = r.h.DestroyVM(vm)
	require.ErrorIs(t, err, ledger.ErrDirtyReturn)
	_, _, ok = ctl.Translate(pa)
	assert.True(t, ok, "reclaimed pages come back to the control partition")
	_, _, ok = ctl.Translate(bad)
	assert.False(t, ok, "the dirty page is mapped nowhere")
	_, _, ok = ctl.Translate(lent)
	assert.False(t, ok, "the lent page, not reclaimed yet, left the control partition's map")

	delete(r.phys.fail, bad)
	_, err = r.h.DestroyVM(vm)
	require.NoError(t, err)
	for _, p := range []uint64{pa, bad, lent, pa + 1<<20 - mmu.PageSize} {
		got, _, ok := ctl.Translate(p)
		assert.True(t, ok, "page %#x back in the control partition's map", p)
		assert.Equal(t, p, got)
	}
	assert.Equal(t, r.boot, r.h.Ledger.Count())
}

func (s *script) with(c *vcpu.Context, steps ...func(*vcpu.Context)) *script {
	s.steps[c] = append(s.steps[c], steps...)
	return s
}

func TestVTCR(t *testing.T) {
	r := newRig(t)
	// 40-bit IPA: two concatenated level 1 roots (SL0 = 0b01), T0SZ = 24.
	v := r.h.VTCR(2)
	assert.Equal(t, uint64(24), v&0x3f)
	assert.Equal(t, uint64(1), (v>>6)&3)
	assert.Equal(t, uint64(1), (v>>19)&1, "16-bit VMIDs")
}

// The control partition maps what it owns at IPA = PA, loses pages as it
// donates them, and gets them back, zeroed, when their VM is destroyed.
func TestControlPartitionMap(t *testing.T) {
	r := newRig(t)
	ctl, err := r.h.CreateControl("control")
	require.NoError(t, err)
	_, err = r.h.CreateControl("again")
	assert.Error(t, err)
	assert.Equal(t, ledger.Control, ctl.ID)
	pa := uint64(ramBase + 0x20_0000)
	got, perm, ok := ctl.Translate(pa + 0x10)
	require.True(t, ok)
	assert.Equal(t, pa+0x10, got)
	assert.Equal(t, mmu.Read|mmu.Write|mmu.Exec, perm)
	_, _, ok = ctl.Translate(ramBase)
	assert.False(t, ok, "hypervisor pages are not the control partition's")

	r.phys.Write(pa, []byte("guest image"))
	vm, _ := r.guest(t, "g", pa)
	_, _, ok = ctl.Translate(pa)
	assert.False(t, ok, "donated pages leave the control partition's map")
	_, _, ok = ctl.Translate(pa + 1<<20)
	assert.True(t, ok, "the page after the donation stays")
	assert.Equal(t, byte('g'), r.phys.read(pa), "donation keeps the contents: the image goes with it")

	vm.State = Stopped
	_, err = r.h.DestroyVM(vm)
	require.NoError(t, err)
	got, _, ok = ctl.Translate(pa)
	require.True(t, ok, "reclaimed pages come back")
	assert.Equal(t, pa, got)
	assert.Zero(t, r.phys.read(pa), "zeroed first")
	assert.Equal(t, r.boot, r.h.Ledger.Count())

	free := r.h.pool.Free()
	ctl.State = Running
	assert.ErrorIs(t, r.h.ReleaseControl(), ErrVMRunning)
	ctl.State = Stopped
	require.NoError(t, r.h.ReleaseControl())
	assert.Greater(t, r.h.pool.Free(), free, "its tables are freed")
	assert.Nil(t, r.h.Control())
}
