package main

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/bulkhead-hv/bulkhead/containerinit"
	"github.com/bulkhead-hv/bulkhead/cpio"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func ptr[T any](v T) *T { return &v }

func TestConfigure(t *testing.T) {
	base := func() *specs.Spec {
		return &specs.Spec{Hostname: "h", Process: &specs.Process{Args: []string{"/bin/sh"}, Env: []string{"PATH=/bin"}, Cwd: "/",
			User: specs.User{UID: 1000, GID: 100, AdditionalGids: []uint32{5}}}}
	}
	c, err := configure(base(), true)
	require.NoError(t, err)
	assert.Equal(t, containerinit.Spec{Args: []string{"/bin/sh"}, Env: []string{"PATH=/bin"}, Cwd: "/", UID: 1000, GID: 100,
		Groups: []uint32{5}, Hostname: "h", Stdin: true}, c.spec)
	assert.Equal(t, uint64(defaultMem), c.mem)
	assert.Equal(t, 1, c.cpus)

	s := base()
	s.Linux = &specs.Linux{Resources: &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: ptr(int64(100 << 20))},
		CPU:    &specs.LinuxCPU{Quota: ptr(int64(150000)), Period: ptr(uint64(100000))},
	}}
	c, err = configure(s, false)
	require.NoError(t, err)
	assert.Equal(t, uint64(100<<20+kernelMem), c.mem, "the limit, in 2 MiB, and the kernel's share")
	assert.Equal(t, 2, c.cpus, "a quota of 1.5 CPUs is 2 vCPUs")
	s.Linux.Resources.Memory.Limit = ptr(int64(100<<20 + 1))
	c, _ = configure(s, false)
	assert.Equal(t, uint64(102<<20+kernelMem), c.mem, "rounded up to 2 MiB")

	s.Linux.Resources.CPU = &specs.LinuxCPU{Cpus: "0-2,5"}
	c, err = configure(s, false)
	require.NoError(t, err)
	assert.Equal(t, 4, c.cpus)

	for _, bad := range []struct {
		mod  func(*specs.Spec)
		want string
	}{
		{func(s *specs.Spec) { s.Process = nil }, "no process"},
		{func(s *specs.Spec) { s.Process.Args = nil }, "args is empty"},
		{func(s *specs.Spec) { s.Process.Cwd = "rel" }, "not an absolute path"},
		{func(s *specs.Spec) { s.Process.Env = []string{"NOEQUALS"} }, "not NAME=VALUE"},
		{func(s *specs.Spec) { s.Process.User.Username = "bob" }, "username"},
		{func(s *specs.Spec) {
			s.Linux = &specs.Linux{Resources: &specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "0-63"}}}
		}, "at most 16"},
		{func(s *specs.Spec) {
			s.Linux = &specs.Linux{Resources: &specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "3-1"}}}
		}, "not a CPU list"},
	} {
		s := base()
		bad.mod(s)
		_, err := configure(s, false)
		if assert.Error(t, err, bad.want) {
			assert.Contains(t, err.Error(), bad.want)
		}
	}
	s = base()
	s.Process.Cwd = ""
	c, err = configure(s, false)
	require.NoError(t, err)
	assert.Equal(t, "/", c.spec.Cwd, "no cwd is the root, as runc has it")
}

// elfHeader is the smallest ELF64 header debug/elf reads.
func elfHeader(machine elf.Machine) []byte {
	h := elf.Header64{Type: uint16(elf.ET_EXEC), Machine: uint16(machine), Version: uint32(elf.EV_CURRENT), Ehsize: 64, Phentsize: 56, Shentsize: 64}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS], h.Ident[elf.EI_DATA], h.Ident[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, h)
	return b.Bytes()
}

