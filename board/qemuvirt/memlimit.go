//go:build tamago

package qemuvirt

import "runtime/debug"

// The runtime takes all its memory (heap, goroutine stacks, each M's g0
// stack) from the heap region by sbrk,
// and has no other bound: it learns it is out only when sbrk fails, and
// then it throws. Told the region's size as its memory limit, the
// collector paces itself to stay below it: it runs earlier and makes
// allocating goroutines assist harder as the limit nears, which matters
// most when goroutines on several CPUs allocate while one CPU is slow to
// reach the collector's barriers. An eighth is kept back for what the
// limit does not see (fragmentation, metadata rounding).
func init() {
	regs, err := Layout(CurrentImage())
	if err != nil {
		return // the banner reports it
	}
	for _, r := range regs {
		if r.Name == "heap" {
			debug.SetMemoryLimit(int64(r.End-r.Start) / 8 * 7)
		}
	}
}
