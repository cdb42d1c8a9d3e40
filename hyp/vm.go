package hyp

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/bulkhead-hv/bulkhead/gic"
	"github.com/bulkhead-hv/bulkhead/hyp/ledger"
	"github.com/bulkhead-hv/bulkhead/hyp/vgic"
	"github.com/bulkhead-hv/bulkhead/hyp/virtq"
	"github.com/bulkhead-hv/bulkhead/hyp/vuart"
	"github.com/bulkhead-hv/bulkhead/mmu"
	"github.com/bulkhead-hv/bulkhead/vcpu"
)

// HCR_EL2 bits (Arm ARM D19.2, HCR_EL2) set while a guest runs.
const (
	HCR_VM   = 1 << 0  // stage 2 translation on
	HCR_SWIO = 1 << 1  // set/way invalidate becomes clean+invalidate
	HCR_FMO  = 1 << 3  // physical FIQs to EL2
	HCR_IMO  = 1 << 4  // physical IRQs to EL2
	HCR_AMO  = 1 << 5  // SErrors to EL2
	HCR_FB   = 1 << 9  // broadcast TLB and cache maintenance (inner shareable)
	HCR_BSU  = 1 << 10 // barrier shareability upgrade: inner shareable
	HCR_TWI  = 1 << 13 // trap WFI
	HCR_TWE  = 1 << 14 // trap WFE
	HCR_TID3 = 1 << 18 // trap ID group 3: guests read GuestIDRegs
	HCR_TSC  = 1 << 19 // trap SMC: guest PSCI is emulated
	HCR_TSW  = 1 << 22 // trap cache maintenance by set/way
	HCR_RW   = 1 << 31 // EL1 is AArch64

	GuestHCR = HCR_VM | HCR_SWIO | HCR_FMO | HCR_IMO | HCR_AMO | HCR_FB | HCR_BSU |
		HCR_TWI | HCR_TWE | HCR_TID3 | HCR_TSC | HCR_TSW | HCR_RW
)

// State of a VM.
type State int

const (
	Running State = iota
	Stopped
)

// Region maps guest physical (IPA) to physical addresses.
type Region struct {
	IPA, PA, Size uint64
}

// VM is one guest.
type VM struct {
	ID    ledger.Owner
	Name  string
	s2    mmu.Tables
	vmid  mmu.VMID
	RAM   []Region
	VCPUs []*VCPU

	// torn is set once DestroyVM has unmapped the VM's memory, destroyed
	// its stage 2 tables and released its interrupts, though the ledger
	// may not have taken all its pages back yet; tornRAM is what RAM was
	// then, for putting reclaimed pages back in the control partition's
	// map when DestroyVM is retried.
	torn    bool
	tornRAM []Region

	State  State
	Status int64  // exit status when Stopped
	Reason string // why it stopped, for people
	Why    uint64 // why it stopped, for programs: abi.Stop*

	// Exits counts exits by reason, but for the hypercalls answered
	// without the scheduler lock (ExitCounts has them all); Faults counts
	// contained stage 2 faults.
	Exits  [NumExitReasons]int
	Faults int
	// faultsInARow stops a guest that cannot make progress.
	faultsInARow int
	mmio         []mmioRegion

	vgic *vgic.VGIC
	// cntvoff is CNTVOFF_EL2: the VM's virtual time starts at 0 when it
	// is created and does not pass while the VM is runnable but kept
	// from running (stolenSince says since when).
	cntvoff     uint64
	stolenSince uint64

	// Echo sends the VM's console output to the hypervisor's own console,
	// line by line: for the control partition and for guests started at
	// boot, which no control partition drains. Otherwise the output waits
	// in the UART's ring for VM_CONSOLE_READ.
	Echo        bool
	uart        *vuart.PL011
	console     strings.Builder // what Echo printed, up to maxEcho bytes
	consoleLine []byte

	// RunTicks is the counter ticks its vCPUs have run.
	RunTicks uint64
}

// Console ring sizes: output buffers a burst (a kernel's boot log) while
// the control partition is busy; input holds what a user types or pastes.
const (
	consoleOutRing = 64 << 10
	consoleInRing  = 4 << 10
	maxEcho        = 1 << 20
)

