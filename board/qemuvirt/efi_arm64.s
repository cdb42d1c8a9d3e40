//go:build tamago

#include "textflag.h"

// The UEFI entry (build/bulkhead-hyp.efi, cmd/mkefi). The firmware calls
// it as an EFI application: x0 the image handle, x1 the system table, at
// EL2 (or EL1) with its MMU on, an identity map and its own stack, and
// expects the AAPCS64 of it. It takes what the hypervisor needs from the
// firmware (the configuration table's RSDP and DTB, the memory map), ends
// the boot services, and continues as the -kernel boot does: cpuinit,
// with the MMU and data cache off. Started anywhere but EL2 it says why on
// the firmware's console and returns EFI_UNSUPPORTED.

// Offsets in the system table, the boot services and the simple text
// output protocol (UEFI 2.10, 4.3, 4.4 and 12.4).
#define ST_CONOUT 64
#define ST_BOOTSERVICES 96
#define ST_NTABLES 104
#define ST_TABLES 112
#define BS_ALLOCATEPAGES 40
#define BS_GETMEMORYMAP 56
#define BS_HANDLEPROTOCOL 152
#define BS_EXITBOOTSERVICES 232
#define OUT_OUTPUTSTRING 8
#define LI_LOADOPTIONSSIZE 48	/* EFI_LOADED_IMAGE_PROTOCOL (9.1) */
#define LI_LOADOPTIONS 56

// The configuration table GUIDs as two little-endian words (UEFI 4.6):
// ACPI 2.0 tables (8868e871-e4f1-11d3-bc22-0080c73c8881) and a device
// tree (b1b621d5-f19c-41a5-830b-d9152c69aae0).
#define GUID_ACPI20_LO 0x11d3e4f18868e871
#define GUID_ACPI20_HI 0x81883cc7800022bc
#define GUID_DTB_LO 0x41a5f19cb1b621d5
#define GUID_DTB_HI 0xe0aa692c15d90b83

#define EFI_UNSUPPORTED 0x8000000000000003
#define ALLOCATE_ADDRESS 2	/* EFI_ALLOCATE_TYPE AllocateAddress */
#define EFI_LOADER_DATA 2	/* EFI_MEMORY_TYPE EfiLoaderData */
#define EBS_TRIES 4

// The layout (layout.go: RAMBase, TextBase) and the buffers (efi.go),
// which TestEFIEntryConstants keeps in step.
#define RAMBASE 0x40000000
#define HYPRAMSIZE 0x4000000
#define TEXTBASE 0x40200000
#define IMAGE_BASE (TEXTBASE-0x2000)	/* the EFI image's headers, then the ELF's */
#define MEMORY_MAP_SIZE 65536
#define TEXT_MAX 255
#define CMDLINE_MAX 1024

TEXT efiEntry(SB),NOSPLIT|NOFRAME,$0
	// AAPCS64: x19-x22, the frame pointer and the link register are the
	// firmware's, for the return of a refused boot.
	WORD	$0xa9bd7bfd	// stp x29, x30, [sp,#-48]!
	WORD	$0x910003fd	// mov x29, sp
	WORD	$0xa90153f3	// stp x19, x20, [sp,#16]
	WORD	$0xa9025bf5	// stp x21, x22, [sp,#32]
	MOVD	R0, R19
	MOVD	R1, R20
	MOVD	$·efiImageHandle(SB), R2
	MOVD	R0, (R2)
	MOVD	$·efiSystemTable(SB), R2
	MOVD	R1, (R2)

	MRS	CurrentEL, R2
	LSR	$2, R2, R2
	AND	$3, R2, R2
	CMP	$2, R2
	BEQ	el2
	MOVD	$·efiNotEL2(SB), R0
	BL	efiPrint(SB)
	MOVD	$EFI_UNSUPPORTED, R0
	B	refuse

el2:
	// The command line: the image's load options (UTF-16), narrowed to
	// ASCII, up to the first NUL.
	MOVD	R19, R0
	MOVD	$·efiLoadedImageGUID(SB), R1
	MOVD	$·efiLoadedImage(SB), R2
	MOVD	ST_BOOTSERVICES(R20), R5
	MOVD	BS_HANDLEPROTOCOL(R5), R5
	CALL	(R5)
	CBNZ	R0, options_done
	MOVD	$·efiLoadedImage(SB), R0
	MOVD	(R0), R0
	MOVWU	LI_LOADOPTIONSSIZE(R0), R1
	MOVD	LI_LOADOPTIONS(R0), R2
	CBZ	R2, options_done
	LSR	$1, R1, R1
	MOVD	$CMDLINE_MAX, R3
	CMP	R3, R1
	CSEL	LO, R1, R3, R1
	MOVD	$·efiCmdline(SB), R4
	MOVD	ZR, R5
