package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bulkhead-hv/bulkhead/client"
)

// machineConfig is the QEMU machine an instance runs on.
type machineConfig struct {
	mem      uint64
	smp      int
	opts     []string
	hyp      string
	control  string
	qemu     string
	firmware string // "" (QEMU loads the hypervisor's ELF) or "uefi"
	// iommu puts the instance's devices on PCIe behind an SMMUv3, which
	// the hypervisor drives to confine their DMA.
	iommu  bool
	drives []drive
	uplink *uplink
}

// uefiFirmware is the UEFI firmware --firmware uefi boots under: Debian's
// AAVMF (qemu-efi-aarch64).
const uefiFirmware = "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd"

// flags defines the machine's flags; the RAM's is memFlag (run has its own
// --mem, the guest's).
func (m *machineConfig) flags(fs *flag.FlagSet, memFlag string) {
	m.mem, m.smp = 1<<30, 1
	fs.Var(sizeFlag{&m.mem}, memFlag, "the QEMU machine's RAM, at least 512M")
	fs.IntVar(&m.smp, "smp", 1, "the QEMU machine's CPUs (QEMU's -smp)")
	fs.Var(listFlag{&m.opts}, "qemu-opt", "extra QEMU argument (repeatable), e.g. --qemu-opt=-icount --qemu-opt=shift=0")
	fs.StringVar(&m.hyp, "hypervisor", "", "hypervisor image (default: bulkhead-hyp.elf, or bulkhead-hyp.efi with --firmware uefi, in $BULKHEAD_IMAGES or ./build)")
	fs.StringVar(&m.control, "control", "", "control partition image (default: bulkhead-control.elf beside the hypervisor)")
	fs.StringVar(&m.qemu, "qemu", "qemu-system-aarch64", "the QEMU binary")
	fs.StringVar(&m.firmware, "firmware", "", "boot firmware: none (QEMU loads the hypervisor's ELF, the default) or uefi\n"+
		"(AAVMF starts bulkhead-hyp.efi, which finds the machine through ACPI, as on a server)")
	fs.BoolVar(&m.iommu, "iommu", false, "put the host channel, drives and uplink on PCIe behind an SMMUv3 (QEMU's iommu=smmuv3),\n"+
		"which the hypervisor drives so that their DMA reaches only the control partition's memory")
}

// virtioDevice is QEMU's device for a virtio device of kind (serial, blk,
// net): on virtio-mmio, or with --iommu a PCI function whose DMA goes
// through the SMMU.
func (m *machineConfig) virtioDevice(kind, props string) string {
	if m.iommu {
		return "virtio-" + kind + "-pci,iommu_platform=on,disable-legacy=on" + props
	}
	return "virtio-" + kind + "-device" + props
}

func (m *machineConfig) check(memFlag string) error {
	if m.mem < 512<<20 {
		return fmt.Errorf("--%s %s: at least 512M (the hypervisor keeps 64M, the control partition's runtime 128M at 0x48000000, images go above 0x50000000)", memFlag, sizeFlag{&m.mem})
	}
	if m.smp < 1 || m.smp > 64 {
		return fmt.Errorf("--smp %d: want 1 to 64", m.smp)
	}
	if m.iommu && m.firmware == "uefi" {
		// QEMU's ACPI tables do not describe the host bridge's BAR
		// window, so under them the hypervisor leaves the SMMU unused.
		return fmt.Errorf("--iommu with --firmware uefi: under ACPI the hypervisor does not drive the SMMU yet; use one or the other")
	}
	dir := os.Getenv("BULKHEAD_IMAGES")
	if dir == "" {
		dir = "build"
	}
	files := []struct{ what, path string }{{"hypervisor", m.hyp}, {"control partition", m.control}}
	switch m.firmware {
	case "", "none":
		m.firmware = ""
		if m.hyp == "" {
			m.hyp = filepath.Join(dir, "bulkhead-hyp.elf")
		}
	case "uefi":
		if m.hyp == "" {
			m.hyp = filepath.Join(dir, "bulkhead-hyp.efi")
		}
		files = append(files, struct{ what, path string }{"UEFI firmware", uefiFirmware})
	default:
		return fmt.Errorf("--firmware %q: want none or uefi", m.firmware)
	}
	if m.control == "" {
		m.control = filepath.Join(filepath.Dir(m.hyp), "bulkhead-control.elf")
	}
	files[0].path, files[1].path = m.hyp, m.control
	for _, f := range files {
		if _, err := os.Stat(f.path); err != nil {
			return fmt.Errorf("%s image %s: %v (build it with make, or point --hypervisor/--control or $BULKHEAD_IMAGES at it)", f.what, f.path, errors.Unwrap(err))
		}
	}
	if err := checkHypervisorImage(m.hyp, m.firmware); err != nil {
		return err
	}
	if _, err := exec.LookPath(m.qemu); err != nil {
		return fmt.Errorf("%s not found: install it with: sudo apt-get install qemu-system-arm", m.qemu)
	}
	return nil
}

