/* A model of the page-cache protocol (mm/pcache.c) over ONE GRANULE OF TWO PAGES, each page
 * made of TWO HALVES (so a page can hold bytes from two sources), checked with SPIN
 * (tests/model/run.sh). pcache.pml models one page with whole-page writes and a harvest that
 * always holds the slot lock; this model adds what issue 12's findings 1-4 need:
 *   - the harvest reads the granule's writable bit (m->gwritable) WITHOUT the slot lock, as
 *     harvest_map does, and unmap_granule_locked's steps (shadow unmap collecting the KVM log,
 *     gstate = ABSENT, clear the writable bit, apply_dirty_bits) are separate steps;
 *   - partial-page direct writes (half 0 of page 0) next to a DMA with write intent into the
 *     other half of the same page (pcache_pin_ranges / prepare_pin_page, DIRTY at unpin);
 *   - two FLUSHes at once on one device (blk runs requests on workers), a write error injected
 *     into writeback (write_run: the page is re-marked DIRTY, record_error bumps err_seq), and
 *     errseq cursors per device;
 *   - a failing shadow unmap (finding 4), and writeback runs over both pages (wb_word).
 *
 * Halves: page p has halves 2p and 2p+1. Values per half grow (0 = the file's initial data,
 * then 1, 2, ... per writer; every half has exactly one writer in each configuration), so
 * "the file holds write w or a later one" is file[h] >= w.
 *
 * Ghosts: last[h] is the value half h must hold (updated in the same atomic step as every write
 * of the data: a guest store, the DMA's write into the cache page, a direct write's file
 * write); done[h] is the latest COMPLETED write of h: a guest store through the mapping
 * completes when it executes, one through the fault path when the fault returns, a DMA when
 * its request completes (after unpin), a direct write when it returns.
 *
 * CHECKED (assertions; each names the seed thread in ../../../shared/seeds/ it comes from):
 *   A1 (FLUSH ack; seed 000 Arcangeli: before, "the dirty bit in the pte would be simply
 *      ignored by O_DIRECT"; seed 004 Torvalds: gather_all_mmap_users, "make sure those are
 *      synchronized"; with a write error, seed 002 Chinner: no "silent data loss", and seed 000:
 *      "propagate the ... failure back to the ... caller", -EFOO): a FLUSH that returns OK has
 *      every write completed before it started in the file: file[h] >= done[h] as sampled at
 *      its start.
 *   A2 (blk read; seed 000 Arcangeli: "msync all the mappings ... before the O_DIRECT read"):
 *      a direct read that returns OK returns, for each half, the last write completed before
 *      it started or a later one.
 *   A3 (DMA ack; seed 000 Arcangeli: once "somebody orders the writes, then it should work"):
 *      after a DMA completed OK and a later FLUSH returned OK, its bytes are in the file unless
 *      a later write covered them; checked by the final FLUSH (file == last for every half
 *      once everything is done) and, before that, by M3 and M4.
 *   M1 (monitor; DESIGN.md "WRITABLE => every page UPTODATE", seed 003 Morton: a non-uptodate
 *      page in pagetables "is a bit nasty"): a page whose granule is mapped in KVM is
 *      UPTODATE (the guest never sees memory that is not the file's data);
 *   M2 (monitor; mark_dirty's assert): DIRTY => UPTODATE;
 *   M3 (monitor; seed 004 Torvalds: "just try to drop the page from the cache - that really
 *      only works if we're the only user of that page"): a page that is not UPTODATE and not
 *      locked has its data in the file (file == last): dropping never loses data;
 *   M4 (monitor; seed 004 Torvalds: "a simple CPU cache invalidate ... only guarantees data
 *      corruption due to missed writes"): an UPTODATE page that is not locked shows last
 *      (cache == last): refreshing a page never discards bytes written into it.
 *
 * CONFIGURATIONS (one of them must be defined):
 *   -DHARVEST  finding 1. Guest (stores to page 1 through the mapping, logged by KVM, or
 *              through the fault path; one store to half 1 of page 0), Invalidator of page 0
 *              (pcache_invalidate_range: the unmap step is the same unmap_granule_locked as
 *              blk OUT, DISCARD, host-write, truncate), Flusher (pcache_flush), DirectReader
 *              of page 1 (pcache_direct_readv). Granule WRITABLE at the start (populated).
 *   -DPARTIAL  finding 2. Guest (stores to page 1), DMA (blk IN into window half 1 of page 0:
 *              pin with write intent, the device writes the half, DIRTY at unpin),
 *              DirectWriter (blk OUT or host-write of half 0 of page 0), Flusher. Granule
 *              ABSENT at the start, nothing cached.
 *   -DFLUSH2   finding 3. Guest (one store, to page 0), two FLUSHes on device 0 (the blk
 *              disk: one errseq cursor), one FLUSH on device 1 (the pmem window: its own
 *              cursor); one writeback write may fail. Granule WRITABLE at the start.
 *   Options: -DWITH_READER (with FLUSH2: the pmem FLUSH is replaced by a blk read of page 0);
 *   -DREADER_ONLY (with HARVEST: no Flusher, so that the blk-read half of finding 1 is caught
 *   by A2 alone); -DUNMAPPER_DW (with HARVEST: the unmapper is the DirectWriter of half 0 of
 *   page 0, a blk OUT, instead of the Invalidator); -DUNMAP_FAIL (with PARTIAL: one shadow
 *   unmap may fail, finding 4); -DFIX1_LOCKED_READ (the other fix of finding 1, below);
 *   -DNSTORES=n (guest stores to page 1, default 2).
 *   Not vacuous: with temporary assert(false)s spin reaches, in the fixed configurations, a
 *   harvest that reads the bit clear while an unmapper holds the slot lock, a harvest that
 *   sees the bit and then finds the granule ABSENT with the dirt applied, a pinned page's
 *   copy after the DMA wrote its half, a partly covered page DIRTY at step 3, a FLUSH that
 *   fails for another FLUSH's write error, and a FLUSH returning OK after a logged store.
 *
 * BROKEN VARIANTS (today's code at ba0fd08, each must be caught):
 *   BUG_UNMAP_APPLY_LATE  finding 1: unmap_granule_locked sets gstate ABSENT and clears the
 *        writable bit BEFORE apply_dirty_bits; harvest_map reads the bit without the slot lock
 *        and skips the granule: a FLUSH (A1) or a blk read (A2) misses a completed store.
 *   BUG_DW_FALLBACK       finding 2: pcache_direct_writev step 3 as today: a pinned page is
 *        re-read whole from the file (the DMA's half reverts: M4 / A3), an unpinned one is
 *        dropped even when the write covered only part of it and a DMA dirtied the rest during
 *        the write (M3 / A3). The two halves alone: BUG_DW_REREAD, BUG_DW_DROP_PARTIAL.
 *   BUG_FLUSH_CURSOR_ONLY finding 3: pcache_flush ignores its own writeback's result and
 *        reports only via the device's cursor, which the other FLUSH advanced first (A1).
 *   BUG_DW_UNMAP_FAIL     finding 4 (with -DUNMAP_FAIL): when the unmap fails,
 *        pcache_direct_writev skips the launder and the write but still runs step 3, which
 *        drops the unpinned clean page of a granule that stays mapped (M1; in cvmm the next
 *        harvest then hits mark_dirty's assert(PG_UPTODATE)).
 *   BUG_READ_OWN_ONLY     (with FLUSH2 -DWITH_READER; not in the issue, found by this model)
 *        pcache_direct_readv as today: it fails only if its OWN writeback failed. The page
 *        it needs may have been taken by a FLUSH whose write fails: the read's barrier waits
 *        for that write, then reads the file, which lacks the completed store, and returns OK
 *        with stale bytes (A2). The same cause as finding 3, on the read side.
 *   BUG_FLUSH_OWN_ONLY    the fix the issue first suggests, alone: a FLUSH also fails if ITS
 *        OWN writeback failed. Not enough: the failing write may be the other FLUSH's (it took
 *        the page's hint and DIRTY; this FLUSH's barrier waited for it), which then advances
 *        the shared cursor first (A1). Kept as a variant that must be caught.
 *
 * THE FIXED PROTOCOL (what the default build models; the C change each corresponds to):
 *   FIX 1 (unmap_granule_locked): apply_dirty_bits(m, g, bits) BEFORE
 *        __atomic_store_n(&m->gstate[g], GS_ABSENT) and set_bit64(m->gwritable, g, false):
 *        the logged stores are DIRTY with their hints set before the bit a lockless harvest
 *        reads goes down. harvest_map may keep reading gwritable without the slot lock: if it
 *        sees the bit it takes the slot lock, which waits for the unmapper (who applied
 *        already); if it does not, the dirt was applied before, and its hints_take, which runs
 *        after, finds it. (Alternative, also verified here with -DFIX1_LOCKED_READ and
 *        today's unmap order: harvest_map reads gwritable under the slot lock; the lock makes
 *        clear+apply one step for it. Costs the slot lock around the scan.)
 *   FIX 2 (pcache_direct_writev step 3): a page the write covers wholly and that is not
 *        pinned is dropped (the write wins, as today). Every other UPTODATE page of the range
 *        (pinned, or covered only in part) is KEPT: the written bytes are copied from the
 *        source into the cache page at their offsets (the kernel's buffered fallback copies
 *        exactly the written bytes), its other bytes are left alone, and so is its DIRTY bit:
 *        step 3 never clears DIRTY of a page it keeps (a DMA still pinned may mark the page
 *        DIRTY between a copy and a clear; today's re-read-then-clear loses a DMA's bytes that
 *        way, which is the first trace spin finds for BUG_DW_REREAD; a DIRTY bit left set
 *        costs at most a redundant writeback of bytes equal to the file's). Never re-read the
 *        page from the file, never drop a page the write covered only in part. A page that is
 *        not UPTODATE stays so. The source is the iovec: copy from it (iov_copy), not from
 *        the file. (An unpinned, partly covered page that is clean under its lock could be
 *        dropped instead: nothing can dirty it meanwhile; the model keeps it.)
 *   FIX 3 (pcache_flush): sample the device's cursor when the FLUSH STARTS
 *        (since = *cursor, under err_lock, before the writeback); at the end report an error
 *        if err_seq != since (any error recorded since this device's last FLUSH before this
 *        one started, including one recorded by another FLUSH's or a launder's write during
 *        this one), then *cursor = err_seq. Two concurrent FLUSHes that overlap a failure both
 *        fail; a FLUSH that starts after they returned sees since == err_seq and succeeds.
 *        This also covers "a FLUSH whose own writeback failed fails" (its own write_run
 *        records the error after `since` was sampled); returning the own error alone is not
 *        enough (BUG_FLUSH_OWN_ONLY). The fdatasync error path needs nothing more: it is
 *        recorded with record_error after `since` was sampled (not modelled: no durability).
 *   FIX 3R (pcache_direct_readv): sample err_seq (pcache_errseq_sample) before its
 *        pcache_writeback_range; after it, if the writeback failed OR err_seq changed, return
 *        -EIO without reading (a write of the range may have failed in another thread's
 *        writeback; its page is DIRTY again but not in the file). Over-reports an unrelated
 *        error during the read as a failed read; a finer variant retries the writeback once
 *        when err_seq moved and fails only if that pass's own writes fail (not modelled).
 *   FIX 4 (pcache_direct_writev, unmap failed): as pcache_invalidate_range does: keep every
 *        page (no step 3), unlock, return -EIO; nothing was written.
 *
 * NOT MODELLED here (pcache.pml and pins.pml cover them): BREAKING and the breaker, RESERVED /
 * mkwrite, READONLY granules, loads, the dirty ring, the parking GPA (finding 5).
 */

