// Package abi is Bulkhead's hypercall ABI: function IDs, argument layout
// and error codes, shared by the hypervisor, the control partition and the
// guest library. Calls follow the SMC Calling Convention (Arm DEN0028,
// SMCCC 1.1): the function ID in w0, arguments in x1-x17, results in x0-x3.
//
// docs/abi.md documents every call; a test keeps it in step with this file.
package abi

// SMCCC function ID fields (DEN0028, 2.5 "Function Identifiers").
const (
	FastCall     = 1 << 31
	SMC64        = 1 << 30
	OwnerShift   = 24
	OwnerArch    = 0 // Arm Architecture Calls
	OwnerVendorH = 6 // Vendor Specific Hypervisor Service Calls
	OwnerStdSec  = 4 // Standard Secure Service Calls (PSCI)
)

// Arm Architecture Calls the hypervisor answers for guests.
const (
	SMCCC_VERSION       = 0x80000000
	SMCCC_ARCH_FEATURES = 0x80000001
)

// Vendor Specific Hypervisor Service: the general queries (DEN0028, 6.2).
const (
	VENDOR_HYP_CALL_UID = 0x8600ff01
	VENDOR_HYP_REVISION = 0x8600ff03
)

// Bulkhead's calls: fast, SMC64, vendor specific hypervisor service.
const (
	base = FastCall | SMC64 | OwnerVendorH<<OwnerShift

	// CONSOLE_WRITE(x1 = length, x2-x7 = up to 48 bytes, little-endian)
	// writes bytes to the caller's console. Returns the bytes taken.
	CONSOLE_WRITE = base | 0x01
	// EXIT(x1 = status) stops the calling VM with that status. No return.
	EXIT = base | 0x02
	// YIELD gives up the rest of the caller's time slice. Returns SUCCESS.
	YIELD = base | 0x03
	// SHARE(x1 = IPA, x2 = size) lends the caller's pages to the control
	// partition for I/O: it can then reach them at their physical address,
	// returned in x1 (one contiguous range).
	SHARE = base | 0x04
	// UNSHARE(x1 = IPA, x2 = size) takes lent pages back.
	UNSHARE = base | 0x05
)

