package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bulkhead-hv/bulkhead/bootimage"
	"github.com/bulkhead-hv/bulkhead/client"
	"github.com/bulkhead-hv/bulkhead/guestdt"
	"github.com/bulkhead-hv/bulkhead/hyp"
)

// Exit statuses of bulkhead itself, apart from the guest's.
const (
	exitUsage    = 2   // bad command line, image or VM name
	exitInternal = 125 // the hypervisor, QEMU or the instance failed
)

// moduleBase is where the control partition's image is loaded in the
// machine's memory (board/qemuvirt, board/bulkheadvm).
const moduleBase = 0x50000000 // above the control partition's runtime

type runConfig struct {
	name     string
	mem      uint64
	cpus     int
	pcpus    []int
	arg      uint64
	cmdline  string
	initrd   string
	json     bool
	verbose  bool
	private  bool
	image    string
	instance string
	// disks are the --disk values: drive names in an instance that is
	// up, disk image files for a private one.
	disks   []string
	net     string // --net: an uplink for a private instance, or "user" for one that is up
	peers   string // --net's peers=NAME
	machine machineConfig
	// machineSet lists the flags given that shape a private instance.
	machineSet []string
}

// sizeFlag parses sizes such as 16M, 1G, 0x1000000.
type sizeFlag struct{ v *uint64 }

func (s sizeFlag) String() string {
	if s.v == nil {
		return ""
	}
	return fmt.Sprintf("%dM", *s.v>>20)
}

func (s sizeFlag) Set(text string) error {
	v, err := parseSize(text)
	if err != nil {
		return err
	}
	*s.v = v
	return nil
}

func parseSize(text string) (uint64, error) {
	mult := uint64(1)
	t := strings.ToUpper(strings.TrimSpace(text))
	switch {
	case strings.HasSuffix(t, "K"):
		mult, t = 1<<10, strings.TrimSuffix(t, "K")
	case strings.HasSuffix(t, "M"):
		mult, t = 1<<20, strings.TrimSuffix(t, "M")
	case strings.HasSuffix(t, "G"):
		mult, t = 1<<30, strings.TrimSuffix(t, "G")
	}
	n, err := strconv.ParseUint(strings.ToLower(t), 0, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a size (examples: 16M, 1G)", text)
	}
	return n * mult, nil
}

type listFlag struct{ v *[]string }

func (l listFlag) String() string     { return "" }
func (l listFlag) Set(s string) error { *l.v = append(*l.v, s); return nil }

const runUsage = `Usage: bulkhead run [flags] IMAGE

Runs IMAGE as a guest of Bulkhead, streams its console to standard output
and exits with its exit status. IMAGE is an AArch64 ELF executable linked
for guest RAM at 0x40000000 (a TamaGo guest built with board/bulkheadvm,
say), or a Linux arm64 Image, plain or gzip-compressed, with --initrd and
--cmdline.

If the instance named by --instance is up (bulkhead up), IMAGE is uploaded
to it over its host channel and runs there beside its other VMs; otherwise
bulkhead boots a private instance for it, and brings that down after,
however the run ends. Ctrl-C stops the guest and exits 130. Other statuses
of bulkhead's own: 2 for a bad command line or image, 125 if the
hypervisor, QEMU or the instance fails.

Examples:
	bulkhead run build/guest-hello.elf
	bulkhead run --arg 3 --mem 32M build/guest-hello.elf; echo $?
	bulkhead up && bulkhead run --name h1 build/guest-hello.elf && bulkhead stats
	bulkhead run --json --qemu-opt=-icount --qemu-opt=shift=0,sleep=off build/guest-timer.elf
	bulkhead run --mem 256M --initrd build/linux/rootfs.cpio.gz --cmdline console=ttyAMA0 build/linux/vmlinuz
	bulkhead run --mem 256M --disk build/linux/rootfs.ext4 --initrd build/linux/rootfs.cpio.gz \
		--cmdline 'console=ttyAMA0 root=/dev/vda' build/linux/vmlinuz

Disks (--disk) are virtio-blk devices the guest sees as /dev/vda, /dev/vdb...
in the order given. The control partition serves them, reaching only the
buffers the guest posts (docs/architecture.md, "Guest disks"). --net gives
it a virtio-net device, eth0, switched onto the instance's uplink.

	bulkhead run --mem 256M --net user,hostfwd=tcp:8080-:80 --initrd build/linux/rootfs.cpio.gz \
		--cmdline console=ttyAMA0 build/linux/vmlinuz
`