// checkHypervisorImage refuses a hypervisor image the boot cannot start,
// before QEMU is: an ELF for QEMU's loader, an EFI application (a PE
// image, "MZ") for UEFI firmware, which would otherwise drop to its shell
// and leave the boot to time out.
func checkHypervisorImage(path, firmware string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	magic := make([]byte, 4)
	if _, err := io.ReadFull(f, magic); err != nil {
		return fmt.Errorf("hypervisor image %s: %v", path, err)
	}
	switch {
	case firmware == "uefi" && string(magic[:2]) != "MZ":
		return fmt.Errorf("hypervisor image %s is not an EFI application, which --firmware uefi boots: use bulkhead-hyp.efi", path)
	case firmware == "" && string(magic) != "\x7fELF":
		return fmt.Errorf("hypervisor image %s is not an ELF, which QEMU loads without firmware: use bulkhead-hyp.elf, or --firmware uefi for bulkhead-hyp.efi", path)
	}
	return nil
}

// qemuArgs is QEMU's command line for an instance: the hypervisor as the
// kernel, the control partition as a boot module at moduleBase, its host
// channel a virtio console on the socket the broker connects to.
func qemuArgs(m *machineConfig, in *client.Instance, controlSize int64) []string {
	machine := "virt,virtualization=on,gic-version=3"
	if m.iommu {
		machine += ",iommu=smmuv3"
	}
	args := []string{
		"-machine", machine, "-cpu", "max",
		"-m", fmt.Sprintf("%dM", m.mem>>20), "-smp", strconv.Itoa(m.smp),
		"-display", "none", "-monitor", "none", "-serial", "file:" + in.Log,
		"-semihosting-config", "enable=on,target=native",
		"-kernel", m.hyp,
		// No default NIC: on PCIe it would become the uplink.
		"-nic", "none",
		"-global", "virtio-mmio.force-legacy=false",
		"-device", m.virtioDevice("serial", ""),
		"-chardev", "socket,id=ctl,path=" + in.Socket + ",server=on,wait=on",
		"-device", "virtconsole,chardev=ctl",
	}
	if m.firmware == "uefi" {
		// The firmware owns RAM until it hands over, so the control
		// partition comes through fw_cfg, which the hypervisor reads after.
		args = append(args, "-bios", uefiFirmware,
			"-fw_cfg", "name=opt/org.bulkhead/control,file="+m.control,
			"-append", "exit=semihosting control=fw_cfg")
	} else {
		args = append(args,
			"-device", fmt.Sprintf("loader,file=%s,addr=%#x,force-raw=on", m.control, uint64(moduleBase)),
			"-append", fmt.Sprintf("exit=semihosting control=%#x:%d", uint64(moduleBase), controlSize))
	}
	for _, d := range m.drives {
		args = append(args, d.qemuArgs(m)...)
	}
	if m.uplink != nil {
		args = append(args, m.uplink.qemuArgs(m)...)
	}
	return append(args, m.opts...)
}

// errInterrupted is a boot abandoned on a signal.
var errInterrupted = errors.New("interrupted")

