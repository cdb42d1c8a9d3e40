// Command bulkhead runs guests on the Bulkhead hypervisor, in QEMU.
//
//	bulkhead run [flags] IMAGE
//
// runs IMAGE as a guest, streams its console to standard output and exits
// with its exit status: in the instance that is up (bulkhead up), or in a
// private one booted for it. up, ps, console, stop, move, stats and down manage
// instances and their VMs. See `bulkhead help`.
package main

import (
	"fmt"
	"io"
	"os"
)

var version = "dev"

const usage = `bulkhead runs guests on the Bulkhead hypervisor, in QEMU.

Usage:

	bulkhead run [flags] IMAGE     run IMAGE as a guest, stream its console
	bulkhead up [flags]            boot an instance that stays up
	bulkhead ps [flags]            list an instance's VMs
	bulkhead console [flags] VM    attach to a VM's console (Ctrl-] detaches)
	bulkhead stop [flags] VM       stop a VM
	bulkhead move [flags] VM VCPU CPU  move a vCPU to another physical CPU
	bulkhead stats [flags]         VMs' counters and the machine's page ledger
	bulkhead down [flags]          shut an instance down
	bulkhead credentials [flags]   issue or revoke a client certificate for --remote
	bulkhead version               print the version
	bulkhead help [COMMAND]        print a command's help, with examples

An instance is QEMU running the EL2 hypervisor and its control partition,
with a broker in the background that relays every command to the control
partition's host channel; its state is in $XDG_RUNTIME_DIR/bulkhead/NAME.
"bulkhead up" boots one (named "default" unless --name says otherwise) and
"run" uploads images to it, so that several VMs run side by side; without
one, "run" boots a private instance for its image and brings it down after.

	bulkhead up
	bulkhead run --name a build/guest-hello.elf
	bulkhead ps; bulkhead stats
	bulkhead down

Every instance command takes --name (or --instance) for the instance, and
--json where its output is data.

An instance booted with up --listen PORT also serves its commands over the
network, TLS 1.3 with client certificates, as a server with no host beside
it does; bulkhead --remote HOST:PORT COMMAND reaches it there.

	bulkhead up --listen 7443
	bulkhead --remote 127.0.0.1:7443 ps

` + remoteHelp

func main() {
	os.Exit(cli(os.Args[1:], os.Stdout, os.Stderr))
}

// commands, by name; each takes its arguments and returns the exit status.
var commands = map[string]func(args []string, stdout, stderr io.Writer) int{
	"run":         cmdRun,
	"up":          cmdUp,
	"ps":          cmdPs,
	"console":     cmdConsole,
	"stop":        cmdStop,
	"move":        cmdMove,
	"stats":       cmdStats,
	"down":        cmdDown,
	"credentials": cmdCredentials,
}

// cli runs one command and returns the process exit status.
func cli(args []string, stdout, stderr io.Writer) int {
	remote, notices = remoteFlags{}, stderr
	args, err := parseGlobal(args)
	if err != nil {
		fmt.Fprintf(stderr, "bulkhead: %v\n", err)
		return exitUsage
	}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	if cmd, ok := commands[args[0]]; ok {
		return cmd(args[1:], stdout, stderr)
	}
	switch args[0] {
	case brokerCmd:
		return cmdBroker(args[1:], stderr)
	case "version", "--version":
		fmt.Fprintf(stdout, "bulkhead %s\n", version)
		return 0
	case "help", "-h", "--help":
		if len(args) > 1 {
			if cmd, ok := commands[args[1]]; ok {
				return cmd([]string{"-h"}, stdout, stdout)
			}
			fmt.Fprintf(stderr, "bulkhead help: no command %q\n\n", args[1])
			fmt.Fprint(stderr, usage)
			return exitUsage
		}
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "bulkhead: unknown command %q\n\n%s", args[0], usage)
	return exitUsage
}