#define ABSENT 0
#define RW     2

#ifndef NSTORES
#define NSTORES 2        /* guest stores to page 1 */
#endif

byte file[4];            /* backing file, per half */
byte cache[4];           /* cache pages, per half */
byte last[4];            /* ghost: the value the half must hold */
byte done[4];            /* ghost: the latest completed write of the half */
bool uptodate[2];
bool dirty[2];
bool hint[2];            /* dirty hints (dh1 bits; one word: taken in one step) */
bool locked[2];          /* page locks */
byte pins[2];
byte gstate = ABSENT;    /* m->gstate[g]: the VMM's record, changed under the slot lock */
bool gw = 0;             /* m->gwritable bit of the granule: read by harvest_map without lock */
byte kslot = ABSENT;     /* KVM's memslot for the granule: what the guest's accesses see */
bool sdirty[2];          /* KVM's dirty log (bitmap) per page */
bool wp[2];              /* KVM: the page is write-protected, its next store is logged */
bool slot_lock = 0;
byte wb_active = 0;      /* wb_lock shared holders */
byte errseq = 0;         /* pc->err_seq */
byte cursor[2];          /* per-device errseq cursors (0: blk, 1: pmem) */
byte fails = 0;          /* writeback writes the environment may still make fail */
byte ufails = 0;         /* shadow unmaps the environment may still make fail (-DUNMAP_FAIL) */
byte finished = 0;