// bootInstance starts QEMU and the broker in the background, and returns
// once the control partition answers through the broker. A private
// instance ends with its owner, this process, however it ends. Anything
// that arrives on abort abandons the boot. On failure nothing is left
// running.
func bootInstance(m *machineConfig, name string, private bool, abort <-chan os.Signal) (*client.Instance, error) {
	dir := client.StateDir(name)
	in := &client.Instance{Name: name, Private: private,
		Socket: filepath.Join(dir, "ctl.sock"), API: filepath.Join(dir, "api.sock"),
		Log: filepath.Join(dir, "console.log"), QEMULog: filepath.Join(dir, "qemu.log"),
		BrokerLog: filepath.Join(dir, "broker.log")}
	if len(in.API) > 100 {
		return nil, fmt.Errorf("the instance's directory %s is too long a path for a unix socket: set XDG_RUNTIME_DIR to a shorter one", dir)
	}
	fi, err := os.Stat(m.control)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	os.Remove(in.Socket)
	os.Remove(in.API)
	logs := map[string]*os.File{}
	for _, p := range []string{in.QEMULog, in.BrokerLog} {
		if logs[p], err = os.Create(p); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}

	// Both outlive this command (their own session): an instance that is
	// up stays up. A private one dies with its owner: QEMU at once, and
	// the broker cleans up after it.
	qemu := exec.Command(m.qemu, qemuArgs(m, in, fi.Size())...)
	qemu.Stdout, qemu.Stderr = logs[in.QEMULog], logs[in.QEMULog]
	qemu.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if private {
		qemu.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	if err := qemu.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("starting %s: %v", m.qemu, err)
	}
	in.PID = qemu.Process.Pid
	qemuDone := make(chan struct{})
	go func() { qemu.Wait(); close(qemuDone) }() // reaped, so that client.Alive() sees it go

	brokerDone := make(chan struct{})
	fail := func(err error) (*client.Instance, error) {
		syscall.Kill(in.PID, syscall.SIGKILL)
		if in.BrokerPID > 0 {
			syscall.Kill(in.BrokerPID, syscall.SIGKILL)
			<-brokerDone
		}
		<-qemuDone
		var why strings.Builder
		fmt.Fprintf(&why, "%v; its last lines:\n%s", err, tail(in.Log, 30))
		for _, p := range []string{in.QEMULog, in.BrokerLog} {
			if t := tail(p, 10); t != "" {
				fmt.Fprintf(&why, "%s:\n%s", filepath.Base(p), t)
			}
		}
		os.RemoveAll(dir)
		if errors.Is(err, errInterrupted) {
			return nil, err
		}
		return nil, errors.New(strings.TrimRight(why.String(), "\n"))
	}
	exe, err := os.Executable()
	if err != nil {
		return fail(err)
	}
	bargs := []string{brokerCmd, "--name", name, "--qemu", strconv.Itoa(in.PID)}
	if private {
		bargs = append(bargs, "--owner", strconv.Itoa(os.Getpid()))
	}
	broker := exec.Command(exe, bargs...)
	broker.Stdout, broker.Stderr = logs[in.BrokerLog], logs[in.BrokerLog]
	broker.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := broker.Start(); err != nil {
		close(brokerDone)
		return fail(fmt.Errorf("starting the broker: %v", err))
	}
	in.BrokerPID = broker.Process.Pid
	go func() { broker.Wait(); close(brokerDone) }()
	for _, f := range logs {
		f.Close() // the children have their own
	}

	deadline := time.After(90 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-qemuDone:
			return fail(errors.New("QEMU exited before the control partition was ready"))
		case <-brokerDone:
			// The broker ends when QEMU does: if QEMU did, that is the news.
			select {
			case <-qemuDone:
				return fail(errors.New("QEMU exited before the control partition was ready"))
			case <-time.After(500 * time.Millisecond):
			}
			return fail(errors.New("the broker exited before the control partition was ready"))
		case <-deadline:
			return fail(errors.New("the control partition was not ready within 90s"))
		case s := <-abort:
			return fail(fmt.Errorf("%w by %v", errInterrupted, s))
		case <-tick.C:
		}
		cl, err := client.Connect(in)
		if err != nil {
			continue // the broker listens once the control partition is ready
		}
		_, err = cl.Call(map[string]any{"op": "ping"}, 10*time.Second)
		cl.Close()
		if err != nil {
			return fail(fmt.Errorf("ping: %v", err))
		}
		break
	}
	b, _ := json.MarshalIndent(in, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "instance.json"), b, 0o600); err != nil {
		return fail(err)
	}
	return in, nil
}

