// Package containerinit is PID 1 of a container's VM: the init that the
// containerd shim (cmd/containerd-shim-bulkhead-v1) puts in the VM's
// initramfs beside the container's root filesystem. It enters that root,
// starts the container's process as the OCI spec asks, carries its
// streams and exit status over the console (consolemux), and powers the
// VM off when the process ends.
//
// The initramfs the shim builds:
//
//	/init              this program (cmd/containerinit), static, linux/arm64
//	/bulkhead/spec.json the process to run (Spec)
//	/rootfs/...        the container's root filesystem
//	/dev/console       the node the kernel opens for init's streams
package containerinit

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// Paths in the initramfs, without the leading slash (cpio names).
const (
	SpecPath = "bulkhead/spec.json"
	RootDir  = "rootfs"
)

// DefaultPath is the PATH a process gets when its environment has none,
// as runc's.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Spec is the part of an OCI runtime spec's process that the guest
// carries out, and the VM's hostname.
type Spec struct {
	Args     []string `json:"args"`
	Env      []string `json:"env,omitempty"`
	Cwd      string   `json:"cwd"`
	UID      uint32   `json:"uid"`
	GID      uint32   `json:"gid"`
	Groups   []uint32 `json:"groups,omitempty"`
	Hostname string   `json:"hostname,omitempty"`
	// Stdin says whether the host sends standard input (Stdin frames);
	// without it the process reads /dev/null.
	Stdin bool `json:"stdin,omitempty"`
	// Terminal gives the process a pseudo-terminal as its standard
	// streams (and controlling terminal); its output, stdout and stderr
	// together, comes as Stdout frames.
	Terminal bool `json:"terminal,omitempty"`
}

// Check refuses a spec the init could not carry out, with the field at
// fault, so the shim can fail the task before a VM boots.
func (s *Spec) Check() error {
	if len(s.Args) == 0 || s.Args[0] == "" {
		return errors.New("process.args is empty: there is nothing to run")
	}
	if !path.IsAbs(s.Cwd) {
		return fmt.Errorf("process.cwd %q is not an absolute path", s.Cwd)
	}
	for _, e := range s.Env {
		if !strings.Contains(e, "=") {
			return fmt.Errorf("process.env entry %q is not NAME=VALUE", e)
		}
	}
	return nil
}

// Getenv is the value of name in the spec's environment: the first, as
// getenv(3) and Go's os.Getenv in the process would find it.
func (s *Spec) Getenv(name string) (string, bool) {
	for _, e := range s.Env {
		if v, ok := strings.CutPrefix(e, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// SearchPath is the PATH the process's executable is looked up in.
func (s *Spec) SearchPath() string {
	if p, ok := s.Getenv("PATH"); ok {
		return p
	}
	return DefaultPath
}
