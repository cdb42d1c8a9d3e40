/*
 * Break-before-make for one stage 2 translation shared by several CPUs.
 *
 * What is modelled is mmu.Tables.breakEntry followed by the new write, with
 * cpu.TLBIStage2IPA as the TLB seam (cpu/sysreg_arm64.s):
 *
 *     entry = 0                       break
 *     DSB ISHST                       the store reaches every table walker
 *     TLBI IPAS2E1IS, ipa             stage-2-only entries, every CPU
 *     DSB ISH                         ... and it has completed everywhere
 *     TLBI VMALLE1IS                  combined stage 1+2 entries, every CPU
 *     DSB ISH                         ... completed everywhere
 *     ISB                             (local: not modelled)
 *     entry = new                     make
 *     DSB ISH                         the update is complete: the old page
 *                                     may be handed to someone else
 *
 * The hardware, as far as it matters here:
 *   - the updater's stores sit in a store buffer (FIFO: one address) until
 *     they drain to memory, where table walkers read them; DSB ISHST waits
 *     for the drain;
 *   - each CPU has a stage-2 TLB entry (IPA -> PA) and two combined entries
 *     (VA -> PA). A combined walk takes the stage 2 step from the stage-2
 *     TLB entry when there is one, else from memory (and caches it there).
 *     A walk is atomic: the architecture makes a TLBI also cover walks in
 *     flight. TLBs never cache an invalid entry, and may drop entries at any
 *     time;
 *   - a broadcast TLBI is only requested by the instruction: each CPU
 *     performs it later, and two TLBIs not separated by a DSB may be
 *     performed in either order. DSB ISH waits until every CPU performed
 *     every TLBI issued before it.
 *
 * Properties (assertions):
 *   STALE     no CPU uses a translation to the old page once the update is
 *             complete;
 *   COHERENT  never, anywhere in the system, a valid translation to the old
 *             page (in any TLB) while another to the new page exists (in any
 *             TLB, or in memory for a walker to find): no CPU can see two
 *             different valid translations for the IPA, and no two CPUs see
 *             different ones;
 *   CONFLICT  (implied by COHERENT, checked where it happens) no TLB holds
 *             both translations at once: the TLB conflict the architecture
 *             leaves UNPREDICTABLE.
 *
 * Faulty variants, selected with -D: NO_TLBI (neither TLBI), NO_DSB (no DSB
 * ISH after the TLBIs), NO_DSB_ST (no DSB ISHST before them), NO_DSB_MID
 * (no DSB between the two TLBIs), NO_VMALLE1 (no TLBI VMALLE1IS), NO_BREAK
 * (the new entry overwrites the live one, then the TLBIs).
 */

#ifndef NCPU
#define NCPU 2
#endif

#define INVALID 0
#define OLD     1
#define NEW     2

byte pte = OLD;             /* the descriptor in memory */
chan sb = [2] of { byte };  /* the updater's store buffer */
byte s2tlb[NCPU];           /* stage-2-only TLB entry of each CPU */
byte comb[2 * NCPU];        /* two combined TLB entries per CPU */
bool inv_s2[NCPU];          /* TLBI IPAS2E1IS issued, not yet performed */
bool inv_all[NCPU];         /* TLBI VMALLE1IS issued, not yet performed */
bool complete = false;          /* the updater finished: the old page is reused */

#define HOLDS(c, v) (s2tlb[c] == v || comb[2*(c)] == v || comb[2*(c)+1] == v)

inline use(v) {
#ifndef SKIP_STALE
	assert(!(v == OLD && complete))                         /* STALE */
#else
	skip
#endif
}

inline fill(c, v) {
	if
	:: v != INVALID && comb[2*c] == INVALID -> comb[2*c] = v
	:: v != INVALID && comb[2*c+1] == INVALID -> comb[2*c+1] = v
	:: else -> skip
	fi
#ifndef SKIP_CONFLICT
	;
	assert(!(comb[2*c] == OLD && comb[2*c+1] == NEW) &&
	       !(comb[2*c] == NEW && comb[2*c+1] == OLD))   /* CONFLICT */
#endif
}

proctype cpu(byte me) {
	byte v;
	do
	:: atomic {                     /* a walk for a combined entry */
		if
		:: s2tlb[me] != INVALID -> v = s2tlb[me]
		:: else -> v = pte; s2tlb[me] = v
		fi;
		fill(me, v);
		v = 0
	   }
	:: atomic { comb[2*me] != INVALID -> use(comb[2*me]) }
	:: atomic { comb[2*me+1] != INVALID -> use(comb[2*me+1]) }
	:: atomic { inv_s2[me] -> s2tlb[me] = INVALID; inv_s2[me] = false }
	:: atomic { inv_all[me] -> comb[2*me] = INVALID; comb[2*me+1] = INVALID;
	            inv_all[me] = false }
	:: s2tlb[me] != INVALID -> s2tlb[me] = INVALID           /* eviction */
	:: comb[2*me] != INVALID -> comb[2*me] = INVALID
	:: comb[2*me+1] != INVALID -> comb[2*me+1] = INVALID
	od
}

active proctype memory() {
	byte v;
end:	do
	:: atomic { sb?v -> pte = v }
	od
}

/* Broadcast a TLBI: every CPU has it to perform. */
#define TLBI(flags) \
	atomic { c = 0; do :: c < NCPU -> flags[c] = true; c++ :: else -> break od }

/* DSB ISH: wait until every CPU performed the TLBIs issued before it. */
#define DSB_ISH(flags) \
	c = 0; do :: c < NCPU -> !flags[c]; c++ :: else -> break od

active proctype updater() {
	byte c;
#ifdef NO_BREAK
	sb!NEW;                         /* overwrite the live entry */
#else
	sb!INVALID;                     /* break */
#endif
#ifndef NO_DSB_ST
	len(sb) == 0;                   /* DSB ISHST */
#endif
#ifndef NO_TLBI
	TLBI(inv_s2);                   /* TLBI IPAS2E1IS */
#endif
#if !defined(NO_DSB) && !defined(NO_DSB_MID)
	DSB_ISH(inv_s2);           /* DSB ISH */
#endif
#if !defined(NO_TLBI) && !defined(NO_VMALLE1)
	TLBI(inv_all);                  /* TLBI VMALLE1IS */
#endif
#ifndef NO_DSB
	DSB_ISH(inv_s2);           /* DSB ISH: every TLBI issued so far */
	DSB_ISH(inv_all);
#endif
#ifndef NO_BREAK
	sb!NEW;                         /* make */
#endif
	len(sb) == 0;                   /* DSB ISH */
	complete = true
}

/* COHERENT, checked in every reachable state: the monitor can take its one
   step at any point of any interleaving. */
active proctype monitor() {
	byte c;
	bool old = false, new = false;
	atomic {
		c = 0;
		do
		:: c < NCPU ->
			if :: HOLDS(c, OLD) -> old = true :: else -> skip fi;
			if :: HOLDS(c, NEW) -> new = true :: else -> skip fi;
			c++
		:: else -> break
		od;
#ifndef SKIP_COHERENT
		assert(!(old && (new || pte == NEW)))          /* COHERENT */
#endif
		skip
	}
}

init {
	byte c;
	atomic {
		c = 0;
		do
		:: c < NCPU ->
			s2tlb[c] = OLD; comb[2*c] = OLD;   /* TLBs warm with the old translation */
			run cpu(c); c++
		:: else -> break
		od
	}
}
