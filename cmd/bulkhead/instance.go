package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A long-lived instance: QEMU running in the background with the
// hypervisor and the control partition, reached through the control
// partition's host channel, a unix socket in the instance's directory.
type instance struct {
	Name   string `json:"name"`
	PID    int    `json:"pid"`
	Socket string `json:"socket"`
	Log    string `json:"log"`
}

func stateDir(name string) string {
	base := os.Getenv("XDG_RUNTIME_DIR")
	if base == "" {
		base = filepath.Join(os.TempDir(), fmt.Sprintf("bulkhead-%d", os.Getuid()))
	}
	return filepath.Join(base, "bulkhead", name)
}

func loadInstance(name string) (*instance, error) {
	b, err := os.ReadFile(filepath.Join(stateDir(name), "instance.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no instance named %q is up: start one with: bulkhead up --name %s", name, name)
	}
	if err != nil {
		return nil, err
	}
	var in instance
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, fmt.Errorf("instance %q: corrupt state file: %v", name, err)
	}
	if syscall.Kill(in.PID, 0) != nil {
		os.RemoveAll(stateDir(name))
		return nil, fmt.Errorf("instance %q is gone (QEMU pid %d no longer runs); its log was %s", name, in.PID, in.Log)
	}
	return &in, nil
}

// channel is a connection to the control partition.
type channel struct {
	conn net.Conn
	rd   *bufio.Reader
	next int
}

func dial(sock string, timeout time.Duration) (*channel, error) {
	deadline := time.Now().Add(timeout)
	for {
		conn, err := net.Dial("unix", sock)
		if err == nil {
			return &channel{conn: conn, rd: bufio.NewReader(conn), next: 1}, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("cannot reach the control partition at %s: %v", sock, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// read returns the next message, waiting at most timeout.
func (c *channel) read(timeout time.Duration) (map[string]any, error) {
	c.conn.SetReadDeadline(time.Now().Add(timeout))
	line, err := c.rd.ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("reading from the control partition: %v", err)
	}
	var v map[string]any
	if err := json.Unmarshal(line, &v); err != nil {
		return nil, fmt.Errorf("the control partition sent %q, not JSON", line)
	}
	return v, nil
}

// call sends a request and returns its answer, skipping events.
func (c *channel) call(op string, timeout time.Duration) (map[string]any, error) {
	id := c.next
	c.next++
	if _, err := fmt.Fprintf(c.conn, `{"id":%d,"op":%q}`+"\n", id, op); err != nil {
		return nil, err
	}
	for {
		v, err := c.read(timeout)
		if err != nil {
			return nil, err
		}
		if v["id"] == float64(id) {
			if v["ok"] != true {
				return v, fmt.Errorf("%s: %v", op, v["error"])
			}
			return v, nil
		}
	}
}

func instanceFlags(name string, args []string, stderr io.Writer, extra func(*flag.FlagSet)) (*flag.FlagSet, *string, error) {
	fs := flag.NewFlagSet("bulkhead "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	inst := fs.String("name", "default", "the instance's name")
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	if fs.NArg() != 0 {
		return nil, nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return fs, inst, nil
}

// cmdUp boots an instance in the background and waits for its control
// partition to say it is ready.
func cmdUp(args []string, stdout, stderr io.Writer) int {
	c := &runConfig{machineMem: 1 << 30}
	var name *string
	var err error
	_, name, err = instanceFlags("up", args, stderr, func(fs *flag.FlagSet) {
		fs.Var(sizeFlag{&c.machineMem}, "mem", "the QEMU machine's RAM")
		fs.Var(listFlag{&c.qemuOpts}, "qemu-opt", "extra QEMU argument (repeatable)")
		fs.StringVar(&c.hyp, "hypervisor", "", "hypervisor image (default: bulkhead-hyp.elf in $BULKHEAD_IMAGES or ./build)")
		fs.StringVar(&c.control, "control", "", "control partition image (default: beside the hypervisor)")
		fs.StringVar(&c.qemu, "qemu", "qemu-system-aarch64", "the QEMU binary")
	})
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "bulkhead up: %v\n", err)
		return exitUsage
	}
	if err := c.locate(); err != nil {
		fmt.Fprintf(stderr, "bulkhead up: %v\n", err)
		return exitUsage
	}
	if in, err := loadInstance(*name); err == nil {
		fmt.Fprintf(stderr, "bulkhead up: instance %q is already up (QEMU pid %d); stop it with: bulkhead down --name %s\n", *name, in.PID, *name)
		return exitUsage
	}
	dir := stateDir(*name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		fmt.Fprintf(stderr, "bulkhead up: %v\n", err)
		return exitInternal
	}
	in := &instance{Name: *name, Socket: filepath.Join(dir, "ctl.sock"), Log: filepath.Join(dir, "console.log")}
	os.Remove(in.Socket)
	fi, err := os.Stat(c.control)
	if err != nil {
		fmt.Fprintf(stderr, "bulkhead up: %v\n", err)
		return exitUsage
	}
	qargs := []string{
		"-machine", "virt,virtualization=on,gic-version=3", "-cpu", "max",
		"-m", fmt.Sprintf("%dM", c.machineMem>>20), "-smp", "1",
		"-display", "none", "-monitor", "none", "-serial", "file:" + in.Log,
		"-semihosting-config", "enable=on,target=native",
		"-kernel", c.hyp,
		"-device", fmt.Sprintf("loader,file=%s,addr=%#x,force-raw=on", c.control, uint64(moduleBase)),
		"-global", "virtio-mmio.force-legacy=false",
		"-device", "virtio-serial-device",
		"-chardev", "socket,id=ctl,path=" + in.Socket + ",server=on,wait=on",
		"-device", "virtconsole,chardev=ctl",
		"-append", fmt.Sprintf("exit=semihosting control=%#x:%d", uint64(moduleBase), fi.Size()),
	}
	qargs = append(qargs, c.qemuOpts...)
	cmd := exec.Command(c.qemu, qargs...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlives this command
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(stderr, "bulkhead up: starting %s: %v\n", c.qemu, err)
		return exitInternal
	}
	in.PID = cmd.Process.Pid
	go cmd.Wait() // reaped if it dies while we wait for it
	fail := func(err error) int {
		syscall.Kill(in.PID, syscall.SIGKILL)
		log, _ := os.ReadFile(in.Log)
		fmt.Fprintf(stderr, "bulkhead up: %v\nits console:\n%s", err, log)
		os.RemoveAll(dir)
		return exitInternal
	}
	fmt.Fprintf(stderr, "bulkhead: booting instance %q...\n", *name)
	ch, err := dial(in.Socket, 10*time.Second)
	if err != nil {
		return fail(err)
	}
	defer ch.conn.Close()
	ready, err := ch.read(60 * time.Second)
	if err != nil {
		return fail(err)
	}
	if ready["event"] != "ready" {
		return fail(fmt.Errorf("the control partition said %v first, not ready", ready))
	}
	b, _ := json.MarshalIndent(in, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "instance.json"), b, 0o600); err != nil {
		return fail(err)
	}
	fmt.Fprintf(stdout, "instance %q is up: QEMU pid %d, console log %s\n", *name, in.PID, in.Log)
	return 0
}

// cmdPs lists the instance's VMs.
func cmdPs(args []string, stdout, stderr io.Writer) int {
	var asJSON bool
	_, name, err := instanceFlags("ps", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	})
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "bulkhead ps: %v\n", err)
		return exitUsage
	}
	in, err := loadInstance(*name)
	if err != nil {
		fmt.Fprintf(stderr, "bulkhead ps: %v\n", err)
		return exitUsage
	}
	ch, err := dial(in.Socket, 5*time.Second)
	if err != nil {
		fmt.Fprintf(stderr, "bulkhead ps: %v\n", err)
		return exitInternal
	}
	defer ch.conn.Close()
	v, err := ch.call("ps", 10*time.Second)
	if err != nil {
		fmt.Fprintf(stderr, "bulkhead ps: %v\n", err)
		return exitInternal
	}
	vms, _ := v["vms"].([]any)
	if asJSON {
		json.NewEncoder(stdout).Encode(map[string]any{"instance": *name, "vms": vms})
		return 0
	}
	fmt.Fprintf(stdout, "%-16s %-6s %s\n", "NAME", "VM", "STATE")
	for _, x := range vms {
		m, _ := x.(map[string]any)
		fmt.Fprintf(stdout, "%-16v %-6v %v\n", m["name"], m["vm"], m["state"])
	}
	return 0
}

