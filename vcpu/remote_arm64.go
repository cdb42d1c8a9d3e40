//go:build tamago

package vcpu

import "sync/atomic"

func remoteLoop()
func remoteLoopAddr() uint64

// RemoteLoop is the address where a secondary CPU starts its remote loop,
// with g (R28) set to its Remote and SP_EL0 selected on a stack of its own.
func RemoteLoop() uint64 { return remoteLoopAddr() }

// Enter posts RemoteRun for c. The boot CPU must not touch c, or r's
// hardware state, until Done; after it c is wholly in memory. It reports
// whether the CPU sleeps and must be sent the wake-up SGI.
func (r *Remote) Enter(c *Context) (wake bool) {
	r.Current = c
	c.sysInMemory = true
	return r.Post(RemoteRun)
}

// Post hands the CPU a command and reports whether it must be sent the
// wake-up SGI: Cmd is stored, then Sleeping read, while the loop stores
// Sleeping, then loads Cmd, each with a full barrier between its store
// and its load, so either the loop sees the command or this sees it
// asleep. (Store-release then load-acquire orders them on Arm, but QEMU's
// TCG on an x86 host need not keep that order, and a wake-up lost so would
// leave a secondary asleep with a command posted. Here the read is an
// atomic read-modify-write, which it keeps in order.)
func (r *Remote) Post(cmd uint64) (wake bool) {
	atomic.StoreUint64(&r.Cmd, cmd)
	return atomic.AddUint64(&r.Sleeping, 0) != 0
}

// Done reports whether the last command has been carried out.
func (r *Remote) Done() bool { return atomic.LoadUint64(&r.Cmd) == 0 }
