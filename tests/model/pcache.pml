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
 * pins), BUG_NO_LAUNDER (invalidate drops a dirty page without writing it back).
 *
 * With -DDIRECT the Flusher and Invalidator are replaced by the two direct-I/O paths of
 * virtio-blk on the page cache (pcache_direct_read/write; the invalidator's protocol is the
 * first half of the direct write):
 *   DirectWriter  lock; unmap; forget the dirt of the (wholly overwritten) page unless pinned;
 *                 launder; write the file; then drop the page, or, if a DMA holds it pinned,
 *                 copy the written bytes into it (the buffered fallback; issue 12 fix 2:
 *                 never re-read from the file, never clear DIRTY there; granule.pml
 *                 models the partial-page case); unlock.
 *   DirectReader  writeback (seed 000: "msync ... before the O_DIRECT read"), then read the
 *                 file: it must return a value the page held at some point during the read
 *                 (ghost `seen`: every value `last` took since the read started; plus, while a
 *                 DMA is in flight, the value without its write, which may linearize anywhere
 *                 until its unpin; plus a DirectWriter's value from its file write on).
 * and these broken variants must be rejected: BUG_NO_WB_BEFORE_READ (direct read without the
 * writeback), BUG_DW_NO_UNMAP (direct write leaves the guest's mapping), BUG_DW_DROP_PINNED
 * (direct write drops a pinned page instead of copying the written bytes into it).
 *
 * With -DFLUSHRACE: guest, flusher, direct reader, invalidator, DMA: two writebacks and a
 * launder at once, with the page's dirty hint modelled (a writeback takes the hint, then writes
 * the page if DIRTY). BUG_NO_WB_WAIT (no "and wait" barrier at the end of a writeback) must be
 * rejected: the reader finds the hint taken by the flusher, or DIRTY cleared by a launder
 * still writing, and reads the file too early (the guest's f2); so must BUG_HINT_IF_NEW (see
 * setdirty).
 * With -DDIRECT, BUG_BREAK_NO_WB (a break drops the dirt and punches outside a wb_lock section)
 * must be rejected too: a direct read between the drop and the punch returns the file's old
 * bytes, neither the newer data nor zeros. */

#if defined(DIRECT) || defined(FLUSHRACE)
#define NSTORES 1        /* keeps these configurations to ~10 s each here */
#else
#define NSTORES 3
#endif

#define ABSENT 0
#define RO     1
#define RW     2

byte file = 5;           /* backing file (5: its old data, told apart from a punch's 0) */
byte cache = 5;          /* cache page */
byte last = 5;           /* ghost */
bool uptodate = 0;
bool dirty = 0;
bool hint = 0;           /* the page's dirty-hint bit (pcache.c hint_set / hints_take) */
byte wb_active = 0;      /* sections holding wb_lock shared: writebacks and launders */
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
bool rd_active = 0;      /* ghost: a DirectReader is between its start and its file read */
short seen = 0;          /* ghost: values of `last` since then (bit per value) */
byte base = 5;           /* ghost: the last value written by anyone but the DMA: while the
			  * DMA is in flight (pinned) its write may linearize at its unpin,
			  * so a read may still return this */
bool dw_hold = 0;        /* ghost: the DirectWriter holds the page lock after its unmap */
bool dma_in_hold = 0;    /* ghost: the DMA wrote the page while dw_hold */
bool dw_wrote = 0;       /* ghost: the DirectWriter's file write is done, its unlock is not */

/* Every write of the ghost goes through here, so a reader learns every value it may see. */
inline setlast_dma(v) {
	last = v;
	if :: rd_active -> seen = seen | (1 << v) :: else -> skip fi
}
inline setlast(v) {
	setlast_dma(v);
	base = v
}

/* mark_dirty: DIRTY, then the hint, in two steps as in pcache.c. The hint is set even if the
 * page was DIRTY already (BUG_HINT_IF_NEW: only if this call set DIRTY, as pcache.c did before:
 * a caller that finds DIRTY set by a thread that has not set the hint yet completes first, and
 * a writeback in between misses the page). */
inline setdirty() {
	atomic { wasd = dirty; dirty = 1 };
#ifdef BUG_HINT_IF_NEW
	if :: !wasd -> hint = 1 :: else -> skip fi
#else
	hint = 1
#endif
}

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
		if :: hd -> setdirty() :: else -> skip fi
	:: gstate == RO -> gstate = ABSENT
	:: else -> skip
	fi;
	sunlock()
}

/* pcache_writeback_range: in a wb_lock-shared section, harvest (GET + CLEAR) under the slot
 * lock, take the page's hint, and if the page is DIRTY (checked first without the lock, as
 * wb_word does) write it under the page lock; then the "and wait" barrier: wb_lock exclusive,
 * i.e. wait until no writeback or launder section is running. */
