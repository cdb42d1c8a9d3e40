package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bulkhead-hv/bulkhead/client"
)

// instanceClient loads the instance a command names (or --remote, whose
// address then becomes the name) and connects to it.
func instanceClient(name *string) (*client.Instance, *client.Client, int, error) {
	in, code, err := targetInstance(*name)
	if err != nil {
		return nil, nil, code, err
	}
	*name = in.Name
	cl, err := client.Connect(in)
	if err != nil {
		return nil, nil, exitInternal, err
	}
	return in, cl, 0, nil
}

const psUsage = `Usage: bulkhead ps [flags]

Lists an instance's VMs: running ones, and stopped ones whose console is
still being drained, with their exit status. A VM leaves the list once it
is destroyed; its status went to the run or console attached to it.

Examples:
	bulkhead ps
	bulkhead ps --name big --json
`

func cmdPs(args []string, stdout, stderr io.Writer) int {
	fs, name := commandFlags("ps", psUsage, stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parseArgs(fs, args); err != nil {
		return failed("ps", err, exitUsage, stderr)
	}
	_, cl, code, err := instanceClient(name)
	if err != nil {
		return failed("ps", err, code, stderr)
	}
	defer cl.Close()
	vms, raw, err := cl.PS()
	if err != nil {
		return failed("ps", err, exitInternal, stderr)
	}
	if *asJSON {
		json.NewEncoder(stdout).Encode(map[string]any{"instance": *name, "vms": raw})
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVM\tSTATE\tSTATUS\tMEM\tCPUS\tDISKS\tNET")
	for _, v := range vms {
		disks := "-"
		for i, d := range v.Disks {
			if i == 0 {
				disks = ""
			} else {
				disks += ","
			}
			disks += d.Dev + "=" + d.Drive
			if d.RO {
				disks += "(ro)"
			}
		}
		net := "-"
		if v.Net != nil {
			net = v.Net.Dev + "=" + v.Net.MAC
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Name, v.VM, v.State, status(v.State, v.Status), mib(v.Mem), orDash(v.CPUs), disks, net)
	}
	tw.Flush()
	return 0
}

func status(state string, n int) string {
	if state == "running" {
		return "-"
	}
	return strconv.Itoa(n)
}

func mib(b uint64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%dM", b>>20)
}

func orDash(n int) string {
	if n == 0 {
		return "-"
	}
	return strconv.Itoa(n)
}

const stopUsage = `Usage: bulkhead stop [flags] VM

Stops a running VM: the hypervisor stops its vCPUs, the control partition
drains its console, destroys it and takes its pages back, zeroed. Its exit
status is 143, which a bulkhead run attached to it exits with. stop
returns once the VM is gone, and prints its status.

Examples:
	bulkhead stop web
	bulkhead stop --name big web
`

func cmdStop(args []string, stdout, stderr io.Writer) int {
	fs, name := commandFlags("stop", stopUsage, stderr)
	asJSON := fs.Bool("json", false, "print the VM's exit as JSON")
	pos, err := parseArgs(fs, args, "VM")
	if err != nil {
		return failed("stop", err, exitUsage, stderr)
	}
	vm := pos[0]
	_, cl, code, err := instanceClient(name)
	if err != nil {
		return failed("stop", err, code, stderr)
	}
	defer cl.Close()
	report := func(st int, already bool) int {
		switch {
		case *asJSON:
			json.NewEncoder(stdout).Encode(map[string]any{"event": "exit", "vm": vm, "status": st, "already": already})
		case already:
			fmt.Fprintf(stdout, "%s had already stopped (status %d)\n", vm, st)
		default:
			fmt.Fprintf(stdout, "%s stopped (status %d)\n", vm, st)
		}
		return 0
	}
	vms, _, err := cl.PS()
	if err != nil {
		return failed("stop", err, exitInternal, stderr)
	}
	v, ok := client.Find(vms, vm)
	if !ok {
		return failed("stop", unknownVM(vm, *name), exitUsage, stderr)
	}
	if v.State != "running" {
		return report(v.Status, true)
	}
	id, err := cl.Send(map[string]any{"op": "stop", "name": vm})
	if err != nil {
		return failed("stop", err, exitInternal, stderr)
	}
	var refused error
	answered := false
	timeout := time.After(client.AnswerTimeout)
	for {
		select {
		case m, ok := <-cl.Msgs():
			if !ok {
				return failed("stop", cl.Lost(), exitInternal, stderr)
			}
			switch {
			case m.Event == "exit" && m.VMName() == vm:
				return report(m.Status, refused != nil)
			case m.Event == "" && m.ID == id && !m.OK:
				// It may be ending by itself: its exit comes soon.
				refused = fmt.Errorf("%s: %s", vm, m.Error)
				timeout = time.After(3 * time.Second)
			case m.Event == "" && m.ID == id:
				answered = true
				timeout = time.After(15 * time.Second)
			}
		case <-timeout:
			switch {
			case refused != nil:
				return failed("stop", refused, exitInternal, stderr)
			case !answered:
				return failed("stop", fmt.Errorf("no answer from instance %s within %v", *name, client.AnswerTimeout), exitInternal, stderr)
			}
			return failed("stop", fmt.Errorf("%s did not stop within 15s of being asked to; see bulkhead ps, and the instance's log", vm), exitInternal, stderr)
		}
	}
}

// Per-VM counters and the machine's ledger, as stats reports them.
type vmStats struct {
	Name           string           `json:"name"`
	VM             int              `json:"vm"`
	State          string           `json:"state"`
	Status         int              `json:"status"`
	RunMS          int64            `json:"run_ms"`
	Pages          int64            `json:"pages"`
	Faults         int64            `json:"faults"`
	VCPUs          int              `json:"vcpus"`
	ConsolePending int64            `json:"console_pending"`
	Exits          map[string]int64 `json:"exits"`
	Disks          []client.Disk    `json:"disks"`
	Net            *client.NIC      `json:"net"`
}

type machineStats struct {
	Pages      int64 `json:"pages"`
	Free       int64 `json:"free"`
	Hypervisor int64 `json:"hypervisor"`
	Control    int64 `json:"control"`
	Guests     int64 `json:"guests"`
	Shared     int64 `json:"shared"`
	VMs        int   `json:"vms"`
	TablePages int64 `json:"table_pages"`
	// Checks and Violations count the hypervisor's checks of the
	// invariants the proofs state (hyp.CheckInvariants), one of them
	// made for this report.
	Checks     int64 `json:"invariant_checks"`
	Violations int64 `json:"invariant_violations"`
	// Restarts counts the control partition's restarts after crashes.
	Restarts int64 `json:"control_restarts"`
	// DMAConfined is 1 when an SMMU confines the control partition's
	// devices, and DMAFaults counts the transactions it stopped.
	DMAConfined int64 `json:"dma_confined"`
	DMAFaults   int64 `json:"dma_faults"`
}

// cpuStats is one physical CPU's figures: the guest exits it handled (each
// CPU handles its own vCPUs' exits), the vCPUs homed there and the time
// guests ran on it.
type cpuStats struct {
	CPU   int   `json:"cpu"`
	Exits int64 `json:"exits"`
	VCPUs int   `json:"vcpus"`
	RunMS int64 `json:"run_ms"`
}

const statsUsage = `Usage: bulkhead stats [flags]

Shows each VM's state, exit status, run time, pages (and MiB), stage 2
faults, vCPUs and exits by reason, then the machine's page ledger: how many
pages are free, the hypervisor's, the control partition's, the guests' and
shared, how many VMs exist and how many stage 2 table pages are free, and
for each physical CPU the guest exits it handled, the vCPUs homed there
and how long guests ran on it. When
every VM has stopped, guests is 0 and the rest is back at its boot figures.
Last, whether the invariants the proofs state hold on the live machine: the
hypervisor checks them for each report and after each VM is destroyed, and
counts its checks and the violations it found; how many times the
control partition crashed and was restarted from its image while the
guests ran on; and whether an SMMU confines the DMA of the devices the
control partition drives, with the number of transactions it stopped.

Examples:
	bulkhead stats
	bulkhead stats --json | jq .machine
`

func cmdStats(args []string, stdout, stderr io.Writer) int {
	fs, name := commandFlags("stats", statsUsage, stderr)
	asJSON := fs.Bool("json", false, "print JSON: {instance, vms, machine, cpus} as the control partition reports them")
	if _, err := parseArgs(fs, args); err != nil {
		return failed("stats", err, exitUsage, stderr)
	}
	_, cl, code, err := instanceClient(name)
	if err != nil {
		return failed("stats", err, code, stderr)
	}
	defer cl.Close()
	m, err := cl.Call(map[string]any{"op": "stats"}, client.AnswerTimeout)
	if err != nil {
		return failed("stats", err, exitInternal, stderr)
	}
	var raw struct {
		VMs     json.RawMessage `json:"vms"`
		Machine json.RawMessage `json:"machine"`
		CPUs    []cpuStats      `json:"cpus"`
		Net     *netStats       `json:"net"`
	}
	json.Unmarshal(m.Raw(), &raw)
	if len(raw.VMs) == 0 || string(raw.VMs) == "null" {
		raw.VMs = json.RawMessage("[]")
	}
	if *asJSON {
		out := map[string]any{"instance": *name, "vms": raw.VMs, "machine": raw.Machine, "cpus": raw.CPUs}
		if raw.Net != nil {
			out["net"] = raw.Net
		}
		json.NewEncoder(stdout).Encode(out)
		return 0
	}
	var vms []vmStats
	var mach machineStats
	if err := json.Unmarshal(raw.VMs, &vms); err != nil {
		return failed("stats", fmt.Errorf("the control partition's VM list: %v", err), exitInternal, stderr)
	}
	if err := json.Unmarshal(raw.Machine, &mach); err != nil {
		return failed("stats", fmt.Errorf("the control partition's ledger figures: %v", err), exitInternal, stderr)
	}
	printStats(stdout, vms, mach, raw.CPUs)
	if n := raw.Net; n != nil {
		fmt.Fprintf(stdout, "network control plane: %s port %d, identity %s: %d connection(s) open; %d accepted, %d refused, %d cut; %d certificate(s) revoked\n",
			n.Addr, n.Port, n.Identity, n.Open, n.Accepted, n.Refused, n.Cut, n.Revoked)
	}
	return 0
}

// netStats is the network control plane's line of stats.
type netStats struct {
	Addr     string `json:"addr"`
	Port     int    `json:"port"`
	Identity string `json:"identity"`
	Open     int    `json:"open"`
	Accepted int    `json:"accepted"`
	Refused  int    `json:"refused"`
	Cut      int    `json:"cut"`
	Revoked  int    `json:"revoked"`
}

func printStats(w io.Writer, vms []vmStats, m machineStats, cpus []cpuStats) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if len(vms) == 0 {
		fmt.Fprintln(w, "no VMs")
	} else {
		fmt.Fprintln(tw, "NAME\tVM\tSTATE\tSTATUS\tRUN TIME\tPAGES\tMIB\tFAULTS\tVCPUS\tEXITS")
		for _, v := range vms {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%v\t%d\t%s\t%d\t%d\t%s\n", v.Name, v.VM, v.State, status(v.State, v.Status),
				(time.Duration(v.RunMS) * time.Millisecond).Round(10*time.Millisecond), v.Pages, pageMiB(v.Pages), v.Faults, v.VCPUs, exits(v.Exits))
		}
		tw.Flush()
		for _, v := range vms {
			for _, d := range v.Disks {
				fmt.Fprintf(w, "%s %s (drive %s): %d reads (%d bytes), %d writes (%d bytes), %d flushes, %d errors\n", v.Name, d.Dev, d.Drive,
					d.Reads, d.ReadBytes, d.Writes, d.WrittenBytes, d.Flushes, d.Errors)
			}
			if n := v.Net; n != nil {
				fmt.Fprintf(w, "%s %s (%s): %d frames out (%d bytes), %d in (%d bytes), %d dropped, %d errors\n", v.Name, n.Dev, n.MAC,
					n.TxFrames, n.TxBytes, n.RxFrames, n.RxBytes, n.RxDropped, n.Errors)
			}
		}
	}
	fmt.Fprintf(w, "\nmachine: %d pages (%s MiB), %d VM(s), %d free stage 2 table pages\n", m.Pages, pageMiB(m.Pages), m.VMs, m.TablePages)
	for _, r := range []struct {
		what string
		n    int64
	}{{"free", m.Free}, {"hypervisor", m.Hypervisor}, {"control", m.Control}, {"guests", m.Guests}, {"shared", m.Shared}} {
		fmt.Fprintf(tw, "  %s\t%d pages\t%s MiB\n", r.what, r.n, pageMiB(r.n))
	}
	tw.Flush()
	for _, c := range cpus {
		fmt.Fprintf(tw, "  CPU %d\t%d exits\t%d vCPU(s)\tguests ran %v\n", c.CPU, c.Exits, c.VCPUs,
			(time.Duration(c.RunMS) * time.Millisecond).Round(10*time.Millisecond))
	}
	tw.Flush()
	verdict := "hold"
	if m.Violations > 0 {
		verdict = "BROKEN (the hypervisor's log says where)"
	}
	fmt.Fprintf(w, "invariants: %s; %d checks, %d violations\n", verdict, m.Checks, m.Violations)
	if m.Restarts > 0 {
		fmt.Fprintf(w, "control partition: restarted %d time(s) after a crash (the instance's console log says why)\n", m.Restarts)
	}
	if m.DMAConfined == 1 {
		fmt.Fprintf(w, "DMA: the control partition's devices are confined by the SMMU; %d transaction(s) stopped (the console log says which)\n", m.DMAFaults)
	} else {
		fmt.Fprintf(w, "DMA: not confined (no SMMU): the control partition's devices can reach all of RAM\n")
	}
}

