//go:build tamago && crashtest

package main

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/bulkhead-hv/bulkhead/board/qemuvirt"
	"github.com/bulkhead-hv/bulkhead/cpu"
	"github.com/bulkhead-hv/bulkhead/cpumux"
)

// smpTest runs Go on every CPU (boot argument smptest, in the crashtest
// image): the same fixed work on each CPU at once and then one after the
// other, and goroutines locked to Ms on every CPU that allocate hard
// enough for the garbage collector to stop the world and park them while
// they do, which is what the scheduler loops rely on.
func smpTest(m *qemuvirt.Machine, arg string) {
	if err := initInterrupts(m); err != nil {
		fmt.Printf("smptest: FAIL: %v\n", err)
		os.Exit(1)
	}
	mpidrs, err := startMux(m)
	if err != nil {
		fmt.Printf("smptest: FAIL: %v\n", err)
		os.Exit(1)
	}
	n := len(mpidrs)
	fmt.Printf("smptest: Go on %d CPUs, GOMAXPROCS %d\n", n, runtime.GOMAXPROCS(0))

	// Fixed work, first one after the other on this CPU, then in parallel.
	const rounds = 20_000_000
	t0 := cpu.ReadCNTPCT()
	var sum uint64
	for i := 0; i < n; i++ {
		sum += spin(uint64(i+1), rounds)
	}
	seq := cpu.ReadCNTPCT() - t0

	var wg sync.WaitGroup
	start, end := make([]int, n), make([]int, n)
	sums := make([]uint64, n)
	t0s, t1s := make([]uint64, n), make([]uint64, n)
	var arrived atomic.Int32
	barrier := cpu.ReadCNTPCT() + 2*qemuvirt.TimerFrequency()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			cpumux.MoveTo(i)
			start[i] = cpuIndex(m)
			// Wait, spinning, until every goroutine holds a CPU, so
			// that they run at once rather than one after another on
			// fewer Ms. The runtime starts the Ms as they are needed.
			arrived.Add(1)
			for arrived.Load() < int32(n) && cpu.ReadCNTPCT() < barrier {
				// The goroutines still to start need CPU 0's threads.
				cpumux.Yield()
			}
			t0s[i] = cpu.ReadCNTPCT()
			sums[i] = spin(uint64(i+1), rounds)
			t1s[i] = cpu.ReadCNTPCT()
			end[i] = cpuIndex(m)
		}()
	}
	wg.Wait()
	par := slices.Max(t1s) - slices.Min(t0s)
	var psum uint64
	for _, s := range sums {
		psum += s
	}
	if psum != sum {
		fmt.Printf("smptest: FAIL: parallel work sums to %#x, sequential to %#x\n", psum, sum)
		os.Exit(1)
	}
	ran := slices.Clone(start)
	slices.Sort(ran)
	if !slices.Equal(start, end) {
		fmt.Printf("smptest: FAIL: locked goroutines moved: started on CPUs %v, ended on %v\n", start, end)
		os.Exit(1)
	}
	freq := qemuvirt.TimerFrequency()
	fmt.Printf("smptest: %d goroutines on CPUs %v, parallel %.1fx faster than sequential (%d ms against %d ms)\n",
		n, ran, float64(seq)/float64(par), par*1000/freq, seq*1000/freq)

	seconds := 2
	if v, err := strconv.Atoi(arg); err == nil && v > 0 {
		seconds = v
	}
	gcStress(m, n, seconds)

	var st runtime.MemStats
	runtime.ReadMemStats(&st)
	fmt.Printf("smptest: %d threads on %d CPUs; stacks %d MiB, heap %d MiB of %d MiB obtained\n",
		cpumux.Threads(), n, st.StackSys>>20, st.HeapAlloc>>20, st.Sys>>20)
}

// spin is CPU-bound work with no calls, loads or stores: xorshift64.
func spin(x uint64, rounds int) uint64 {
	for i := 0; i < rounds; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	return x
}

// gcStress has n goroutines build and drop maps and slices for some
// seconds, checking what they built, and reports the collections that ran
// meanwhile and the CPUs the goroutines ran on.
func gcStress(m *qemuvirt.Machine, n, seconds int) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	freq := qemuvirt.TimerFrequency()
	deadline := cpu.ReadCNTPCT() + uint64(seconds)*freq
	var wg sync.WaitGroup
	var onCPU atomic.Uint64 // bit i: some goroutine ran on CPU i
	var rounds, bad atomic.Uint64
	for g := 0; g < n; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Locked on CPU g, as a scheduler loop is: the collector's
			// stop-the-world and its assists park it, and its M waits
			// there while other Ms run.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			cpumux.MoveTo(g)
			for r := 0; cpu.ReadCNTPCT() < deadline; r++ {
				onCPU.Or(1 << cpuIndex(m))
				mp := map[int][]byte{}
				for k := 0; k < 256; k++ {
					mp[k] = make([]byte, 64+k%512)
					mp[k][0] = byte(k + g + r)
				}
				var list [][]int
				for k := 0; k < 64; k++ {
					list = append(list, make([]int, 128))
					list[k][127] = k
				}
				for k, b := range mp {
					if b[0] != byte(k+g+r) || len(b) != 64+k%512 {
						bad.Add(1)
					}
				}
				for k, l := range list {
					if l[127] != k {
						bad.Add(1)
					}
				}
				rounds.Add(1)
				// As a scheduler loop gives way once a slice: on CPU 0
				// the collector's workers and the goroutines that are no
				// loop's run only then.
				cpumux.Yield()
			}
		}()
	}
	wg.Wait()
	runtime.ReadMemStats(&after)
	var cpus []int
	for i := 0; i < 64; i++ {
		if onCPU.Load()&(1<<i) != 0 {
			cpus = append(cpus, i)
		}
	}
	if bad.Load() != 0 {
		fmt.Printf("smptest: FAIL: GC stress: %d corrupt values\n", bad.Load())
		os.Exit(1)
	}
	fmt.Printf("smptest: GC stress: %d goroutines for %d s on CPUs %v, %d rounds, %d MiB allocated, %d GC cycles: ok\n",
		n, seconds, cpus, rounds.Load(), (after.TotalAlloc-before.TotalAlloc)>>20, after.NumGC-before.NumGC)
}

// cpuIndex is this CPU's place in the device tree's /cpus, found by its
// MPIDR_EL1 affinity.
func cpuIndex(m *qemuvirt.Machine) int {
	self := cpu.ReadMPIDR() & 0xff00ffffff
	for i, mpidr := range m.CPUs {
		if mpidr == self {
			return i
		}
	}
	return -1
}