inline plock(p)   { atomic { !locked[p] -> locked[p] = 1 } }
inline punlock(p) { locked[p] = 0 }
inline slock()    { atomic { !slot_lock -> slot_lock = 1 } }
inline sunlock()  { slot_lock = 0 }

/* mark_dirty: DIRTY (asserting UPTODATE), then the hint, two steps as in pcache.c. */
inline setdirty(p) {
	atomic { assert(uptodate[p]); dirty[p] = 1 };
	hint[p] = 1
}

inline apply(x0, x1) {
	if :: x0 -> setdirty(0) :: else -> skip fi;
	if :: x1 -> setdirty(1) :: else -> skip fi
}

/* write_run of page p (locked by the caller, DIRTY cleared by it): the O_DIRECT write, or an
 * injected failure: mark DIRTY again, record_error. wrerr: the caller's own result. */
inline write_page(p) {
	if
	:: atomic { fails > 0 -> fails-- };
	   setdirty(p);
	   errseq++;
	   wrerr = 1
	:: atomic { file[2*p] = cache[2*p]; file[2*p+1] = cache[2*p+1] }
	fi
}

/* unmap_granule_locked (slot lock held): shadow_ops.unmap (MOVE + final GET_DIRTY_LOG +
 * delete: KVM's slot is gone and its log collected into a local array in one step), then the
 * VMM's bookkeeping. */
