//go:build tamago

package main

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bulkhead-hv/bulkhead/board/fdt"
	"github.com/bulkhead-hv/bulkhead/board/qemuvirt"
	"github.com/bulkhead-hv/bulkhead/cpu"
	"github.com/bulkhead-hv/bulkhead/cpumux"
	"github.com/bulkhead-hv/bulkhead/fwcfg"
	"github.com/bulkhead-hv/bulkhead/gic"
	"github.com/bulkhead-hv/bulkhead/hyp"
	"github.com/bulkhead-hv/bulkhead/hyp/ledger"
	"github.com/bulkhead-hv/bulkhead/vcpu"
	"github.com/bulkhead-hv/bulkhead/virtio/mmioreg"
)

// hwCPU is the physical CPU the calling scheduler loop runs on, as the
// scheduler drives it. Every CPU's loop is a goroutine locked to an M that
// stays on its CPU (startMux, cpumux.MoveTo).
type hwCPU struct {
	*vcpu.PerCPU
}

// SGIs between the CPUs (cpu.WakeSGI, 8, ends an idle CPU's WFI).
const (
	kickSGI  = 9  // the scheduler's kick (hyp.Config.Kick)
	crashSGI = 11 // the idle thread, which has no goroutine, crashed (cpu.RemoteCrash)
)

// The EL2 timer's interrupt, the virtual timer's and the EL1 physical
// timer's (the multiplexer's deadlines: startMux).
var hypTimerPPI, vtimerPPI, physTimerPPI uint32

// goWaiting says the boot CPU's other threads should have it: the EL2
// timer fired, or its loop has not given way for a time slice (giveBy).
// Those threads run the goroutines that are not scheduler loops (the
// collector's workers among them), with the P that startMux leaves spare,
// and only when the boot CPU's loop gives way: a goroutine a mark assist
// parked is readied only by the collector's worker, and the EL2 timer does
// not fire once a slice when the vCPUs here all yield often (each turn
// starts a new slice). The boot CPU's loop gives way before it next enters
// a guest (Run; Resume, the lock-free exits' re-entry, need not check, as
// only the other exits set it).
var goWaiting atomic.Bool

// giveBy is the counter value by which the boot CPU's loop gives way even
// if no one asked (hwCPU.SetEL2Timer), and giveEvery how long after giving
// way that is (a time slice).
var giveBy, giveEvery uint64

// giveWay lets the boot CPU's other threads run. Only the boot CPU's loop
// calls it, without the scheduler lock.
func giveWay() {
	goWaiting.Store(false)
	cpumux.Yield()
	giveBy = cpu.ReadCNTPCT() + giveEvery
}

func (hwCPU) ReadLR(i int) uint64     { return gic.ReadLR(i) }
func (hwCPU) WriteLR(i int, v uint64) { gic.WriteLR(i, v) }
func (hwCPU) WriteICHHCR(v uint64)    { gic.WriteICHHCR(v) }
func (hwCPU) Counter() uint64         { return cpu.ReadCNTPCT() }

// Run enters the guest, on the boot CPU after its other threads have had
// their turn if they want one (goWaiting).
func (c hwCPU) Run(ctx *vcpu.Context) {
	if c.ID == 0 && goWaiting.Load() {
		giveWay()
	}
	c.PerCPU.Run(ctx)
}

// Resume enters the guest again after a lock-free exit: goWaiting is set
// only by exits that are not (an interrupt, a scheduler turn). No stack
// check (go:nosplit): the world switch's frame is on the exit stack.
//
//go:nosplit
func (c hwCPU) Resume(ctx *vcpu.Context) { c.PerCPU.Resume(ctx) }

// WaitForInterrupt idles until an interrupt is pending, letting the CPU's
// other threads run meanwhile.
func (c hwCPU) WaitForInterrupt() {
	if c.ID == 0 {
		goWaiting.Store(false)
		giveBy = cpu.ReadCNTPCT() + giveEvery
	}
	cpumux.WaitForInterrupt()
}

