//go:build tamago && crashcontrol

// The crash test build (build tag crashcontrol, image
// bulkhead-control-crashtest.elf): a control partition with a "crash"
// request, so that tests can crash it on purpose and watch the hypervisor
// restart it. Without a name it panics (EXIT(2)); with a VM's name it
// stores into that VM's first page, which stage 2 keeps from it, and dies
// of the abort (EXIT(128 + EC)). It answers first, so the caller knows
// the request arrived.
package main

import (
	"fmt"
	"unsafe"
)

func init() {
	testOps = map[string]func(c *control, ch *session, r request){"crash": crash}
}

func crash(c *control, ch *session, r request) {
	var target *guest
	if r.Name != "" {
		if target = c.find(r.Name); target == nil {
			ch.send(map[string]any{"id": r.ID, "ok": false, "error": fmt.Sprintf("no VM named %q", r.Name)})
			return
		}
	}
	ch.send(map[string]any{"id": r.ID, "ok": true})
	if target == nil {
		panic("control: crash requested")
	}
	fmt.Printf("control: crash: storing into %s's page %#x\n", target.boot.Name, target.pa)
	*(*uint64)(unsafe.Pointer(uintptr(target.pa))) = 0xdead
	panic("control: the store into a guest's page went through")
}