// cmdDown asks the control partition to shut the instance down, and makes
// sure QEMU is gone.
func cmdDown(args []string, stdout, stderr io.Writer) int {
	_, name, err := instanceFlags("down", args, stderr, nil)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "bulkhead down: %v\n", err)
		return exitUsage
	}
	in, err := loadInstance(*name)
	if err != nil {
		fmt.Fprintf(stderr, "bulkhead down: %v\n", err)
		return exitUsage
	}
	if ch, err := dial(in.Socket, 5*time.Second); err == nil {
		_, err = ch.call("shutdown", 10*time.Second)
		ch.conn.Close()
		if err != nil {
			fmt.Fprintf(stderr, "bulkhead down: %v; stopping QEMU\n", err)
		}
	}
	for i := 0; i < 100 && syscall.Kill(in.PID, 0) == nil; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	if syscall.Kill(in.PID, 0) == nil {
		syscall.Kill(in.PID, syscall.SIGKILL)
		fmt.Fprintf(stderr, "bulkhead down: the instance did not stop within 10s: killed QEMU\n")
	}
	log, _ := os.ReadFile(in.Log)
	os.RemoveAll(stateDir(*name))
	status := "unknown"
	for _, l := range strings.Split(string(log), "\n") {
		if strings.HasPrefix(l, "bulkhead: exit status ") {
			status = strings.TrimSpace(strings.TrimPrefix(l, "bulkhead: exit status "))
		}
	}
	if n, err := strconv.Atoi(status); err == nil && n == 0 {
		fmt.Fprintf(stdout, "instance %q is down\n", *name)
		return 0
	}
	fmt.Fprintf(stdout, "instance %q is down; the hypervisor's exit status was %s (log was %s)\n", *name, status, in.Log)
	return exitInternal
}