// Ack takes the next interrupt for the scheduler. The multiplexer's own
// (a kick that ended an idle WFI, its deadline timer) are ended here. The
// EL2 timer on the boot CPU is also a time for its other threads. An idle
// thread that crashed, which has no goroutine to report it, is reported
// from here, and the machine stops.
func (c hwCPU) Ack() uint32 {
	for {
		id := gic.Ack()
		switch id {
		case hypTimerPPI:
			if c.ID == 0 {
				goWaiting.Store(true)
			}
		case crashSGI:
			if f := cpu.RemoteCrash(); f != nil {
				cpu.FatalHandler(f)
			}
		case cpu.WakeSGI, physTimerPPI:
			gic.EOI(id)
			gic.Deactivate(id)
			continue
		}
		return id
	}
}

func (hwCPU) EOI(intid uint32) {
	gic.EOI(intid)
	gic.Deactivate(intid)
}

func (hwCPU) PriorityDrop(intid uint32) { gic.EOI(intid) }

func (hwCPU) LoadVTimer(ctl, cval, cntvoff uint64) {
	cpu.WriteCNTVOFF(cntvoff)
	cpu.WriteCNTV_CVAL(cval)
	cpu.WriteCNTV_CTL(ctl)
}

func (hwCPU) EnterVCPU(ctl, cval, cntvoff, vmcr, ap0r, ap1r, hcr uint64) {
	vcpu.LoadSwitched(ctl, cval, cntvoff, vmcr, ap0r, ap1r, hcr)
}

func (hwCPU) LeaveVCPU() (ctl, cval, vmcr, ap0r, ap1r uint64) { return vcpu.SaveSwitched() }

func (hwCPU) SaveVTimer() (ctl, cval uint64) {
	return cpu.ReadCNTV_CTL() &^ hyp.CNT_CTL_ISTATUS, cpu.ReadCNTV_CVAL()
}

func (c hwCPU) MaskVTimer(masked bool) { cpuGIC[c.ID].MaskPPI(vtimerPPI, masked) }

// SetEL2Timer arms the EL2 timer, as scheduler turns do (while vCPUs
// switch, at least once an eighth of a slice: Hyp.armEL2Timer): so it is
// where the boot CPU's loop notices that its other threads have not had
// the CPU for a slice (giveBy), off the hypercall round trip's path.
func (c hwCPU) SetEL2Timer(cval uint64) {
	if c.ID == 0 && cpu.ReadCNTPCT() >= giveBy {
		goWaiting.Store(true)
	}
	if cval == 0 {
		cpu.WriteCNTHP_CTL(0)
		return
	}
	cpu.WriteCNTHP_CVAL(cval)
	cpu.WriteCNTHP_CTL(hyp.CNT_CTL_ENABLE)
}

// physicalGIC is the GIC as the CPU with affinity aff drives it.
func physicalGIC(m *qemuvirt.Machine, aff uint64) (*gic.Physical, error) {
	var gicr []gic.Region
	for _, r := range m.GICR {
		gicr = append(gicr, gic.Region{Addr: r.Addr, Size: r.Size})
	}
	info, err := gic.Discover(qemuvirt.MMIO{}, m.GICD.Addr, gicr)
	if err != nil {
		return nil, err
	}
	return gic.NewPhysical(qemuvirt.MMIO{}, m.GICD.Addr, gicr, info, aff)
}

