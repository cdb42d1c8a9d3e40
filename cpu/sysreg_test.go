package cpu

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/arch/arm64/arm64asm"
)

func TestSysRegEncodeDecodeRoundTrip(t *testing.T) {
	for r, name := range sysRegNames {
		for _, write := range []bool{false, true} {
			w := r.Encode(write, 7)
			got, gw, xt, ok := DecodeSysRegAccess(w)
			require.True(t, ok, name)
			assert.Equal(t, r, got, name)
			assert.Equal(t, write, gw, name)
			assert.Equal(t, uint8(7), xt, name)
		}
		found, ok := LookupSysReg(strings.ToLower(name))
		assert.True(t, ok, name)
		assert.Equal(t, r, found, name)
	}
}

func TestDebugRegisterNames(t *testing.T) {
	assert.Equal(t, "DBGBVR0_EL1", SysReg{Op0: 2, Op2: 4}.String())
	assert.Equal(t, "DBGBCR15_EL1", SysReg{Op0: 2, CRm: 15, Op2: 5}.String())
	assert.Equal(t, "DBGWVR3_EL1", SysReg{Op0: 2, CRm: 3, Op2: 6}.String())
	assert.Equal(t, "DBGWCR1_EL1", SysReg{Op0: 2, CRm: 1, Op2: 7}.String())
	assert.Equal(t, "S2_0_C0_C2_3", SysReg{Op0: 2, CRm: 2, Op2: 3}.String(), "not a comparator")
}

// Known encodings from the Arm ARM, independent of the table.
func TestSysRegKnownEncodings(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write bool
		want  uint32
	}{
		{"SCTLR_EL2", false, 0xd53c1000},
		{"HCR_EL2", true, 0xd51c1100},
		{"VBAR_EL2", true, 0xd51cc000},
		{"RNDR", false, 0xd53b2400},
		{"MIDR_EL1", false, 0xd5380000},
	} {
		r, ok := LookupSysReg(tc.name)
		require.True(t, ok, tc.name)
		assert.Equal(t, fmt.Sprintf("%#08x", tc.want), fmt.Sprintf("%#08x", r.Encode(tc.write, 0)), tc.name)
	}
	assert.Equal(t, "S3_7_C15_C15_7", SysReg{3, 7, 15, 15, 7}.String())
	_, _, _, ok := DecodeSysRegAccess(0xd503201f) // nop
	assert.False(t, ok)
}

// disassemble renders an instruction word in GNU syntax with Bulkhead's
// system register names, for the instructions arm64asm does not know too.
func disassemble(w uint32) (string, bool) {
	switch {
	case w&0xffe0001f == 0xd4000003:
		return fmt.Sprintf("smc #0x%x", (w>>5)&0xffff), true
	case w&0xffe0001f == 0xd4000002:
		return fmt.Sprintf("hvc #0x%x", (w>>5)&0xffff), true
	case w == 0xd508751f: // SYS #0, C7, C5, #0: IC IALLU
		return "ic iallu", true
	}
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], w)
	inst, err := arm64asm.Decode(b[:])
	if err != nil {
		return "", false
	}
	s := strings.TrimSpace(arm64asm.GNUSyntax(inst))
	if r, _, _, ok := DecodeSysRegAccess(w); ok {
		generic := strings.ToLower(fmt.Sprintf("S%d_%d_C%d_C%d_%d", r.Op0, r.Op1, r.CRn, r.CRm, r.Op2))
		s = strings.Replace(s, generic, strings.ToLower(r.String()), 1)
	}
	return s, true
}

var wordLine = regexp.MustCompile(`WORD\s+\$0x([0-9a-fA-F]{8})\s*(?://\s*(.*?)\s*$|/\*\s*(.*?)\s*\*/)?`)

// Every hand-encoded instruction in the repository's assembly carries a
// comment that says what it is, and the comment is right.
func TestAssemblyWordComments(t *testing.T) {
	root := filepath.Join("..")
	n := 0
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "build" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if !strings.HasSuffix(path, ".s") && !strings.HasSuffix(path, ".h") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(data), "\n") {
			m := wordLine.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			n++
			w, _ := strconv.ParseUint(m[1], 16, 32)
			comment := m[2] + m[3]
			want, ok := disassemble(uint32(w))
			if !ok {
				t.Errorf("%s:%d: WORD $0x%s does not decode", path, i+1, m[1])
				continue
			}
			if comment == "" {
				t.Errorf("%s:%d: WORD $0x%s (%s) has no comment", path, i+1, m[1], want)
				continue
			}
			if comment != want {
				t.Errorf("%s:%d: comment %q, but WORD $0x%s is %q", path, i+1, comment, m[1], want)
			}
		}
		return nil
	})
	require.NoError(t, err)
	assert.Greater(t, n, 20, "found too few WORD directives: is the walk rooted at the repository?")
}
