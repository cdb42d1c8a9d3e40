package vcpu

import (
	"os"
	"regexp"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The remote loop reads and writes the Remote by offset.
func TestRemoteLayout(t *testing.T) {
	define := asmDefines(t, "remote_arm64.s")
	src, err := os.ReadFile("remote_arm64.s")
	require.NoError(t, err)
	var r Remote
	for name, off := range map[string]uintptr{
		"RM_CURRENT": unsafe.Offsetof(r.Current), "RM_CMD": unsafe.Offsetof(r.Cmd),
		"RM_SLEEPING": unsafe.Offsetof(r.Sleeping), "RM_NUMLRS": unsafe.Offsetof(r.NumLRs),
		"RM_DONESGI": unsafe.Offsetof(r.DoneSGI), "RM_SELFSGI": unsafe.Offsetof(r.SelfSGI),
		"RM_VTCR": unsafe.Offsetof(r.VTCR), "RM_MDCR": unsafe.Offsetof(r.MDCR),
		"RM_ICH_HCR": unsafe.Offsetof(r.ICH_HCR), "RM_ICH_VMCR": unsafe.Offsetof(r.ICH_VMCR),
		"RM_ICH_AP0R0": unsafe.Offsetof(r.ICH_AP0R0), "RM_ICH_AP1R0": unsafe.Offsetof(r.ICH_AP1R0),
		"RM_CNTVOFF": unsafe.Offsetof(r.CNTVOFF), "RM_CNTV_CVAL": unsafe.Offsetof(r.CNTV_CVAL),
		"RM_CNTV_CTL": unsafe.Offsetof(r.CNTV_CTL), "RM_CNTHP_CVAL": unsafe.Offsetof(r.CNTHP_CVAL),
		"RM_LR": unsafe.Offsetof(r.LR), "RM_NUMIRQS": unsafe.Offsetof(r.NumIRQs),
		"RM_IRQS": unsafe.Offsetof(r.IRQs),
	} {
		assert.Equal(t, off, define(name), name)
	}
	assert.Equal(t, uintptr(len(r.IRQs)), define("RM_MAXIRQS"))
	var c Context
	assert.Equal(t, unsafe.Offsetof(c.Exit)+unsafe.Offsetof(c.Exit.Vector), define("CTX_EXIT_VECTOR"))
	assert.Equal(t, uintptr(VectorIRQ64), define("VECTOR_IRQ64"))
	assert.Equal(t, uintptr(VectorFIQ64), define("VECTOR_FIQ64"))
	assert.Zero(t, unsafe.Offsetof(r.Current), "the vectors read the running context from the first word")
	// The loop loads and saves a list register per ICH_LR<n>_EL2 there is.
	assert.Len(t, regexp.MustCompile(`msr ich_lr\d+_el2`).FindAll(src, -1), len(r.LR))
	assert.Len(t, regexp.MustCompile(`mrs x2, ich_lr\d+_el2`).FindAll(src, -1), len(r.LR))
}
