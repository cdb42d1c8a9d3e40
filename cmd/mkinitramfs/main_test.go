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
	"strconv"
	"strings"
	"testing"
)

// parsed is one member read back from a newc archive.
type parsed struct {
	ino, mode, uid, gid, nlink, mtime uint32
	devMajor, devMinor                uint32
	rdevMajor, rdevMinor              uint32
	name                              string
	data                              []byte
}

// parseNewc reads a newc archive the way the kernel does, independently of
// the writer: it checks the magic, the NUL after each name, that padding
// is zeros to a 4-byte boundary, and that the archive ends right after the
// trailer. The trailer is returned as the last member.
func parseNewc(t *testing.T, b []byte) []parsed {
	t.Helper()
	var out []parsed
	off := 0
	for {
		if off%4 != 0 {
			t.Fatalf("member at offset %d is not 4-byte aligned", off)
		}
		if len(b)-off < newcHdrLen {
			t.Fatalf("archive ends inside a header at offset %d", off)
		}
		h := b[off : off+newcHdrLen]
		if string(h[:6]) != "070701" {
			t.Fatalf("bad magic %q at offset %d", h[:6], off)
		}
		var f [13]uint32
		for i := range f {
			s := string(h[6+8*i : 14+8*i])
			v, err := strconv.ParseUint(s, 16, 32)
			if err != nil {
				t.Fatalf("field %d %q at offset %d: %v", i, s, off, err)
			}
			f[i] = uint32(v)
		}
		p := parsed{ino: f[0], mode: f[1], uid: f[2], gid: f[3], nlink: f[4], mtime: f[5],
			devMajor: f[7], devMinor: f[8], rdevMajor: f[9], rdevMinor: f[10]}
		size, namesize, check := int(f[6]), int(f[11]), f[12]
		if check != 0 {
			t.Errorf("checksum %d, want 0", check)
		}
		nameStart := off + newcHdrLen
		nameEnd := nameStart + namesize
		if namesize < 1 || nameEnd > len(b) || b[nameEnd-1] != 0 {
			t.Fatalf("bad name (size %d) at offset %d", namesize, off)
		}
		p.name = string(b[nameStart : nameEnd-1])
		dataStart := (nameEnd - off + 3) &^ 3
		dataStart += off
		checkZeros(t, b[nameEnd:dataStart], p.name+" name padding")
		dataEnd := dataStart + size
		if dataEnd > len(b) {
			t.Fatalf("%s: data runs past the end", p.name)
		}
		p.data = b[dataStart:dataEnd]
		next := (dataEnd + 3) &^ 3
		if next > len(b) {
			t.Fatalf("%s: data padding runs past the end", p.name)
		}
		checkZeros(t, b[dataEnd:next], p.name+" data padding")
		out = append(out, p)
		off = next
		if p.name == "TRAILER!!!" {
			if off != len(b) {
				t.Fatalf("%d bytes after the trailer", len(b)-off)
			}
			return out
		}
	}
}

func checkZeros(t *testing.T, b []byte, what string) {
	t.Helper()
	if len(b) > 3 {
		t.Errorf("%s: %d bytes, more than 3", what, len(b))
	}
	for _, c := range b {
		if c != 0 {
			t.Errorf("%s: not zeros: %q", what, b)
			return
		}
	}
}

func TestWriteCpioRoundTrip(t *testing.T) {
	// Names and data of every length mod 4 exercise each padding case.
	in := []entry{
		dir("d"),
		dir("d/ee"),
		file("d/ee/f", 0o644, []byte("x")),
		file("d/gggg", 0o600, []byte("12")),
		file("hhhhh", 0o755, []byte("abc")),
		file("empty", 0o644, nil),
		file("four", 0o644, []byte("1234")),
		charDev("d/console", 0o600, 5, 1),
		charDev("d/null", 0o666, 1, 3),
		symlink("d/sh", "/bin/busybox"),
	}
	var buf bytes.Buffer
	if err := writeCpio(&buf, in); err != nil {
		t.Fatal(err)
	}
	if buf.Len()%4 != 0 {
		t.Errorf("archive length %d is not a multiple of 4", buf.Len())
	}
	got := parseNewc(t, buf.Bytes())
	if len(got) != len(in)+1 {
		t.Fatalf("%d members, want %d and the trailer", len(got), len(in))
	}
	inos := map[uint32]bool{}
	for i, e := range in {
		g := got[i]
		if g.name != e.name || g.mode != e.mode || !bytes.Equal(g.data, e.data) {
			t.Errorf("member %d: %q mode %o data %q, want %q mode %o data %q",
				i, g.name, g.mode, g.data, e.name, e.mode, e.data)
		}
		if g.uid != 0 || g.gid != 0 || g.mtime != 0 || g.devMajor != 0 || g.devMinor != 0 {
			t.Errorf("%s: uid %d gid %d mtime %d dev %d,%d; want all 0",
				g.name, g.uid, g.gid, g.mtime, g.devMajor, g.devMinor)
		}
		if g.rdevMajor != e.rdevMajor || g.rdevMinor != e.rdevMinor {
			t.Errorf("%s: rdev %d,%d, want %d,%d", g.name, g.rdevMajor, g.rdevMinor, e.rdevMajor, e.rdevMinor)
		}
		if g.ino == 0 || inos[g.ino] {
			t.Errorf("%s: inode %d is 0 or not unique", g.name, g.ino)
		}
		inos[g.ino] = true
		wantLinks := uint32(1)
		if e.mode&modeType == modeDir {
			wantLinks = 2
		}
		if g.nlink != wantLinks {
			t.Errorf("%s: nlink %d, want %d", g.name, g.nlink, wantLinks)
		}
	}
	byName := map[string]parsed{}
	for _, g := range got {
		byName[g.name] = g
	}
	if c := byName["d/console"]; c.mode != 0o020600 || c.rdevMajor != 5 || c.rdevMinor != 1 || len(c.data) != 0 {
		t.Errorf("d/console: mode %o rdev %d,%d size %d", c.mode, c.rdevMajor, c.rdevMinor, len(c.data))
	}
	if s := byName["d/sh"]; s.mode != 0o120777 || string(s.data) != "/bin/busybox" {
		t.Errorf("d/sh: mode %o target %q", s.mode, s.data)
	}
	tr := got[len(got)-1]
	if tr.name != "TRAILER!!!" || tr.mode != 0 || len(tr.data) != 0 {
		t.Errorf("trailer: %+v", tr)
	}
}