// VCPU is one virtual CPU of a VM.
type VCPU struct {
	VM      *VM
	Index   int
	Ctx     vcpu.Context
	On      bool
	blocked bool // in WFI, waiting for an interrupt or its timer
	// nap is how long its last YIELD let it nap, in counter ticks;
	// napUntil is when a vCPU that yielded with nothing else to run on
	// its CPU runs again, at the latest (0: not napping).
	nap, napUntil uint64
	timer         vtimer
	gic           *vgic.CPU
	// mmio is the access it waits on the control partition for; it does
	// not run until VM_MMIO_REPLY, whatever interrupt comes.
	mmio *pendingMMIO
	// home is the physical CPU it runs on; running says it is in the
	// guest there now.
	home    int
	running bool
	// moveTo is the CPU it moves to at its next exit (-1: none).
	moveTo int
	// fastHVC and fastMMIO count the hypercalls and UART reads answered
	// without the scheduler lock (Hyp.lockFree), which VM.Exits does not:
	// written by the CPU the vCPU runs on (bump).
	fastHVC, fastMMIO atomic.Uint64
}

// exits returns the exit counters, the exits answered without the
// scheduler lock included.
func (vm *VM) exits() [NumExitReasons]int {
	e := vm.Exits
	for _, v := range vm.VCPUs {
		e[ExitHVC] += int(v.fastHVC.Load())
		e[ExitMMIO] += int(v.fastMMIO.Load())
	}
	return e
}

// ExitCounts names the non-zero exit counters.
func (vm *VM) ExitCounts() map[string]int {
	m := map[string]int{}
	for i, n := range vm.exits() {
		if n > 0 {
			m[ExitReason(i).String()] = n
		}
	}
	return m
}

// Console returns everything the VM wrote to its console.
func (vm *VM) Console() string { return vm.console.String() }

// StageTLB invalidates stage 2 translations (TLBI IPAS2E1IS / VMALLS12E1IS
// with the required DSBs) for one VMID.
type StageTLB interface {
	InvalidateIPA(vmid uint16, ipa uint64, level int)
	InvalidateAll()
}

// Config fixes the machine-wide stage 2 parameters.
type Config struct {
	IPABits int
	VMID16  bool
	MIDR    uint64 // what guests read as MIDR_EL1
	// NumLRs is the number of list registers (ICH_VTR_EL2.ListRegs + 1).
	NumLRs int
	// Slice is a vCPU's time slice in counter ticks.
	Slice uint64
	// PPIs are the private interrupts the hypervisor uses.
	PPIs PPIs
	// Now reads the physical counter (for VM creation).
	Now func() uint64
	// Trace prints every exit (boot argument trace=exits).
	Trace bool
	// Poll is called by CPU 0's scheduler about once a time slice, for
	// the hypervisor's own devices that are polled (the SMMU's events).
	Poll func()
	// IDRegs is what guests read from the AArch64 ID registers
	// (GuestIDRegs).
	IDRegs [32]uint64
	// CPUs is how many physical CPUs run the scheduler (Run), 1 if 0.
	CPUs int
	// Kick interrupts physical CPU cpu with the PPIs.Kick SGI; any CPU may
	// call it. Needed with more than one CPU.
	Kick func(cpu int)
}

// PPIs are the INTIDs of the private interrupts the scheduler handles, as
// the device tree names them.
type PPIs struct {
	Maintenance uint32 // vGIC maintenance interrupt
	HypTimer    uint32 // EL2 physical timer (CNTHP)
	Kick        uint32 // the SGI one CPU sends another (Config.Kick); 0 for none
	VTimer      uint32 // EL1 virtual timer (CNTV)
}