// initInterrupts brings up the physical GIC for this CPU and enables the
// private interrupts the scheduler uses. Guests' accesses to the EL1
// physical timer and counter trap (CNTHCTL_EL2.EL1PCEN and EL1PCTEN clear).
func initInterrupts(m *qemuvirt.Machine) error {
	aff := gic.Affinity(cpu.ReadMPIDR())
	p, err := physicalGIC(m, aff)
	if err != nil {
		return err
	}
	if err := p.InitDistributor(aff); err != nil {
		return err
	}
	if err := p.InitRedistributor(); err != nil {
		return err
	}
	gic.InitCPUInterface()
	for _, id := range []uint32{m.TimerHyp, m.TimerVirt, m.GICMaintenance, kickSGI, crashSGI} {
		p.EnablePPI(id, gic.HypervisorPriority)
	}
	// An idle thread runs no goroutine: a fault there is reported here
	// (Ack).
	cpu.SetCrashSGI(gic.SGI1R(crashSGI, cpu.ReadMPIDR()))
	hypTimerPPI, vtimerPPI, physTimerPPI = m.TimerHyp, m.TimerVirt, m.TimerPhys
	cpu.WriteCNTHCTL(0)
	cpu.WriteCNTHP_CTL(0)
	cpu.WriteMDCR(cpu.ReadMDCR()&cpu.MDCR_HPMN_MASK | cpu.MDCRGuest)
	cpu.UnlockOSLock()
	return nil
}

// hwTLB is stage 2 TLB maintenance on this machine.
type hwTLB struct{}

func (hwTLB) InvalidateIPA(vmid uint16, ipa uint64, level int) { cpu.TLBIStage2IPA(vmid, ipa) }
func (hwTLB) InvalidateAll()                                   { cpu.TLBIAllE1() }

