package main

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-hv/bulkhead/cpio"
)

// fakeELF is the smallest ELF64 header that debug/elf reads: an
// executable for the given machine, with no program headers unless
// interp is set.
func fakeELF(t *testing.T, machine elf.Machine, interp bool) []byte {
	return fakeELFType(t, elf.ET_EXEC, machine, interp)
}

// fakeModule is the same header for a relocatable object, as a kernel
// module is, followed by its name so that modules differ.
func fakeModule(t *testing.T, machine elf.Machine, name string) []byte {
	return append(fakeELFType(t, elf.ET_REL, machine, false), name...)
}

func fakeELFType(t *testing.T, typ elf.Type, machine elf.Machine, interp bool) []byte {
	t.Helper()
	h := elf.Header64{
		Type:      uint16(typ),
		Machine:   uint16(machine),
		Version:   uint32(elf.EV_CURRENT),
		Ehsize:    64,
		Phentsize: 56,
		Shentsize: 64,
	}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	h.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	h.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	var buf bytes.Buffer
	if interp {
		h.Phoff, h.Phnum = 64, 1
	}
	binary.Write(&buf, binary.LittleEndian, h)
	if interp {
		binary.Write(&buf, binary.LittleEndian, elf.Prog64{Type: uint32(elf.PT_INTERP)})
	}
	return buf.Bytes()
}

func TestCheckBusybox(t *testing.T) {
	if err := checkBusybox(fakeELF(t, elf.EM_AARCH64, false)); err != nil {
		t.Errorf("static arm64 ELF: %v", err)
	}
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"script", []byte("#!/bin/sh\necho hi\n"), "not an ELF file"},
		{"empty", nil, "not an ELF file"},
		{"x86-64", fakeELF(t, elf.EM_X86_64, false), "not arm64"},
		{"dynamic", fakeELF(t, elf.EM_AARCH64, true), "dynamically linked"},
		{"truncated", []byte(elf.ELFMAG + "\x02\x01\x01"), "not a readable ELF"},
	} {
		err := checkBusybox(c.data)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one saying %q", c.name, err, c.want)
		}
	}
}

func TestReadBusyboxMissing(t *testing.T) {
	_, err := readBusybox(filepath.Join(t.TempDir(), "nope"))
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("error %v, want one saying the file does not exist", err)
	}
}

func TestInitramfs(t *testing.T) {
	bb := fakeELF(t, elf.EM_AARCH64, false)
	var gz bytes.Buffer
	if err := writeInitramfs(&gz, bb, initScript, nil); err != nil {
		t.Fatal(err)
	}
	byName := members(t, gz.Bytes())
	if i := byName["init"]; i.Mode != cpio.ModeRegular|0o755 || !bytes.Equal(i.Data, initScript) {
		t.Errorf("init: mode %o, %d bytes", i.Mode, len(i.Data))
	}
	if !bytes.HasPrefix(initScript, []byte("#!/bin/sh\n")) {
		t.Errorf("init.sh does not start with #!/bin/sh")
	}
	if b := byName["bin/busybox"]; b.Mode != cpio.ModeRegular|0o755 || !bytes.Equal(b.Data, bb) {
		t.Errorf("bin/busybox: mode %o, %d bytes", b.Mode, len(b.Data))
	}
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev", "tmp", "root", "etc"} {
		if byName[d].Mode&cpio.ModeType != cpio.ModeDir {
			t.Errorf("/%s is not a directory", d)
		}
	}
	for _, d := range []struct {
		name         string
		major, minor uint32
	}{{"dev/console", 5, 1}, {"dev/null", 1, 3}} {
		g := byName[d.name]
		if g.Mode&cpio.ModeType != cpio.ModeCharDev || g.RdevMajor != d.major || g.RdevMinor != d.minor {
			t.Errorf("/%s: mode %o rdev %d,%d, want a character device %d,%d",
				d.name, g.Mode, g.RdevMajor, g.RdevMinor, d.major, d.minor)
		}
	}
	for _, a := range strings.Fields("sh mount uname cat dmesg grep poweroff echo ls ps sleep setsid cttyhack mkdir nproc wc md5sum dd seq time insmod switch_root umount") {
		if g := byName["bin/"+a]; g.Mode != cpio.ModeSymlink|0o777 || string(g.Data) != "/bin/busybox" {
			t.Errorf("/bin/%s: mode %o target %q, want a link to /bin/busybox", a, g.Mode, g.Data)
		}
	}
	// Without -modules there is no /lib/modules: /init loads nothing.
	if _, ok := byName["lib/modules/order"]; ok {
		t.Error("lib/modules/order is there without modules")
	}
}

