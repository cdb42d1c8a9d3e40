// Command bulkhead runs guests on the Bulkhead hypervisor.
//
//	bulkhead run [flags] IMAGE
//
// boots a private Bulkhead instance in QEMU (the hypervisor and its control
// partition), runs the ELF image as a guest, streams the guest's console to
// standard output and exits with the guest's exit status. See
// `bulkhead help run`.
package main

import (
	"fmt"
	"io"
	"os"
)

var version = "dev"

const usage = `bulkhead runs guests on the Bulkhead hypervisor, in QEMU.

Usage:

	bulkhead run [flags] IMAGE   run IMAGE (an AArch64 ELF) as a guest
	bulkhead up [--name N]       boot an instance in the background
	bulkhead ps [--name N]       list an instance's VMs
	bulkhead down [--name N]     shut an instance down
	bulkhead version             print the version
	bulkhead help [COMMAND]      print help

"bulkhead run" boots a private instance (the EL2 hypervisor and its
control partition) in QEMU, has the control partition load IMAGE into a
new VM, streams the guest's console to standard output, and exits with the
guest's exit status. "bulkhead help run" lists its flags.

"bulkhead up" boots an instance that stays up; "ps" and "down" reach it
through the control partition's host channel (a virtio console on a unix
socket in $XDG_RUNTIME_DIR/bulkhead/NAME). Running images in an instance
that is up (uploading them over the channel) is not there yet: "run"
always boots its own.
`

func main() {
	os.Exit(cli(os.Args[1:], os.Stdout, os.Stderr))
}

// cli runs one command and returns the process exit status.
func cli(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stdout, stderr)
	case "up":
		return cmdUp(args[1:], stdout, stderr)
	case "ps":
		return cmdPs(args[1:], stdout, stderr)
	case "down":
		return cmdDown(args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintf(stdout, "bulkhead %s\n", version)
		return 0
	case "help", "-h", "--help":
		if len(args) > 1 {
			switch args[1] {
			case "run":
				return cmdRun([]string{"-h"}, stdout, stderr)
			case "up":
				return cmdUp([]string{"-h"}, stdout, stderr)
			case "ps":
				return cmdPs([]string{"-h"}, stdout, stderr)
			case "down":
				return cmdDown([]string{"-h"}, stdout, stderr)
			}
		}
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "bulkhead: unknown command %q\n\n%s", args[0], usage)
	return 2
}