// teardown stops the instance's running VMs, shuts it down and makes sure
// QEMU and the broker are gone. It returns the hypervisor's exit status
// (-1 if it did not say) and the last lines of its console.
func teardown(in *client.Instance, stderr io.Writer) (int, string) {
	if cl, err := client.Connect(in); err == nil {
		shutdown(in, cl, stderr)
		cl.Close()
	}
	if !waitGone(in.PID, 10*time.Second) {
		syscall.Kill(in.PID, syscall.SIGKILL)
		fmt.Fprintf(stderr, "bulkhead: instance %q did not stop within 10s: killed QEMU\n", in.Name)
		waitGone(in.PID, 5*time.Second)
	}
	if !waitGone(in.BrokerPID, 5*time.Second) {
		syscall.Kill(in.BrokerPID, syscall.SIGKILL)
	}
	status, last := hypervisorStatus(in.Log), tail(in.Log, 30)
	os.RemoveAll(client.StateDir(in.Name))
	return status, last
}

// shutdown stops the instance's running VMs, waiting up to 10 s for
// them, and asks the control partition to end: it does once they have
// stopped.
func shutdown(in *client.Instance, cl *client.Client, stderr io.Writer) error {
	if vms, _, err := cl.PS(); err == nil {
		running := map[string]bool{}
		for _, v := range vms {
			if v.State == "running" {
				running[v.Name] = true
				cl.Send(map[string]any{"op": "stop", "name": v.Name})
			}
		}
		for timeout := time.After(10 * time.Second); len(running) > 0; {
			select {
			case m, ok := <-cl.Msgs():
				if !ok {
					running = nil
				} else if m.Event == "exit" {
					delete(running, m.VMName())
				}
			case <-timeout:
				running = nil
			}
		}
	}
	if _, err := cl.Call(map[string]any{"op": "shutdown"}, client.AnswerTimeout); err != nil {
		fmt.Fprintf(stderr, "bulkhead: instance %q: shutdown: %v\n", in.Name, err)
		return err
	}
	return nil
}

// remoteDown shuts a remote instance down and waits for its connection
// to close, which it does as the machine ends.
func remoteDown(stdout, stderr io.Writer) int {
	in, code, err := targetInstance("")
	if err != nil {
		return failed("down", err, code, stderr)
	}
	cl, err := client.Connect(in)
	if err != nil {
		return failed("down", err, exitInternal, stderr)
	}
	defer cl.Close()
	if err := shutdown(in, cl, stderr); err != nil {
		return exitInternal
	}
	for timeout := time.After(30 * time.Second); ; {
		select {
		case _, ok := <-cl.Msgs():
			if !ok {
				fmt.Fprintf(stdout, "instance %s is down\n", in.Name)
				return 0
			}
		case <-timeout:
			fmt.Fprintf(stderr, "bulkhead down: instance %s acknowledged the shutdown but kept its connection open for 30s\n", in.Name)
			return exitInternal
		}
	}
}

func waitGone(pid int, timeout time.Duration) bool {
	for deadline := time.Now().Add(timeout); client.Alive(pid); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// hypervisorStatus is the status the hypervisor printed as it ended, -1 if
// none.
func hypervisorStatus(log string) int {
	b, _ := os.ReadFile(log)
	status := -1
	for _, l := range strings.Split(string(b), "\n") {
		if s, ok := strings.CutPrefix(strings.TrimSpace(l), "bulkhead: exit status "); ok {
			if n, err := strconv.Atoi(s); err == nil {
				status = n
			}
		}
	}
	return status
}

// tail is a file's last n lines, indented.
func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n"), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return ""
	}
	lines = lines[max(0, len(lines)-n):]
	return "  " + strings.Join(lines, "\n  ") + "\n"
}