// members unpacks a gzip-compressed archive and checks that no name
// appears twice and that every member's directory comes before it.
func members(t *testing.T, gz []byte) map[string]cpio.Entry {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	// Parse checks the framing and that the archive ends with the
	// trailer; what is left to check here is what the members are.
	got, err := cpio.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]cpio.Entry{}
	for _, g := range got {
		if _, dup := byName[g.Name]; dup {
			t.Errorf("%s appears twice", g.Name)
		}
		byName[g.Name] = g
		// Every member's parent comes before it.
		if i := strings.LastIndex(g.Name, "/"); i > 0 {
			if p, ok := byName[g.Name[:i]]; !ok || p.Mode&cpio.ModeType != cpio.ModeDir {
				t.Errorf("%s comes before its directory", g.Name)
			}
		}
	}
	return byName
}

func TestRunReproducible(t *testing.T) {
	dir := t.TempDir()
	bbPath := filepath.Join(dir, "busybox")
	if err := os.WriteFile(bbPath, fakeELF(t, elf.EM_AARCH64, false), 0o755); err != nil {
		t.Fatal(err)
	}
	var outs [2][]byte
	for i := range outs {
		out := filepath.Join(dir, fmt.Sprintf("rootfs%d.cpio.gz", i))
		if err := run(bbPath, "", out); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		outs[i] = b
	}
	if !bytes.Equal(outs[0], outs[1]) {
		t.Error("the same busybox gave two different archives")
	}
	if !bytes.HasPrefix(outs[0], []byte{0x1f, 0x8b}) {
		t.Errorf("archive starts %x, want gzip's 1f 8b", outs[0][:2])
	}
	// run leaves no temporary files behind.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 3 {
		t.Errorf("%d files in the output folder, want busybox and the 2 archives", len(ents))
	}
}