// pageMiB is a count of 4 KiB pages in MiB.
func pageMiB(pages int64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", float64(pages)/256), "0"), ".")
}

// exits lists exit counts, the most frequent first.
func exits(m map[string]int64) string {
	if len(m) == 0 {
		return "-"
	}
	var names []string
	for k := range m {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool {
		if m[names[i]] != m[names[j]] {
			return m[names[i]] > m[names[j]]
		}
		return names[i] < names[j]
	})
	var parts []string
	for _, k := range names {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

const moveUsage = `Usage: bulkhead move [flags] VM VCPU CPU

Moves vCPU number VCPU of a running VM to the instance's physical CPU
number CPU, with all its state: it runs there from then on. A VM's vCPUs
start on the least loaded CPUs, or where bulkhead run --pcpus put them;
the instance's log shows where each went, and every move.

Examples:
	bulkhead up --name big --smp 4
	bulkhead run --instance big --cpus 2 build/guest-ipi.elf &
	bulkhead move --name big guest-ipi 1 3
`

func cmdMove(args []string, stdout, stderr io.Writer) int {
	fs, name := commandFlags("move", moveUsage, stderr)
	pos, err := parseArgs(fs, args, "VM", "VCPU", "CPU")
	if err != nil {
		return failed("move", err, exitUsage, stderr)
	}
	vm := pos[0]
	vcpu, err1 := strconv.Atoi(pos[1])
	pcpu, err2 := strconv.Atoi(pos[2])
	if err1 != nil || err2 != nil || vcpu < 0 || pcpu < 0 || pcpu >= maxPCPUs {
		return failed("move", fmt.Errorf("VCPU and CPU must be numbers from 0 (CPU below %d); got %q and %q", maxPCPUs, pos[1], pos[2]), exitUsage, stderr)
	}
	_, cl, code, err := instanceClient(name)
	if err != nil {
		return failed("move", err, code, stderr)
	}
	defer cl.Close()
	vms, _, err := cl.PS()
	if err != nil {
		return failed("move", err, exitInternal, stderr)
	}
	if _, ok := client.Find(vms, vm); !ok {
		return failed("move", unknownVM(vm, *name), exitUsage, stderr)
	}
	if _, err := cl.Call(map[string]any{"op": "move", "name": vm, "vcpu": vcpu, "pcpu": pcpu}, client.AnswerTimeout); err != nil {
		return failed("move", fmt.Errorf("%s: %v", vm, err), exitUsage, stderr)
	}
	fmt.Fprintf(stdout, "%s: vCPU %d now runs on physical CPU %d\n", vm, vcpu, pcpu)
	return 0
}
