//go:build tamago && crashtest

package main

import (
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"unsafe"

	"github.com/bulkhead-hv/bulkhead/board/qemuvirt"
	"github.com/bulkhead-hv/bulkhead/cpu"
	"github.com/bulkhead-hv/bulkhead/cpumux"
	"github.com/bulkhead-hv/bulkhead/gic"
	"github.com/bulkhead-hv/bulkhead/vcpu"
)

// Faults on purpose, so tests can check the crash report. Only images built
// with the crashtest tag contain this.

var sink uint64

// nullAddr is a variable so the compiler cannot see the address is nil.
var nullAddr uintptr

//go:noinline
func crashNullRead() {
	sink = *(*uint64)(unsafe.Pointer(nullAddr))
}

//go:noinline
func crashTextWrite() {
	pc := textAddr()
	*(*uint32)(unsafe.Pointer(pc)) = 0xd4200000 // brk #0
}

//go:noinline
func crashRodataWrite() {
	p := unsafe.StringData(rodataString)
	*(*byte)(unsafe.Pointer(p)) = 'X'
}

const rodataString = "this string lives in read-only data"

func textAddr() uintptr {
	f := crashTextWrite
	return **(**uintptr)(unsafe.Pointer(&f))
}

var crashTests = map[string]func(){
	"null-read":    crashNullRead,
	"text-write":   crashTextWrite,
	"rodata-write": crashRodataWrite,
	"brk":          func() { brk() },
	// The handler itself faults once: the nested vector must still
	// produce a report.
	"nested": func() {
		report := cpu.FatalHandler
		faulted := false
		cpu.FatalHandler = func(f *cpu.Frame) {
			if !faulted {
				faulted = true
				crashNullRead()
			}
			report(f)
		}
		crashNullRead()
	},
	// A fault on a secondary CPU running a Go M: the report comes from
	// that CPU's own exception stack.
	"secondary-null-read": crashOnSecondary,
	// A fault on a secondary CPU that runs no goroutine, as its idle
	// thread does: the boot CPU reports it.
	"remote-null-read": crashRemote,
	// The handler always faults: the machine must power off, not hang.
	"double-fault": func() {
		cpu.FatalHandler = func(f *cpu.Frame) { crashNullRead() }
		crashNullRead()
	},
}

func crashTest(name string) {
	fn, ok := crashTests[name]
	if !ok {
		fmt.Printf("bulkhead: unknown crashtest %q\n", name)
		os.Exit(2)
	}
	fmt.Printf("bulkhead: crashtest %s\n", name)
	fn()
	fmt.Printf("bulkhead: crashtest %s did not fault\n", name)
	os.Exit(2)
}

func brk()

// crashNoG reads the null page with g zero, as an idle thread would if it
// faulted.
func crashNoG()
func crashNoGAddr() uint64

// noGStack is crashNoG's stack.
var noGStack [1024]byte

// crashRemote has the last parked secondary run crashNoG, and waits in
// the boot CPU's interrupt handling (hwCPU.Ack) for the report.
func crashRemote() {
	m, _ := qemuvirt.Boot()
	ss := parkedSecondaries()
	if len(ss) == 0 {
		fmt.Println("bulkhead: crashtest remote-null-read needs more than one CPU")
		os.Exit(2)
	}
	if err := initInterrupts(m); err != nil {
		fmt.Printf("bulkhead: crashtest: %v\n", err)
		os.Exit(2)
	}
	s := ss[len(ss)-1]
	fmt.Printf("bulkhead: crashtest faulting on CPU %d with no goroutine\n", s.index)
	top := (uint64(uintptrOf(&noGStack[len(noGStack)-1])) + 1) &^ 15
	s.boot.Give(top, 0, crashNoGAddr())
	gic.SendSGI(cpu.WakeSGI, s.boot.MPIDR)
	c := hwCPU{vcpu.InitCPU(0)}
	deadline := cpu.ReadCNTPCT() + 5*qemuvirt.TimerFrequency()
	for cpu.ReadCNTPCT() < deadline {
		cpu.WaitForInterrupt()
		if id := c.Ack(); id < 1020 {
			c.EOI(id)
		}
	}
	fmt.Println("bulkhead: crashtest: no report of the crashed CPU within 5 s")
	os.Exit(2)
}

// crashOnSecondary gives every CPU an M, holds one goroutine on each and
// has the one on the last CPU read the null page; the others spin.
func crashOnSecondary() {
	m, _ := qemuvirt.Boot()
	if err := initInterrupts(m); err != nil {
		fmt.Printf("bulkhead: crashtest: %v\n", err)
		os.Exit(2)
	}
	mpidrs, err := startMux(m)
	if err != nil {
		fmt.Printf("bulkhead: crashtest: %v\n", err)
		os.Exit(2)
	}
	n := len(mpidrs)
	if n < 2 {
		fmt.Println("bulkhead: crashtest secondary-null-read needs more than one CPU")
		os.Exit(2)
	}
	var arrived atomic.Int32
	for i := 0; i < n; i++ {
		go func() {
			runtime.LockOSThread()
			cpumux.MoveTo(i)
			arrived.Add(1)
			for arrived.Load() < int32(n) {
				// The goroutines still to start need CPU 0's threads.
				cpumux.Yield()
			}
			if c := cpuIndex(m); c == n-1 {
				print("bulkhead: crashtest faulting on CPU ", c, "\n")
				crashNullRead()
			}
			for {
			}
		}()
	}
	// Block rather than yield: without sysmon nothing preempts the
	// spinning goroutines, so a goroutine queued on a P whose M spins is
	// only ever taken by an idle M stealing it, and a main that keeps
	// yielding keeps its M from ever being idle.
	select {}
}