// Hyp is the hypervisor's state: the ledger, the VMs and the resources
// stage 2 maps need. Every method is safe for concurrent use.
type Hyp struct {
	mu     sync.Mutex
	Ledger *ledger.Ledger
	pool   *TablePool
	phys   Phys
	tlb    StageTLB
	vmids  *mmu.VMIDs
	cfg    Config
	vms    []*VM
	nextID ledger.Owner
	Out    io.Writer

	// control is the control partition, once it exists: it maps every
	// page it owns at IPA = PA, and loses and regains them as it donates
	// them and they are reclaimed.
	control *VM
	// dma is what the control partition's devices may reach by DMA,
	// kept equal to its RAM (SetDMAView); nil when nothing confines it.
	dma DMAView
	// waiter is the control partition's vCPU blocked in VM_WAIT.
	waiter *VCPU
	// controlImage restarts the control partition when it crashes
	// (restart.go); controlSince is when it last started, quickCrashes
	// how many times in a row it crashed soon after, restarts how many
	// times it was restarted; restartPending, that a scheduler loop is to.
	controlImage   *ControlImage
	controlSince   uint64
	quickCrashes   int
	restarts       uint64
	restartPending bool

	// checks and violations count CheckInvariants' runs and failures.
	checks, violations uint64

	// irqs assigns physical SPIs to VMs (gic.Ownership's owners are the
	// ledger's: the VM's ID).
	irqs gic.Ownership

	// sched is the scheduler lock (sched.go): it covers the run queues,
	// the vCPUs' and VMs' run state and everything an exit handler
	// touches, and is held by a CPU except while a guest runs there or it
	// idles; holder is the CPU holding it, by its index plus one (0:
	// none; an index, as a pointer's store costs the vCPU switch a write
	// barrier's check). It is taken before mu.
	sched  spinLock
	holder int
	pcpus  []*pcpu

	// scratch is the page console bytes pass through between the
	// control partition's buffer and a VM's rings (under the scheduler
	// lock): the exit path allocates as little as it can, as on several
	// CPUs the garbage collector runs only between scheduler turns.
	scratch [ledger.PageSize]byte
	// gmem and spans serve VM_VIRTQ_* without allocating (virtq.go).
	gmem  guestMem
	spans []virtq.Span
}

var (
	ErrNoSuchVM   = errors.New("hyp: no such VM")
	ErrIPARange   = errors.New("hyp: IPA range is not page aligned, empty, outside the IPA space, or overlaps the VM's memory")
	ErrVMRunning  = errors.New("hyp: VM is running")
	ErrTooManyVMs = errors.New("hyp: no free VM identifier")
	ErrVMTornDown = errors.New("hyp: VM is being destroyed (an earlier DestroyVM could not reclaim all its pages)")
)

// DMAView is an IOMMU's translation for the devices the control partition
// drives: what they may reach by DMA. The hypervisor keeps it equal to
// the control partition's RAM in its stage 2 (never its device windows),
// so a device cannot reach a page the control partition gave away.
// Unmap returns only once no device can reach the range.
type DMAView interface {
	Map(pa, size uint64) error
	Unmap(pa, size uint64) error
	// Faults is the number of transactions it stopped and reported.
	Faults() uint64
}

// SetDMAView confines the control partition's devices to v, before the
// control partition exists: CreateControl fills it.
func (h *Hyp) SetDMAView(v DMAView) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dma = v
}

// controlMap maps [pa, pa+size) into the control partition at IPA = PA,
// for its CPU and its devices.
func (h *Hyp) controlMap(pa, size, attrs uint64) error {
	c := h.control
	if err := c.s2.Map(pa, pa, size, attrs); err != nil {
		_ = c.s2.Unmap(pa, size)
		return err
	}
	if h.dma != nil {
		if err := h.dma.Map(pa, size); err != nil {
			_ = h.dma.Unmap(pa, size)
			_ = c.s2.Unmap(pa, size)
			return fmt.Errorf("hyp: DMA view: %w", err)
		}
	}
	return nil
}

// controlUnmap takes [pa, pa+size) from the control partition's CPU and
// devices; on error some of it may still be reachable.
func (h *Hyp) controlUnmap(pa, size uint64) error {
	if err := h.control.s2.Unmap(pa, size); err != nil {
		return err
	}
	if h.dma != nil {
		if err := h.dma.Unmap(pa, size); err != nil {
			return fmt.Errorf("hyp: DMA view: %w", err)
		}
	}
	return nil
}

// New makes the hypervisor core.
func New(l *ledger.Ledger, pool *TablePool, phys Phys, tlb StageTLB, cfg Config, out io.Writer) *Hyp {
	h := &Hyp{
		Ledger: l, pool: pool, phys: phys, tlb: tlb, cfg: cfg, Out: out,
		vmids:  mmu.NewVMIDs(cfg.VMID16, tlb.InvalidateAll),
		nextID: ledger.FirstGuest,
	}
	for i := 0; i < max(cfg.CPUs, 1); i++ {
		h.pcpus = append(h.pcpus, &pcpu{id: i})
	}
	return h
}