// machineFlags shape a private instance, not a guest.
var machineFlags = map[string]bool{"machine-mem": true, "smp": true, "qemu-opt": true, "hypervisor": true, "control": true, "qemu": true}

func parseRun(args []string, stderr io.Writer) (*runConfig, error) {
	c := &runConfig{}
	fs := flag.NewFlagSet("bulkhead run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), runUsage+"\nFlags:\n")
		fs.PrintDefaults()
	}
	c.mem = 16 << 20
	fs.StringVar(&c.name, "name", "", "the VM's name (default: the image's file name)")
	fs.Var(sizeFlag{&c.mem}, "mem", "guest RAM, a multiple of 2M")
	fs.IntVar(&c.cpus, "cpus", 1, "guest vCPUs, 1 to 16")
	fs.Var(cpuListFlag{&c.pcpus}, "pcpus", "physical CPUs to pin the vCPUs to, in turn, e.g. 1,2 or 1-3 (default: the least loaded, one each)")
	fs.Uint64Var(&c.arg, "arg", 0, "value the guest finds in x0 at entry")
	fs.StringVar(&c.cmdline, "cmdline", "", "the kernel command line, for a Linux guest")
	fs.StringVar(&c.initrd, "initrd", "", "an initramfs `FILE`, uploaded after the image, for a Linux guest")
	fs.Var(listFlag{&c.disks}, "disk", "a disk for the guest (repeatable: /dev/vda, /dev/vdb... in order): a raw image `FILE`, or FILE,ro\n"+
		"read-only; in an instance that is up, the NAME of one of its drives (bulkhead up --disk NAME=FILE), or NAME,ro,\n"+
		"or a range of one, NAME@OFFSET+SIZE (e.g. data@64M+32M)")
	fs.StringVar(&c.net, "net", "", "a network device for the guest (eth0): `user`[,hostfwd=tcp:HOSTPORT-:GUESTPORT]... gives a private\n"+
		"instance QEMU's user network (DHCP, forwards on 127.0.0.1); in an instance that is up, --net user joins its uplink;\n"+
		"guests are isolated from each other, but those given the same ,peers=NAME reach each other")
	fs.BoolVar(&c.json, "json", false, "print JSON lines: the console's lines and the final status")
	fs.BoolVar(&c.verbose, "v", false, "also print the hypervisor's and control partition's log to standard error")
	fs.StringVar(&c.instance, "instance", "default", "run in this instance if it is up (bulkhead up); otherwise boot a private one")
	fs.BoolVar(&c.private, "private", false, "boot a private instance even if --instance is up")
	c.machine.flags(fs, "machine-mem")
	pos, err := parseArgs(fs, args, "IMAGE")
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) && !strings.Contains(err.Error(), "flag") {
			fs.Usage()
		}
		return nil, err
	}
	fs.Visit(func(f *flag.Flag) {
		if machineFlags[f.Name] {
			c.machineSet = append(c.machineSet, "--"+f.Name)
		}
	})
	c.image = pos[0]
	if c.name == "" {
		c.name = strings.TrimSuffix(filepath.Base(c.image), filepath.Ext(c.image))
	}
	if !regexp.MustCompile(`^[A-Za-z0-9_.-]{1,16}$`).MatchString(c.name) {
		return nil, fmt.Errorf("--name %q: use 1 to 16 letters, digits, '.', '_' or '-'", c.name)
	}
	if c.mem%(2<<20) != 0 {
		return nil, fmt.Errorf("--mem %s: must be a multiple of 2M", sizeFlag{&c.mem})
	}
	if c.cpus < 1 || c.cpus > hyp.MaxVCPUs {
		return nil, fmt.Errorf("--cpus %d: want 1 to %d", c.cpus, hyp.MaxVCPUs)
	}
	if c.net != "" {
		rest, peers, err := cutPeers(c.net)
		if err != nil {
			return nil, err
		}
		if _, err := parseUplink(rest); err != nil {
			return nil, err
		}
		c.net, c.peers = rest, peers
	}
	if len(c.disks) > guestdt.MaxVirtio-1 {
		return nil, fmt.Errorf("%d --disk flags: a guest has at most %d disks", len(c.disks), guestdt.MaxVirtio-1)
	}
	return c, nil
}

