package cpio

import (
	"bytes"
	"io"
	"strconv"
	"strings"
	"testing"
)

// header is every field of one newc header. Parse returns only what an
// Entry carries, but the writer must get the rest right too: owner,
// group and mtime 0, unique inodes, and the link counts.
type header struct {
	ino, mode, uid, gid, nlink, mtime uint32
	devMajor, devMinor                uint32
	rdevMajor, rdevMinor              uint32
	check                             uint32
	name                              string
	size                              int
}

// headers decodes every header of b, the trailer's included. It trusts
// the sizes in them, so it is only for an archive Parse has accepted.
func headers(t *testing.T, b []byte) []header {
	t.Helper()
	if _, err := Parse(b); err != nil {
		t.Fatal(err)
	}
	var out []header
	for off := 0; off < len(b); {
		var f [nFields]uint32
		for i := range f {
			s := string(b[off+6+8*i : off+14+8*i])
			v, err := strconv.ParseUint(s, 16, 32)
			if err != nil {
				t.Fatalf("field %d %q at offset %d: %v", i, s, off, err)
			}
			f[i] = uint32(v)
		}
		nameEnd := off + newcHdrLen + int(f[fNamesize])
		out = append(out, header{
			ino: f[fIno], mode: f[fMode], uid: f[fUID], gid: f[fGID], nlink: f[fNlink], mtime: f[fMtime],
			devMajor: f[fDevMajor], devMinor: f[fDevMinor], rdevMajor: f[fRdevMajor], rdevMinor: f[fRdevMinor],
			check: f[fCheck], name: string(b[off+newcHdrLen : nameEnd-1]), size: int(f[fFilesize]),
		})
		off = pad4(pad4(nameEnd) + int(f[fFilesize]))
	}
	return out
}

// sample has names and data of every length mod 4, to exercise each
// padding case, and one entry of each type.
func sample() []Entry {
	return []Entry{
		Dir("d"),
		Dir("d/ee"),
		File("d/ee/f", 0o644, []byte("x")),
		File("d/gggg", 0o600, []byte("12")),
		File("hhhhh", 0o755, []byte("abc")),
		File("empty", 0o644, nil),
		File("four", 0o644, []byte("1234")),
		CharDev("d/console", 0o600, 5, 1),
		CharDev("d/null", 0o666, 1, 3),
		Symlink("d/sh", "/bin/busybox"),
	}
}

func write(t testing.TB, es []Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, es); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sameEntries reports whether a and b hold the same members, taking
// empty and nil data as the same.
func sameEntries(a, b []Entry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Name != y.Name || x.Mode != y.Mode || !bytes.Equal(x.Data, y.Data) ||
			x.RdevMajor != y.RdevMajor || x.RdevMinor != y.RdevMinor {
			return false
		}
	}
	return true
}

func TestWriteRoundTrip(t *testing.T) {
	in := sample()
	b := write(t, in)
	if len(b)%4 != 0 {
		t.Errorf("archive length %d is not a multiple of 4", len(b))
	}
	got, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(in) {
		t.Fatalf("%d members, want %d", len(got), len(in))
	}
	for i, e := range in {
		g := got[i]
		if g.Name != e.Name || g.Mode != e.Mode || !bytes.Equal(g.Data, e.Data) {
			t.Errorf("member %d: %q mode %o data %q, want %q mode %o data %q",
				i, g.Name, g.Mode, g.Data, e.Name, e.Mode, e.Data)
		}
		if g.RdevMajor != e.RdevMajor || g.RdevMinor != e.RdevMinor {
			t.Errorf("%s: rdev %d,%d, want %d,%d", g.Name, g.RdevMajor, g.RdevMinor, e.RdevMajor, e.RdevMinor)
		}
	}
	hs := headers(t, b)
	if len(hs) != len(in)+1 {
		t.Fatalf("%d headers, want %d and the trailer's", len(hs), len(in))
	}
	inos := map[uint32]bool{}
	for i, e := range in {
		h := hs[i]
		if h.name != e.Name || h.mode != e.Mode || h.size != len(e.Data) ||
			h.rdevMajor != e.RdevMajor || h.rdevMinor != e.RdevMinor {
			t.Errorf("header %d: %+v, want the fields of %+v", i, h, e)
		}
		if h.uid != 0 || h.gid != 0 || h.mtime != 0 || h.devMajor != 0 || h.devMinor != 0 || h.check != 0 {
			t.Errorf("%s: uid %d gid %d mtime %d dev %d,%d checksum %d; want all 0",
				h.name, h.uid, h.gid, h.mtime, h.devMajor, h.devMinor, h.check)
		}
		if h.ino == 0 || inos[h.ino] {
			t.Errorf("%s: inode %d is 0 or not unique", h.name, h.ino)
		}
		inos[h.ino] = true
		wantLinks := uint32(1)
		if e.Mode&ModeType == ModeDir {
			wantLinks = 2
		}
		if h.nlink != wantLinks {
			t.Errorf("%s: nlink %d, want %d", h.name, h.nlink, wantLinks)
		}
	}
	byName := map[string]Entry{}
	for _, g := range got {
		byName[g.Name] = g
	}
	if c := byName["d/console"]; c.Mode != 0o020600 || c.RdevMajor != 5 || c.RdevMinor != 1 || len(c.Data) != 0 {
		t.Errorf("d/console: mode %o rdev %d,%d size %d", c.Mode, c.RdevMajor, c.RdevMinor, len(c.Data))
	}
	if s := byName["d/sh"]; s.Mode != 0o120777 || string(s.Data) != "/bin/busybox" {
		t.Errorf("d/sh: mode %o target %q", s.Mode, s.Data)
	}
	if tr := hs[len(hs)-1]; tr.name != "TRAILER!!!" || tr.mode != 0 || tr.size != 0 {
		t.Errorf("trailer: %+v", tr)
	}
}