// vmTLB adapts StageTLB to one VM's tables.
type vmTLB struct {
	h  *Hyp
	vm *VM
}

func (t vmTLB) Invalidate(ipa uint64, level int) {
	t.h.tlb.InvalidateIPA(t.vm.vmid.ID, ipa, level)
}

// CreateVM makes an empty VM with its stage 2 root.
func (h *Hyp) CreateVM(name string) (*VM, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.nextID == 0xffff {
		return nil, ErrTooManyVMs
	}
	vm := &VM{ID: h.nextID, Name: name}
	if err := vm.s2.InitStage2(h.pool, h.cfg.IPABits); err != nil {
		return nil, fmt.Errorf("hyp: VM %q: stage 2 root: %w", name, err)
	}
	vm.s2.SetTLB(vmTLB{h, vm})
	if h.cfg.Now != nil {
		vm.cntvoff = h.cfg.Now()
	}
	h.nextID++
	h.vms = append(h.vms, vm)
	return vm, nil
}

// CreateControl makes the control partition: a VM with the ledger's
// Control identity whose stage 2 maps every page the control partition
// owns at IPA = PA, so it names pages by their physical address.
func (h *Hyp) CreateControl(name string) (*VM, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.control != nil {
		return nil, fmt.Errorf("hyp: the control partition exists")
	}
	vm := &VM{ID: ledger.Control, Name: name}
	if err := vm.s2.InitStage2(h.pool, h.cfg.IPABits); err != nil {
		return nil, fmt.Errorf("hyp: control partition: stage 2 root: %w", err)
	}
	vm.s2.SetTLB(vmTLB{h, vm})
	h.control = vm
	for _, r := range h.Ledger.Ranges(ledger.Control) {
		if err := h.controlMap(r.PA, r.Size, mmu.S2Normal(mmu.Read|mmu.Write|mmu.Exec)); err != nil {
			for _, m := range vm.RAM {
				_ = h.controlUnmap(m.PA, m.Size)
			}
			vm.s2.Destroy()
			h.control = nil
			return nil, fmt.Errorf("hyp: control partition: stage 2 map: %w", err)
		}
		vm.RAM = append(vm.RAM, Region{IPA: r.PA, PA: r.PA, Size: r.Size})
	}
	if h.cfg.Now != nil {
		vm.cntvoff = h.cfg.Now()
	}
	h.vms = append(h.vms, vm)
	return vm, nil
}

// ReleaseControl frees a stopped control partition's stage 2 tables at
// shutdown. Its pages stay the control partition's in the ledger.
func (h *Hyp) ReleaseControl() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.control
	if c == nil {
		return nil
	}
	if c.State == Running {
		return ErrVMRunning
	}
	c.s2.Destroy()
	for i, v := range h.vms {
		if v == c {
			h.vms = append(h.vms[:i], h.vms[i+1:]...)
			break
		}
	}
	h.control = nil
	return nil
}

// PassThrough maps the device registers at [pa, pa+size), which must lie
// outside RAM, into vm's stage 2 at IPA = PA: the control partition drives
// the host's devices itself. Their DMA reaches physical addresses, which
// are the control partition's IPAs.
func (h *Hyp) PassThrough(vm *VM, pa, size uint64) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	lo, hi := pa&^(mmu.PageSize-1), (pa+size+mmu.PageSize-1)&^(mmu.PageSize-1)
	if hi <= lo || hi > 1<<h.cfg.IPABits || lo < h.Ledger.End() && h.Ledger.Base() < hi {
		return fmt.Errorf("hyp: pass-through range [%#x, %#x) is empty, outside the IPA space, or overlaps RAM", lo, hi)
	}
	for p := lo; p < hi; p += mmu.PageSize {
		if _, _, _, mapped := vm.s2.Translate(p); mapped {
			continue
		}
		if err := vm.s2.Map(p, p, mmu.PageSize, mmu.S2Device(mmu.Read|mmu.Write)); err != nil {
			return err
		}
	}
	return nil
}

// Control returns the control partition, or nil.
func (h *Hyp) Control() *VM {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.control
}