// runGuests starts the guests the command line names, runs them until all
// have stopped, tears them down and checks that the ledger is back at its
// boot figures. It returns the hypervisor's exit status.
func runGuests(m *qemuvirt.Machine, specs []hyp.GuestSpec, control string) int {
	var ram fdt.Range
	for _, r := range m.RAM {
		if r.Addr <= qemuvirt.RAMBase && qemuvirt.RAMBase < r.End() {
			ram = r
		}
	}
	hypEnd := uint64(qemuvirt.RAMBase + qemuvirt.HypRAMSize)
	l := ledger.New(ram.Addr, int(ram.Size/ledger.PageSize), qemuvirt.Phys{})
	if err := l.Assign(qemuvirt.RAMBase, qemuvirt.HypRAMSize, ledger.Hypervisor); err != nil {
		fmt.Printf("bulkhead: ledger: %v\n", err)
		return 1
	}
	if err := l.Assign(hypEnd, ram.End()-hypEnd, ledger.Control); err != nil {
		fmt.Printf("bulkhead: ledger: %v\n", err)
		return 1
	}
	boot := l.Count()
	fmt.Printf("bulkhead: ledger at boot: %s\n", counts(boot))

	id := cpu.Decode(cpu.IDRegs{MMFR0: cpu.ReadIDAA64MMFR0(), MMFR1: cpu.ReadIDAA64MMFR1()})
	parange := cpu.ReadIDAA64MMFR0() & 0xf
	ipaBits := id.PARange
	if ipaBits > 48 || parange > 5 {
		ipaBits, parange = 48, 5 // 52-bit IPAs need FEAT_LPA2 descriptors
	}
	if err := initInterrupts(m); err != nil {
		fmt.Printf("bulkhead: interrupts: %v\n", err)
		return 1
	}
	base, pages := qemuvirt.S2Pool()
	pool := hyp.NewTablePool(qemuvirt.Phys{}, base, pages)
	dma, err := confineDMA(m)
	if err != nil {
		// A machine whose SMMU cannot be set up would leave the devices
		// the control partition drives free to reach any page.
		fmt.Printf("bulkhead: SMMU: %v; not starting\n", err)
		return 1
	}
	var poll func()
	if dma != nil {
		poll = dma.poll
	}
	// Physical CPU 0 is this one; the secondaries parked since they came
	// up follow.
	mpidrs, err := startMux(m)
	if err != nil {
		fmt.Printf("bulkhead: CPUs: %v\n", err)
		return 1
	}
	h := hyp.New(l, pool, qemuvirt.Phys{}, hwTLB{}, hyp.Config{
		IPABits: ipaBits, VMID16: id.VMID16, MIDR: cpu.ReadMIDR(),
		NumLRs: gic.NumLRs(),
		Slice:  qemuvirt.TimerFrequency() / 100, // 10 ms
		PPIs:   hyp.PPIs{Maintenance: m.GICMaintenance, HypTimer: m.TimerHyp, VTimer: m.TimerVirt, Kick: kickSGI},
		CPUs:   len(mpidrs),
		Kick:   func(id int) { gic.SendSGI(kickSGI, mpidrs[id]) },
		Now:    cpu.ReadCNTPCT,
		Trace:  qemuvirt.BootArgs(m.Bootargs)["trace"] == "exits",
		IDRegs: hyp.GuestIDRegs(cpu.ReadAA64IDRegs(), ipaBits),
		Poll:   poll,
	}, os.Stdout)
	if dma != nil {
		h.SetDMAView(dma)
	}
	cpu.WriteVTCR(h.VTCR(parange))
	percpu := hwCPU{vcpu.InitCPU(0)}
	giveEvery = qemuvirt.TimerFrequency() / 100 // 10 ms
	fmt.Printf("bulkhead: stage 2: %d-bit IPA space, %d-bit VMIDs, %d table pages; vGIC with %d list registers; 10 ms time slices\n",
		ipaBits, map[bool]int{false: 8, true: 16}[id.VMID16], pages, gic.NumLRs())
	if len(mpidrs) > 1 {
		fmt.Printf("bulkhead: guests run on %d CPUs, each handling its own guests' exits\n", len(mpidrs))
	}

	if control != "" {
		if err := startControl(h, l, m, hypEnd, control, specs, dma != nil); err != nil {
			fmt.Printf("bulkhead: control partition: %v\n", err)
			return 1
		}
		specs = nil // the control partition starts them
	}
	var images []hyp.Region
	for _, s := range specs {
		images = append(images, hyp.Region{PA: s.Image, Size: s.ImageSize})
	}
	placer := hyp.NewPlacer(hypEnd, ram.End(), images)
	for _, s := range specs {
		if !isControls(l, s.Image, s.ImageSize) {
			fmt.Printf("bulkhead: %s: image [%#x, +%#x) is not in the control partition's RAM\n", s.Key, s.Image, s.ImageSize)
			return 1
		}
		pa, err := placer.Place(s.Mem)
		if err == nil {
			var vm *hyp.VM
			if vm, err = h.StartGuest(s, qemuvirt.Phys{}.Bytes(s.Image, s.ImageSize), pa); err == nil {
				fmt.Printf("bulkhead: vm %s: %d MiB at IPA %#x, PA %#x; entry %#x, x0 %#x\n",
					vm.Name, s.Mem>>20, uint64(hyp.GuestIPA), pa, vm.VCPUs[0].Ctx.PC, s.Arg)
			}
		}
		if err != nil {
			fmt.Printf("bulkhead: %s: %v\n", s.Key, err)
			return 1
		}
	}

	// A scheduler loop per CPU, each a goroutine locked to an M on its
	// CPU: the secondaries' move there, CPU 0's is this one. Each loads
	// the EL2 state the boot CPU set after the secondaries came up.
	vtcr, mdcr := h.VTCR(parange), cpu.ReadMDCR()
	var finished atomic.Int32
	for i := 1; i < len(mpidrs); i++ {
		for _, id := range []uint32{m.TimerHyp, m.TimerVirt, m.GICMaintenance, kickSGI} {
			cpuGIC[i].EnablePPI(id, gic.HypervisorPriority)
		}
		go func() {
			runtime.LockOSThread()
			cpumux.MoveTo(i)
			cpu.WriteVTCR(vtcr)
			cpu.WriteMDCR(mdcr)
			cpu.UnlockOSLock()
			h.Run(i, hwCPU{vcpu.InitCPU(i)})
			finished.Add(1)
			// A goroutine that ends locked ends its M, which TamaGo
			// cannot do.
			runtime.UnlockOSThread()
		}()
	}
	runtime.LockOSThread()
	goWaiting.Store(true)
	h.Run(0, percpu)
	// Every VM has stopped: the secondaries' loops end at their next
	// turn, which a kick brings at once.
	for i := 1; i < len(mpidrs); i++ {
		gic.SendSGI(kickSGI, mpidrs[i])
	}
	for int(finished.Load()) < len(mpidrs)-1 {
		time.Sleep(time.Millisecond)
	}

	status := 0
	for _, vm := range h.VMs() {
		fmt.Printf("bulkhead: vm %s: status %d (%s); exits: %s; contained faults: %d\n",
			vm.Name, vm.Status, vm.Reason, exits(vm.ExitCounts()), vm.Faults)
		if vm == h.Control() {
			continue // its pages are the control partition's for good
		}
		ram := append([]hyp.Region(nil), vm.RAM...)
		n, err := h.DestroyVM(vm)
		if err != nil {
			fmt.Printf("bulkhead: vm %s: teardown: %v\n", vm.Name, err)
			status = 1
			continue
		}
		// Check the ledger's promise on the real memory: every byte the
		// guest had is zero before anyone else can be given it.
		for _, r := range ram {
			for i, b := range (qemuvirt.Phys{}).Bytes(r.PA, r.Size) {
				if b != 0 {
					fmt.Printf("bulkhead: vm %s: reclaimed page %#x is not zeroed\n", vm.Name, r.PA+uint64(i))
					return 1
				}
			}
		}
		fmt.Printf("bulkhead: vm %s: %d pages zeroed (checked) and returned to the control partition\n", vm.Name, n)
	}
	if err := h.ReleaseControl(); err != nil {
		fmt.Printf("bulkhead: control partition: %v\n", err)
		status = 1
	}
	now := l.Count()
	if err := l.Check(); err != nil {
		fmt.Printf("bulkhead: ledger: %v\n", err)
		status = 1
	}
	if counts(now) != counts(boot) {
		fmt.Printf("bulkhead: ledger after teardown: %s, but at boot: %s\n", counts(now), counts(boot))
		return 1
	}
	fmt.Printf("bulkhead: ledger after teardown: %s: back at its boot figures\n", counts(now))
	if free, size := pool.Free(), pool.Size(); free != size {
		fmt.Printf("bulkhead: stage 2 table pool: %d of %d pages still in use\n", size-free, size)
		return 1
	}
	return status
}

