package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"unsafe"

	"github.com/bulkhead-hv/bulkhead/client"
)

// stdin is what console sends to the guest; tests replace it.
var stdin io.Reader = os.Stdin

// detachKey is Ctrl-], telnet's escape.
const detachKey = 0x1d

const consoleUsage = `Usage: bulkhead console [flags] VM

Attaches to a running VM's console: prints its recent output and whatever
it prints from now on, and sends it what you type. On a terminal, keys go
to the guest as they are typed, Ctrl-C included; Ctrl-] detaches, like
telnet, and leaves the VM running. With standard input from a file or a
pipe, that is sent to the guest up to its end, then the console is printed
until the VM stops or Ctrl-C detaches. console exits with the VM's status
when it stops, 0 when detached with Ctrl-], 130 with Ctrl-C.

Examples:
	bulkhead console web
	echo 'uname -a' | bulkhead console --name big linux
	bulkhead console --json web </dev/null
`

func cmdConsole(args []string, stdout, stderr io.Writer) int {
	fs, name := commandFlags("console", consoleUsage, stderr)
	asJSON := fs.Bool("json", false, "print JSON lines: the console's lines and the VM's exit")
	pos, err := parseArgs(fs, args, "VM")
	if err != nil {
		return failed("console", err, exitUsage, stderr)
	}
	vm := pos[0]
	_, cl, code, err := instanceClient(name)
	if err != nil {
		return failed("console", err, code, stderr)
	}
	defer cl.Close()
	// Attached before ps: an exit cannot fall between the two unseen.
	attachID, err := cl.Send(map[string]any{"op": "attach", "name": vm})
	if err != nil {
		return failed("console", err, exitInternal, stderr)
	}
	psID, err := cl.Send(map[string]any{"op": "ps"})
	if err != nil {
		return failed("console", err, exitInternal, stderr)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	tty := isTerminal(stdin)
	restore := func() {}
	defer func() { restore() }()

	out := &consoleOut{w: stdout, json: *asJSON, vm: vm}
	ended := func(st int) int {
		out.flush()
		restore()
		if *asJSON {
			json.NewEncoder(stdout).Encode(map[string]any{"event": "exit", "vm": vm, "status": st})
		} else {
			fmt.Fprintf(stderr, "\nbulkhead: %s stopped with status %d\n", vm, st)
		}
		return st & 0xff
	}
	var input <-chan []byte
	listed, inputErr := false, false
	for {
		select {
		case m, ok := <-cl.Msgs():
			if !ok {
				restore()
				return failed("console", cl.Lost(), exitInternal, stderr)
			}
			switch {
			case m.Event == "console" && m.VMName() == vm:
				out.write(m.Data)
			case m.Event == "exit" && m.VMName() == vm && listed:
				return ended(m.Status)
			case m.Event != "":
			case m.ID == attachID && !m.OK:
				return failed("console", fmt.Errorf("attach %s: %s", vm, m.Error), exitInternal, stderr)
			case m.ID == psID:
				var list struct {
					VMs []client.VMInfo `json:"vms"`
				}
				if !m.OK || json.Unmarshal(m.Raw(), &list) != nil {
					return failed("console", fmt.Errorf("ps: %s", m.Error), exitInternal, stderr)
				}
				v, ok := client.Find(list.VMs, vm)
				if !ok {
					return failed("console", unknownVM(vm, *name), exitUsage, stderr)
				}
				if v.State != "running" {
					return ended(v.Status)
				}
				listed = true
				detach := "Ctrl-C detaches"
				if tty {
					detach = "Ctrl-] detaches"
					r, err := rawMode(stdin.(*os.File))
					if err != nil {
						fmt.Fprintf(stderr, "bulkhead: the terminal stays in line mode (%v)\n", err)
						tty = false
					} else {
						restore = r
					}
				}
				fmt.Fprintf(stderr, "bulkhead: attached to %s in instance %q; %s\r\n", vm, *name, detach)
				input = readInput(stdin)
			case !m.OK && !inputErr:
				// Input the guest could not take: said once.
				inputErr = true
				fmt.Fprintf(stderr, "\r\nbulkhead: input to %s: %s\r\n", vm, m.Error)
			}
		case b, ok := <-input:
			if !ok {
				input = nil // end of input: the console goes on
				continue
			}
			if tty {
				if i := bytes.IndexByte(b, detachKey); i >= 0 {
					if i > 0 {
						cl.Send(map[string]any{"op": "input", "name": vm, "data": b[:i]})
					}
					out.flush()
					restore()
					fmt.Fprintf(stderr, "\nbulkhead: detached from %s; it runs on\n", vm)
					return 0
				}
			}
			if _, err := cl.Send(map[string]any{"op": "input", "name": vm, "data": b}); err != nil {
				restore()
				return failed("console", err, exitInternal, stderr)
			}
		case s := <-sigs:
			out.flush()
			restore()
			fmt.Fprintf(stderr, "\nbulkhead: detached from %s (%v); it runs on\n", vm, s)
			return 130
		}
	}
}

// readInput delivers what r reads, until its end.
func readInput(r io.Reader) <-chan []byte {
	ch := make(chan []byte, 16)
	go func() {
		defer close(ch)
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				ch <- bytes.Clone(buf[:n])
			}
			if err != nil {
				return
			}
		}
	}()
	return ch
}

func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	var t syscall.Termios
	_, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TCGETS, uintptr(unsafe.Pointer(&t)))
	return e == 0
}

// rawMode passes keys through as they are typed, unechoed, signals
// included, with stty (golang.org/x/term is not among the module's
// dependencies); output keeps its newline translation. restore puts the
// terminal back as it was.
func rawMode(tty *os.File) (restore func(), err error) {
	stty := func(args ...string) (string, error) {
		cmd := exec.Command("stty", args...)
		cmd.Stdin = tty
		out, err := cmd.Output()
		return strings.TrimSpace(string(out)), err
	}
	saved, err := stty("-g")
	if err != nil {
		return nil, fmt.Errorf("stty -g: %v", err)
	}
	if _, err := stty("raw", "-echo", "opost"); err != nil {
		return nil, fmt.Errorf("stty raw: %v", err)
	}
	return func() { stty(saved) }, nil
}