// commandFlags makes an instance command's flag set: --name (or
// --instance) names the instance. usage teaches the command.
func commandFlags(cmd, usage string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("bulkhead "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	inst := new(string)
	fs.StringVar(inst, "name", "default", "the instance")
	fs.StringVar(inst, "instance", "default", "the same as --name")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage+"\nFlags:\n")
		fs.PrintDefaults()
	}
	return fs, inst
}

// parseArgs parses flags before, between and after the positional
// arguments, and wants exactly len(names) of those.
func parseArgs(fs *flag.FlagSet, args []string, names ...string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != len(names) {
		if len(names) == 0 {
			return nil, fmt.Errorf("unexpected argument %q", pos[0])
		}
		return nil, fmt.Errorf("want %s, got %d argument(s)", strings.Join(names, " "), len(pos))
	}
	return pos, nil
}

// failed reports a command's error and returns the status to exit with;
// a request for help is not one.
func failed(cmd string, err error, status int, stderr io.Writer) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(stderr, "bulkhead %s: %v\n", cmd, err)
	return status
}

const upUsage = `Usage: bulkhead up [flags]

Boots an instance in the background: QEMU with the EL2 hypervisor and its
control partition, and a broker through which every other command reaches
the control partition. It returns once the control partition is ready. The
instance runs guests (bulkhead run) until bulkhead down; its state, logs
and sockets are in $XDG_RUNTIME_DIR/bulkhead/NAME.

With --disk the instance gets drives, raw disk images that its control
partition drives and backs guests' disks with (bulkhead run --disk NAME).
A drive one guest has writable is attached to no other; ,ro drives can be
shared read-only. With --net it gets an uplink: guests that ask for a
network device (bulkhead run --net) are switched onto it, each with a MAC
of its own, and see the uplink's network but not each other.

With --iommu the host channel, drives and uplink are PCIe functions behind
an SMMUv3 that the hypervisor drives: their DMA reaches the control
partition's memory and nothing a guest was given (bulkhead stats says so,
and counts what the SMMU stopped). Without it they are on virtio-mmio, and
a control partition that misbehaved could have them reach any page.

With --listen PORT the control partition also serves every command over
the network, TLS 1.3 with client certificates, on the uplink (one is
added if --net gives none), and the host forwards 127.0.0.1:PORT to it:
bulkhead --remote 127.0.0.1:PORT COMMAND. The operator's CA, a client
certificate and the instance's state drive (its identity, made at its
first boot) are kept in ~/.config/bulkhead/instances/NAME and outlive
the instance; bulkhead credentials issues more certificates.

Examples:
	bulkhead up
	bulkhead up --listen 7443 && bulkhead --remote 127.0.0.1:7443 ps
	bulkhead up --name big --mem 4G --smp 4
	bulkhead up --disk root=build/linux/rootfs.ext4 --disk data=data.img,ro
	bulkhead up --net user,hostfwd=tcp:8080-:80   # guests on QEMU's user network
	bulkhead up --name srv --firmware uefi --smp 4 --mem 2G   # UEFI and ACPI, as a server boots
	bulkhead up --iommu --disk data=data.img       # devices' DMA confined by the SMMU
	bulkhead up --qemu-opt=-icount --qemu-opt=shift=0,sleep=off
`

