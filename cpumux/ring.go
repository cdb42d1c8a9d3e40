package cpumux

// A ring is the circular list of threads on one CPU, linked by index
// (threads live in a static table, so switching touches no pointers the
// collector would have to see through write barriers). Only its own CPU
// changes a ring.
type ring struct {
	next [MaxThreads]int32 // the thread after each, on its CPU
}

// MaxThreads is the most threads (Ms and idle threads) there can be.
const MaxThreads = 128

// none marks an empty link.
const none = -1

// insertAfter puts t after at: at's successor becomes t's.
func (r *ring) insertAfter(at, t int32) {
	r.next[t] = r.next[at]
	r.next[at] = t
}

// remove takes t out of its ring and returns the thread that followed it,
// or none if t was alone.
func (r *ring) remove(t int32) int32 {
	nx := r.next[t]
	if nx == t {
		return none
	}
	p := t
	for r.next[p] != t {
		p = r.next[p]
	}
	r.next[p] = nx
	r.next[t] = t
	return nx
}

// earliest returns the earliest deadline among the threads of from's ring
// but from itself: negative if none has one. A thread's deadline is the
// counter value by which it wants to run again; negative: none.
func (r *ring) earliest(from int32, deadline *[MaxThreads]int64) int64 {
	min := int64(-1)
	for t := r.next[from]; t != from; t = r.next[t] {
		if d := deadline[t]; d >= 0 && (min < 0 || d < min) {
			min = d
		}
	}
	return min
}

// ticks converts nanoseconds to counter ticks at freq Hz, rounding up (a
// wait never ends before its time), split so that it cannot overflow.
func ticks(ns int64, freq uint64) int64 {
	n := uint64(ns)
	return int64(n/1e9*freq + (n%1e9*freq+1e9-1)/1e9)
}