narrow:
	CMP	R1, R5
	BHS	narrowed
	MOVHU.P	2(R2), R3
	CBZ	R3, narrowed
	CMP	$0x7f, R3
	BLS	ascii
	MOVD	$'?', R3	// not ASCII: no boot argument of the hypervisor's
ascii:
	MOVB	R3, (R4)(R5)
	ADD	$1, R5, R5
	B	narrow
narrowed:
	MOVD	$·efiCmdlineLen(SB), R4
	MOVD	R5, (R4)
options_done:

	// The configuration table: where the ACPI tables or the device tree
	// are.
	MOVD	ST_NTABLES(R20), R2
	MOVD	ST_TABLES(R20), R3
tables:
	CBZ	R2, tables_done
	LDP	(R3), (R4, R5)
	MOVD	16(R3), R6
	MOVD	$GUID_ACPI20_LO, R7
	MOVD	$GUID_ACPI20_HI, R8
	CMP	R7, R4
	BNE	not_acpi
	CMP	R8, R5
	BNE	not_acpi
	MOVD	$·efiRSDP(SB), R7
	MOVD	R6, (R7)
not_acpi:
	MOVD	$GUID_DTB_LO, R7
	MOVD	$GUID_DTB_HI, R8
	CMP	R7, R4
	BNE	next_table
	CMP	R8, R5
	BNE	next_table
	MOVD	$·efiDTB(SB), R7
	MOVD	R6, (R7)
next_table:
	ADD	$24, R3, R3
	SUB	$1, R2, R2
	B	tables
tables_done:

	// The hypervisor's RAM around the image, which the loader gave it:
	// below, the device tree's window; above, the heap and the stacks.
	// Taken from the firmware, so that nothing it keeps is there.
	MOVD	$RAMBASE, R0
	MOVD	$((IMAGE_BASE-RAMBASE)>>12), R1
	BL	efiClaim(SB)
	CBNZ	R0, claim_failed
	MOVD	$runtime·end(SB), R0
	ADD	$0xfff, R0, R0
	AND	$~0xfff, R0, R0
	MOVD	$(RAMBASE+HYPRAMSIZE), R1
	SUB	R0, R1, R1
	LSR	$12, R1, R1
	BL	efiClaim(SB)
	CBNZ	R0, claim_failed

	// The memory map, then the end of the boot services with its key; a
	// stale key (the map changed in between) means a fresh map and
	// another try.
	MOVD	$EBS_TRIES, R21
memmap:
	MOVD	$·efiMemoryMap(SB), R1
	MOVD	$MEMORY_MAP_SIZE, R0
	MOVD	$·efiMapSize(SB), R2
	MOVD	R0, (R2)
	MOVD	R2, R0
	MOVD	$·efiMapKey(SB), R2
	MOVD	$·efiDescSize(SB), R3
	MOVD	$·efiDescVersion(SB), R4
	MOVD	ST_BOOTSERVICES(R20), R5
	MOVD	BS_GETMEMORYMAP(R5), R5
	CALL	(R5)
	CBNZ	R0, memmap_failed
	MOVD	R19, R0
	MOVD	$·efiMapKey(SB), R1
	MOVD	(R1), R1
	MOVD	ST_BOOTSERVICES(R20), R5
	MOVD	BS_EXITBOOTSERVICES(R5), R5
	CALL	(R5)
	CBZ	R0, exited
	SUB	$1, R21, R21
	CBNZ	R21, memmap
	// After a failed ExitBootServices only the memory services may be
	// called (UEFI 2.10, 7.4): the firmware reports the status.
	B	refuse
claim_failed:
	MOVD	R0, R22
	MOVD	$·efiNoRAM(SB), R0
	BL	efiPrint(SB)
	MOVD	R22, R0
	B	refuse
memmap_failed:
	MOVD	R0, R22
	MOVD	$·efiNoMap(SB), R0
	BL	efiPrint(SB)
	MOVD	R22, R0
	B	refuse

exited:
	// The machine is the hypervisor's. With the firmware's interrupts
	// masked, the device tree, if the firmware gave one, is copied to
	// where the -kernel boot finds it (RAMBase); then the MMU and the
	// data cache go off, as cpuinit expects them.
	MSR	$0xf, DAIFSet
	MOVD	$·efiDTB(SB), R0
	MOVD	(R0), R0
	CBZ	R0, copied
	BL	efiCopyDTB(SB)