inline unmap_granule() {
	cur = gstate;
	ufail = 0;
	if
	:: cur == ABSENT -> skip
#ifdef UNMAP_FAIL
	:: atomic { cur != ABSENT && ufails > 0 -> ufails--; ufail = 1 }   /* ioctl fails: */
		/* nothing changed, the slot is still mapped and its log intact */
#endif
	:: cur != ABSENT ->
		atomic { kslot = ABSENT; b0 = sdirty[0]; b1 = sdirty[1]; sdirty[0] = 0; sdirty[1] = 0 };
#ifdef BUG_UNMAP_APPLY_LATE
		gstate = ABSENT;             /* today: the bit goes down ... */
		gw = 0;
		apply(b0, b1)                /* ... before the logged stores are DIRTY */
#else
		apply(b0, b1);               /* FIX 1: DIRTY (and hints) first ... */
		gstate = ABSENT;
		gw = 0                       /* ... then the bit a lockless harvest reads */
#endif
	fi
}

/* harvest_map for the granule: GET + CLEAR (re-protect what was logged) under the slot lock,
 * applied before the lock is dropped. The writable bit is read without the slot lock (as
 * harvest_map does), or under it with -DFIX1_LOCKED_READ. */
inline harvest() {
#ifdef FIX1_LOCKED_READ
	slock();
	seen = gw;
#else
	seen = gw;
	if :: seen -> slock() :: else -> skip fi;
#endif
	if
	:: seen && gstate == RW ->
		atomic {
			b0 = sdirty[0]; b1 = sdirty[1]; sdirty[0] = 0; sdirty[1] = 0;
			if :: b0 -> wp[0] = 1 :: else -> skip fi;
			if :: b1 -> wp[1] = 1 :: else -> skip fi
		};
		apply(b0, b1)
	:: else -> skip
	fi;
#ifdef FIX1_LOCKED_READ
	sunlock()
#else
	if :: seen -> sunlock() :: else -> skip fi
#endif
}

/* wb_word for one hinted page: if DIRTY, lock, test-and-clear DIRTY, write, unlock. */
inline wb_page(p, took) {
	if
	:: took && dirty[p] ->
		plock(p);
		if :: dirty[p] -> dirty[p] = 0; write_page(p) :: else -> skip fi;
		punlock(p)
	:: else -> skip
	fi
}

/* wb_word's run from page 0: page 1 joins the run if it is DIRTY, within the range and can be
 * trylocked, whether or not its hint was taken (its hint then stays set and finds it clean
 * later); the run is written in one write_run, which on failure re-marks both. */