func TestRunRejectsNonELF(t *testing.T) {
	dir := t.TempDir()
	bbPath := filepath.Join(dir, "busybox")
	if err := os.WriteFile(bbPath, []byte("not a binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "rootfs.cpio.gz")
	if err := run(bbPath, "", out); err == nil || !strings.Contains(err.Error(), "not an ELF") {
		t.Errorf("error %v, want one saying it is not an ELF file", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("an archive was written anyway")
	}
}

// writeModules makes a modules folder: the files, and an order file.
func writeModules(t *testing.T, files map[string][]byte, order string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if order != "" {
		if err := os.WriteFile(filepath.Join(dir, "order"), []byte(order), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestInitramfsModules(t *testing.T) {
	mods := map[string][]byte{
		"failover.ko":     fakeModule(t, elf.EM_AARCH64, "failover"),
		"net_failover.ko": fakeModule(t, elf.EM_AARCH64, "net_failover"),
		"virtio_net.ko":   fakeModule(t, elf.EM_AARCH64, "virtio_net"),
		// Not in the order file: left out.
		"stray.ko": fakeModule(t, elf.EM_AARCH64, "stray"),
	}
	dir := writeModules(t, mods, "failover.ko\nnet_failover.ko\n\nvirtio_net.ko\n")
	got, err := readModules(dir)
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	if err := writeInitramfs(&gz, fakeELF(t, elf.EM_AARCH64, false), initScript, got); err != nil {
		t.Fatal(err)
	}
	byName := members(t, gz.Bytes())
	for _, d := range []string{"lib", "lib/modules"} {
		if byName[d].Mode != cpio.ModeDir|0o755 {
			t.Errorf("/%s: mode %o, want a directory", d, byName[d].Mode)
		}
	}
	if o := byName["lib/modules/order"]; o.Mode != cpio.ModeRegular|0o644 ||
		string(o.Data) != "failover.ko\nnet_failover.ko\nvirtio_net.ko\n" {
		t.Errorf("lib/modules/order: mode %o, %q", o.Mode, o.Data)
	}
	for _, m := range []string{"failover.ko", "net_failover.ko", "virtio_net.ko"} {
		if g := byName["lib/modules/"+m]; g.Mode != cpio.ModeRegular|0o644 || !bytes.Equal(g.Data, mods[m]) {
			t.Errorf("lib/modules/%s: mode %o, %d bytes", m, g.Mode, len(g.Data))
		}
	}
	if _, ok := byName["lib/modules/stray.ko"]; ok {
		t.Error("a module the order file does not list is in the archive")
	}
	// /init loads them in the order file's order, with insmod.
	for _, s := range []string{"/lib/modules/order", "insmod", "switch_root", "bulkhead-init: cannot load module"} {
		if !bytes.Contains(initScript, []byte(s)) {
			t.Errorf("init.sh does not mention %q", s)
		}
	}
}

func TestReadModulesRejects(t *testing.T) {
	good := fakeModule(t, elf.EM_AARCH64, "m")
	for _, c := range []struct {
		name  string
		files map[string][]byte
		order string
		want  string
	}{
		{"no order file", map[string][]byte{"m.ko": good}, "", "no order file"},
		{"empty order", map[string][]byte{"m.ko": good}, "\n\n", "lists no modules"},
		{"missing module", nil, "m.ko\n", "no such file"},
		{"path", map[string][]byte{"m.ko": good}, "../m.ko\n", "not a module file name"},
		{"compressed name", map[string][]byte{"m.ko.xz": good}, "m.ko.xz\n", "not a module file name"},
		{"twice", map[string][]byte{"m.ko": good}, "m.ko\nm.ko\n", "listed twice"},
		{"compressed", map[string][]byte{"m.ko": {0xfd, '7', 'z', 'X', 'Z', 0}}, "m.ko\n", "uncompressed"},
		{"x86-64", map[string][]byte{"m.ko": fakeModule(t, elf.EM_X86_64, "m")}, "m.ko\n", "not arm64"},
		{"executable", map[string][]byte{"m.ko": fakeELF(t, elf.EM_AARCH64, false)}, "m.ko\n", "not a kernel module"},
	} {
		_, err := readModules(writeModules(t, c.files, c.order))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one saying %q", c.name, err, c.want)
		}
	}
}

func TestRunModulesReproducible(t *testing.T) {
	dir := t.TempDir()
	bbPath := filepath.Join(dir, "busybox")
	if err := os.WriteFile(bbPath, fakeELF(t, elf.EM_AARCH64, false), 0o755); err != nil {
		t.Fatal(err)
	}
	mods := writeModules(t, map[string][]byte{
		"a.ko": fakeModule(t, elf.EM_AARCH64, "a"),
		"b.ko": fakeModule(t, elf.EM_AARCH64, "b"),
	}, "b.ko\na.ko\n")
	var outs [2][]byte
	for i := range outs {
		out := filepath.Join(dir, fmt.Sprintf("rootfs%d.cpio.gz", i))
		if err := run(bbPath, mods, out); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		outs[i] = b
	}
	if !bytes.Equal(outs[0], outs[1]) {
		t.Error("the same busybox and modules gave two different archives")
	}
	plain := filepath.Join(dir, "plain.cpio.gz")
	if err := run(bbPath, "", plain); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(plain); bytes.Equal(b, outs[0]) {
		t.Error("the archive with modules is the same as the one without")
	}
	// A bad module folder writes nothing.
	bad := filepath.Join(dir, "bad.cpio.gz")
	if err := run(bbPath, t.TempDir(), bad); err == nil {
		t.Error("a folder without an order file was taken")
	}
	if _, err := os.Stat(bad); err == nil {
		t.Error("an archive was written anyway")
	}
}