// Donate moves [pa, pa+size) from the control partition to vm and maps it
// at ipa with permissions perm. The ledger is checked first, then the
// mapping made, then the ledger updated, all under one lock: a refused
// donation leaves both the ledger and the tables as they were.
func (h *Hyp) Donate(vm *VM, pa, ipa, size uint64, perm mmu.Perm) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if vm.torn {
		return ErrVMTornDown
	}
	if ipa%mmu.PageSize != 0 || size%mmu.PageSize != 0 || size == 0 || ipa+size < ipa || ipa+size > 1<<h.cfg.IPABits {
		return ErrIPARange
	}
	for _, r := range vm.RAM {
		if ipa < r.IPA+r.Size && r.IPA < ipa+size {
			return ErrIPARange
		}
	}
	if err := h.Ledger.CheckDonate(pa, size, vm.ID); err != nil {
		return err
	}
	if err := vm.s2.Map(ipa, pa, size, mmu.S2Normal(perm)); err != nil {
		_ = vm.s2.Unmap(ipa, size)
		return fmt.Errorf("hyp: VM %q: stage 2 map: %w", vm.Name, err)
	}
	// The control partition loses the pages before the guest can run on
	// them (its IPA is the PA).
	if c := h.control; c != nil && c != vm {
		if err := h.controlUnmap(pa, size); err != nil {
			_ = vm.s2.Unmap(ipa, size)
			h.remapControl(pa, size)
			return fmt.Errorf("hyp: control partition: unmap: %w", err)
		}
	}
	if err := h.Ledger.Donate(pa, size, vm.ID); err != nil {
		// Unreachable: checked above under the same lock.
		_ = vm.s2.Unmap(ipa, size)
		return err
	}
	vm.RAM = append(vm.RAM, Region{IPA: ipa, PA: pa, Size: size})
	sort.Slice(vm.RAM, func(i, j int) bool { return vm.RAM[i].IPA < vm.RAM[j].IPA })
	return nil
}

// Share lends [ipa, ipa+size) of a guest's memory, which must be one
// donated region's contiguous part, to the control partition: the ledger
// records the loan and the pages appear in the control partition's map at
// IPA = PA. It returns the physical address.
func (h *Hyp) Share(vm *VM, ipa, size uint64) (uint64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	pa, ok := vm.region(ipa, size)
	if !ok {
		return 0, ErrIPARange
	}
	if err := h.Ledger.Share(pa, size, vm.ID); err != nil {
		return 0, err
	}
	if h.control != nil {
		if err := h.controlMap(pa, size, mmu.S2Normal(mmu.Read|mmu.Write)); err != nil {
			_ = h.Ledger.Unshare(pa, size, vm.ID)
			return 0, err
		}
	}
	return pa, nil
}

// Unshare takes lent pages back: they leave the control partition's map
// (break-before-make) before the ledger says they are the guest's alone.
func (h *Hyp) Unshare(vm *VM, ipa, size uint64) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	pa, ok := vm.region(ipa, size)
	if !ok {
		return ErrIPARange
	}
	for p := pa; p < pa+size; p += mmu.PageSize {
		if o, b, _ := h.Ledger.Owner(p); o != vm.ID || b == ledger.None {
			return ledger.ErrNotShared
		}
	}
	if h.control != nil {
		if err := h.controlUnmap(pa, size); err != nil {
			return err
		}
	}
	return h.Ledger.Unshare(pa, size, vm.ID)
}

// region translates [ipa, ipa+size) inside one of the VM's regions.
func (vm *VM) region(ipa, size uint64) (uint64, bool) {
	if ipa%mmu.PageSize != 0 || size%mmu.PageSize != 0 || size == 0 {
		return 0, false
	}
	return vm.find(ipa, size)
}

// remapControl maps the pages of [pa, pa+size) that the control partition
// owns back into its stage 2, at IPA = PA.
func (h *Hyp) remapControl(pa, size uint64) {
	c := h.control
	if c == nil {
		return
	}
	attrs := mmu.S2Normal(mmu.Read | mmu.Write | mmu.Exec)
	// Map runs, not pages: Map uses blocks where a run covers one, and
	// replaces the tables the donation left empty, so a range given away
	// and taken back costs no table pages for good.
	run := uint64(0)
	flush := func(end uint64) {
		if run < end {
			_ = h.controlMap(run, end-run, attrs)
		}
	}
	for p := pa; p < pa+size; p += mmu.PageSize {
		o, _, ok := h.Ledger.Owner(p)
		_, _, _, mapped := c.s2.Translate(p)
		if ok && o == ledger.Control && !mapped {
			if run == 0 {
				run = p
			}
			continue
		}
		if run != 0 {
			flush(p)
			run = 0
		}
	}
	if run != 0 {
		flush(pa + size)
	}
}

