/* A model of the page-cache protocol (mm/pcache.c) for one page in one granule, checked with
 * SPIN (tests/model/run.sh). Processes: the guest (stores through its mapping as KVM logs them,
 * or through the fault path; loads), a flusher (harvest-and-reprotect, then writeback), an
 * invalidator (seed 004: lock; unmap; launder; drop; unlock), a DMA (pin under the page lock,
 * refused while BREAKING, seed 001; write; mark DIRTY; unpin) and a breaker (BREAKING; unmap;
 * drain pins; drop dirt; punch). `last` is a ghost: the value the page must hold, updated in
 * the same atomic step as every write of the page's data.
 *
 * Checked:
 *   - mapped => UPTODATE, and a mapped page always shows `last` (no stale data is visible);
 *   - not UPTODATE => the file holds `last` (dropping never loses data);
 *   - DIRTY => UPTODATE;
 *   - no DMA writes after a punch that started while it was pinned;
 *   - at the end, after a final flush, the file holds `last` (no store is lost).
 * Bug variants (-D...) that the checker must reject: BUG_APPLY_LATE (harvested dirt applied
 * after the slot lock is dropped), BUG_NO_REPROTECT (harvest does not write-protect again),
 * BUG_PIN_UNLOCKED (pin taken outside the page lock), BUG_NO_DRAIN (breaker does not wait for
 * pins), BUG_NO_LAUNDER (invalidate drops a dirty page without writing it back). */

#define ABSENT 0
#define RO     1
#define RW     2

byte file = 0;           /* backing file */
byte cache = 0;          /* cache page */
byte last = 0;           /* ghost */
bool uptodate = 0;
bool dirty = 0;
bool reserved = 0;
bool locked = 0;         /* page lock */
byte pins = 0;
bool breaking = 0;
byte gstate = ABSENT;
bool sdirty = 0;         /* KVM: logged since last harvest */
bool wp = 1;             /* KVM: next store is logged */
bool slot_lock = 0;
byte punches = 0;        /* ghost */
byte finished = 0;

inline plock()   { atomic { !locked -> locked = 1 } }
inline punlock() { locked = 0 }
inline slock()   { atomic { !slot_lock -> slot_lock = 1 } }
inline sunlock() { slot_lock = 0 }

/* Make the granule absent (shadow_ops.unmap: MOVE + final GET_DIRTY_LOG + delete). Caller holds
 * the page lock. */
inline unmap() {
	slock();
	if
	:: gstate == RW ->
		atomic { gstate = ABSENT; hd = sdirty; sdirty = 0 }
		if :: hd -> dirty = 1 :: else -> skip fi
	:: gstate == RO -> gstate = ABSENT
	:: else -> skip
	fi;
	sunlock()
}

/* pcache_writeback_range: harvest (GET + CLEAR) under the slot lock, then writeback. */
inline writeback() {
	slock();
	if
	:: gstate == RW ->
		atomic {
			hd = sdirty; sdirty = 0;
#ifndef BUG_NO_REPROTECT
			if :: hd -> wp = 1 :: else -> skip fi
#endif
		}
#ifndef BUG_APPLY_LATE
		if :: hd -> dirty = 1 :: else -> skip fi;
		sunlock()
#else
		sunlock();
		if :: hd -> dirty = 1 :: else -> skip fi
#endif
	:: else -> sunlock()
	fi;
	plock();
	if :: dirty -> dirty = 0; file = cache :: else -> skip fi;
	punlock()
}

/* fault_one: a store of v (v > 0) or a load (v == 0) that exited to the VMM. */
inline fault(v) {
	do
	:: plock();
	   if
	   :: breaking -> punlock(); (!breaking)
	   :: else -> break
	   fi
	od;
	if :: !uptodate -> cache = file; uptodate = 1 :: else -> skip fi;
	if
	:: v > 0 ->
		reserved = 1;                             /* mkwrite */
		atomic { cache = v; last = v };           /* complete the store ... */
		dirty = 1;                                /* ... KVM did not log it */
		slock();
		if
		:: gstate != RW -> gstate = RW; sdirty = 0; wp = 1   /* new slot: clean, protected */
		:: else -> skip
		fi;
		sunlock()
	:: else ->
		assert(cache == last);
		slock();
		if :: gstate == ABSENT -> gstate = RO :: else -> skip fi;
		sunlock()
	fi;
	punlock()
}

proctype Guest() {
	bool hd;
	byte v = 1;
	do
	:: v <= 3 ->
		if
		:: atomic { gstate == RW ->                /* the CPU store; KVM logs it */
			cache = v; last = v;
			if :: wp -> sdirty = 1; wp = 0 :: else -> skip fi }
		:: atomic { gstate != RW -> skip }; fault(v)
		fi;
		v++
	:: v == 4 ->
		if
		:: atomic { gstate != ABSENT -> assert(cache == last) }
		:: atomic { gstate == ABSENT -> skip }; fault(0)
		fi;
		break
	od;
	finished++
}

proctype Flusher() {
	bool hd;
	writeback();
	finished++
}

proctype Invalidator() {
	bool hd;
	plock();
	unmap();
#ifndef BUG_NO_LAUNDER
	if :: dirty && pins == 0 -> dirty = 0; file = cache :: else -> skip fi;
#endif
	if
	:: pins == 0 && !dirty -> uptodate = 0; reserved = 0
#ifdef BUG_NO_LAUNDER
	:: pins == 0 && dirty -> uptodate = 0; reserved = 0; dirty = 0
#endif
	:: else -> skip
	fi;
	punlock();
	finished++
}

proctype DMA() {
	byte seen;
	do
	:: plock();
	   if
	   :: breaking -> punlock(); (!breaking)
	   :: else -> break
	   fi
	od;
	if :: !uptodate -> cache = file; uptodate = 1 :: else -> skip fi;
	reserved = 1;
#ifndef BUG_PIN_UNLOCKED
	atomic { pins++; seen = punches };
	punlock();
#else
	punlock();
	atomic { pins++; seen = punches };
#endif
	atomic { assert(punches == seen); cache = 9; last = 9 };
	dirty = 1;                                   /* mark DIRTY before unpinning */
	pins--;
	finished++
}

proctype Breaker() {
	bool hd;
	breaking = 1;
	plock(); unmap(); punlock();
#ifndef BUG_NO_DRAIN
	(pins == 0);
#endif
	plock();
	dirty = 0; uptodate = 0; reserved = 0;
	atomic { file = 0; last = 0; punches++ };
	punlock();
	breaking = 0;
	finished++
}

active proctype Monitor() {
end:	do
	:: atomic { gstate != ABSENT && !uptodate -> assert(false) }
	:: atomic { !uptodate && file != last && !locked -> assert(false) }
	:: atomic { dirty && !uptodate -> assert(false) }
	od
}

init {
	bool hd;
	atomic {
		run Guest(); run Flusher(); run Invalidator(); run DMA(); run Breaker()
	}
	(finished == 5);
	writeback();                                 /* the final FLUSH */
	assert(file == last)
}