// Management calls: the control partition only. VM handles are the
// ledger's owner numbers (3 and up).
const (
	// VM_CREATE(x1, x2 = name, up to 16 bytes, little-endian, NUL padded)
	// makes an empty VM. Returns x1 = its handle.
	VM_CREATE = base | 0x10
	// VM_DONATE(x1 = VM, x2 = PA, x3 = IPA, x4 = size, x5 = permissions:
	// 1 read, 2 write, 4 execute) gives the caller's pages to the VM at
	// that IPA. The caller loses access to them.
	VM_DONATE = base | 0x11
	// VCPU_CREATE(x1 = VM, x2 = entry point, x3 = x0 at entry, x4 =
	// flags, x5 = physical CPU + 1, or 0) adds a vCPU that starts at EL1h
	// with interrupts masked, or waits for a PSCI CPU_ON with VCPUOff, and
	// runs on that physical CPU. Returns x1 = its index.
	VCPU_CREATE = base | 0x12
	// VM_START(x1 = VM) gives the VM its interrupt controller and runs it.
	VM_START = base | 0x13
	// VM_STATUS(x1 = VM) returns x1 = state (0 created, 1 running,
	// 2 stopped), x2 = exit status and x3 = why it stopped (Stop*).
	VM_STATUS = base | 0x14
	// VM_WAIT returns x1 = a stopped VM not yet destroyed, waiting until
	// one stops.
	VM_WAIT = base | 0x15
	// VM_DESTROY(x1 = VM) tears a stopped VM down; its pages come back to
	// the caller zeroed. Returns x1 = the number of pages.
	VM_DESTROY = base | 0x16
	// VM_STOP(x1 = VM, x2 = status) stops a running VM as if it had
	// called EXIT(status); its memory stays until VM_DESTROY.
	VM_STOP = base | 0x17
	// VM_CONSOLE_READ(x1 = VM, x2 = PA, x3 = length) moves up to length
	// bytes of the VM's console output into the caller's buffer at PA
	// (one page at most, not crossing a page). Returns x1 = bytes moved.
	VM_CONSOLE_READ = base | 0x18
	// VM_CONSOLE_WRITE(x1 = VM, x2 = PA, x3 = length) queues up to length
	// bytes from the caller's buffer as the VM's console input. Returns
	// x1 = bytes taken (fewer when the VM has not read what came before).
	VM_CONSOLE_WRITE = base | 0x19
	// VM_STATS(x1 = VM, x2 = PA) writes the VM's counters, StatsWords
	// little-endian 64-bit words laid out as the Stat* indices say, into
	// the caller's page at PA. With x1 = 0 it writes the machine's
	// (Machine* indices) instead. Returns x1 = the number of words.
	VM_STATS = base | 0x1a
	// VM_MMIO_MAP(x1 = VM, x2 = IPA, x3 = size, x4 = flags) sends the VM's
	// accesses to [IPA, IPA+size) to the caller, which emulates a device
	// there: the vCPU waits until VM_MMIO_REPLY. With MapVirtio in x4 the
	// device is a virtio-mmio transport whose queues the hypervisor
	// mediates (VM_VIRTQ_*).
	VM_MMIO_MAP = base | 0x1b
	// VM_MMIO_NEXT(x1 = PA, x2 = length) writes the oldest access waiting
	// for the caller, MMIOWords words laid out as the MMIO* indices say,
	// into its buffer at PA. Returns x1 = 1, or 0 when none waits.
	VM_MMIO_NEXT = base | 0x1c
	// VM_MMIO_REPLY(x1 = VM, x2 = vCPU, x3 = value) completes that vCPU's
	// access, with the value a read returns, and lets it run on.
	VM_MMIO_REPLY = base | 0x1d
	// VCPU_MOVE(x1 = VM, x2 = vCPU, x3 = physical CPU) pins the vCPU to
	// another physical CPU, with all its state; if it is in the guest it
	// leaves it first.
	VCPU_MOVE = base | 0x1e
	// VM_IRQ_LINE(x1 = VM, x2 = INTID, x3 = level: 0 low, 1 high) drives
	// the line of a level-sensitive SPI of a device the caller emulates:
	// the interrupt is pending in the VM while the line is high.
	VM_IRQ_LINE = base | 0x1f
	// VM_LIST(x1 = first entry, x2 = PA, x3 = length) writes the VMs that
	// exist, ListWords words an entry laid out as the List* indices say,
	// into the caller's buffer at PA: one entry per RAM region of each VM
	// (one with size 0 for a VM that has none), in handle order, from
	// entry x1 on, as many as fit. Returns x1 = entries written, x2 =
	// entries in all. A restarted control partition learns from it what
	// its predecessor left running.
	VM_LIST = base | 0x20
	// VM_VIRTQ_POP(x1 = VM, x2 = device IPA, x3 = queue) takes the next
	// chain the guest posted to that virtqueue. Returns x1 = 1 and x2 =
	// its head, x3 = bytes the device may read << 32 | bytes it may
	// write; x1 = 0 when the ring is empty.
	VM_VIRTQ_POP = base | 0x21
	// VM_VIRTQ_READ(x1 = VM, x2 = device IPA, x3 = queue, x4 = head,
	// x5 = offset, x6 = PA, x7 = length) copies that many of the chain's
	// readable bytes from the offset into the caller's buffer at PA.
	VM_VIRTQ_READ = base | 0x22
	// VM_VIRTQ_WRITE(as VM_VIRTQ_READ) copies the caller's bytes into the
	// chain's writable bytes at the offset.
	VM_VIRTQ_WRITE = base | 0x23
	// VM_VIRTQ_PUSH(x1 = VM, x2 = device IPA, x3 = queue, x4 = head, x5 =
	// bytes written) hands the chain back to the guest on the used ring;
	// the caller reaches none of it from then on.
	VM_VIRTQ_PUSH = base | 0x24
	// CPU_STATS(x1 = physical CPU, x2 = PA) writes StatsWords words about
	// that CPU into the caller's buffer, as the CPUStat* indices say: the
	// exits it handled, the vCPUs homed there, the ticks guests ran there.
	// Returns x1 = the words that mean something (the rest are zero).
	CPU_STATS = base | 0x25
)

// VM_MMIO_MAP's flags.
const (
	MapVirtio = 1 // a virtio-mmio transport, its queues mediated
)

// VirtqMaxCopy is the most bytes one VM_VIRTQ_READ or VM_VIRTQ_WRITE
// copies.
const VirtqMaxCopy = 64 << 10

// Words of a VM_LIST entry.
const (
	ListVM     = iota // the VM's handle
	ListState         // as VM_STATUS
	ListStatus        // exit status, when stopped
	ListWhy           // why it stopped (Stop*), when stopped
	ListVCPUs         // its vCPUs
	ListName          // its name: two words, 16 bytes, little-endian, NUL padded
	_
	ListPA   // this RAM region's physical address
	ListIPA  // its IPA in the VM
	ListSize // its size in bytes
	ListWords
)

// Words of VM_MMIO_NEXT's answer.
const (
	MMIOVM    = iota // the VM
	MMIOVCPU         // the vCPU's index
	MMIOIPA          // the address accessed
	MMIOSize         // 1, 2, 4 or 8 bytes
	MMIOWrite        // 1 for a write, 0 for a read, MMIONotify for a queue notification
	MMIOValue        // what a write writes
	MMIOWords
)

