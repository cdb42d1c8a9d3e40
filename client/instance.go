package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// An Instance: QEMU running in the background with the hypervisor and the
// control partition, and the broker holding the control partition's host
// channel. Its state is a directory, $XDG_RUNTIME_DIR/bulkhead/NAME (see
// StateDir), which holds it as instance.json.
type Instance struct {
	Name      string `json:"name"`
	PID       int    `json:"pid"`        // QEMU's
	Socket    string `json:"socket"`     // QEMU's end of the host channel; the broker holds it
	Log       string `json:"log"`        // the machine's serial console: the hypervisor and the control partition
	QEMULog   string `json:"qemu_log"`   // what QEMU itself says
	BrokerPID int    `json:"broker_pid"` // the broker's
	API       string `json:"api"`        // the broker's socket, which CLIs talk to
	BrokerLog string `json:"broker_log"`
	Private   bool   `json:"private,omitempty"` // booted for one run, gone after it
	// Remote, when set, is how to reach an instance over its network
	// control plane instead of its broker.
	Remote *Remote `json:"-"`
}

// StateDir is the directory of the instance named name.
func StateDir(name string) string {
	base := os.Getenv("XDG_RUNTIME_DIR")
	if base == "" {
		base = filepath.Join(os.TempDir(), fmt.Sprintf("bulkhead-%d", os.Getuid()))
	}
	return filepath.Join(base, "bulkhead", name)
}

// ReadInstance reads an instance's state, whether or not it still runs.
func ReadInstance(name string) (*Instance, error) {
	b, err := os.ReadFile(filepath.Join(StateDir(name), "instance.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no instance named %q is up: start one with: bulkhead up --name %s", name, name)
	}
	if err != nil {
		return nil, err
	}
	var in Instance
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, fmt.Errorf("instance %q: corrupt state file %s: %v; remove it", name, filepath.Join(StateDir(name), "instance.json"), err)
	}
	return &in, nil
}

// LoadInstance returns an instance that is up and reachable. One whose
// QEMU is gone is cleaned up: its broker killed, its state removed.
func LoadInstance(name string) (*Instance, error) {
	in, err := ReadInstance(name)
	if err != nil {
		return nil, err
	}
	if !Alive(in.PID) {
		if Alive(in.BrokerPID) {
			syscall.Kill(in.BrokerPID, syscall.SIGKILL)
		}
		os.RemoveAll(StateDir(name))
		return nil, fmt.Errorf("instance %q is gone (QEMU pid %d no longer runs)", name, in.PID)
	}
	if !Alive(in.BrokerPID) {
		return nil, fmt.Errorf("instance %q is unreachable: its broker (pid %d) is gone (its log: %s); bring it down with: bulkhead down --name %s", name, in.BrokerPID, in.BrokerLog, name)
	}
	return in, nil
}

// Alive reports whether a process runs. A zombie does not: a private
// instance's owner killed outright is one until its parent reaps it.
func Alive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// pid (comm) state ...: comm may hold anything but the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}