// IPAToPA translates through the VM's memory regions.
func (vm *VM) IPAToPA(ipa uint64) (uint64, bool) { return vm.find(ipa, 1) }

// find translates [ipa, ipa+size), which must lie inside one region.
func (vm *VM) find(ipa, size uint64) (uint64, bool) {
	if ipa+size < ipa {
		return 0, false
	}
	for _, r := range vm.RAM {
		if ipa >= r.IPA && ipa+size <= r.IPA+r.Size {
			return r.PA + ipa - r.IPA, true
		}
	}
	return 0, false
}

// place picks a new vCPU's physical CPU: the one with the fewest vCPUs of
// live VMs pinned to it, the lowest of those. VMs spread over the CPUs
// this way; the control partition's vCPU counts, so guests come to its
// CPU 0 only once every other CPU has a vCPU as well.
func (h *Hyp) place() int {
	load := make([]int, len(h.pcpus))
	for _, vm := range h.vms {
		if vm.State == Stopped {
			continue
		}
		for _, v := range vm.VCPUs {
			load[v.home]++
		}
	}
	best := 0
	for i, n := range load {
		if n < load[best] {
			best = i
		}
	}
	return best
}

// Homes lists the physical CPU each vCPU is pinned to, by vCPU index.
func (vm *VM) Homes() []int {
	out := make([]int, len(vm.VCPUs))
	for i, v := range vm.VCPUs {
		out[i] = v.home
	}
	return out
}

// smp says the scheduler runs on more than one CPU.
func (h *Hyp) smp() bool { return len(h.pcpus) > 1 }

// announce says where a VM that starts runs, when there is a choice.
func (h *Hyp) announce(vm *VM) {
	if h.smp() {
		fmt.Fprintf(h.Out, "bulkhead: vm %s started: vCPUs on physical CPUs %v\n", vm.Name, vm.Homes())
	}
}

// AddVCPU creates a vCPU that starts at entry with x0 = arg0.
func (h *Hyp) AddVCPU(vm *VM, entry, arg0 uint64) *VCPU {
	h.mu.Lock()
	defer h.mu.Unlock()
	v := &VCPU{VM: vm, Index: len(vm.VCPUs), On: true, home: h.place(), moveTo: -1}
	v.Ctx.EL2 = vcpu.EL2Config{
		HCR:    GuestHCR,
		VPIDR:  h.cfg.MIDR,
		VMPIDR: 1<<31 | uint64(v.Index), // RES1 bit 31; Aff0 = vCPU index
	}
	v.Ctx.Reset(entry, arg0)
	vm.VCPUs = append(vm.VCPUs, v)
	return v
}

// AssignIRQ gives physical SPI intid to vm: it arrives in the VM as the
// same INTID, linked to the physical interrupt. (Enabling it at the
// physical distributor is the caller's, with the device.)
func (h *Hyp) AssignIRQ(vm *VM, intid uint32) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if intid < vgic.FirstSPI || intid >= vgic.FirstSPI+NumSPIs {
		return fmt.Errorf("hyp: INTID %d is not an SPI a guest can have (32-%d)", intid, vgic.FirstSPI+NumSPIs-1)
	}
	return h.irqs.Assign(intid, gic.Owner(vm.ID))
}

// irqOwner is the VM a physical interrupt belongs to, if any.
func (h *Hyp) irqOwner(intid uint32) *VM {
	o, ok := h.irqs.Owner(intid)
	if !ok {
		return nil
	}
	for _, vm := range h.vms {
		if gic.Owner(vm.ID) == o && vm.State == Running && vm.vgic != nil {
			return vm
		}
	}
	return nil
}

// NumSPIs is the number of SPIs each guest's distributor implements.
const NumSPIs = 64