// MMIONotify in MMIOWrite is a guest's write to QueueNotify of a
// virtio-mmio transport (MapVirtio), value the queue. The hypervisor
// completed it at once: there is no vCPU to reply to (MMIOVCPU is
// MMIONoVCPU), and notifications of one queue not yet handed out are
// handed out once.
const (
	MMIONotify = 2
	MMIONoVCPU = 1<<64 - 1
)

// Why a VM stopped, in VM_STATUS's x3.
const (
	StopExit      = 0 // it called EXIT
	StopPowerOff  = 1 // PSCI SYSTEM_OFF, or CPU_OFF of its last vCPU
	StopReset     = 2 // PSCI SYSTEM_RESET: it asks to be started again
	StopFault     = 3 // it did something it cannot go on from
	StopByControl = 4 // VM_STOP
)

// MaxUpload bounds a run request's image and initrd together, as the
// host channel carries them to the control partition.
const MaxUpload = 512 << 20

// StatusStopped is the exit status of a VM that VM_STOP stopped, unless
// the caller gives another: 128 + SIGTERM, as a shell would report it.
const StatusStopped = 143

// Words of VM_STATS for a VM.
const (
	StatState      = iota // as VM_STATUS
	StatStatus            // exit status, when stopped
	StatRunTicks          // counter ticks its vCPUs ran (CNTFRQ_EL0 per second)
	StatPages             // pages it owns
	StatFaults            // stage 2 faults contained
	StatConsoleOut        // console bytes waiting for VM_CONSOLE_READ
	StatVCPUs             // vCPUs
	StatExits             // first of NumExitReasons counters, as ExitReasons names them
)

// ExitReasons names the exit counters of VM_STATS, in order.
var ExitReasons = [NumExitReasons]string{"hvc", "smc", "stage2-fault", "wfx", "sysreg", "irq", "serror", "aarch32", "unexpected", "mmio"}

// Words of VM_STATS for the machine (x1 = 0): the ledger's page counts.
const (
	MachinePages       = iota // pages of RAM the ledger tracks
	MachineFree               // owned by no one
	MachineHypervisor         // the hypervisor's
	MachineControl            // the control partition's
	MachineGuests             // all guests'
	MachineShared             // guest pages lent to the control partition
	MachineVMs                // guests that exist (created, running or stopped)
	MachineTablePages         // stage 2 table pages free in the hypervisor's pool
	MachineChecks             // invariant checks the hypervisor has run (hyp.CheckInvariants)
	MachineViolations         // of which found the invariant broken
	MachineRestarts           // times the control partition was restarted after it crashed
	MachineDMAFaults          // DMA transactions the IOMMU stopped and reported
	MachineDMAConfined        // 1 if an IOMMU confines the control partition's devices
	MachineCPUs               // physical CPUs the hypervisor runs guests on (CPU_STATS)
)

// Words of CPU_STATS.
const (
	CPUStatExits    = iota // guest exits this CPU handled
	CPUStatVCPUs           // vCPUs of VMs that exist homed on it, the control partition's among them
	CPUStatRunTicks        // counter ticks guests ran on it
	NumCPUStats
)

// NumExitReasons is the number of exit counters.
const NumExitReasons = 10

// StatsWords is the size of VM_STATS's answer.
const StatsWords = StatExits + NumExitReasons

// VCPUOff is VCPU_CREATE's flag for a vCPU that is off until another
// starts it with PSCI CPU_ON (a Linux secondary); vCPU 0 must be on.
const VCPUOff = 1

// Permission bits of VM_DONATE.
const (
	PermRead  = 1
	PermWrite = 2
	PermExec  = 4
)

// VM states of VM_STATUS.
const (
	StateCreated = 0
	StateRunning = 1
	StateStopped = 2
)

// ConsoleChunk is the most bytes one CONSOLE_WRITE carries.
const ConsoleChunk = 48

// The ABI version: major changes break callers, minor ones add calls.
const (
	VersionMajor = 0
	VersionMinor = 5
)

// CallUID is the UUID VENDOR_HYP_CALL_UID returns in w0-w3, identifying
// Bulkhead ("b1c5e7a4-...": random, fixed for the life of the ABI).
var CallUID = [4]uint32{0xa4e7c5b1, 0x4d1b9f3e, 0x8e2f6a0c, 0x17d35b92}

// Return codes, in x0, as signed 64-bit values (SMCCC 1.1, 7.1, plus
// Bulkhead's own below -1000).
const (
	SUCCESS           = 0
	NOT_SUPPORTED     = -1
	NOT_REQUIRED      = -2
	INVALID_PARAMETER = -3
	DENIED            = -1001 // the caller may not make this call, or does not own the pages
	NO_MEMORY         = -1002 // the hypervisor's table memory is exhausted
	BUSY              = -1003 // the VM is in the wrong state for the call
	NEEDS_RESET       = -1004 // the guest broke the virtqueue: its device must be reset
)

