//go:build tamago

// Command hyp is Bulkhead's EL2 kernel for QEMU's virt machine.
//
// Build it with `make` and boot it with `make run`. The kernel stays at EL2
// for its whole life; it learns the machine from the device tree QEMU
// passes and reports any exception it cannot handle, then powers off.
package main

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/bulkhead-hv/bulkhead/board/qemuvirt"
	"github.com/bulkhead-hv/bulkhead/hyp"
	_ "github.com/bulkhead-hv/bulkhead/hyp/crash"
)

// version is set by the Makefile from git describe.
var version = "unknown"

// Boot arguments the kernel understands, with what they do.
var knownArgs = map[string]string{
	"exit":      "exit=semihosting: end QEMU with the kernel's exit status (needs -semihosting-config enable=on)",
	"crashtest": "crashtest=NAME: fault on purpose after the banner (images built with the crashtest tag only)",
	"guestN":    "guestN=NAME:IMAGE_ADDR:IMAGE_SIZE[:ARG[:MEM[:CPUS[:PCPU]]]]: run the ELF image a boot loader put at IMAGE_ADDR as a guest, its vCPUs pinned to physical CPU PCPU if given",
	"trace":     "trace=exits: print every guest exit",
	"control":   "control=IMAGE_ADDR:IMAGE_SIZE or control=fw_cfg: run that ELF image (or QEMU's fw_cfg file opt/org.bulkhead/control) as the control partition, which starts the guests",
	"smptest":   "smptest[=SECONDS]: run Go on every CPU (fixed work at once and in turn, then SECONDS (2) of GC stress) and power off (images built with the crashtest tag only)",
}

func main() {
	m, err := qemuvirt.Boot()
	if err != nil {
		fmt.Printf("bulkhead: cannot boot: %v\n", err)
		os.Exit(1)
	}
	printBanner(os.Stdout, m)
	fmt.Printf("bulkhead: %d of %d CPU(s) up at EL2\n", startCPUs(m), len(m.CPUs))

	args := qemuvirt.BootArgs(m.Bootargs)
	keys := make([]string, 0, len(args))
	for k := range args {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if _, ok := knownArgs[k]; !ok && !strings.HasPrefix(k, "guest") {
			fmt.Printf("bulkhead: warning: ignoring unknown boot argument %q (known: %s)\n", k, strings.Join(sortedKeys(knownArgs), ", "))
		}
	}
	if name, ok := args["crashtest"]; ok {
		crashTest(name)
	}
	if v, ok := args["smptest"]; ok {
		smpTest(m, v)
		return
	}

	specs, err := hyp.ParseGuestSpecs(args)
	if err != nil {
		fmt.Printf("bulkhead: %v\n", err)
		os.Exit(1)
	}
	if len(specs) == 0 && args["control"] == "" {
		fmt.Println("bulkhead: no guests given (guestN= boot arguments); powering off")
		return
	}
	os.Exit(runGuests(m, specs, args["control"]))
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
