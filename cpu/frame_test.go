package cpu

import (
	"os"
	"regexp"
	"strconv"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The vectors' assembly and Frame must agree on the layout.
func TestFrameLayout(t *testing.T) {
	var f Frame
	assert.Equal(t, uintptr(FrameSize), unsafe.Sizeof(f))
	assert.Zero(t, FrameSize%16, "SP must stay 16-byte aligned")
	src, err := os.ReadFile("vectors_arm64.s")
	require.NoError(t, err)
	define := func(name string) uintptr {
		m := regexp.MustCompile(`#define ` + name + ` (\d+)`).FindSubmatch(src)
		require.NotNil(t, m, name)
		v, err := strconv.Atoi(string(m[1]))
		require.NoError(t, err)
		return uintptr(v)
	}
	assert.Equal(t, unsafe.Sizeof(f), define("FRAME_SIZE"))
	assert.Equal(t, unsafe.Offsetof(f.SP), define("FRAME_SP"))
	assert.Equal(t, unsafe.Offsetof(f.ELR), define("FRAME_ELR"))
	assert.Equal(t, unsafe.Offsetof(f.SPSR), define("FRAME_SPSR"))
	assert.Equal(t, unsafe.Offsetof(f.ESR), define("FRAME_ESR"))
	assert.Equal(t, unsafe.Offsetof(f.FAR), define("FRAME_FAR"))
	assert.Equal(t, unsafe.Offsetof(f.HPFAR), define("FRAME_HPFAR"))
	assert.Equal(t, unsafe.Offsetof(f.Vector), define("FRAME_VECTOR"))
	assert.Equal(t, unsafe.Offsetof(f.MPIDR), define("FRAME_MPIDR"))
	// x30 is stored at 240 and x28/x29 as a pair at 224.
	assert.Equal(t, uintptr(240), unsafe.Offsetof(f.X)+30*8)
}
