//go:build tamago

#include "textflag.h"

// saveEL2(b *SecondaryBoot) copies this CPU's EL2 translation regime and
// controls into b, for a secondary CPU to load.
TEXT ·saveEL2(SB),NOSPLIT,$0-8
	MOVD	b+0(FP), R0
	WORD	$0xd53ca201	// mrs x1, mair_el2
	MOVD	R1, 0(R0)
	WORD	$0xd53c2041	// mrs x1, tcr_el2
	MOVD	R1, 8(R0)
	WORD	$0xd53c2001	// mrs x1, ttbr0_el2
	MOVD	R1, 16(R0)
	WORD	$0xd53c1001	// mrs x1, sctlr_el2
	MOVD	R1, 24(R0)
	WORD	$0xd53cc001	// mrs x1, vbar_el2
	MOVD	R1, 32(R0)
	WORD	$0xd53c1101	// mrs x1, hcr_el2
	MOVD	R1, 40(R0)
	WORD	$0xd53c1141	// mrs x1, cptr_el2
	MOVD	R1, 48(R0)
	WORD	$0xd53c1121	// mrs x1, mdcr_el2
	MOVD	R1, 56(R0)
	RET

TEXT ·secondaryEntryAddr(SB),NOSPLIT,$0-8
	MOVD	$·secondaryEntry(SB), R0
	MOVD	R0, ret+0(FP)
	RET

// CleanDCache(addr, size) cleans data cache lines to the point of
// coherency (DC CVAC), 64 bytes at a time, then waits for it (DSB SY).
TEXT ·CleanDCache(SB),NOSPLIT,$0-16
	MOVD	addr+0(FP), R0
	MOVD	size+8(FP), R1
	ADD	R0, R1, R1
	AND	$~63, R0, R0
clean:
	WORD	$0xd50b7a20	// dc cvac, x0
	ADD	$64, R0, R0
	CMP	R1, R0
	BLO	clean
	DSB	$15
	RET

// secondaryEntry is where a secondary CPU starts, at EL2 with its MMU and
// caches off, x0 = its SecondaryBoot (PSCI CPU_ON's context ID). It takes
// the boot CPU's translation regime, vectors and controls, its own
// exception stack and per-CPU pointer, enables its GIC CPU interface, says
// it is up, and parks until Give hands it a Go M through the boot
// record's mailbox (docs/architecture.md, "CPUs").
TEXT ·secondaryEntry(SB),NOSPLIT|NOFRAME,$0
	MSR	$0xf, DAIFSet
	MOVD	0(R0), R1
	WORD	$0xd51ca201	// msr mair_el2, x1
	MOVD	8(R0), R1
	WORD	$0xd51c2041	// msr tcr_el2, x1
	MOVD	16(R0), R1
	WORD	$0xd51c2001	// msr ttbr0_el2, x1
	// Nothing cached from before this CPU joined; then the MMU on.
	DSB	$15
	ISB	$15
	WORD	$0xd50c871f	// tlbi alle2
	WORD	$0xd508751f	// ic iallu
	DSB	$15
	ISB	$15
	MOVD	24(R0), R1
	WORD	$0xd51c1001	// msr sctlr_el2, x1
	ISB	$15
	MOVD	32(R0), R1
	WORD	$0xd51cc001	// msr vbar_el2, x1
	MOVD	40(R0), R1
	WORD	$0xd51c1101	// msr hcr_el2, x1
	MOVD	48(R0), R1
	WORD	$0xd51c1141	// msr cptr_el2, x1
	MOVD	56(R0), R1
	WORD	$0xd51c1121	// msr mdcr_el2, x1
	// The EL2 timer and the guests' access to the counters, as on the
	// boot CPU: nothing armed, EL1 physical timer and counter trapped.
	MOVD	ZR, R1
	WORD	$0xd51ce101	// msr cnthctl_el2, x1
	WORD	$0xd51ce221	// msr cnthp_ctl_el2, x1
	MOVD	64(R0), R1
	WORD	$0x9100003f	// mov sp, x1
	MOVD	72(R0), R1
	WORD	$0xd51cd041	// msr tpidr_el2, x1
	// GIC CPU interface: system registers, every priority, EOImode 1,
	// group 1 on, as gic.InitCPUInterface does on the boot CPU.
	WORD	$0xd53cc9a1	// mrs x1, icc_sre_el2
	ORR	$9, R1, R1	// SRE | Enable
	WORD	$0xd51cc9a1	// msr icc_sre_el2, x1
	ISB	$15
	MOVD	$0xff, R1
	WORD	$0xd5184601	// msr icc_pmr_el1, x1
	WORD	$0xd538cc81	// mrs x1, icc_ctlr_el1
	ORR	$2, R1, R1	// EOImode
	WORD	$0xd518cc81	// msr icc_ctlr_el1, x1
	MOVD	$1, R1
	WORD	$0xd518cce1	// msr icc_igrpen1_el1, x1
	ISB	$15
	MRS	MPIDR_EL1, R1
	MOVD	R1, 88(R0)
	MOVD	$1, R1
	ADD	$80, R0, R2
	STLR	R1, (R2)
	SEV
	// Park until the mailbox holds an M. Give stores TaskPC last with
	// release semantics, then its caller sends this CPU an SGI (WakeSGI);
	// reading TaskPC with acquire semantics first makes TaskSP and TaskG
	// valid once it is non-zero. WFI, not WFE: a parked CPU sleeps (under
	// QEMU, WFE spins). An SGI sent between the read and the WFI is not
	// lost: it stays pending, and WFI returns at once while it does.
	ADD	$112, R0, R2
park:
	LDAR	(R2), R3
	CBNZ	R3, task
	WFI
	B	park
task:
	// Enter the M as the runtime's newosproc expects of a new thread:
	// Go's stack on SP_EL0 (SP_EL2 stays the exception stack), g in R28,
	// no frame or return address for the unwinder to follow.
	MOVD	96(R0), R1
	MOVD	104(R0), g
	WORD	$0xd50040bf	// msr spsel, #0x0
	WORD	$0x9100003f	// mov sp, x1
	MOVD	ZR, R29
	MOVD	ZR, R30
	JMP	(R3)

// sendEvent wakes every CPU waiting in WFE, after this CPU's earlier
// stores are visible to them.
TEXT ·sendEvent(SB),NOSPLIT,$0-0
	DSB	$11	// ish
	SEV
	RET
