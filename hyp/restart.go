package hyp

import (
	"fmt"
	"strings"

	"github.com/bulkhead-hv/bulkhead/abi"
	"github.com/bulkhead-hv/bulkhead/hyp/ledger"
)

// A control partition that crashes is started again from its image, and
// the guests run on meanwhile: nothing of theirs depends on it but their
// consoles' draining (their output waits in the hypervisor's rings) and
// the devices it emulates (an access waits, and is handed out again to the
// new partition). The new partition finds the VMs with VM_LIST.

// ControlImage is what the hypervisor restarts the control partition from.
type ControlImage struct {
	// ELF is the image, copied into the hypervisor's memory at boot: the
	// copy the boot loader left is in the control partition's pages,
	// where the partition that crashed may have written anything.
	ELF []byte
	// Info is the boot information page (its first page), which reads
	// "restart=N" for the Nth restart, then Args.
	Info uint64
	// Args are the boot arguments about the machine that every start of
	// the control partition gets (where the PCIe host bridge is).
	Args string
	// ResetDevices resets the devices passed through to it, so that none
	// of them writes into memory the image is reloaded over by DMA that
	// the crashed partition set up.
	ResetDevices func()
}

// Restart policy: a partition that crashes within restartWindow of its
// start, more than maxQuickCrashes times in a row, is not started again.
const (
	maxQuickCrashes = 3
	restartWindow   = 1000 // time slices: 10 s
)

// SetControlImage makes a crashed control partition restartable.
func (h *Hyp) SetControlImage(img ControlImage) {
	h.controlImage = &img
	h.controlSince = h.now()
}

func (h *Hyp) now() uint64 {
	if h.cfg.Now == nil {
		return 0
	}
	return h.cfg.Now()
}

// crashed reports whether the control partition's stop is a crash rather
// than its end. Its end is powering off or an EXIT with a status its main
// chose, 0 or 1 (the run went well, or something went wrong that it
// reported); a crash is a fault the hypervisor stopped it for, a reset it
// asked for, or an EXIT its runtime made for it: 2 for a Go panic or
// fatal error, 128 + EC for an exception its vectors could not handle
// (board/bulkheadvm).
func crashed(why uint64, status int64) bool {
	switch why {
	case abi.StopExit:
		return status >= 2
	case abi.StopPowerOff:
		return false
	}
	return true
}

// controlStopped decides, as the control partition stops, whether it is
// restarted (restartControl, from a scheduler loop, once its vCPU has left
// the CPU). One that keeps crashing at once takes the guests down with it:
// the machine stops, reporting why, rather than loop.
func (h *Hyp) controlStopped(why uint64, status int64) {
	if h.controlImage == nil || !crashed(why, status) {
		return
	}
	if h.now()-h.controlSince < restartWindow*h.cfg.Slice {
		h.quickCrashes++
	} else {
		h.quickCrashes = 1
	}
	if h.quickCrashes > maxQuickCrashes {
		fmt.Fprintf(h.Out, "bulkhead: the control partition crashed %d times in a row within %d s of its start: not restarting it; stopping every guest\n",
			h.quickCrashes, restartWindow/100)
		for _, vm := range h.vms {
			if vm != h.control && vm.State != Stopped {
				h.stopf(vm, -1, "the control partition kept crashing")
			}
		}
		return
	}
	fmt.Fprintf(h.Out, "bulkhead: the control partition crashed (%s): restarting it from its image\n", h.control.Reason)
	h.restartPending = true
}

// restartControl starts the crashed control partition again from its
// image, with its stage 2 as it was: every page the ledger says is the
// control partition's, and nothing a guest owns. Called by a scheduler
// loop, under the scheduler lock, once no CPU runs its vCPUs.
func (h *Hyp) restartControl() {
	c := h.control
	for _, v := range c.VCPUs {
		if v.running {
			return // still leaving the guest elsewhere: later
		}
	}
	h.restartPending = false
	h.restarts++
	img := h.controlImage
	if img.ResetDevices != nil {
		img.ResetDevices()
	}
	// Accesses the crashed partition took and never answered, and its
	// VM_WAIT, are the new one's to take.
	for _, vm := range h.vms {
		for _, v := range vm.VCPUs {
			if v.mmio != nil {
				v.mmio.delivered = false
			}
		}
	}
	if h.waiter != nil && h.waiter.VM == c {
		h.waiter = nil
	}
	entry, err := h.LoadELF(c, img.ELF)
	if err != nil {
		// It loaded at boot from the same bytes, which only the
		// hypervisor holds.
		fmt.Fprintf(h.Out, "bulkhead: control partition: cannot reload its image: %v\n", err)
		return
	}
	page := make([]byte, ledger.PageSize)
	copy(page, strings.TrimSpace(fmt.Sprintf("restart=%d %s", h.restarts, img.Args)))
	h.phys.Write(img.Info, page)
	c.mmio = nil // its vGIC and UART, made anew below
	for i, v := range c.VCPUs {
		v.Ctx.Reset(entry, img.Info)
		v.timer = vtimer{}
		v.On, v.blocked, v.napUntil, v.mmio = i == 0, false, 0, nil
	}
	if err := h.StartDevices(c); err != nil {
		fmt.Fprintf(h.Out, "bulkhead: control partition: restart: %v\n", err)
		return
	}
	c.State, c.Status, c.Why, c.Reason, c.faultsInARow = Running, 0, 0, "", 0
	// Its new page tables must not meet the old ones' translations.
	h.tlb.InvalidateAll()
	h.controlSince = h.now()
	h.CheckInvariants()
	running := 0
	for _, vm := range h.vms {
		if vm != c && vm.State == Running {
			running++
		}
	}
	fmt.Fprintf(h.Out, "bulkhead: control partition restarted from its image (restart %d); %d guest(s) kept running\n", h.restarts, running)
	h.enqueue(c.VCPUs[0])
}
