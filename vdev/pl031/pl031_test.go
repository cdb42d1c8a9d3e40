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
	var pid, cid uint32
	for i := 0; i < 4; i++ {
		pid |= r.Read(PeriphID0+uint64(4*i)) << (8 * i)
		cid |= r.Read(PeriphID0+0x10+uint64(4*i)) << (8 * i)
	}
	assert.Equal(t, uint32(0x00041031), pid&0x000fffff, "what Linux's rtc-pl031 matches")
	assert.Equal(t, uint32(0xb105f00d), cid)
	assert.Zero(t, r.Read(0x800))
}