// isControls reports whether [pa, pa+size), an image a boot loader left,
// is all the control partition's memory.
func isControls(l *ledger.Ledger, start, size uint64) bool {
	for pa := start &^ (ledger.PageSize - 1); pa < start+size; pa += ledger.PageSize {
		if o, _, ok := l.Owner(pa); !ok || o != ledger.Control {
			return false
		}
	}
	return true
}

func counts(c ledger.Counts) string {
	guests := 0
	for _, n := range c.Guests {
		guests += n
	}
	return fmt.Sprintf("hypervisor %d pages, control %d, guests %d, shared %d, free %d",
		c.Hypervisor, c.Control, guests, c.Shared, c.Free)
}

func exits(m map[string]int) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// controlFile is the fw_cfg file a UEFI boot takes the control partition
// from (QEMU's -fw_cfg name=opt/org.bulkhead/control,file=IMAGE), and
// maxControl the largest image it reads.
const (
	controlFile = "opt/org.bulkhead/control"
	maxControl  = 32 << 20
)

// controlImage finds the control partition's ELF image: where a boot
// loader left it (control=ADDR:SIZE), or in QEMU's fw_cfg (control=fw_cfg),
// which is how it arrives under UEFI firmware, which owns RAM until it
// hands over.
func controlImage(l *ledger.Ledger, machine *qemuvirt.Machine, arg string) ([]byte, error) {
	if arg == "fw_cfg" {
		if machine.FwCfg.Size == 0 {
			return nil, fmt.Errorf("control=fw_cfg: the machine has no fw_cfg device")
		}
		r, err := fwcfg.Open(qemuvirt.FwCfg{Base: machine.FwCfg.Addr})
		if err != nil {
			return nil, err
		}
		return r.ReadFile(controlFile, maxControl)
	}
	addr, size, ok := strings.Cut(arg, ":")
	if !ok {
		return nil, fmt.Errorf("control=%q: want control=IMAGE_ADDR:IMAGE_SIZE or control=fw_cfg", arg)
	}
	pa, err1 := strconv.ParseUint(addr, 0, 64)
	n, err2 := strconv.ParseUint(size, 0, 64)
	if err1 != nil || err2 != nil || n == 0 {
		return nil, fmt.Errorf("control=%q: address and size must be numbers, the size not zero", arg)
	}
	if !isControls(l, pa, n) {
		return nil, fmt.Errorf("image [%#x, +%#x) is not in the control partition's RAM", pa, n)
	}
	return qemuvirt.Phys{}.Bytes(pa, n), nil
}

