//go:build tamago

package main

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/bulkhead-hv/bulkhead/abi"
	vm "github.com/bulkhead-hv/bulkhead/board/bulkheadvm"
	"github.com/bulkhead-hv/bulkhead/hyp"
	"github.com/bulkhead-hv/bulkhead/vdev/pl031"
)

// listed is one VM as VM_LIST describes it, its RAM regions gathered.
type listed struct {
	handle, state, status, why, vcpus uint64
	name                              string
	ram                               []hyp.Region
}

// listVMs asks the hypervisor for every VM that exists (VM_LIST), a page
// of entries at a time.
func listVMs() ([]*listed, error) {
	var out []*listed
	for first := uint64(0); ; {
		code, n, total, _ := vm.Hypercall4(abi.VM_LIST, first, addr(conBuf), uint64(len(conBuf)))
		if int64(code) != abi.SUCCESS {
			return nil, fmt.Errorf("VM_LIST: %s", errText(int64(code)))
		}
		for i := uint64(0); i < n; i++ {
			var w [abi.ListWords]uint64
			for j := range w {
				w[j] = binary.LittleEndian.Uint64(conBuf[(int(i)*abi.ListWords+j)*8:])
			}
			if len(out) == 0 || out[len(out)-1].handle != w[abi.ListVM] {
				var name [16]byte
				binary.LittleEndian.PutUint64(name[:], w[abi.ListName])
				binary.LittleEndian.PutUint64(name[8:], w[abi.ListName+1])
				out = append(out, &listed{handle: w[abi.ListVM], state: w[abi.ListState], status: w[abi.ListStatus],
					why: w[abi.ListWhy], vcpus: w[abi.ListVCPUs], name: string(bytes.TrimRight(name[:], "\x00"))})
			}
			if w[abi.ListSize] != 0 {
				l := out[len(out)-1]
				l.ram = append(l.ram, hyp.Region{PA: w[abi.ListPA], IPA: w[abi.ListIPA], Size: w[abi.ListSize]})
			}
		}
		first += n
		if first >= total || n == 0 {
			return out, nil
		}
	}
}

// adopt takes over, after a restart, the VMs the crashed control partition
// left: one it was still building is destroyed (what it was to become
// went with its builder); the others, running or stopped, are served as
// if started here, and their memory is kept out of the placer's hands.
// What does not survive: a guest's reset (its image went with the crashed
// partition, so a reset ends it), console input not yet passed on, and
// the state of the devices emulated here (a PL031's match and load
// registers start again from zero; its count is the host's time).
func adopt() []*guest {
	vms, err := listVMs()
	if err != nil {
		fmt.Printf("control: restart: %v\n", err)
		return nil
	}
	var out []*guest
	for _, l := range vms {
		if l.state == abi.StateCreated {
			code, pages := call(abi.VM_DESTROY, l.handle)
			fmt.Printf("control: restart: %s (VM %d) was still being built: destroyed (%s, %d pages back)\n", l.name, l.handle, errText(code), pages)
			continue
		}
		g := &guest{boot: bootSpec{GuestSpec: hyp.GuestSpec{Name: l.name, CPUs: int(l.vcpus)}}, handle: l.handle,
			rtc: &pl031.RTC{Now: hostSeconds}, rtcLine: true} // rtcLine: its line may be high; the first drive lowers it
		for _, r := range l.ram {
			g.boot.Mem += r.Size
			placer.Claim(r.PA, r.Size)
			g.ram = append(g.ram, r.PA)
		}
		if len(l.ram) > 0 {
			g.pa = l.ram[0].PA
		}
		state := "running"
		if l.state == abi.StateStopped {
			state = fmt.Sprintf("stopped with status %d", int32(l.status))
		}
		fmt.Printf("control: restart: took back %s (VM %d, %s): %d MiB, %d vCPU(s)\n", l.name, l.handle, state, g.boot.Mem>>20, l.vcpus)
		out = append(out, g)
	}
	return out
}
