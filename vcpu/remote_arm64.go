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
// wake-up SGI: Cmd is stored, then Sleeping loaded, while the loop stores
// Sleeping, then loads Cmd (store-release, load-acquire: neither load
// can pass the store before it), so either the loop sees the command or
// this sees it asleep.
func (r *Remote) Post(cmd uint64) (wake bool) {
	atomic.StoreUint64(&r.Cmd, cmd)
	return atomic.LoadUint64(&r.Sleeping) != 0
}

// Done reports whether the last command has been carried out.
func (r *Remote) Done() bool { return atomic.LoadUint64(&r.Cmd) == 0 }