func TestWriteCpioHeaderBytes(t *testing.T) {
	// One symlink, checked byte for byte: 110 header bytes and "a\0" pad
	// to 112, then the 2-byte target pads to 4.
	var buf bytes.Buffer
	if err := writeCpio(&buf, []entry{symlink("a", "/b")}); err != nil {
		t.Fatal(err)
	}
	want := "070701" + "00000001" + "0000A1FF" + "00000000" + "00000000" + "00000001" +
		"00000000" + "00000002" + "00000000" + "00000000" + "00000000" + "00000000" +
		"00000002" + "00000000" + "a\x00" + "/b\x00\x00"
	if got := buf.String()[:len(want)]; got != want {
		t.Errorf("first member:\n got %q\nwant %q", got, want)
	}
}

func TestWriteCpioRejectsBadNames(t *testing.T) {
	for _, es := range [][]entry{
		{dir("")},
		{dir("/abs")},
		{dir("TRAILER!!!")},
		{dir("a"), file("a", 0o644, nil)},
	} {
		if err := writeCpio(io.Discard, es); err == nil {
			t.Errorf("%q: no error", es[len(es)-1].name)
		}
	}
}

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
	got := parseNewc(t, raw)
	byName := map[string]parsed{}
	for _, g := range got {
		if _, dup := byName[g.name]; dup {
			t.Errorf("%s appears twice", g.name)
		}
		byName[g.name] = g
		// Every member's parent comes before it.
		if i := strings.LastIndex(g.name, "/"); i > 0 {
			if p, ok := byName[g.name[:i]]; !ok || p.mode&modeType != modeDir {
				t.Errorf("%s comes before its directory", g.name)
			}
		}
	}
	if i := byName["init"]; i.mode != modeRegular|0o755 || !bytes.Equal(i.data, initScript) {
		t.Errorf("init: mode %o, %d bytes", i.mode, len(i.data))
	}
	if !bytes.HasPrefix(initScript, []byte("#!/bin/sh\n")) {
		t.Errorf("init.sh does not start with #!/bin/sh")
	}
	if b := byName["bin/busybox"]; b.mode != modeRegular|0o755 || !bytes.Equal(b.data, bb) {
		t.Errorf("bin/busybox: mode %o, %d bytes", b.mode, len(b.data))
	}
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev", "tmp", "root", "etc"} {
		if byName[d].mode&modeType != modeDir {
			t.Errorf("/%s is not a directory", d)
		}
	}
	for _, d := range []struct {
		name         string
		major, minor uint32
	}{{"dev/console", 5, 1}, {"dev/null", 1, 3}} {
		g := byName[d.name]
		if g.mode&modeType != modeCharDev || g.rdevMajor != d.major || g.rdevMinor != d.minor {
			t.Errorf("/%s: mode %o rdev %d,%d, want a character device %d,%d",
				d.name, g.mode, g.rdevMajor, g.rdevMinor, d.major, d.minor)
		}
	}
	for _, a := range strings.Fields("sh mount uname cat dmesg grep poweroff echo ls ps sleep setsid cttyhack mkdir nproc wc md5sum dd seq time") {
		if g := byName["bin/"+a]; g.mode != modeSymlink|0o777 || string(g.data) != "/bin/busybox" {
			t.Errorf("/bin/%s: mode %o target %q, want a link to /bin/busybox", a, g.mode, g.data)
		}
	}
	if last := got[len(got)-1]; last.name != "TRAILER!!!" {
		t.Errorf("last member %q, want the trailer", last.name)
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