inline wb_run0(took0, took1, hi) {
	if
	:: took0 && dirty[0] ->
		plock(0);
		if
		:: dirty[0] ->
			dirty[0] = 0;
			if
			:: atomic { hi == 1 && dirty[1] && !locked[1] -> locked[1] = 1 };
			   if
			   :: dirty[1] ->
				dirty[1] = 0;
				if
				:: atomic { fails > 0 -> fails-- };
				   setdirty(0); setdirty(1);
				   errseq++;
				   wrerr = 1
				:: atomic { file[0] = cache[0]; file[1] = cache[1];
					    file[2] = cache[2]; file[3] = cache[3] }
				fi;
				took1 = 0                /* this word's bit of page 1: done */
			   :: else -> write_page(0)
			   fi;
			   punlock(1)
			:: else -> write_page(0)
			fi
		:: else -> skip
		fi;
		punlock(0)
	:: else -> skip
	fi
}

/* pcache_writeback_range over pages [lo, hi] of the granule: wb_lock shared; harvest; take
 * the hints of the range (one dh1 word: one step); write the DIRTY ones; unlock; then the
 * "and wait" barrier (wb_lock exclusive: wait until no writeback or launder is running). */
inline writeback(lo, hi) {
	wb_active++;
	harvest();
	atomic {
		t0 = hint[0] && lo == 0; t1 = hint[1] && hi == 1;
		if :: t0 -> hint[0] = 0 :: else -> skip fi;
		if :: t1 -> hint[1] = 0 :: else -> skip fi
	};
	wb_run0(t0, t1, hi);
	wb_page(1, t1);
	wb_active--;
	(wb_active == 0)
}

/* read_missing for page p (locked): read the file into the cache page. */
inline read_missing(p) {
	if
	:: !uptodate[p] ->
		atomic { cache[2*p] = file[2*p]; cache[2*p+1] = file[2*p+1]; uptodate[p] = 1 }
	:: else -> skip
	fi
}

/* fault_one for a store of v into half h of page p: lock the granule's pages ascending, read
 * what is missing, complete the store on the cache page and mark DIRTY (KVM will not log it),
 * install the granule WRITABLE (the bit goes up before the slot exists; a new slot has a clean
 * log, every page write-protected), unlock. */
inline fault_store(p, h, v) {
	plock(0); plock(1);
	read_missing(0); read_missing(1);
	atomic { cache[h] = v; last[h] = v };
	setdirty(p);
	slock();
	if
	:: gstate != RW ->
		gw = 1;
		atomic { kslot = RW; sdirty[0] = 0; sdirty[1] = 0; wp[0] = 1; wp[1] = 1 };
		gstate = RW
	:: else -> skip
	fi;
	sunlock();
	punlock(1); punlock(0)
}

/* A guest store of v into half h of page p: through KVM's slot (KVM logs the first store to a
 * write-protected page), or an exit to the fault path. */
inline gstore(p, h, v) {
	if
	:: atomic { kslot == RW ->
		cache[h] = v; last[h] = v; done[h] = v;
		if :: wp[p] -> sdirty[p] = 1; wp[p] = 0 :: else -> skip fi }
	:: atomic { kslot != RW -> skip };
	   fault_store(p, h, v);
	   done[h] = v
	fi
}

proctype Guest() {
	bool b0, b1, seen;
	byte cur;
	byte v = 1;
#ifdef FLUSH2
	gstore(0, 0, 1);                 /* one store: a second one (to page 1) multiplies the
					  * states by ~10 and adds no step the fix depends on */
#else
	do
	:: v <= NSTORES -> gstore(1, 2, v); v++
	:: else -> break
	od;
#ifdef HARVEST
	gstore(0, 1, 1);                 /* the half of page 0 a direct writer does not write */
#endif
#endif
	finished++
}