// checkImage refuses, before anything is uploaded, what the control
// partition would: it recognises and places the image in the guest's RAM
// the way the control partition does (bootimage), with room for an
// initrd of initrdSize bytes and the device tree.
func checkImage(path string, mem, initrdSize uint64) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("image %s: %v", path, errors.Unwrap(err))
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("image %s: not a regular file", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("image %s: %v", path, errors.Unwrap(err))
	}
	im, err := bootimage.Parse(b)
	if err == nil {
		_, err = im.Plan(hyp.GuestIPA, mem, initrdSize)
	}
	if err != nil {
		return fmt.Errorf("image %s: %v", path, err)
	}
	return nil
}

func cmdRun(args []string, stdout, stderr io.Writer) (code int) {
	c, err := parseRun(args, stderr)
	if err != nil {
		return failed("run", err, exitUsage, stderr)
	}
	var initrdSize uint64
	if c.initrd != "" {
		fi, err := os.Stat(c.initrd)
		if err != nil || !fi.Mode().IsRegular() || fi.Size() == 0 {
			return failed("run", fmt.Errorf("--initrd %s: not a file with something in it", c.initrd), exitUsage, stderr)
		}
		initrdSize = uint64(fi.Size())
	}
	if err := checkImage(c.image, c.mem, initrdSize); err != nil {
		return failed("run", err, exitUsage, stderr)
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	// One path for both: a private instance is booted, used like one that
	// is up, and brought down after, whatever happened.
	var in *client.Instance
	if remote.addr != "" {
		if c.private {
			return failed("run", fmt.Errorf("--private boots an instance on this host: drop --remote"), exitUsage, stderr)
		}
		if in, _, err = targetInstance(c.instance); err != nil {
			return failed("run", err, exitUsage, stderr)
		}
	} else if !c.private {
		in, _ = client.LoadInstance(c.instance)
	}
	if in != nil && c.net != "" && c.net != "user" {
		return failed("run", fmt.Errorf("--net %s: instance %q is up, and its uplink's forwards are its own (bulkhead up --net): use --net user, or add --private", c.net, c.instance), exitUsage, stderr)
	}
	if in != nil && len(c.machineSet) > 0 {
		return failed("run", fmt.Errorf("%s shape a private instance, but instance %q is up: drop them, or add --private", strings.Join(c.machineSet, ", "), c.instance), exitUsage, stderr)
	}
	if in == nil {
		if err := c.machine.check("machine-mem"); err != nil {
			return failed("run", err, exitUsage, stderr)
		}
		// A private instance has the guest's disk images as its drives.
		for i, v := range c.disks {
			file, ro := cutRO(v)
			d := drive{name: fmt.Sprintf("disk%d", i), file: file, ro: ro}
			if err := d.check(); err != nil {
				return failed("run", err, exitUsage, stderr)
			}
			c.machine.drives = append(c.machine.drives, d)
			if ro {
				d.name += ",ro"
			}
			c.disks[i] = d.name
		}
		if c.net != "" {
			c.machine.uplink, _ = parseUplink(c.net)
		}
		if !c.json {
			fmt.Fprintf(stderr, "bulkhead: booting %s in a private instance...\n", c.name)
		}
		in, err = bootInstance(&c.machine, fmt.Sprintf("run-%d", os.Getpid()), true, sigs)
		if errors.Is(err, errInterrupted) {
			fmt.Fprintf(stderr, "bulkhead: %v; the private instance was stopped\n", err)
			return 130
		}
		if err != nil {
			return failed("run", fmt.Errorf("the private instance failed to boot: %v", err), exitInternal, stderr)
		}
		defer func() {
			status, last := teardown(in, stderr)
			if status != 0 && code != 130 && code != exitInternal {
				fmt.Fprintf(stderr, "bulkhead: the hypervisor ended with status %d after %s stopped; its last lines:\n%s", status, c.name, last)
				code = exitInternal
			}
		}()
	}
	return runIn(c, in, sigs, stdout, stderr)
}

// runIn runs the image in an instance that is up: it uploads it through
// the broker (showing progress), prints the guest's console as it comes
// and returns the guest's exit status.
func runIn(c *runConfig, in *client.Instance, sigs <-chan os.Signal, stdout, stderr io.Writer) int {
	img, err := os.ReadFile(c.image)
	if err != nil {
		return failed("run", err, exitUsage, stderr)
	}
	var initrd []byte
	if c.initrd != "" {
		if initrd, err = os.ReadFile(c.initrd); err != nil {
			return failed("run", err, exitUsage, stderr)
		}
	}
	cl, err := client.Connect(in)
	if err != nil {
		return failed("run", err, exitInternal, stderr)
	}
	defer cl.Close()
	if c.verbose {
		defer follow(in.Log, !in.Private, stderr)()
	}
	req := map[string]any{"op": "run", "name": c.name, "size": len(img), "mem": c.mem, "cpus": c.cpus, "arg": c.arg}
	if len(c.pcpus) > 0 {
		req["pcpus"] = c.pcpus
	}
	if c.cmdline != "" {
		req["cmdline"] = c.cmdline
	}
	var disks []map[string]any
	for _, v := range c.disks {
		d, err := parseDiskRef(v)
		if err != nil {
			return failed("run", err, exitUsage, stderr)
		}
		disks = append(disks, d)
	}
	if disks != nil {
		req["disks"] = disks
	}
	if c.net != "" {
		req["net"] = true
	}
	if c.peers != "" {
		req["peers"] = c.peers
	}
	if initrd != nil {
		req["initrd_size"] = len(initrd)
	}
	prog := &progress{w: stderr, name: c.name, image: int64(len(img)), initrd: int64(len(initrd)), quiet: c.json, start: time.Now()}
	id, err := cl.Send(req, img, initrd)
	if err != nil {
		return failed("run", err, exitInternal, stderr)
	}

	out := &consoleOut{w: stdout, json: c.json, vm: c.name}
	var early [][]byte // console output that came before the answer
	started, stopping := false, false
	var stopWait <-chan time.Time
	for {
		select {
		case m, ok := <-cl.Msgs():
			if !ok {
				out.flush()
				fmt.Fprintf(stderr, "\nbulkhead run: %v before %s stopped; the instance's last lines:\n%s", cl.Lost(), c.name, tail(in.Log, 20))
				return exitInternal
			}
			switch {
			case m.Event == "upload" && m.ID == id && !started:
				prog.show(m.Sent)
			case m.Event == "" && m.ID == id:
				prog.done(m.OK)
				if !m.OK {
					fmt.Fprintf(stderr, "bulkhead run: instance %q refused %s: %s\n", in.Name, c.name, m.Error)
					return exitUsage
				}
				started = true
				for _, d := range early {
					out.write(d)
				}
				early = nil
			case m.Event == "console" && m.VMName() == c.name:
				if started {
					out.write(m.Data)
				} else {
					early = append(early, m.Data)
				}
			case m.Event == "exit" && m.VMName() == c.name && started:
				out.flush()
				if c.json {
					json.NewEncoder(stdout).Encode(map[string]any{"event": "exit", "vm": c.name, "status": m.Status})
				}
				if stopping {
					return 130
				}
				return m.Status & 0xff
			}
		case s := <-sigs:
			if !started {
				// Hanging up is enough: the broker stops a VM whose
				// client went away before it started.
				fmt.Fprintf(stderr, "\nbulkhead: interrupted (%v) before %s started; it is stopped if it does\n", s, c.name)
				return 130
			}
			if stopping {
				return 130
			}
			stopping = true
			fmt.Fprintf(stderr, "\nbulkhead: interrupted (%v): stopping %s (again to stop waiting)\n", s, c.name)
			if _, err := cl.Send(map[string]any{"op": "stop", "name": c.name}); err != nil {
				return 130
			}
			stopWait = time.After(10 * time.Second)
		case <-stopWait:
			fmt.Fprintf(stderr, "bulkhead: %s did not stop within 10s\n", c.name)
			return 130
		}
	}
}

// progress shows an upload's progress on one line per file.
type progress struct {
	w             io.Writer
	name          string
	image, initrd int64
	quiet         bool
	start         time.Time
	shown, second bool
}

func (p *progress) show(sent int64) {
	if p.quiet {
		return
	}
	p.shown = true
	if sent <= p.image || p.initrd == 0 {
		fmt.Fprintf(p.w, "\rbulkhead: uploading %s: %d of %d KiB", p.name, min(sent, p.image)>>10, p.image>>10)
		return
	}
	if !p.second {
		p.second = true
		fmt.Fprintf(p.w, "\rbulkhead: uploading %s: %d of %d KiB\n", p.name, p.image>>10, p.image>>10)
	}
	fmt.Fprintf(p.w, "\rbulkhead: uploading %s's initrd: %d of %d KiB", p.name, (sent-p.image)>>10, p.initrd>>10)
}

// done ends the progress line with the throughput, VM start included.
func (p *progress) done(ok bool) {
	if p.quiet {
		return
	}
	if !ok {
		if p.shown {
			fmt.Fprintln(p.w)
		}
		return
	}
	if !p.shown {
		p.show(p.image + p.initrd)
	}
	fmt.Fprintf(p.w, " (%.1f MB/s)\n", float64(p.image+p.initrd)/1e6/time.Since(p.start).Seconds())
}

// consoleOut writes a guest's console: its bytes as they are, or with
// --json one event per line.
type consoleOut struct {
	w       io.Writer
	json    bool
	vm      string
	partial []byte
}

func (o *consoleOut) write(b []byte) {
	if !o.json {
		o.w.Write(b)
		return
	}
	o.partial = append(o.partial, b...)
	for {
		i := bytes.IndexByte(o.partial, '\n')
		if i < 0 {
			return
		}
		o.emit(o.partial[:i])
		o.partial = o.partial[i+1:]
	}
}

func (o *consoleOut) emit(line []byte) {
	json.NewEncoder(o.w).Encode(map[string]string{"event": "console", "vm": o.vm, "text": strings.TrimRight(string(line), "\r")})
}

// flush writes what is left of a last line without its newline.
func (o *consoleOut) flush() {
	if o.json && len(o.partial) > 0 {
		o.emit(o.partial)
		o.partial = nil
	}
}

// follow copies what is appended to a file to w until the returned
// function is called; from its start, or from its end if fromEnd.
func follow(path string, fromEnd bool, w io.Writer) (stop func()) {
	f, err := os.Open(path)
	if err != nil {
		return func() {}
	}
	if fromEnd {
		f.Seek(0, io.SeekEnd)
	}
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		for {
			io.Copy(w, f)
			select {
			case <-done:
				io.Copy(w, f)
				f.Close()
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return func() { close(done); <-finished }
}

// cpuListFlag is a list of physical CPU numbers: "1,3" or ranges, "0-3".
type cpuListFlag struct{ list *[]int }

func (f cpuListFlag) String() string {
	if f.list == nil {
		return ""
	}
	var parts []string
	for _, n := range *f.list {
		parts = append(parts, strconv.Itoa(n))
	}
	return strings.Join(parts, ",")
}

func (f cpuListFlag) Set(v string) error {
	var out []int
	for _, part := range strings.Split(v, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err1 := strconv.Atoi(lo)
		b, err2 := a, error(nil)
		if isRange {
			b, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || a < 0 || b < a || b >= maxPCPUs {
			return fmt.Errorf("%q: want CPU numbers 0 to %d or ranges of them, separated by commas (1,2 or 1-3)", part, maxPCPUs-1)
		}
		for n := a; n <= b; n++ {
			out = append(out, n)
		}
	}
	*f.list = out
	return nil
}

// maxPCPUs bounds a CPU number on the command line: the most CPUs the
// hypervisor runs guests on (vcpu.MaxCPUs).
const maxPCPUs = 64
