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
	t.Helper()
	h := elf.Header64{
		Type:      uint16(elf.ET_EXEC),
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
	if err := writeInitramfs(&gz, bb, initScript); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(&gz)
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
	for _, a := range strings.Fields("sh mount uname cat dmesg grep poweroff echo ls ps sleep setsid cttyhack mkdir nproc wc md5sum dd seq time") {
		if g := byName["bin/"+a]; g.Mode != cpio.ModeSymlink|0o777 || string(g.Data) != "/bin/busybox" {
			t.Errorf("/bin/%s: mode %o target %q, want a link to /bin/busybox", a, g.Mode, g.Data)
		}
	}
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
		if err := run(bbPath, out); err != nil {
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
	if err := run(bbPath, out); err == nil || !strings.Contains(err.Error(), "not an ELF") {
		t.Errorf("error %v, want one saying it is not an ELF file", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("an archive was written anyway")
	}
}