func cmdUp(args []string, stdout, stderr io.Writer) int {
	fs, name := commandFlags("up", upUsage, stderr)
	m := &machineConfig{}
	m.flags(fs, "mem")
	fs.Var(driveFlag{&m.drives}, "disk", "a raw disk image the instance's guests can attach, as `NAME=FILE` or NAME=FILE,ro\n(repeatable; bulkhead run --disk NAME gives it to a guest)")
	fs.Var(uplinkFlag{&m.uplink}, "net", "the instance's uplink, which guests' network devices are switched onto (bulkhead run --net):\n"+
		"`user`[,hostfwd=tcp:HOSTPORT-:GUESTPORT]... (QEMU's user network, its forwards on 127.0.0.1) or tap,ifname=NAME")
	listen := fs.Int("listen", 0, "also serve the instance's commands over the network on 127.0.0.1:`PORT` (TLS 1.3, client\n"+
		"certificates): bulkhead --remote 127.0.0.1:PORT reaches it; the credentials are in ~/.config/bulkhead/instances/NAME")
	asJSON := fs.Bool("json", false, "print the instance's state as JSON")
	if _, err := parseArgs(fs, args); err != nil {
		return failed("up", err, exitUsage, stderr)
	}
	if remote.addr != "" {
		return failed("up", errors.New("up boots an instance on this host: drop --remote"), exitUsage, stderr)
	}
	var credDir string
	if *listen != 0 {
		var err error
		if credDir, err = prepareListen(m, *name, *listen); err != nil {
			return failed("up", err, exitUsage, stderr)
		}
	}
	if err := m.check("mem"); err != nil {
		return failed("up", err, exitUsage, stderr)
	}
	if in, err := client.ReadInstance(*name); err == nil {
		if _, err := client.LoadInstance(*name); err == nil || client.Alive(in.PID) {
			return failed("up", fmt.Errorf("instance %q is already up (QEMU pid %d); bring it down with: bulkhead down --name %s", *name, in.PID, *name), exitUsage, stderr)
		}
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	fmt.Fprintf(stderr, "bulkhead: booting instance %q...\n", *name)
	in, err := bootInstance(m, *name, false, sigs)
	if errors.Is(err, errInterrupted) {
		fmt.Fprintf(stderr, "bulkhead up: %v: nothing is left running\n", err)
		return 130
	}
	if err != nil {
		return failed("up", fmt.Errorf("instance %q failed to boot: %v", *name, err), exitInternal, stderr)
	}
	if credDir != "" {
		if err := listenReady(in, credDir, *listen); err != nil {
			teardown(in, stderr)
			return failed("up", fmt.Errorf("instance %q: its network control plane: %v; it was brought down", *name, err), exitInternal, stderr)
		}
	}
	if *asJSON {
		json.NewEncoder(stdout).Encode(in)
	} else {
		fmt.Fprintf(stdout, "instance %q is up: QEMU pid %d, broker pid %d, console log %s\n", *name, in.PID, in.BrokerPID, in.Log)
		if credDir != "" {
			fmt.Fprintf(stdout, "its network API is on 127.0.0.1:%d: bulkhead --remote 127.0.0.1:%d ps (credentials in %s)\n", *listen, *listen, credDir)
		}
	}
	return 0
}

const downUsage = `Usage: bulkhead down [flags]

Shuts an instance down: stops its running VMs, asks the control partition
to end, and makes sure QEMU and the broker are gone. It exits 0 when the
hypervisor ended cleanly (its ledger back at its boot figures), 125 if not.

Examples:
	bulkhead down
	bulkhead down --name big
`

func cmdDown(args []string, stdout, stderr io.Writer) int {
	fs, name := commandFlags("down", downUsage, stderr)
	if _, err := parseArgs(fs, args); err != nil {
		return failed("down", err, exitUsage, stderr)
	}
	if remote.addr != "" {
		return remoteDown(stdout, stderr)
	}
	in, err := client.ReadInstance(*name)
	if err != nil {
		return failed("down", err, exitUsage, stderr)
	}
	status, last := teardown(in, stderr)
	if status == 0 {
		fmt.Fprintf(stdout, "instance %q is down\n", *name)
		return 0
	}
	what := strconv.Itoa(status)
	if status < 0 {
		what = "not printed"
	}
	fmt.Fprintf(stdout, "instance %q is down; the hypervisor's exit status was %s; its last lines were:\n%s", *name, what, last)
	return exitInternal
}