// CodeName is a return code's name as this package spells it, or "" for
// a value that is none of them.
func CodeName(code int64) string {
	switch code {
	case SUCCESS:
		return "SUCCESS"
	case NOT_SUPPORTED:
		return "NOT_SUPPORTED"
	case NOT_REQUIRED:
		return "NOT_REQUIRED"
	case INVALID_PARAMETER:
		return "INVALID_PARAMETER"
	case DENIED:
		return "DENIED"
	case NO_MEMORY:
		return "NO_MEMORY"
	case BUSY:
		return "BUSY"
	case NEEDS_RESET:
		return "NEEDS_RESET"
	}
	return ""
}

// SMCCC versions: major in bits [30:16], minor in [15:0].
const SMCCCVersion1_1 = 0x10001

// Call describes one call for documentation and dispatch tables.
type Call struct {
	Name string
	ID   uint32
	// Guest is true when guests may make the call; the control partition
	// may make every call.
	Guest bool
}

// Calls lists every call the hypervisor implements.
var Calls = []Call{
	{"SMCCC_VERSION", SMCCC_VERSION, true},
	{"SMCCC_ARCH_FEATURES", SMCCC_ARCH_FEATURES, true},
	{"VENDOR_HYP_CALL_UID", VENDOR_HYP_CALL_UID, true},
	{"VENDOR_HYP_REVISION", VENDOR_HYP_REVISION, true},
	{"CONSOLE_WRITE", CONSOLE_WRITE, true},
	{"EXIT", EXIT, true},
	{"YIELD", YIELD, true},
	{"SHARE", SHARE, true},
	{"UNSHARE", UNSHARE, true},
	{"VM_CREATE", VM_CREATE, false},
	{"VM_DONATE", VM_DONATE, false},
	{"VCPU_CREATE", VCPU_CREATE, false},
	{"VM_START", VM_START, false},
	{"VM_STATUS", VM_STATUS, false},
	{"VM_WAIT", VM_WAIT, false},
	{"VM_DESTROY", VM_DESTROY, false},
	{"VM_STOP", VM_STOP, false},
	{"VM_CONSOLE_READ", VM_CONSOLE_READ, false},
	{"VM_CONSOLE_WRITE", VM_CONSOLE_WRITE, false},
	{"VM_STATS", VM_STATS, false},
	{"VM_MMIO_MAP", VM_MMIO_MAP, false},
	{"VM_MMIO_NEXT", VM_MMIO_NEXT, false},
	{"VM_MMIO_REPLY", VM_MMIO_REPLY, false},
	{"VCPU_MOVE", VCPU_MOVE, false},
	{"VM_IRQ_LINE", VM_IRQ_LINE, false},
	{"VM_LIST", VM_LIST, false},
	{"VM_VIRTQ_POP", VM_VIRTQ_POP, false},
	{"VM_VIRTQ_READ", VM_VIRTQ_READ, false},
	{"VM_VIRTQ_WRITE", VM_VIRTQ_WRITE, false},
	{"VM_VIRTQ_PUSH", VM_VIRTQ_PUSH, false},
	{"CPU_STATS", CPU_STATS, false},
}

// PSCI functions the hypervisor emulates for guests over SMC (Arm DEN0022,
// 5.1 "Function prototypes").
const (
	PSCI_VERSION         = 0x84000000
	PSCI_CPU_SUSPEND     = 0xc4000001
	PSCI_CPU_ON          = 0xc4000003
	PSCI_AFFINITY_INFO   = 0xc4000004
	PSCI_CPU_SUSPEND32   = 0x84000001
	PSCI_CPU_ON32        = 0x84000003
	PSCI_AFFINITY_INFO32 = 0x84000004
	PSCI_CPU_OFF         = 0x84000002
	PSCI_SYSTEM_OFF      = 0x84000008
	PSCI_SYSTEM_RESET    = 0x84000009
	PSCI_FEATURES        = 0x8400000a
	PSCI_VERSION_1_1     = 0x10001
	PSCI_NOT_SUPPORTED   = -1

	// PSCI return codes (DEN0022, 5.2.2).
	PSCI_INVALID_PARAMETERS = -2
	PSCI_ALREADY_ON         = -4
	PSCI_INVALID_ADDRESS    = -9
)

// IsPSCI reports whether fid is in PSCI's ranges of the Standard Secure
// Service Calls (DEN0028, 6.3: function numbers 0x00-0x1F).
func IsPSCI(fid uint32) bool {
	return fid&^(SMC64|0x1f) == FastCall|OwnerStdSec<<OwnerShift
}

// Word returns a return code as the register value carrying it.
func Word(code int64) uint64 { return uint64(code) }