// rootfs makes a small root filesystem: busybox-style links, a relative
// link, a script, an x86 program, a link that climbs out of the root.
func rootfs(t *testing.T) string {
	root := t.TempDir()
	for _, d := range []string{"bin", "usr/bin", "etc", "outside-target"} {
		require.NoError(t, os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	w := func(p string, mode os.FileMode, b []byte) {
		require.NoError(t, os.WriteFile(filepath.Join(root, p), b, mode))
	}
	w("bin/busybox", 0o755, elfHeader(elf.EM_AARCH64))
	w("usr/bin/x86", 0o755, elfHeader(elf.EM_X86_64))
	w("usr/bin/script", 0o755, []byte("#!/bin/sh\necho hi\n"))
	w("usr/bin/badscript", 0o755, []byte("#!/no/such/interp\n"))
	w("etc/data", 0o644, []byte("not executable"))
	l := func(p, target string) { require.NoError(t, os.Symlink(target, filepath.Join(root, p))) }
	l("bin/sh", "/bin/busybox")
	l("usr/bin/rel", "../../bin/busybox")
	l("usr/bin/climb", "../../../../../bin/busybox") // stays inside the root
	l("usr/bin/loop", "loop")
	return root
}

func TestCheckExecutable(t *testing.T) {
	root := rootfs(t)
	ok := func(args0 string, env ...string) error {
		return checkExecutable(root, &containerinit.Spec{Args: []string{args0}, Env: env, Cwd: "/usr"})
	}
	// bin/rel is relative to the cwd, /usr.
	for _, name := range []string{"sh", "/bin/sh", "rel", "climb", "script", "bin/rel"} {
		assert.NoError(t, ok(name), name)
	}
	for _, c := range []struct{ name, want string }{
		{"x86", "not arm64"},
		{"nothere", "no executable file"},
		{"data", "no executable file"}, // not on the PATH
		{"/etc/data", "no executable file"},
		{"loop", "no executable file"},
		{"badscript", "interpreter /no/such/interp is not in the image"},
	} {
		err := ok(c.name)
		if assert.Error(t, err, c.name) {
			assert.Contains(t, err.Error(), c.want, c.name)
		}
	}
	assert.Error(t, ok("sh", "PATH=/usr/bin"), "the spec's PATH is the one searched")
	err := ok("busybox", "PATH=/usr/bin", "PATH=/bin")
	assert.Error(t, err, "the first PATH wins, as getenv's does in the guest")
}

func TestInitramfs(t *testing.T) {
	root := rootfs(t)
	// Owners are kept (as root, the test gives one away; otherwise the
	// file is the test's own).
	os.Lchown(filepath.Join(root, "etc/data"), 1000, 100)
	var st syscall.Stat_t
	require.NoError(t, syscall.Lstat(filepath.Join(root, "etc/data"), &st))
	spec := &containerinit.Spec{Args: []string{"sh"}, Cwd: "/"}
	b, err := initramfs(root, []byte("INIT"), spec)
	require.NoError(t, err)
	es, err := cpio.Parse(b)
	require.NoError(t, err)
	by := map[string]cpio.Entry{}
	var order []string
	for _, e := range es {
		by[e.Name] = e
		order = append(order, e.Name)
	}
	assert.Equal(t, []byte("INIT"), by["init"].Data)
	assert.Equal(t, uint32(cpio.ModeRegular|0o755), by["init"].Mode)
	var got containerinit.Spec
	require.NoError(t, json.Unmarshal(by[containerinit.SpecPath].Data, &got))
	assert.Equal(t, *spec, got)
	assert.Equal(t, uint32(cpio.ModeCharDev|0o600), by["dev/console"].Mode)
	assert.Equal(t, [2]uint32{5, 1}, [2]uint32{by["dev/console"].RdevMajor, by["dev/console"].RdevMinor})
	assert.Equal(t, "/bin/busybox", string(by["rootfs/bin/sh"].Data))
	assert.Equal(t, uint32(cpio.ModeSymlink|0o777), by["rootfs/bin/sh"].Mode)
	assert.Equal(t, elfHeader(elf.EM_AARCH64), by["rootfs/bin/busybox"].Data)
	assert.Equal(t, uint32(cpio.ModeRegular|0o644), by["rootfs/etc/data"].Mode)
	assert.Equal(t, [2]uint32{st.Uid, st.Gid}, [2]uint32{by["rootfs/etc/data"].UID, by["rootfs/etc/data"].GID}, "the file's owner")
	// Every directory comes before what it holds, as the kernel unpacks.
	seen := map[string]bool{}
	for _, n := range order {
		if i := strings.LastIndex(n, "/"); i > 0 {
			assert.True(t, seen[n[:i]], "%s comes after its directory", n)
		}
		seen[n] = true
	}
}

func TestVMName(t *testing.T) {
	assert.Equal(t, "c1", vmName("default", "c1"))
	assert.Equal(t, "c1", vmName("k8s.io", "c1"))
	long := vmName("k8s.io", strings.Repeat("ab", 32))
	assert.Regexp(t, `^c-[0-9a-f]{14}$`, long)
	assert.NotEqual(t, long, vmName("other", strings.Repeat("ab", 32)), "namespaces do not share digests")
	assert.Regexp(t, vmNameRE, vmName("default", "has space"))
}

func TestParseFlags(t *testing.T) {
	f, err := parseFlags([]string{"-namespace", "ns", "-address", "/run/c.sock", "-publish-binary", "/usr/bin/containerd", "-id", "x", "start"})
	require.NoError(t, err)
	assert.Equal(t, "start", f.action)
	assert.Equal(t, "ns", f.namespace)
	wd, _ := os.Getwd()
	assert.Equal(t, wd, f.bundle, "the bundle is the working directory")
	f, err = parseFlags([]string{"-namespace", "ns", "-id", "x", "-bundle", "/b", "-debug", "delete"})
	require.NoError(t, err)
	assert.Equal(t, "delete", f.action)
	assert.Equal(t, "/b", f.bundle)
	for _, bad := range [][]string{{"-id", "x", "start"}, {"-namespace", "n", "-id", "x", "frobnicate"}, {"-namespace", "n", "-id", "x", "start", "delete"}} {
		_, err := parseFlags(bad)
		assert.Error(t, err, "%q", bad)
	}
}

func TestMountOptions(t *testing.T) {
	flags, data := mountOptions([]string{"rbind", "ro", "rw", "lowerdir=/a:/b", "upperdir=/u", "nosuid"})
	assert.Equal(t, uintptr(0x1000|0x4000|1|2), flags, "MS_BIND|MS_REC|MS_RDONLY|MS_NOSUID")
	assert.Equal(t, "lowerdir=/a:/b,upperdir=/u", data)
}
