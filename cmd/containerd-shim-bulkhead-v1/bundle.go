package main

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/bulkhead-hv/bulkhead/containerinit"
	"github.com/bulkhead-hv/bulkhead/cpio"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Sizes of a container's VM.
const (
	// defaultMem is the RAM of a VM whose spec sets no memory limit:
	// the kernel's needs and as much again for the process. (The
	// initramfs's room is added to it.)
	defaultMem = 128 << 20
	// kernelMem is what the guest kernel itself needs beside the
	// container's limit: its image, page tables and caches.
	kernelMem = 64 << 20
	// maxRootfs bounds the root filesystem carried in the initramfs: it is
	// held in the shim's memory, uploaded and unpacked into guest RAM.
	maxRootfs = 1 << 30
	maxCPUs   = 16 // hyp.MaxVCPUs
)

// vmConfig is what a bundle becomes: the process the init starts, and the
// VM's size.
type vmConfig struct {
	spec containerinit.Spec
	mem  uint64 // bytes, a multiple of 2 MiB, before the initramfs is added
	cpus int
}

// readSpec reads a bundle's config.json.
func readSpec(bundle string) (*specs.Spec, error) {
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("reading the bundle's OCI spec: %w", err)
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("the bundle's config.json: %w", err)
	}
	return &s, nil
}

// configure turns an OCI spec into a VM. What a VM cannot honour is an
// error naming the field, not silently dropped.
func configure(s *specs.Spec, stdin bool) (*vmConfig, error) {
	p := s.Process
	if p == nil {
		return nil, errors.New("the OCI spec has no process: there is nothing to run")
	}
	c := &vmConfig{mem: defaultMem, cpus: 1}
	c.spec = containerinit.Spec{
		Args: p.Args, Env: p.Env, Cwd: p.Cwd,
		UID: p.User.UID, GID: p.User.GID, Groups: p.User.AdditionalGids,
		Hostname: s.Hostname, Stdin: stdin,
	}
	if c.spec.Cwd == "" {
		c.spec.Cwd = "/"
	}
	if p.User.Username != "" {
		return nil, fmt.Errorf("process.user.username %q: give a uid and gid (a VM has no host passwd to look it up in)", p.User.Username)
	}
	if err := c.spec.Check(); err != nil {
		return nil, err
	}
	if s.Linux != nil && s.Linux.Resources != nil {
		r := s.Linux.Resources
		if r.Memory != nil && r.Memory.Limit != nil && *r.Memory.Limit > 0 {
			c.mem = roundUp(uint64(*r.Memory.Limit), 2<<20) + kernelMem
		}
		if r.CPU != nil {
			if r.CPU.Quota != nil && *r.CPU.Quota > 0 && r.CPU.Period != nil && *r.CPU.Period > 0 {
				c.cpus = int((uint64(*r.CPU.Quota) + *r.CPU.Period - 1) / *r.CPU.Period)
			} else if r.CPU.Cpus != "" {
				n, err := countCPUs(r.CPU.Cpus)
				if err != nil {
					return nil, fmt.Errorf("linux.resources.cpu.cpus: %v", err)
				}
				c.cpus = n
			}
		}
		if c.cpus > maxCPUs {
			return nil, fmt.Errorf("linux.resources.cpu asks for %d CPUs; a Bulkhead VM has at most %d", c.cpus, maxCPUs)
		}
	}
	return c, nil
}

func roundUp(n, to uint64) uint64 { return (n + to - 1) / to * to }

// countCPUs counts the CPUs of a cpuset list such as "0-3,6".
func countCPUs(list string) (int, error) {
	n := 0
	for _, part := range strings.Split(list, ",") {
		var lo, hi int
		if _, err := fmt.Sscanf(part, "%d-%d", &lo, &hi); err != nil {
			if _, err := fmt.Sscanf(part, "%d", &lo); err != nil {
				return 0, fmt.Errorf("%q is not a CPU list", list)
			}
			hi = lo
		}
		if lo < 0 || hi < lo {
			return 0, fmt.Errorf("%q is not a CPU list", list)
		}
		n += hi - lo + 1
	}
	return n, nil
}

// resolve finds name inside the root filesystem at root, following
// symbolic links as the guest will, with ".." and absolute targets kept
// inside root. It returns the host path of the file.
func resolve(root, name string) (string, error) {
	cur := "/"
	rest := strings.Split(path.Clean("/"+name), "/")[1:]
	for links := 0; len(rest) > 0; {
		part := rest[0]
		rest = rest[1:]
		next := path.Join(cur, part)
		fi, err := os.Lstat(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if links++; links > 40 {
			return "", syscall.ELOOP
		}
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if !path.IsAbs(target) {
			target = path.Join(cur, target)
		}
		rest = append(strings.Split(path.Clean(target), "/")[1:], rest...)
		cur = "/"
	}
	return filepath.Join(root, cur), nil
}

// checkExecutable finds the process's executable in the image the way the
// guest's init will (containerinit's lookPath) and checks that an arm64
// kernel can run it: an AArch64 ELF, or a script whose interpreter is one.
// Refusing here fails the task before a VM is booted for nothing.
func checkExecutable(root string, s *containerinit.Spec) error {
	name := s.Args[0]
	var dirs []string
	if strings.Contains(name, "/") {
		dirs = []string{""}
		if !path.IsAbs(name) {
			name = path.Join(s.Cwd, name)
		}
	} else {
		dirs = strings.Split(s.SearchPath(), ":")
	}
	for _, d := range dirs {
		p := name
		if d != "" {
			p = path.Join(d, name)
		}
		host, err := resolve(root, p)
		if err != nil {
			continue
		}
		if fi, err := os.Stat(host); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			continue
		}
		return checkBinary(root, p, host, 0)
	}
	return fmt.Errorf("process.args[0] %q: no executable file of that name in the image (searched %s)", s.Args[0], strings.Join(dirs, ":"))
}