func TestWriteHeaderBytes(t *testing.T) {
	// One symlink, checked byte for byte: 110 header bytes and "a\0" pad
	// to 112, then the 2-byte target pads to 4.
	b := write(t, []Entry{Symlink("a", "/b")})
	want := "070701" + "00000001" + "0000A1FF" + "00000000" + "00000000" + "00000001" +
		"00000000" + "00000002" + "00000000" + "00000000" + "00000000" + "00000000" +
		"00000002" + "00000000" + "a\x00" + "/b\x00\x00"
	if got := string(b[:len(want)]); got != want {
		t.Errorf("first member:\n got %q\nwant %q", got, want)
	}
}

func TestWriteRejectsBadNames(t *testing.T) {
	for _, es := range [][]Entry{
		{Dir("")},
		{Dir("/abs")},
		{Dir("TRAILER!!!")},
		{Dir("a"), File("a", 0o644, nil)},
	} {
		if err := Write(io.Discard, es); err == nil {
			t.Errorf("%q: no error", es[len(es)-1].Name)
		}
	}
}

func TestParseEmptyArchive(t *testing.T) {
	// The trailer alone is an archive of nothing.
	got, err := Parse(write(t, nil))
	if err != nil || len(got) != 0 {
		t.Errorf("Parse of the trailer alone: %v, %v; want no members", got, err)
	}
}

func TestParseDataIsBounded(t *testing.T) {
	b := write(t, []Entry{File("f", 0o644, []byte("x")), Dir("g")})
	orig := bytes.Clone(b)
	es, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	// Appending to one member's data must not write over the next.
	_ = append(es[0].Data, "yyyy"...)
	if !bytes.Equal(b, orig) {
		t.Error("appending to an entry's Data changed the archive")
	}
}

func TestParseRejects(t *testing.T) {
	good := write(t, []Entry{File("abc", 0o644, []byte("12345"))})
	// The file's name ends at 110+4 = 114, padded to 116; its 5 bytes of
	// data end at 121, padded to 124, where the trailer's header starts.
	const (
		nameOff    = newcHdrLen
		dataOff    = 116
		trailerOff = 124
	)
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	field := func(b []byte, off, i int, v string) []byte {
		copy(b[off+6+8*i:], v)
		return b
	}
	for _, c := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "no TRAILER!!!"},
		{"no trailer", good[:trailerOff], "no TRAILER!!!"},
		{"short header", good[:trailerOff+50], "inside a header"},
		{"truncated trailer", good[:len(good)-1], "runs past the end"},
		{"old binary magic", edit(func(b []byte) []byte { copy(b, "\xc7\x71"); return b }), "bad magic"},
		{"crc magic", edit(func(b []byte) []byte { copy(b, "070702"); return b }), "bad magic"},
		{"not hex", edit(func(b []byte) []byte { return field(b, 0, fMode, "0000g1a4") }), "not hex"},
		{"signed", edit(func(b []byte) []byte { return field(b, 0, fMode, "+00081a4") }), "not hex"},
		{"checksum", edit(func(b []byte) []byte { return field(b, 0, fCheck, "00000001") }), "checksum"},
		{"zero name size", edit(func(b []byte) []byte { return field(b, 0, fNamesize, "00000000") }), "name size"},
		{"huge name size", edit(func(b []byte) []byte { return field(b, 0, fNamesize, "FFFFFFFF") }), "name size"},
		{"no NUL", edit(func(b []byte) []byte { b[nameOff+3] = 'd'; return b }), "not NUL-terminated"},
		{"name padding", edit(func(b []byte) []byte { b[nameOff+4] = 1; return b }), "name padding"},
		{"huge data size", edit(func(b []byte) []byte { return field(b, 0, fFilesize, "FFFFFFFF") }), "run past the end"},
		{"data padding", edit(func(b []byte) []byte { b[dataOff+6] = 1; return b }), "data padding"},
		{"after trailer", append(bytes.Clone(good), 0, 0, 0, 0), "after TRAILER!!!"},
		{"second archive", append(bytes.Clone(good), good...), "after TRAILER!!!"},
	} {
		_, err := Parse(c.b)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one saying %q", c.name, err, c.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	good := write(f, sample())
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(good[:len(good)-4])
	f.Add(write(f, nil))
	f.Add([]byte("070701" + strings.Repeat("F", 104)))
	f.Add([]byte("not a cpio archive at all"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := Parse(b)
		if err != nil {
			return
		}
		// What Parse read, written again, reads back the same; and
		// writing that gives the same bytes, since Write depends only on
		// the entries. Write refuses some names Parse takes (an empty
		// one, a leading slash, the same name twice).
		var buf bytes.Buffer
		if err := Write(&buf, es); err != nil {
			return
		}
		again, err := Parse(buf.Bytes())
		if err != nil {
			t.Fatalf("Parse of Write's archive: %v", err)
		}
		if !sameEntries(es, again) {
			t.Fatalf("round trip changed the entries:\n got %+v\nwant %+v", again, es)
		}
		if b2 := write(t, again); !bytes.Equal(b2, buf.Bytes()) {
			t.Fatal("writing the same entries twice gave two archives")
		}
	})
}

func TestOwnerRoundTrip(t *testing.T) {
	e := File("home/user/f", 0o600, []byte("x"))
	e.UID, e.GID = 1000, 100
	var buf bytes.Buffer
	if err := Write(&buf, []Entry{e}); err != nil {
		t.Fatal(err)
	}
	got, err := Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].UID != 1000 || got[0].GID != 100 {
		t.Fatalf("read back %+v, want owner 1000:100", got)
	}
}