// StartDevices gives vm its interrupt controller and its UART, once its
// vCPUs exist, at QEMU virt's addresses.
func (h *Hyp) StartDevices(vm *VM) error {
	nLRs := h.cfg.NumLRs
	if nLRs == 0 {
		nLRs = 4
	}
	vm.vgic = vgic.New(NumSPIs, len(vm.VCPUs), nLRs)
	vm.vgic.Resample(h.cfg.PPIs.VTimer)
	for i, v := range vm.VCPUs {
		v.gic = vm.vgic.CPUs[i]
	}
	if err := h.AddMMIO(vm, vgic.DistBase, vgic.DistSize, vm.vgic.Distributor()); err != nil {
		return err
	}
	if err := h.AddMMIO(vm, vgic.RedistBase, vm.vgic.RedistSize(), vm.vgic.Redistributors()); err != nil {
		return err
	}
	vm.uart = vuart.NewPL011(consoleOutRing, consoleInRing, func() {
		if c := vm.vgic.Inject(0, vuart.IntID); c != nil {
			h.notify(vm.VCPUs[c.Index])
		}
	})
	if vm.Echo {
		vm.uart.Echo = func(b []byte) { h.echo(vm, b) }
	}
	return h.AddMMIO(vm, vuart.Base, vuart.Size, vm.uart)
}

// DestroyVM tears a stopped VM down: its stage 2 map goes (with TLB
// invalidation), its table pages return to the pool, and every page it
// owned is zeroed and returned to the control partition by the ledger.
//
// If a page cannot be zeroed (ledger.ErrDirtyReturn), the VM stays, torn
// down (no stage 2 map, no interrupts, no RAM; Donate refuses it with
// ErrVMTornDown), holding the pages the ledger did not take back; calling
// DestroyVM again retries only the reclaim.
func (h *Hyp) DestroyVM(vm *VM) (pages int, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	idx := -1
	for i, v := range h.vms {
		if v == vm {
			idx = i
		}
	}
	if idx < 0 {
		return 0, ErrNoSuchVM
	}
	if vm.State == Running {
		return 0, ErrVMRunning
	}
	if !vm.torn {
		if err := h.teardown(vm); err != nil {
			return 0, err
		}
	}
	pages, err = h.Ledger.Reclaim(vm.ID)
	// Pages the ledger zeroed and returned go back into the control
	// partition's map; a page that could not be zeroed stays with the
	// dead guest, mapped nowhere.
	for _, r := range vm.tornRAM {
		h.remapControl(r.PA, r.Size)
	}
	if err != nil {
		return pages, err
	}
	vm.tornRAM = nil
	h.vms = append(h.vms[:idx], h.vms[idx+1:]...)
	return pages, nil
}

// teardown unmaps a stopped VM's memory (and the pages it lent from the
// control partition's map), frees its stage 2 tables and releases its
// interrupts, once: the VM is then torn, and its regions move from RAM to
// tornRAM.
func (h *Hyp) teardown(vm *VM) error {
	for _, r := range vm.RAM {
		if err := vm.s2.Unmap(r.IPA, r.Size); err != nil {
			return err
		}
		// Pages lent to the control partition leave its map too.
		if c := h.control; c != nil && c != vm {
			for p := r.PA; p < r.PA+r.Size; p += mmu.PageSize {
				if o, b, _ := h.Ledger.Owner(p); o == vm.ID && b != ledger.None {
					if err := h.controlUnmap(p, mmu.PageSize); err != nil {
						return err
					}
				}
			}
		}
	}
	vm.s2.Destroy()
	for id := uint32(vgic.FirstSPI); id < vgic.FirstSPI+NumSPIs; id++ {
		h.irqs.Release(id, gic.Owner(vm.ID))
	}
	vm.torn = true
	vm.tornRAM, vm.RAM = vm.RAM, nil
	return nil
}

// VMs returns the current VMs.
func (h *Hyp) VMs() []*VM {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*VM(nil), h.vms...)
}

// Translate walks a VM's stage 2 tables (for tests and reports).
// A VM torn down by DestroyVM translates nothing.
func (vm *VM) Translate(ipa uint64) (pa uint64, perm mmu.Perm, ok bool) {
	if vm.torn {
		return 0, 0, false
	}
	pa, attrs, _, ok := vm.s2.Translate(ipa)
	return pa, mmu.S2Perm(attrs), ok
}

// VTCR is the VTCR_EL2 value for this configuration's stage 2 tables.
func (h *Hyp) VTCR(parange uint64) uint64 {
	return mmu.VTCREL2(h.cfg.IPABits, parange, h.cfg.VMID16)
}