// startControl loads the control partition from its ELF image (see
// controlImage) into its own memory (IPA = PA) and starts it
// with x0 pointing at a page of its memory that holds the guestN= boot
// arguments: it starts those guests, through the management calls.
//
// With the DMA confined, it drives the PCIe functions behind the SMMU and
// none of the virtio-mmio transports, whose DMA nothing translates.
func startControl(h *hyp.Hyp, l *ledger.Ledger, machine *qemuvirt.Machine, hypEnd uint64, arg string, specs []hyp.GuestSpec, confined bool) error {
	image, err := controlImage(l, machine, arg)
	if err != nil {
		return err
	}
	ctl, err := h.CreateControl("control")
	if err != nil {
		return err
	}
	// The control partition drives the virtio devices (its host channel).
	var info strings.Builder
	if confined {
		line, err := passPCI(h, ctl, machine)
		if err != nil {
			return err
		}
		info.WriteString(line)
		fmt.Printf("bulkhead: control partition: PCIe root bus and BAR window passed through; virtio-mmio transports withheld (their DMA is untranslated)\n")
	} else {
		for _, r := range machine.Virtio {
			if err := h.PassThrough(ctl, r.Addr, r.Size); err != nil {
				return err
			}
		}
	}
	entry, err := h.LoadELF(ctl, image)
	if err != nil {
		return err
	}
	// A crashed control partition is started again from this copy, in
	// the hypervisor's memory (hyp/restart.go).
	h.SetControlImage(hyp.ControlImage{ELF: bytes.Clone(image), Info: hypEnd, Args: info.String(), ResetDevices: func() {
		if confined {
			stopPCIDMA(machine)
			return
		}
		for _, r := range machine.Virtio {
			mmioreg.Reset(qemuvirt.MMIO{}, r.Addr)
		}
	}})
	// The boot information page: the first page of the control
	// partition's memory, which its image must not use.
	for _, s := range specs {
		fmt.Fprintf(&info, "%s=%s:%#x:%d:%d:%#x:%d ", s.Key, s.Name, s.Image, s.ImageSize, s.Arg, s.Mem, s.CPUs)
	}
	page := make([]byte, ledger.PageSize)
	copy(page, info.String())
	qemuvirt.Phys{}.Write(hypEnd, page)
	h.AddVCPU(ctl, entry, hypEnd)
	ctl.Echo = true
	if err := h.StartDevices(ctl); err != nil {
		return err
	}
	fmt.Printf("bulkhead: control partition: entry %#x, %d guest(s) to start\n", entry, len(specs))
	return nil
}