/* pcache_flush on device dev: writeback of everything, (fdatasync), errseq report. Checks A1. */
proctype Flusher(byte dev) {
	bool b0, b1, seen, t0, t1, wrerr, err;
	byte cur;
	byte snap[4];
	byte since;
	atomic {
		snap[0] = done[0]; snap[1] = done[1]; snap[2] = done[2]; snap[3] = done[3];
		since = cursor[dev]                     /* FIX 3: the cursor at the FLUSH's start */
	};
	writeback(0, 1);
	atomic {
#if defined(BUG_FLUSH_CURSOR_ONLY)
		/* today: only the device's cursor, which another FLUSH may have advanced */
		if :: errseq != cursor[dev] -> cursor[dev] = errseq; err = 1 :: else -> err = 0 fi
#elif defined(BUG_FLUSH_OWN_ONLY)
		/* today's cursor check, plus this FLUSH's own writeback result */
		if :: errseq != cursor[dev] -> cursor[dev] = errseq; err = 1 :: else -> err = wrerr fi
#else
		/* FIX 3: any error recorded since the cursor this FLUSH started with */
		err = (errseq != since);
		cursor[dev] = errseq
#endif
	};
	if
	:: !err ->
		assert(file[0] >= snap[0] && file[1] >= snap[1] && file[2] >= snap[2] &&
		       file[3] >= snap[3])                                         /* A1 */
	:: else -> skip
	fi;
	finished++
}

/* pcache_direct_readv of page p (blk IN): writeback of the range and wait, then the file
 * read. Checks A2 when it returns OK. A write error: today the read fails only if its OWN
 * writeback failed (pcache_writeback_range's result); with FIX 3R it also fails if any error
 * was recorded since it started (err_seq sampled at its start), as a FLUSH does. */
proctype DirectReader(byte p) {
	bool b0, b1, seen, t0, t1, wrerr, err;
	byte cur;
	byte s0, s1, since;
	atomic { s0 = done[2*p]; s1 = done[2*p+1]; since = errseq };
	writeback(p, p);
	atomic {
#ifdef BUG_READ_OWN_ONLY
		err = wrerr;
#else
		err = wrerr || errseq != since;
#endif
		if :: !err -> assert(file[2*p] >= s0 && file[2*p+1] >= s1) :: else -> skip fi  /* A2 */
	};
	finished++
}

/* pcache_invalidate_range of page 0 (the external-change protocol, seed 004): wb_lock shared;
 * lock; unmap (unmap_pages_locked: slot lock around unmap_granule_locked); drop_locked:
 * launder unless pinned, drop unless pinned or still DIRTY; unlock. */
proctype Invalidator() {
	bool b0, b1, wrerr, ufail;
	byte cur;
	wb_active++;
	plock(0);
	slock(); unmap_granule(); sunlock();
	if
	:: ufail ->                      /* still mapped: launder, keep the pages, -EIO */
		if :: atomic { dirty[0] -> dirty[0] = 0 }; write_page(0) :: else -> skip fi
	:: else ->
		if
		:: atomic { pins[0] == 0 && dirty[0] -> dirty[0] = 0 }; write_page(0)
		:: else -> skip
		fi;
		if :: pins[0] == 0 && !dirty[0] -> uptodate[0] = 0 :: else -> skip fi
	fi;
	punlock(0);
	wb_active--;
	finished++
}

/* A blk IN whose buffer is window half 1 of page 0: pcache_pin_ranges with write intent
 * (prepare_pin_page: lock, read_missing, mkwrite, pin, unlock), the device's preadv into the
 * cache page, then pcache_unpin_ranges(dirtied): mark DIRTY, unpin; the request completes. */
proctype DMA() {
	plock(0);
	read_missing(0);
	pins[0]++;
	punlock(0);
	atomic { cache[1] = 1; last[1] = 1 };
	setdirty(0);
	atomic { pins[0]--; done[1] = 1 };
	finished++
}

/* pcache_direct_writev of half 0 of page 0 (value 1; a blk OUT of [P, P+2048), or a control
 * socket host-write): wb_lock shared; lock the page; unmap; launder (nothing is forgotten: the
 * page is covered only in part); the O_DIRECT write; step 3; unlock. */