copied:
	WORD	$0xd53c1000	// mrs x0, sctlr_el2
	BIC	$(1<<0|1<<2), R0, R0	// M, C
	WORD	$0xd51c1000	// msr sctlr_el2, x0
	ISB	$15
	// Clean and invalidate all of the hypervisor's RAM: what was written
	// with the cache on (the image's data, the device tree's copy)
	// reaches memory before anything reads it with the cache off, and no
	// line stays from the firmware's time to shadow what hwinit0 writes
	// with the cache off (Arm ARM B2.12, mismatched cacheability). No data
	// is read between the MMU going off and this.
	MOVD	$RAMBASE, R0
	MOVD	$(RAMBASE+HYPRAMSIZE), R1
	BL	efiCleanInvalidatePoC(SB)
	WORD	$0xd50c871f	// tlbi alle2
	DSB	$15
	ISB	$15
	// x0 for cpuinit: the device tree, as a boot loader passes it (0:
	// none, the machine is described by ACPI).
	MOVD	$·efiDTB(SB), R0
	MOVD	(R0), R0
	CBZ	R0, enter
	MOVD	$RAMBASE, R0
enter:
	MOVD	$cpuinit(SB), R1
	B	(R1)

refuse:
	WORD	$0xa9425bf5	// ldp x21, x22, [sp,#32]
	WORD	$0xa94153f3	// ldp x19, x20, [sp,#16]
	WORD	$0xa8c37bfd	// ldp x29, x30, [sp],#48
	RET

// efiPrint writes the Go string at x0 (ASCII) on the firmware's console,
// through ConOut->OutputString, from a UTF-16 copy. x20 is the system
// table. It uses x0-x5 and the firmware the rest of the AAPCS64's
// caller-saved registers.
TEXT efiPrint(SB),NOSPLIT|NOFRAME,$0
	WORD	$0xa9bf7bfd	// stp x29, x30, [sp,#-16]!
	MOVD	8(R0), R2	// length
	MOVD	(R0), R0	// bytes
	MOVD	$·efiText(SB), R1
	MOVD	$TEXT_MAX, R3
	CMP	R3, R2
	CSEL	LO, R2, R3, R2
	MOVD	R1, R4
widen:
	CBZ	R2, widened
	MOVBU.P	1(R0), R3
	MOVH.P	R3, 2(R4)
	SUB	$1, R2, R2
	B	widen
widened:
	MOVH	ZR, (R4)
	MOVD	ST_CONOUT(R20), R0
	MOVD	OUT_OUTPUTSTRING(R0), R2
	CALL	(R2)
	WORD	$0xa8c17bfd	// ldp x29, x30, [sp],#16
	RET

// efiCopyDTB copies the device tree at x0 (its size from its header,
// big-endian) to RAMBase, if it fits below the image.
TEXT efiCopyDTB(SB),NOSPLIT|NOFRAME,$0
	MOVWU	4(R0), R1	// totalsize
	REVW	R1, R1
	MOVD	$(IMAGE_BASE-RAMBASE), R2
	CMP	R2, R1
	BHI	too_big
	MOVD	$RAMBASE, R2
	ADD	R0, R1, R1
copy:
	CMP	R1, R0
	BHS	done
	MOVD.P	8(R0), R3
	MOVD.P	R3, 8(R2)
	B	copy
done:
	RET
too_big:
	// Left where it is; hwinit1 reports a device tree it cannot find.
	MOVD	$·efiDTB(SB), R0
	MOVD	ZR, (R0)
	RET

// efiClaim allocates the pages [x0, x0 + x1 pages) as loader data
// (AllocatePages, AllocateAddress) and returns the status in x0; x20 is
// the system table.
TEXT efiClaim(SB),NOSPLIT|NOFRAME,$0
	WORD	$0xa9bf7bfd	// stp x29, x30, [sp,#-16]!
	MOVD	$·efiClaimAddr(SB), R3
	MOVD	R0, (R3)
	MOVD	R1, R2
	MOVD	$ALLOCATE_ADDRESS, R0
	MOVD	$EFI_LOADER_DATA, R1
	MOVD	ST_BOOTSERVICES(R20), R5
	MOVD	BS_ALLOCATEPAGES(R5), R5
	CALL	(R5)
	WORD	$0xa8c17bfd	// ldp x29, x30, [sp],#16
	RET

// efiCleanInvalidatePoC cleans and invalidates [x0, x1) to the point of
// coherency (DC CIVAC).
TEXT efiCleanInvalidatePoC(SB),NOSPLIT|NOFRAME,$0
	MRS	CTR_EL0, R2
	LSR	$16, R2, R2
	AND	$0xf, R2, R2
	MOVD	$4, R3
	LSL	R2, R3, R3
	SUB	$1, R3, R4
	BIC	R4, R0, R0
civac:
	CMP	R1, R0
	BHS	civaced
	WORD	$0xd50b7e20	// dc civac, x0
	ADD	R3, R0, R0
	B	civac
civaced:
	DSB	$15
	RET
