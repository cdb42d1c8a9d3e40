package consolemux

import (
	"bytes"
	"math/rand"
	"strings"
	"testing"
)

type got struct {
	frames []string // tag:payload
	noise  bytes.Buffer
}

func decoder(g *got) *Decoder {
	return &Decoder{
		Frame: func(tag byte, p []byte) { g.frames = append(g.frames, string(tag)+":"+string(p)) },
		Noise: func(l []byte) { g.noise.Write(l) },
	}
}

// feed writes b to d in random pieces, as console events arrive.
func feed(d *Decoder, b []byte, r *rand.Rand) {
	for len(b) > 0 {
		n := min(len(b), 1+r.Intn(40))
		d.Write(b[:n])
		b = b[n:]
	}
}

func TestRoundTripWithNoise(t *testing.T) {
	var console bytes.Buffer
	e := NewEncoder(&console)
	console.WriteString("[    0.000000] Booting Linux on physical CPU 0x0\n")
	e.Stream(Stdout).Write([]byte("hello from aarch64\n"))
	e.Stream(Stderr).Write([]byte("warn: \x01 not a frame\n"))
	console.WriteString("a kernel line in the middle\n")
	big := bytes.Repeat([]byte("0123456789"), 1000) // 10,000 bytes: 4 frames
	e.Stream(Stdout).Write(big)
	e.Frame(CloseStdin, nil)
	e.Status(Exit, 7)
	for seed := int64(0); seed < 20; seed++ {
		var g got
		d := decoder(&g)
		feed(d, console.Bytes(), rand.New(rand.NewSource(seed)))
		d.Flush()
		var out bytes.Buffer
		var tags []string
		for _, f := range g.frames {
			tags = append(tags, f[:1])
			if f[0] == Stdout {
				out.WriteString(f[2:])
			}
		}
		if want := "O E O O O O C X"; strings.Join(tags, " ") != want {
			t.Fatalf("seed %d: tags %v, want %s", seed, tags, want)
		}
		if want := "hello from aarch64\n" + string(big); out.String() != want {
			t.Fatalf("seed %d: stdout of %d bytes, want %d", seed, out.Len(), len(want))
		}
		if g.frames[1] != "E:warn: \x01 not a frame\n" || g.frames[7] != "X:7" {
			t.Fatalf("seed %d: frames %q %q", seed, g.frames[1], g.frames[7])
		}
		if want := "[    0.000000] Booting Linux on physical CPU 0x0\na kernel line in the middle\n"; g.noise.String() != want {
			t.Fatalf("seed %d: noise %q, want %q", seed, g.noise.String(), want)
		}
	}
}

func TestChunking(t *testing.T) {
	var console bytes.Buffer
	NewEncoder(&console).Frame(Stdin, bytes.Repeat([]byte{0xff}, 2*MaxChunk+1))
	lines := strings.Split(strings.TrimSuffix(console.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d frames for 2*MaxChunk+1 bytes, want 3", len(lines))
	}
	for _, l := range lines {
		if len(l) > MaxLine {
			t.Errorf("a frame of %d bytes, more than MaxLine", len(l))
		}
	}
}

func TestMalformedAndCR(t *testing.T) {
	var g got
	d := decoder(&g)
	d.Write([]byte("\x01Onot base64!\n\x01\n\x01OaGk=\r\n\x01X\n"))
	d.Write([]byte("tail without newline"))
	d.Flush()
	if len(g.frames) != 2 || g.frames[0] != "O:hi" || g.frames[1] != "X:" {
		t.Errorf("frames %q, want O:hi (its CR dropped) and an empty X", g.frames)
	}
	if want := "\x01Onot base64!\n\x01\ntail without newline"; g.noise.String() != want {
		t.Errorf("noise %q, want %q", g.noise.String(), want)
	}
}

func TestLongLineIsNoiseInPieces(t *testing.T) {
	var g got
	pieces := 0
	d := &Decoder{Noise: func(l []byte) {
		pieces++
		if len(l) > MaxLine+1 {
			t.Errorf("a noise piece of %d bytes", len(l))
		}
		g.noise.Write(l)
	}, Frame: func(byte, []byte) { t.Error("a frame out of a long line") }}
	long := "\x01O" + strings.Repeat("QUFB", MaxLine) + "\n"
	d.Write([]byte(long))
	d.Flush()
	if g.noise.String() != long || pieces < 2 {
		t.Errorf("%d pieces, %d bytes of noise, want the whole %d-byte line in several", pieces, g.noise.Len(), len(long))
	}
}

func TestParseStatus(t *testing.T) {
	for in, want := range map[string]int{"0": 0, "7": 7, "255": 255} {
		if n, err := ParseStatus([]byte(in)); err != nil || n != want {
			t.Errorf("ParseStatus(%q) = %d, %v", in, n, err)
		}
	}
	for _, in := range []string{"", "-1", "256", "7x", "99999999999999999999"} {
		if _, err := ParseStatus([]byte(in)); err == nil {
			t.Errorf("ParseStatus(%q) took it", in)
		}
	}
}

// FuzzDecode: any bytes, in any pieces, come out as frames and noise that
// together account for every line, and re-encoding the frames gives them
// back.
func FuzzDecode(f *testing.F) {
	f.Add([]byte("\x01OaGk=\nnoise\n\x01X Nw==\n"), int64(1))
	f.Add([]byte("\x01\x01\x01\n\n\r\n"), int64(2))
	f.Fuzz(func(t *testing.T, b []byte, seed int64) {
		var frames [][2][]byte
		noise := 0
		d := &Decoder{
			Frame: func(tag byte, p []byte) { frames = append(frames, [2][]byte{{tag}, p}) },
			Noise: func(l []byte) { noise += len(l) },
		}
		feed(d, b, rand.New(rand.NewSource(seed)))
		d.Flush()
		for _, fr := range frames {
			if len(fr[1]) > MaxLine {
				t.Fatalf("a frame payload of %d bytes out of lines of at most %d", len(fr[1]), MaxLine)
			}
			var line bytes.Buffer
			NewEncoder(&line).Frame(fr[0][0], fr[1])
			var back []byte
			(&Decoder{Frame: func(tag byte, p []byte) {
				if tag != fr[0][0] {
					t.Fatalf("tag %q came back as %q", fr[0][0], tag)
				}
				back = append(back, p...)
			}}).Write(line.Bytes())
			if !bytes.Equal(back, fr[1]) {
				t.Fatalf("payload %q came back as %q", fr[1], back)
			}
		}
		if noise > len(b) {
			t.Fatalf("%d bytes of noise out of %d", noise, len(b))
		}
	})
}