inline writeback() {
	wb_active++;
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
		if :: hd -> setdirty() :: else -> skip fi;
		sunlock()
#else
		sunlock();
		if :: hd -> setdirty() :: else -> skip fi
#endif
	:: else -> sunlock()
	fi;
	atomic { took = hint; hint = 0 };
	if
	:: took && dirty ->
		plock();
		if :: dirty -> dirty = 0; file = cache :: else -> skip fi;
		punlock()
	:: else -> skip
	fi;
	wb_active--;
#ifndef BUG_NO_WB_WAIT
	(wb_active == 0)
#endif
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
		/* Complete the store, and mark DIRTY (KVM did not log it). The page lock is held, so
		 * no writeback can clear DIRTY in between: the order of the two does not matter; the
		 * ghost's update is the store's completion, which the vCPU sees when the fault
		 * returns (a reader starting earlier overlaps it). */
		setdirty();
		atomic { cache = v; setlast(v) };
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
	bool hd, wasd;
	byte v = 1;
	do
	:: v <= NSTORES ->
		if
		:: atomic { gstate == RW ->                /* the CPU store; KVM logs it */
			cache = v; setlast(v);
			if :: wp -> sdirty = 1; wp = 0 :: else -> skip fi }
		:: atomic { gstate != RW -> skip }; fault(v)
		fi;
		v++
	:: v == NSTORES + 1 ->
		if
		:: atomic { gstate != ABSENT -> assert(cache == last) }
		:: atomic { gstate == ABSENT -> skip }; fault(0)
		fi;
		break
	od;
	finished++
}

proctype Flusher() {
	bool hd, wasd, took;
	writeback();
	finished++
}

proctype Invalidator() {
	bool hd, wasd;
	wb_active++;
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
	wb_active--;
	finished++
}

proctype DMA() {
	byte pseen;
	bool wasd;
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
	atomic { pins++; pseen = punches };
	punlock();
#else
	punlock();
	atomic { pins++; pseen = punches };
#endif
	atomic {
		assert(punches == pseen);
		cache = 9; setlast_dma(9);
		if :: dw_hold -> dma_in_hold = 1 :: else -> skip fi
	};
	setdirty();                                  /* mark DIRTY before unpinning */
	pins--;
	finished++
}

proctype Breaker() {
	bool hd, wasd;
	breaking = 1;
	plock(); unmap(); punlock();
#ifndef BUG_NO_DRAIN
	(pins == 0);
#endif
	/* drop the dirt and punch: a wb_lock-shared section, so a direct read does not read the
	 * file between the two (BUG_BREAK_NO_WB: it would see the file's old value) */
#ifndef BUG_BREAK_NO_WB
	wb_active++;
#endif
	plock();
	dirty = 0; uptodate = 0; reserved = 0;
	atomic { file = 0; setlast(0); punches++ };
	punlock();
#ifndef BUG_BREAK_NO_WB
	wb_active--;
#endif
	breaking = 0;
	finished++
}

#if defined(DIRECT) || defined(FLUSHRACE)
/* pcache_direct_write of a whole page with the value 7 (blk OUT, or the control socket's
 * host-write). */
proctype DirectWriter() {
	bool hd, wasd;
	bool was_pinned;
	wb_active++;
	plock();
#ifndef BUG_DW_NO_UNMAP
	unmap();
#endif
	dw_hold = 1;
	if :: pins == 0 -> dirty = 0 :: else -> skip fi;          /* wholly overwritten */
	if :: dirty -> dirty = 0; file = cache :: else -> skip fi; /* launder (a pinned page) */
	/* The write's value is a legitimate outcome for a reader overlapping it from here on, also
	 * while a pinned page still shows its old data (the copy below makes it the page's). */
	atomic {
		file = 7;
		dw_wrote = 1;
		was_pinned = pins > 0;
		if :: !was_pinned -> setlast(7) :: else -> skip fi;
		if :: rd_active -> seen = seen | (1 << 7) :: else -> skip fi
	};
	if
#ifndef BUG_DW_DROP_PINNED
	:: pins > 0 ->
		atomic { cache = 7; setlast(7) }     /* the fallback: copy the written bytes in */
	:: else ->
#else
	:: true ->
#endif
		/* A DMA that unpinned meanwhile wrote "before" this write: its data is replaced. */
		atomic {
			assert(last == file || was_pinned || dma_in_hold);
			uptodate = 0; reserved = 0; dirty = 0; setlast(file)
		}
	fi;
	dw_hold = 0;
	dw_wrote = 0;
	punlock();
	wb_active--;
	finished++
}

/* pcache_direct_read: a value the page held during the read, never an older one. */
proctype DirectReader() {
	bool hd, wasd, took;
	byte got;
	atomic {
		rd_active = 1;
		seen = 1 << last;
		if :: pins > 0 -> seen = seen | (1 << base) :: else -> skip fi;
		if :: dw_wrote -> seen = seen | (1 << file) :: else -> skip fi
	};
#ifndef BUG_NO_WB_BEFORE_READ
	writeback();
#endif
	atomic { got = file; assert(seen & (1 << got)); rd_active = 0 };
	finished++
}
#endif

active proctype Monitor() {
end:	do
	:: atomic { gstate != ABSENT && !uptodate -> assert(false) }
	:: atomic { !uptodate && file != last && !locked -> assert(false) }
	:: atomic { dirty && !uptodate -> assert(false) }
	od
}

init {
	bool hd, wasd, took;
	atomic {
#if defined(DIRECT)
		run Guest(); run DirectWriter(); run DirectReader(); run DMA(); run Breaker()
#elif defined(FLUSHRACE)
		run Guest(); run Flusher(); run DirectReader(); run Invalidator(); run DMA()
#else
		run Guest(); run Flusher(); run Invalidator(); run DMA(); run Breaker()
#endif
	}
	(finished == 5);
	writeback();                                 /* the final FLUSH */
	assert(file == last)
}
