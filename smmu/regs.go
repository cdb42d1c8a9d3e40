// Package smmu drives an Arm SMMUv3 (IHI 0070) for the hypervisor: it
// turns global bypass off, gives every stream a stream table entry that
// aborts until the hypervisor attaches it to a translation, and keeps a
// device's view of memory equal to the control partition's RAM (Domain).
// Faults come back as Events. Register access goes through the Bus seam
// and memory through the Memory seam, so the logic runs under go test.
package smmu

// Register offsets (IHI 0070, 6.2 "Register overview"). Page 1 starts at
// 64 KiB.
const (
	IDR0            = 0x00
	IDR1            = 0x04
	IDR5            = 0x14
	CR0             = 0x20
	CR0ACK          = 0x24
	CR1             = 0x28
	CR2             = 0x2c
	GBPA            = 0x44
	IRQ_CTRL        = 0x50
	IRQ_CTRLACK     = 0x54
	GERROR          = 0x60
	GERRORN         = 0x64
	STRTAB_BASE     = 0x80
	STRTAB_BASE_CFG = 0x88
	CMDQ_BASE       = 0x90
	CMDQ_PROD       = 0x98
	CMDQ_CONS       = 0x9c
	EVENTQ_BASE     = 0xa0
	EVENTQ_PROD     = 0x100a8
	EVENTQ_CONS     = 0x100ac
)

// SMMU_IDR0 fields (6.3.1).
const (
	IDR0_S2P         = 1 << 0
	IDR0_S1P         = 1 << 1
	IDR0_TTF_SHIFT   = 2 // [3:2]: 0b10 AArch64
	IDR0_TTF_AARCH64 = 2
	IDR0_COHACC      = 1 << 4
	IDR0_HYP         = 1 << 9 // EL2 translation: CMD_TLBI_EL2_* are legal
	IDR0_ASID16      = 1 << 12
	IDR0_VMID16      = 1 << 18
)

// SMMU_IDR1 fields (6.3.2).
const (
	IDR1_SIDSIZE_MASK   = 0x3f // [5:0]
	IDR1_EVENTQS_SHIFT  = 16   // [20:16]
	IDR1_CMDQS_SHIFT    = 21   // [25:21]
	IDR1_QS_MASK        = 0x1f
	IDR1_TABLES_PRESET  = 1 << 30
	IDR1_QUEUES_PRESET  = 1 << 29
	IDR5_OAS_MASK       = 7 // [2:0]
	IDR5_GRAN4K         = 1 << 4
	idr5OASMaxSupported = 5 // 48 bits: the tables' output addresses stop there
)

// SMMU_CR0 (6.3.9), SMMU_CR1 (6.3.11), SMMU_CR2 (6.3.12).
const (
	CR0_SMMUEN   = 1 << 0
	CR0_EVENTQEN = 1 << 2
	CR0_CMDQEN   = 1 << 3

	// Tables and queues: inner shareable, inner and outer write-back.
	CR1_QUEUE_IC_WB  = 1 << 0
	CR1_QUEUE_OC_WB  = 1 << 2
	CR1_QUEUE_SH_ISH = 3 << 4
	CR1_TABLE_IC_WB  = 1 << 6
	CR1_TABLE_OC_WB  = 1 << 8
	CR1_TABLE_SH_ISH = 3 << 10

	CR2_RECINVSID = 1 << 1 // record C_BAD_STREAMID events
	CR2_PTM       = 1 << 2 // private TLB maintenance: no broadcast TLBIs from CPUs
)

// SMMU_GBPA (6.3.14): what happens to traffic while SMMUEN is 0.
const (
	GBPA_ABORT  = 1 << 20
	GBPA_UPDATE = 1 << 31
)

// SMMU_GERROR (6.3.18): the global errors this driver looks at.
const (
	GERROR_CMDQ_ERR      = 1 << 0
	GERROR_EVENTQ_ABT    = 1 << 2
	GERROR_SFM_ERR       = 1 << 8
	CMDQ_CONS_ERR_SHIFT  = 24 // [30:24]
	CMDQ_CONS_ERR_MASK   = 0x7f
	EVENTQ_PROD_OVFLG    = 1 << 31
	QBASE_ADDR_MASK      = 0x000f_ffff_ffff_ffe0 // [51:5]
	QBASE_RA_WA          = 1 << 62               // read-allocate (CMDQ), write-allocate (EVENTQ)
	STRTAB_BASE_RA       = 1 << 62
	STRTAB_BASE_ADDR     = 0x000f_ffff_ffff_ffc0 // [51:6]
	STRTAB_CFG_FMT_SHIFT = 16                    // 0b00 linear
)
