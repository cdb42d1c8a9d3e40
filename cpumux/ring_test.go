package cpumux

import "testing"

func newRing(ts ...int32) *ring {
	r := &ring{}
	r.next[ts[0]] = ts[0]
	for i := 1; i < len(ts); i++ {
		r.insertAfter(ts[i-1], ts[i])
	}
	return r
}

func order(r *ring, from int32) []int32 {
	out := []int32{from}
	for t := r.next[from]; t != from; t = r.next[t] {
		out = append(out, t)
	}
	return out
}

func TestRing(t *testing.T) {
	r := newRing(0, 5, 7)
	if got := order(r, 0); len(got) != 3 || got[1] != 5 || got[2] != 7 {
		t.Fatalf("ring %v, want [0 5 7]", got)
	}
	if nx := r.remove(5); nx != 7 {
		t.Fatalf("remove(5) returned %d, want 7", nx)
	}
	if got := order(r, 0); len(got) != 2 || got[1] != 7 {
		t.Fatalf("after remove: %v, want [0 7]", got)
	}
	if r.next[5] != 5 {
		t.Fatal("a removed thread still links into the ring")
	}
	r.insertAfter(7, 5)
	if got := order(r, 0); len(got) != 3 || got[2] != 5 {
		t.Fatalf("after insert: %v, want [0 7 5]", got)
	}
	if nx := r.remove(0); nx != 7 {
		t.Fatalf("remove(0) returned %d, want 7", nx)
	}
	r.remove(7)
	if nx := r.remove(5); nx != none {
		t.Fatalf("removing the last thread returned %d, want none", nx)
	}
}

func TestEarliest(t *testing.T) {
	r := newRing(0, 1, 2, 3)
	var d [MaxThreads]int64
	d[0], d[1], d[2], d[3] = 5, -1, 900, 40
	if got := r.earliest(0, &d); got != 40 {
		t.Fatalf("earliest = %d, want 40 (thread 0's own 5 does not count)", got)
	}
	d[2], d[3] = -1, -1
	if got := r.earliest(0, &d); got != -1 {
		t.Fatalf("earliest with no deadlines = %d, want -1", got)
	}
	if got := r.earliest(1, &d); got != 5 {
		t.Fatalf("earliest from 1 = %d, want 5", got)
	}
}

func TestTicks(t *testing.T) {
	for _, c := range []struct {
		ns   int64
		freq uint64
		want int64
	}{
		{0, 62_500_000, 0},
		{16, 62_500_000, 1}, // one tick is 16 ns
		{17, 62_500_000, 2}, // rounded up
		{1_000_000_000, 62_500_000, 62_500_000},
		{1 << 62, 1_000_000_000, 1 << 62}, // no overflow at 1 GHz
	} {
		if got := ticks(c.ns, c.freq); got != c.want {
			t.Errorf("ticks(%d, %d) = %d, want %d", c.ns, c.freq, got, c.want)
		}
	}
}