func checkBinary(root, guestPath, host string, depth int) error {
	f, err := os.Open(host)
	if err != nil {
		return err
	}
	defer f.Close()
	head := make([]byte, 256)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	if bytes.HasPrefix(head, []byte("#!")) && depth == 0 {
		line, _, _ := bytes.Cut(head[2:], []byte("\n"))
		fields := strings.Fields(string(line))
		if len(fields) == 0 {
			return fmt.Errorf("%s: a script with no interpreter after #!", guestPath)
		}
		interp, err := resolve(root, fields[0])
		if err != nil {
			return fmt.Errorf("%s: its interpreter %s is not in the image", guestPath, fields[0])
		}
		return checkBinary(root, fields[0], interp, 1)
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		return fmt.Errorf("%s: not an ELF executable or a script: an arm64 VM cannot run it", guestPath)
	}
	if ef.Machine != elf.EM_AARCH64 {
		return fmt.Errorf("%s is built for %v, not arm64 (EM_AARCH64): the image is for another architecture; Bulkhead VMs run linux/arm64 images", guestPath, ef.Machine)
	}
	return nil
}

// initramfs builds the VM's initramfs (package containerinit's layout):
// the init, the spec and the root filesystem at root, as an uncompressed
// newc archive (the guest unpacks it faster than it would inflate it).
func initramfs(root string, init []byte, spec *containerinit.Spec) ([]byte, error) {
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	es := []cpio.Entry{
		cpio.File("init", 0o755, init),
		cpio.Dir("bulkhead"),
		cpio.File(containerinit.SpecPath, 0o644, specJSON),
		cpio.Dir("dev"),
		// The kernel opens /dev/console for PID 1 before it runs.
		cpio.CharDev("dev/console", 0o600, 5, 1),
		cpio.Dir(containerinit.RootDir),
	}
	total := int64(0)
	err = walk(root, func(rel string, fi fs.FileInfo) error {
		name := containerinit.RootDir + "/" + rel
		perm := uint32(fi.Mode().Perm())
		if fi.Mode()&fs.ModeSetuid != 0 {
			perm |= 0o4000
		}
		if fi.Mode()&fs.ModeSetgid != 0 {
			perm |= 0o2000
		}
		if fi.Mode()&fs.ModeSticky != 0 {
			perm |= 0o1000
		}
		host := filepath.Join(root, rel)
		var owner [2]uint32
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			owner = [2]uint32{st.Uid, st.Gid}
		}
		n := len(es)
		defer func() {
			if len(es) > n {
				es[n].UID, es[n].GID = owner[0], owner[1]
			}
		}()
		switch {
		case fi.IsDir():
			e := cpio.Dir(name)
			e.Mode = cpio.ModeDir | perm
			es = append(es, e)
		case fi.Mode()&fs.ModeSymlink != 0:
			t, err := os.Readlink(host)
			if err != nil {
				return err
			}
			es = append(es, cpio.Symlink(name, t))
		case fi.Mode().IsRegular():
			if total += fi.Size(); total > maxRootfs {
				return fmt.Errorf("the root filesystem holds more than %d MiB, which a VM's initramfs cannot carry", maxRootfs>>20)
			}
			data, err := os.ReadFile(host)
			if err != nil {
				return err
			}
			es = append(es, cpio.File(name, perm, data))
		case fi.Mode()&fs.ModeCharDevice != 0:
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				es = append(es, cpio.CharDev(name, perm, uint32(st.Rdev>>8)&0xfff, uint32(st.Rdev&0xff)|uint32(st.Rdev>>12)&0xfff00))
			}
		}
		// Sockets, FIFOs and block devices are not carried: a VM's
		// devtmpfs provides the devices it has.
		return nil
	})
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := cpio.Write(&buf, es); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// walk calls fn for everything under root, parents before children, in a
// stable order, without following symbolic links.
func walk(root string, fn func(rel string, fi fs.FileInfo) error) error {
	var visit func(rel string) error
	visit = func(rel string) error {
		ents, err := os.ReadDir(filepath.Join(root, rel))
		if err != nil {
			return err
		}
		sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
		for _, e := range ents {
			r := path.Join(rel, e.Name())
			fi, err := e.Info()
			if err != nil {
				return err
			}
			if err := fn(r, fi); err != nil {
				return err
			}
			if fi.IsDir() {
				if err := visit(r); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return visit("")
}