proctype DirectWriter() {
	bool b0, b1, wrerr, ufail;
	byte cur;
	wb_active++;
	plock(0);
	slock(); unmap_granule(); sunlock();
	if
	:: ufail ->
		/* the unmap failed: no launder, no write (r = -EIO); today step 3 still runs and
		 * drops the unpinned clean page of a granule that stays mapped (finding 4) */
#ifdef BUG_DW_UNMAP_FAIL
		if :: pins[0] == 0 && !dirty[0] -> uptodate[0] = 0 :: else -> skip fi;
#endif
		goto out                         /* FIX 4: keep every page, return -EIO */
	:: else -> skip
	fi;
	if
	:: atomic { dirty[0] -> dirty[0] = 0 }; write_page(0)    /* launder_locked(.., false) */
	:: else -> skip
	fi;
	atomic { file[0] = 1; last[0] = 1 };                      /* the write */
	/* step 3 for page 0, which the write covers only in part */
#if defined(BUG_DW_FALLBACK) || defined(BUG_DW_REREAD)
	if
	:: pins[0] > 0 ->
		if
		:: uptodate[0] ->                /* today: refresh the pinned page from the file */
			atomic { cache[0] = file[0]; cache[1] = file[1] };
			dirty[0] = 0
		:: else -> skip
		fi
	:: else ->
#else
	if
	:: pins[0] > 0 ->
		if :: uptodate[0] -> cache[0] = 1 :: else -> skip fi     /* FIX 2: copy the bytes */
	:: else ->
#endif
#if defined(BUG_DW_FALLBACK) || defined(BUG_DW_DROP_PARTIAL)
		uptodate[0] = 0; dirty[0] = 0    /* today: drop it, "the write wins" */
#else
		if :: uptodate[0] -> cache[0] = 1 :: else -> skip fi     /* FIX 2: partial: keep */
#endif
	fi;
	punlock(0);
	wb_active--;
	done[0] = 1;                     /* returned OK */
	finished++;
	goto fin;
out:
	punlock(0);
	wb_active--;
	finished++;
fin:	skip
}

/* The monitor's invariants (see M1-M4 above), per page. */
#define M1      (kslot == ABSENT || (uptodate[0] && uptodate[1]))
#define M2(p)   (!dirty[p] || uptodate[p])
#define M3(p)   (uptodate[p] || locked[p] || (file[2*p] == last[2*p] && file[2*p+1] == last[2*p+1]))
#define M4(p)   (!uptodate[p] || locked[p] || (cache[2*p] == last[2*p] && cache[2*p+1] == last[2*p+1]))

active proctype Monitor() {
end:	do
	:: atomic { !M1 -> assert(M1) }
	:: atomic { !M2(0) -> assert(M2(0)) }
	:: atomic { !M2(1) -> assert(M2(1)) }
	:: atomic { !M3(0) -> assert(M3(0)) }
	:: atomic { !M3(1) -> assert(M3(1)) }
	:: atomic { !M4(0) -> assert(M4(0)) }
	:: atomic { !M4(1) -> assert(M4(1)) }
	od
}

init {
	bool b0, b1, seen, t0, t1, wrerr;
	byte cur;
	byte nproc;
	atomic {
#if defined(HARVEST) || defined(FLUSH2)
		/* populated: granule WRITABLE, both pages cached and clean */
		uptodate[0] = 1; uptodate[1] = 1;
		gstate = RW; gw = 1; kslot = RW; wp[0] = 1; wp[1] = 1;
#endif
#if defined(HARVEST)
#if defined(UNMAPPER_DW)
		run Guest(); run DirectWriter(); run Flusher(0); run DirectReader(1);
		nproc = 4
#elif defined(READER_ONLY)
		run Guest(); run Invalidator(); run DirectReader(1);
		nproc = 3
#else
		run Guest(); run Invalidator(); run Flusher(0); run DirectReader(1);
		nproc = 4
#endif
#elif defined(PARTIAL)
#ifdef UNMAP_FAIL
		ufails = 1;
#endif
		run Guest(); run DMA(); run DirectWriter(); run Flusher(0);
		nproc = 4
#elif defined(FLUSH2)
		fails = 1;
#ifdef WITH_READER
		run Guest(); run Flusher(0); run Flusher(0); run DirectReader(0);
#else
		run Guest(); run Flusher(0); run Flusher(0); run Flusher(1);
#endif
		nproc = 4
#else
		assert(false)   /* define HARVEST, PARTIAL or FLUSH2 */
#endif
	};
	(finished == nproc);
	fails = 0;
	writeback(0, 1);                                 /* the final FLUSH: A3 */
	assert(file[0] == last[0] && file[1] == last[1] && file[2] == last[2] &&
	       file[3] == last[3])
}
