package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"time"

	"github.com/bulkhead-hv/bulkhead/client"
)

// Where the shim finds what it needs (see the package comment).
func instanceName() string { return envOr("BULKHEAD_INSTANCE", "containerd") }

func imagesDir() string {
	if d := os.Getenv("BULKHEAD_IMAGES"); d != "" {
		return d
	}
	self, err := os.Executable()
	if err != nil {
		return "build"
	}
	return filepath.Dir(self)
}

func kernelPath() string { return filepath.Join(imagesDir(), "linux", "vmlinuz") }
func initPath() string   { return filepath.Join(imagesDir(), "bulkhead-containerinit") }

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// kernelCmdline boots the guest kernel silent (its lines would mix with
// the frames; they go to the shim's log if it prints any), straight into
// the init, and makes a panic reset the VM instead of hanging it.
const kernelCmdline = "console=ttyAMA0 loglevel=0 quiet panic=-1 rdinit=/init"

var vmNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,16}$`)

// vmName is the task's VM in the instance: its id when that is a valid
// VM name (up to 16 letters, digits, '.', '_', '-'), which `bulkhead ps`
// then shows, else "c-" and a digest of namespace and id (Kubernetes' ids
// are 64 hex digits). The instance refuses a second running VM of a
// name: two namespaces that run the same short id at once get that
// error from Start.
func vmName(namespace, id string) string {
	if vmNameRE.MatchString(id) {
		return id
	}
	sum := sha256.Sum256([]byte(namespace + "/" + id))
	return "c-" + hex.EncodeToString(sum[:7])
}

// ensureInstance returns the instance the VMs run in, booting it with the
// bulkhead CLI if it is not up. A lock file serialises shims that start
// at once.
func ensureInstance(logf func(string, ...any)) (*client.Instance, error) {
	name := instanceName()
	if in, err := client.LoadInstance(name); err == nil {
		return in, nil
	}
	dir := filepath.Dir(client.StateDir(name))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(filepath.Join(dir, name+".shim-lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return nil, err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if in, err := client.LoadInstance(name); err == nil {
		return in, nil
	}
	cli := os.Getenv("BULKHEAD_CLI")
	if cli == "" {
		cli = filepath.Join(imagesDir(), "bulkhead")
		if _, err := os.Stat(cli); err != nil {
			if cli, err = exec.LookPath("bulkhead"); err != nil {
				return nil, fmt.Errorf("instance %q is not up and there is no bulkhead command to boot it (set BULKHEAD_CLI, or put bulkhead beside the shim)", name)
			}
		}
	}
	logf("booting instance %q with %s", name, cli)
	cmd := exec.Command(cli, "up", "--name", name, "--mem", envOr("BULKHEAD_INSTANCE_MEM", "4G"), "--smp", envOr("BULKHEAD_INSTANCE_SMP", "2"))
	cmd.Env = append(os.Environ(), "BULKHEAD_IMAGES="+imagesDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("booting instance %q: %v: %s", name, err, out)
	}
	return client.LoadInstance(name)
}

// stopVMNamed stops a VM of the instance, if the instance is up and the
// VM runs; for the delete action, after a shim that is gone.
func stopVMNamed(vm string, logf func(string, ...any)) {
	in, err := client.LoadInstance(instanceName())
	if err != nil {
		return
	}
	cl, err := client.Connect(in)
	if err != nil {
		logf("%v", err)
		return
	}
	defer cl.Close()
	vms, _, err := cl.PS()
	if err != nil {
		logf("%v", err)
		return
	}
	if v, ok := client.Find(vms, vm); !ok || v.State != "running" {
		return
	}
	if _, err := cl.Call(map[string]any{"op": "stop", "name": vm}, 30*time.Second); err != nil {
		logf("stopping VM %s: %v", vm, err)
	}
}

// vm is a task's VM while it runs: the broker connection it was started
// on, which carries its console and its end.
type vm struct {
	name string
	mem  uint64
	cl   *client.Client
}

// boot uploads the kernel and initramfs and starts the VM. It returns
// when the instance has started it, or refused it with the control
// partition's reason.
func boot(in *client.Instance, name string, mem uint64, cpus int, initrd []byte, onConsole func([]byte)) (*vm, error) {
	kernel, err := os.ReadFile(kernelPath())
	if err != nil {
		return nil, fmt.Errorf("the guest kernel: %v (make linux builds it; set BULKHEAD_IMAGES)", err)
	}
	cl, err := client.Connect(in)
	if err != nil {
		return nil, err
	}
	req := map[string]any{"op": "run", "name": name, "size": len(kernel), "mem": mem, "cpus": cpus,
		"cmdline": kernelCmdline, "initrd_size": len(initrd)}
	id, err := cl.Send(req, kernel, initrd)
	if err != nil {
		cl.Close()
		return nil, err
	}
	deadline := time.After(client.AnswerTimeout)
	for {
		select {
		case m, ok := <-cl.Msgs():
			if !ok {
				cl.Close()
				return nil, cl.Lost()
			}
			switch {
			case m.Event == "" && m.ID == id:
				if !m.OK {
					cl.Close()
					return nil, fmt.Errorf("instance %q refused the VM: %s", in.Name, m.Error)
				}
				return &vm{name: name, mem: mem, cl: cl}, nil
			case m.Event == "console" && m.VMName() == name:
				onConsole(m.Data)
			}
		case <-deadline:
			cl.Close()
			return nil, errors.New("the instance did not start the VM within " + client.AnswerTimeout.String())
		}
	}
}

// wait passes the VM's console to onConsole until the VM ends, and
// returns its status; -1 if the instance went down under it.
func (v *vm) wait(onConsole func([]byte)) int {
	for m := range v.cl.Msgs() {
		switch {
		case m.Event == "console" && m.VMName() == v.name:
			onConsole(m.Data)
		case m.Event == "exit" && m.VMName() == v.name:
			return m.Status
		}
	}
	return -1
}

// input sends bytes to the VM's console.
func (v *vm) input(b []byte) error {
	_, err := v.cl.Send(map[string]any{"op": "input", "name": v.name, "data": b})
	return err
}

func (v *vm) stop() error {
	_, err := v.cl.Send(map[string]any{"op": "stop", "name": v.name})
	return err
}

// vmFigures is a VM's line of the instance's stats.
type vmFigures struct {
	Name  string `json:"name"`
	State string `json:"state"`
	RunMS int64  `json:"run_ms"`
	Pages int64  `json:"pages"`
}

// vmStats asks the instance for a running VM's figures, on a connection
// of its own (the VM's carries its console).
func vmStats(name string) (*vmFigures, error) {
	in, err := client.LoadInstance(instanceName())
	if err != nil {
		return nil, err
	}
	cl, err := client.Connect(in)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	m, err := cl.Call(map[string]any{"op": "stats"}, 30*time.Second)
	if err != nil {
		return nil, err
	}
	var st struct {
		VMs []vmFigures `json:"vms"`
	}
	if err := json.Unmarshal(m.Raw(), &st); err != nil {
		return nil, err
	}
	for i := range st.VMs {
		if st.VMs[i].Name == name && st.VMs[i].State == "running" {
			return &st.VMs[i], nil
		}
	}
	return nil, fmt.Errorf("VM %s is not running", name)
}
