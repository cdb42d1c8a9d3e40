package hyp

import (
	"sync/atomic"
	"testing"
	"time"
)

// A waiter that has lost the lock gets it before its holder, who releases
// it and takes it again at once: what starved a CPU under one-thread
// emulation.
func TestSpinLockClaimantFirst(t *testing.T) {
	slowSpin(t)
	var l spinLock
	var order []string
	l.Lock()
	done := make(chan struct{})
	go func() {
		l.Lock()
		order = append(order, "waiter")
		l.Unlock()
		close(done)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for l.wanted.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the waiter never claimed the lock")
		}
		time.Sleep(time.Millisecond)
	}
	l.Unlock()
	l.Lock()
	order = append(order, "holder")
	l.Unlock()
	<-done
	if len(order) != 2 || order[0] != "waiter" {
		t.Fatalf("lock order %v, want the waiter first", order)
	}
	if w := l.wanted.Load(); w != 0 {
		t.Errorf("claim %d left behind after the claimant took the lock", w)
	}
}

// A claim nobody acts on (its waiter parked) delays a taker only boundedly,
// and is dropped.
func TestSpinLockStaleClaim(t *testing.T) {
	slowSpin(t)
	var l spinLock
	l.wanted.Store(7)
	var got atomic.Bool
	go func() {
		l.Lock()
		got.Store(true)
		l.Unlock()
	}()
	deadline := time.Now().Add(5 * time.Second)
	for !got.Load() {
		if time.Now().After(deadline) {
			t.Fatal("a stale claim kept the free lock from a taker")
		}
		time.Sleep(time.Millisecond)
	}
	if w := l.wanted.Load(); w != 0 {
		t.Errorf("stale claim %d not dropped", w)
	}
}

// slowSpin makes a spin wait last as a WFE does on the hypervisor's CPUs
// (about 130 us, the event stream's period) rather than a Gosched's few
// hundred nanoseconds, so that the deferral the tests look for lasts long
// enough for an OS-scheduled waiter to act in it.
func slowSpin(t *testing.T) {
	saved := spinWait
	spinWait = func() { time.Sleep(200 * time.Microsecond) }
	t.Cleanup(func() { spinWait = saved })
}
