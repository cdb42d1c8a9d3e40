package main

import (
	"bufio"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

// Exit statuses of bulkhead itself, apart from the guest's.
const (
	exitUsage    = 2   // bad command line or image
	exitInternal = 125 // the hypervisor or QEMU failed
)

// Guest physical layout (hyp.GuestIPA) and the machine's memory map the
// images are placed in (board/qemuvirt, board/bulkheadvm).
const (
	guestIPA   = 0x40000000
	moduleBase = 0x50000000 // above the control partition's runtime
	maxCPUs    = 16
)

type runConfig struct {
	name       string
	mem        uint64
	cpus       int
	arg        uint64
	machineMem uint64
	qemuOpts   []string
	json       bool
	verbose    bool
	hyp        string
	control    string
	qemu       string
	image      string
	instance   string
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

func parseRun(args []string, stderr io.Writer) (*runConfig, error) {
	c := &runConfig{mem: 16 << 20, cpus: 1, machineMem: 1 << 30}
	fs := flag.NewFlagSet("bulkhead run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: bulkhead run [flags] IMAGE

Runs IMAGE, an AArch64 ELF executable linked for guest RAM at 0x40000000
(a TamaGo guest built with board/bulkheadvm, say), as a guest of Bulkhead:
in the instance named by --instance if it is up (bulkhead up; the image is
uploaded over its host channel), otherwise in a private instance booted for
it in QEMU and stopped after. The guest's console goes to standard output;
bulkhead exits with the guest's exit status (125 if the hypervisor fails).

Examples:
	bulkhead run build/guest-hello.elf
	bulkhead run --arg 3 --mem 32M build/guest-hello.elf; echo $?
	bulkhead run --qemu-opt=-icount --qemu-opt=shift=0 build/guest-timer.elf

Flags:
`)
		fs.PrintDefaults()
	}
	fs.StringVar(&c.name, "name", "", "the VM's name (default: the image's file name)")
	fs.Var(sizeFlag{&c.mem}, "mem", "guest RAM, a multiple of 2M")
	fs.IntVar(&c.cpus, "cpus", 1, "guest vCPUs, 1 to 16")
	fs.Uint64Var(&c.arg, "arg", 0, "value the guest finds in x0 at entry")
	fs.Var(sizeFlag{&c.machineMem}, "machine-mem", "the QEMU machine's RAM")
	fs.Var(listFlag{&c.qemuOpts}, "qemu-opt", "extra QEMU argument (repeatable), e.g. --qemu-opt=-icount --qemu-opt=shift=0")
	fs.BoolVar(&c.json, "json", false, "print JSON lines: console output and the final status")
	fs.BoolVar(&c.verbose, "v", false, "also print the hypervisor's and control partition's log to standard error")
	fs.StringVar(&c.hyp, "hypervisor", "", "hypervisor image (default: bulkhead-hyp.elf in $BULKHEAD_IMAGES or ./build)")
	fs.StringVar(&c.control, "control", "", "control partition image (default: bulkhead-control.elf beside the hypervisor)")
	fs.StringVar(&c.qemu, "qemu", "qemu-system-aarch64", "the QEMU binary")
	fs.StringVar(&c.instance, "instance", "default", "run in this instance if it is up (bulkhead up); otherwise boot a private one")
	// Flags may come before or after IMAGE.
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(positional) != 1 {
		fs.Usage()
		return nil, fmt.Errorf("want exactly one IMAGE, got %d", len(positional))
	}
	c.image = positional[0]
	if c.name == "" {
		c.name = strings.TrimSuffix(filepath.Base(c.image), filepath.Ext(c.image))
	}
	if !regexp.MustCompile(`^[A-Za-z0-9_.-]{1,16}$`).MatchString(c.name) {
		return nil, fmt.Errorf("--name %q: use 1 to 16 letters, digits, '.', '_' or '-'", c.name)
	}
	if c.mem%(2<<20) != 0 {
		return nil, fmt.Errorf("--mem %s: must be a multiple of 2M", sizeFlag{&c.mem})
	}
	if c.cpus < 1 || c.cpus > maxCPUs {
		return nil, fmt.Errorf("--cpus %d: want 1 to %d", c.cpus, maxCPUs)
	}
	if c.machineMem < 512<<20 {
		return nil, fmt.Errorf("--machine-mem %s: at least 512M (the hypervisor keeps 64M, the control partition's runtime 64M at 0x48000000, images go above 0x50000000)", sizeFlag{&c.machineMem})
	}
	if err := c.locate(); err != nil {
		return nil, err
	}
	return c, nil
}

// locate finds the hypervisor and control partition images.
func (c *runConfig) locate() error {
	dir := os.Getenv("BULKHEAD_IMAGES")
	if dir == "" {
		dir = "build"
	}
	if c.hyp == "" {
		c.hyp = filepath.Join(dir, "bulkhead-hyp.elf")
	}
	if c.control == "" {
		c.control = filepath.Join(filepath.Dir(c.hyp), "bulkhead-control.elf")
	}
	for _, f := range []struct{ what, path string }{{"hypervisor", c.hyp}, {"control partition", c.control}} {
		if _, err := os.Stat(f.path); err != nil {
			return fmt.Errorf("%s image %s: %v (build it with make, or point --hypervisor/--control or $BULKHEAD_IMAGES at it)", f.what, f.path, errors.Unwrap(err))
		}
	}
	return nil
}

// checkImage rejects what the control partition would: anything but an
// AArch64 ELF executable whose segments fit the guest's RAM.
func checkImage(path string, mem uint64) (size int64, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, fmt.Errorf("image %s: %v", path, errors.Unwrap(err))
	}
	f, err := elf.Open(path)
	if err != nil {
		return 0, fmt.Errorf("image %s: not an ELF file (%v)", path, err)
	}
	defer f.Close()
	if f.Machine != elf.EM_AARCH64 || f.Class != elf.ELFCLASS64 || f.Data != elf.ELFDATA2LSB {
		return 0, fmt.Errorf("image %s: %v %v %v, want a 64-bit little-endian AArch64 ELF", path, f.Class, f.Data, f.Machine)
	}
	if f.Type != elf.ET_EXEC {
		return 0, fmt.Errorf("image %s: %v, want an executable (ET_EXEC)", path, f.Type)
	}
	loads := 0
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Memsz == 0 {
			continue
		}
		loads++
		if p.Paddr < guestIPA || p.Paddr+p.Memsz > guestIPA+mem {
			return 0, fmt.Errorf("image %s: segment [%#x, +%#x) does not fit the guest's RAM [%#x, +%#x): link it at 0x40000000 or give it more --mem",
				path, p.Paddr, p.Memsz, guestIPA, mem)
		}
	}
	if loads == 0 {
		return 0, fmt.Errorf("image %s: no loadable segment", path)
	}
	return fi.Size(), nil
}

func align2M(v uint64) uint64 { return (v + 2<<20 - 1) &^ (2<<20 - 1) }

// qemuArgs builds the QEMU command line: the hypervisor as the kernel, the
// control partition's and the guest's images as boot modules above
// moduleBase, and the boot arguments naming them.
func qemuArgs(c *runConfig, controlSize, imageSize int64) ([]string, error) {
	ctlAt := uint64(moduleBase)
	imgAt := align2M(ctlAt + uint64(controlSize))
	if imgAt+uint64(imageSize) > guestIPA+c.machineMem {
		return nil, fmt.Errorf("the images do not fit below the end of the machine's %s of RAM: raise --machine-mem", sizeFlag{&c.machineMem})
	}
	appendArgs := fmt.Sprintf("exit=semihosting control=%#x:%d guest0=%s:%#x:%d:%d:%#x:%d",
		ctlAt, controlSize, c.name, imgAt, imageSize, c.arg, c.mem, c.cpus)
	args := []string{
		"-machine", "virt,virtualization=on,gic-version=3", "-cpu", "max",
		"-m", fmt.Sprintf("%dM", c.machineMem>>20), "-smp", "1",
		"-nographic", "-monitor", "none", "-semihosting-config", "enable=on,target=native",
		"-kernel", c.hyp,
		"-device", fmt.Sprintf("loader,file=%s,addr=%#x,force-raw=on", c.control, ctlAt),
		"-device", fmt.Sprintf("loader,file=%s,addr=%#x,force-raw=on", c.image, imgAt),
		"-append", appendArgs,
	}
	return append(args, c.qemuOpts...), nil
}

func cmdRun(args []string, stdout, stderr io.Writer) int {
	c, err := parseRun(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "bulkhead run: %v\n", err)
		return exitUsage
	}
	imageSize, err := checkImage(c.image, c.mem)
	if err != nil {
		fmt.Fprintf(stderr, "bulkhead run: %v\n", err)
		return exitUsage
	}
	if in, err := loadInstance(c.instance); err == nil {
		return runRemote(c, in, stdout, stderr)
	}
	fi, _ := os.Stat(c.control)
	qargs, err := qemuArgs(c, fi.Size(), imageSize)
	if err != nil {
		fmt.Fprintf(stderr, "bulkhead run: %v\n", err)
		return exitUsage
	}
	if _, err := exec.LookPath(c.qemu); err != nil {
		fmt.Fprintf(stderr, "bulkhead run: %s not found: install it with: sudo apt-get install qemu-system-arm\n", c.qemu)
		return exitInternal
	}
	return run(c, qargs, stdout, stderr)
}

var (
	consoleLine = regexp.MustCompile(`^([A-Za-z0-9_.-]+)\| (.*)$`)
	stoppedLine = regexp.MustCompile(`^bulkhead: vm (\S+) stopped: (.*)$`)
	statusLine  = regexp.MustCompile(`^control\| control: (\S+) \(VM \d+\) stopped with status (-?\d+)`)
	hypExitLine = regexp.MustCompile(`^bulkhead: exit status (-?\d+)$`)
)

// run starts QEMU, follows the hypervisor's console and returns the guest's
// exit status. QEMU dies with bulkhead: on return, on Ctrl-C, and (through
// its process group and Pdeathsig) if bulkhead is killed.
func run(c *runConfig, qargs []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd := exec.CommandContext(ctx, c.qemu, qargs...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintf(stderr, "bulkhead run: %v\n", err)
		return exitInternal
	}
	cmd.Stderr = cmd.Stdout
	if !c.json {
		fmt.Fprintf(stderr, "bulkhead: booting %s in a private instance...\n", c.name)
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(stderr, "bulkhead run: starting %s: %v\n", c.qemu, err)
		return exitInternal
	}
	defer syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)

	enc := json.NewEncoder(stdout)
	guestStatus, hypStatus, reason := -1, -1, ""
	var log []string
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		log = append(log, line)
		if len(log) > 200 {
			log = log[1:]
		}
		if m := consoleLine.FindStringSubmatch(line); m != nil && m[1] == c.name {
			if c.json {
				enc.Encode(map[string]string{"event": "console", "vm": c.name, "text": m[2]})
			} else {
				fmt.Fprintln(stdout, m[2])
			}
			continue
		}
		if c.verbose {
			fmt.Fprintln(stderr, line)
		}
		if m := stoppedLine.FindStringSubmatch(line); m != nil && m[1] == c.name {
			reason = m[2]
		}
		if m := statusLine.FindStringSubmatch(line); m != nil && m[1] == c.name {
			guestStatus, _ = strconv.Atoi(m[2])
		}
		if m := hypExitLine.FindStringSubmatch(line); m != nil {
			hypStatus, _ = strconv.Atoi(m[1])
		}
	}
	waitErr := cmd.Wait()
	if ctx.Err() != nil {
		fmt.Fprintf(stderr, "bulkhead: interrupted; the instance was stopped\n")
		return 130
	}
	if guestStatus < 0 || hypStatus != 0 {
		fmt.Fprintf(stderr, "bulkhead: the instance failed (hypervisor status %d, QEMU: %v); its last lines:\n", hypStatus, waitErr)
		start := len(log) - 30
		if start < 0 {
			start = 0
		}
		for _, l := range log[start:] {
			fmt.Fprintf(stderr, "  %s\n", l)
		}
		return exitInternal
	}
	if c.json {
		enc.Encode(map[string]any{"event": "exit", "vm": c.name, "status": guestStatus, "reason": reason})
	} else if c.verbose {
		fmt.Fprintf(stderr, "bulkhead: %s %s\n", c.name, reason)
	}
	return guestStatus & 0xff
}
