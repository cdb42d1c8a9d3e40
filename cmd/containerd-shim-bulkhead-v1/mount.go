package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/containerd/containerd/api/types"
)

// rootfsDir is where a bundle's root filesystem is mounted, as the OCI
// runtimes' convention has it.
func rootfsDir(bundle string) string { return filepath.Join(bundle, "rootfs") }

// mountRootfs makes the container's root filesystem readable at a host
// path, which the initramfs is built from. A single bind mount (the native
// snapshotter's) is read where it is, with no mount at all; anything else
// (overlay) is mounted on the bundle's rootfs. No mounts: the bundle's
// rootfs is already there (ctr run --rootfs).
func mountRootfs(bundle string, ms []*types.Mount) (dir string, mounted bool, err error) {
	target := rootfsDir(bundle)
	if len(ms) == 0 {
		return target, false, nil
	}
	if len(ms) == 1 && ms[0].Type == "bind" {
		return ms[0].Source, false, nil
	}
	if err := os.MkdirAll(target, 0o711); err != nil {
		return "", false, err
	}
	for i, m := range ms {
		flags, data := mountOptions(m.Options)
		if m.Type == "bind" {
			flags |= syscall.MS_BIND
		}
		if err := syscall.Mount(m.Source, target, m.Type, flags, data); err != nil {
			if i > 0 {
				syscall.Unmount(target, syscall.MNT_DETACH)
			}
			return "", false, fmt.Errorf("mounting the container's root filesystem (%s %s on %s): %v", m.Type, m.Source, target, err)
		}
	}
	return target, true, nil
}

// mountOptions splits mount(8) options into mount(2) flags and the
// filesystem's own data.
func mountOptions(opts []string) (uintptr, string) {
	known := map[string]uintptr{
		"ro": syscall.MS_RDONLY, "rbind": syscall.MS_BIND | syscall.MS_REC, "bind": syscall.MS_BIND,
		"nosuid": syscall.MS_NOSUID, "nodev": syscall.MS_NODEV, "noexec": syscall.MS_NOEXEC,
	}
	var flags uintptr
	var data []string
	for _, o := range opts {
		if f, ok := known[o]; ok {
			flags |= f
		} else if o != "rw" {
			data = append(data, o)
		}
	}
	return flags, strings.Join(data, ",")
}

// unmountRootfs undoes mountRootfs; nothing mounted is nothing to do.
func unmountRootfs(bundle string, logf func(string, ...any)) {
	target := rootfsDir(bundle)
	for {
		if err := syscall.Unmount(target, syscall.MNT_DETACH); err != nil {
			if err != syscall.EINVAL && err != syscall.ENOENT {
				logf("unmounting %s: %v", target, err)
			}
			return
		}
	}
}
