package pl031

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestRTC(t *testing.T) {
	now := uint64(1_795_000_000)
	r := &RTC{Now: func() uint64 { return now }}
	assert.Equal(t, uint32(now), r.Read(RTCDR), "the host's time")
	now += 5
	assert.Equal(t, uint32(now), r.Read(RTCDR), "it counts")
	r.Write(RTCLR, 1000)
	assert.Equal(t, uint32(1000), r.Read(RTCDR), "the guest sets it")
	now += 7
	assert.Equal(t, uint32(1007), r.Read(RTCDR), "and it counts from there")
	r.Write(RTCDR, 5)
	assert.Equal(t, uint32(1007), r.Read(RTCDR), "RTCDR is read-only")
	assert.Equal(t, uint32(1), r.Read(RTCCR), "always started")
	r.Write(RTCMR, 42)
	assert.Equal(t, uint32(42), r.Read(RTCMR))
	assert.Equal(t, uint32(1000), r.Read(RTCLR), "the value last loaded")
	var pid, cid uint32
	for i := 0; i < 4; i++ {
		pid |= r.Read(PeriphID0+uint64(4*i)) << (8 * i)
		cid |= r.Read(PeriphID0+0x10+uint64(4*i)) << (8 * i)
	}
	assert.Equal(t, uint32(0x00141031), pid, "what Linux's rtc-pl031 matches, revision 1 as QEMU's")
	assert.Equal(t, uint32(0xb105f00d), cid)
	assert.Zero(t, r.Read(0x800))
}

// The match interrupt (DDI 0224, 2.2.2): the raw status rises when the
// count reaches the match register, once; the output is the raw status
// masked by RTCIMSC, and RTCICR clears it.
func TestAlarm(t *testing.T) {
	now := uint64(5000)
	r := &RTC{Now: func() uint64 { return now }}
	assert.False(t, r.Line(), "no alarm set at reset")
	r.Write(RTCMR, 5002)
	r.Write(RTCIMSC, 1)
	now++
	assert.False(t, r.Line(), "a second early")
	assert.Zero(t, r.Read(RTCRIS))
	now++
	assert.True(t, r.Line(), "the count reached the match register")
	assert.Equal(t, uint32(1), r.Read(RTCRIS))
	assert.Equal(t, uint32(1), r.Read(RTCMIS))
	r.Write(RTCIMSC, 0)
	assert.False(t, r.Line(), "masked")
	assert.Equal(t, uint32(1), r.Read(RTCRIS), "still raised")
	assert.Zero(t, r.Read(RTCMIS))
	r.Write(RTCIMSC, 1)
	r.Write(RTCICR, 1)
	assert.False(t, r.Line(), "cleared")
	now += 100
	assert.Zero(t, r.Read(RTCRIS), "it fires once")

	// Loading the counter moves the alarm with it.
	r.Write(RTCMR, 10)
	r.Write(RTCLR, 7)
	now += 2
	assert.False(t, r.Line())
	now++
	assert.True(t, r.Line(), "three seconds after loading 7")
	r.Write(RTCICR, 1)

	// A match equal to the count raises it at once; one just behind it
	// waits for the 32-bit count to come round.
	r.Write(RTCMR, r.Read(RTCDR))
	assert.True(t, r.Line())
	r.Write(RTCICR, 1)
	r.Write(RTCMR, r.Read(RTCDR)-1)
	now += 1 << 20
	assert.False(t, r.Line())
}
