#include "textflag.h"

// readAA64IDRegs(p *[32]uint64) reads the AArch64 identification space,
// op0=3 op1=0 CRn=0 CRm=4..7 op2=0..7, into p[(CRm-4)*8+op2]. The
// encodings the architecture leaves unallocated read as zero there (Arm
// ARM D18.3.2), so all 32 are safe to read on any CPU.
TEXT ·readAA64IDRegs(SB),NOSPLIT,$0-8
	MOVD	p+0(FP), R0
	WORD	$0xd5380401	// mrs x1, id_aa64pfr0_el1
	MOVD	R1, 0(R0)
	WORD	$0xd5380421	// mrs x1, id_aa64pfr1_el1
	MOVD	R1, 8(R0)
	WORD	$0xd5380441	// mrs x1, s3_0_c0_c4_2
	MOVD	R1, 16(R0)
	WORD	$0xd5380461	// mrs x1, s3_0_c0_c4_3
	MOVD	R1, 24(R0)
	WORD	$0xd5380481	// mrs x1, id_aa64zfr0_el1
	MOVD	R1, 32(R0)
	WORD	$0xd53804a1	// mrs x1, id_aa64smfr0_el1
	MOVD	R1, 40(R0)
	WORD	$0xd53804c1	// mrs x1, s3_0_c0_c4_6
	MOVD	R1, 48(R0)
	WORD	$0xd53804e1	// mrs x1, s3_0_c0_c4_7
	MOVD	R1, 56(R0)
	WORD	$0xd5380501	// mrs x1, id_aa64dfr0_el1
	MOVD	R1, 64(R0)
	WORD	$0xd5380521	// mrs x1, id_aa64dfr1_el1
	MOVD	R1, 72(R0)
	WORD	$0xd5380541	// mrs x1, s3_0_c0_c5_2
	MOVD	R1, 80(R0)
	WORD	$0xd5380561	// mrs x1, s3_0_c0_c5_3
	MOVD	R1, 88(R0)
	WORD	$0xd5380581	// mrs x1, id_aa64afr0_el1
	MOVD	R1, 96(R0)
	WORD	$0xd53805a1	// mrs x1, id_aa64afr1_el1
	MOVD	R1, 104(R0)
	WORD	$0xd53805c1	// mrs x1, s3_0_c0_c5_6
	MOVD	R1, 112(R0)
	WORD	$0xd53805e1	// mrs x1, s3_0_c0_c5_7
	MOVD	R1, 120(R0)
	WORD	$0xd5380601	// mrs x1, id_aa64isar0_el1
	MOVD	R1, 128(R0)
	WORD	$0xd5380621	// mrs x1, id_aa64isar1_el1
	MOVD	R1, 136(R0)
	WORD	$0xd5380641	// mrs x1, id_aa64isar2_el1
	MOVD	R1, 144(R0)
	WORD	$0xd5380661	// mrs x1, s3_0_c0_c6_3
	MOVD	R1, 152(R0)
	WORD	$0xd5380681	// mrs x1, s3_0_c0_c6_4
	MOVD	R1, 160(R0)
	WORD	$0xd53806a1	// mrs x1, s3_0_c0_c6_5
	MOVD	R1, 168(R0)
	WORD	$0xd53806c1	// mrs x1, s3_0_c0_c6_6
	MOVD	R1, 176(R0)
	WORD	$0xd53806e1	// mrs x1, s3_0_c0_c6_7
	MOVD	R1, 184(R0)
	WORD	$0xd5380701	// mrs x1, id_aa64mmfr0_el1
	MOVD	R1, 192(R0)
	WORD	$0xd5380721	// mrs x1, id_aa64mmfr1_el1
	MOVD	R1, 200(R0)
	WORD	$0xd5380741	// mrs x1, id_aa64mmfr2_el1
	MOVD	R1, 208(R0)
	WORD	$0xd5380761	// mrs x1, s3_0_c0_c7_3
	MOVD	R1, 216(R0)
	WORD	$0xd5380781	// mrs x1, s3_0_c0_c7_4
	MOVD	R1, 224(R0)
	WORD	$0xd53807a1	// mrs x1, s3_0_c0_c7_5
	MOVD	R1, 232(R0)
	WORD	$0xd53807c1	// mrs x1, s3_0_c0_c7_6
	MOVD	R1, 240(R0)
	WORD	$0xd53807e1	// mrs x1, s3_0_c0_c7_7
	MOVD	R1, 248(R0)
	RET
