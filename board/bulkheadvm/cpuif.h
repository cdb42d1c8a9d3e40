// CPUIF_ON enables this vCPU's GIC CPU interface (GICv3 system registers
// at EL1, answered by the hypervisor's virtual CPU interface): system
// register access, priority mask pmr, group 1 on. It uses R0.
#define CPUIF_ON(pmr) \
	MOVD	$1, R0 \
	WORD	$0xd518cca0 /* msr icc_sre_el1, x0 */ \
	MOVD	pmr, R0 \
	WORD	$0xd5184600 /* msr icc_pmr_el1, x0 */ \
	MOVD	$1, R0 \
	WORD	$0xd518cce0 /* msr icc_igrpen1_el1, x0 */ \
	ISB	$15
