/* Taking pages away (truncate.c): invalidate (invalidate_inode_pages2_range: unmap, launder,
 * drop), the external change of a host tool, and the layout break before a punch, zero or
 * truncate (seed 001: BREAKING, unmap, drain the pins, then change the blocks). */
#include "mm/pcache_internal.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <unistd.h>

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Steps 1-3 of a break (seed 001, Williams: "drain all pinned / referenced pages ... before
 * attempting an operation that *might* lead to an extent unmap event"), break_lock held:
 * 1. BREAKING: from here new pins are refused and faults wait;
 * 2. unmap: a fault that checked BREAKING before step 1 holds its page locks; we wait for it
 *    here and then remove what it installed;
 * 3. drain the DMAs that started before the break, without holding page locks (a pin holder
 *    may need one, e.g. to finish a direct write it is part of). A pinner that meets
 *    BREAKING drops all its pins before waiting (pcache_pin_ranges), so this drain cannot
 *    wait on a pin whose holder waits on us; blk drops a request's pins before it DISCARDs.
 * Returns the unmap's result: nonzero = a granule may still be mapped (keep every page). The
 * caller ends with pcache_break_end either way. */
int pcache_break_begin(struct pcache *pc, uint64_t p0, uint64_t p1)
{
	for (uint64_t p = p0; p < p1; p++)
		pin_set_breaking(&pc->pins[p]);
	lock_pages(pc, p0, p1);
	int ru = pcache_unmap_pages_locked(pc, p0, p1);
	unlock_pages(pc, p0, p1);
	race_delay(pc);
	for (uint64_t p = p0; p < p1; p++)
		pin_wait_drained(&pc->pins[p]);
	return ru;
}

/* Clear BREAKING and wake the faults and pinners that wait on it. */
void pcache_break_end(struct pcache *pc, uint64_t p0, uint64_t p1)
{
	for (uint64_t p = p0; p < p1; p++)
		pin_clear_breaking(&pc->pins[p]);
}

/* Pages [p0, p1) locked, unmapped and drained (BREAKING: no pin can be taken): launder and
 * drop them. A page whose launder failed keeps its data (DIRTY) for a retry. */
static int drop_locked(struct pcache *pc, uint64_t p0, uint64_t p1)
{
	int ret = pcache_launder_locked(pc, p0, p1, false) ? -EIO : 0;
	for (uint64_t p = p0; p < p1; p++) {
		uint32_t *w = &pc->flags[p];
		if (pin_count(&pc->pins[p])) { /* cannot be: BREAKING refused it and drained */
			pcache_bug(pc, "no pin on a drained range", __FILE__, __LINE__);
			continue;
		}
		if (page_flags(w) & PG_DIRTY) /* launder failed: keep the data */
			continue;
		page_clear(w, PG_UPTODATE | PG_RESERVED);
	}
	return ret;
}

int pcache_invalidate_range(struct pcache *pc, uint64_t off, uint64_t len)
{
	uint64_t p0, p1 = clamp_pages(pc, off, len, &p0);
	if (p0 >= p1)
		return 0;
	STAT_ADD(pc, invalidations, 1);
	/* Seed 004: LockPage; gather_all_mmap_users (unmap = KVM zaps the translations, the
	 * shootdown; the unmap collects the pages the guest dirtied); write back; ClearPageUptodate;
	 * UnlockPage. A fault meanwhile waits and then reads the file afresh.
	 * Pinned pages: the range is broken first (BREAKING, unmap, drain the DMAs in flight, new
	 * pins wait), so every page can be dropped and the caller gets a definite answer. Before,
	 * a pinned page was skipped with EBUSY, and a guest keeping blk requests in flight on one
	 * window page could refuse every invalidate (issue 14 defect 5); refreshing such a page
	 * from the file instead could revert a DMA's bytes written before the refresh.
	 * wb_lock (shared, before the page locks): a FLUSH meanwhile waits for our launder. */
	pthread_mutex_lock(&pc->break_lock);
	int r = pcache_break_begin(pc, p0, p1) ? -EIO : 0;
	pthread_rwlock_rdlock(&pc->wb_lock);
	lock_pages(pc, p0, p1);
	if (r)
		/* A granule may still be mapped: dropping its pages would expose stale memory to
		 * the guest. Keep them; the caller gets the error (seed 000: never silent). */
		pcache_launder_locked(pc, p0, p1, false);
	else
		r = drop_locked(pc, p0, p1);
	unlock_pages(pc, p0, p1);
	pthread_rwlock_unlock(&pc->wb_lock);
	pcache_break_end(pc, p0, p1);
	pthread_mutex_unlock(&pc->break_lock);
	return r;
}

int pcache_external_change(struct pcache *pc, uint64_t off, uint64_t len)
{
	return pcache_invalidate_range(pc, off, len);
}

/* ---- break layouts + punch, truncate ----------------------------------------------------- */

enum break_op { BREAK_PUNCH, BREAK_ZERO, BREAK_TRUNCATE };

/* The file side of a break, inside it (page locks of the cached part held). */
static int break_file(struct pcache *pc, uint64_t off, uint64_t len, enum break_op op)
{
	if (pcache_is_cut(pc))
		return -EIO;
	if (op == BREAK_TRUNCATE) {
		int r = 0;
		pthread_mutex_lock(&pc->size_lock);
		while (ftruncate(pc->fd, (off_t)off) < 0)
			if (errno != EINTR) {
				r = -errno;
				break;
			}
		pthread_mutex_unlock(&pc->size_lock);
		if (!r) {
			__atomic_store_n(&pc->meta_dirty, 1, __ATOMIC_RELEASE);
			pcache_observe_truncate(pc, off);
		}
		return r;
	}
	int r = pcache_file_zero_range(pc, off, len, op == BREAK_ZERO);
	if (!r && len)
		pcache_observe_zero(pc, off, len, op == BREAK_PUNCH); /* the write log, in the break */
	return r;
}

/* Seed 001 (Williams: "drain all pinned / referenced pages ... before attempting an operation
 * that *might* lead to an extent unmap event"). Breaks are serialized by break_lock (they are
 * rare; overlapping BREAKING ranges would otherwise need a per-page owner). */
static int break_range(struct pcache *pc, uint64_t off, uint64_t len, enum break_op op)
{
	STAT_ADD(pc, breaks, 1);
	uint64_t p0, p1 = clamp_pages(pc, off, len, &p0);
	int r = 0;
	bool file_done = false;
	pthread_mutex_lock(&pc->break_lock);
	if (p0 < p1) {
		/* 1-3: BREAKING, unmap, drain (break_begin). */
		int ru = pcache_break_begin(pc, p0, p1);
		if (ru) {
			pcache_break_end(pc, p0, p1);
			pthread_mutex_unlock(&pc->break_lock);
			return -EIO;
		}
		/* 4. Drop dirty state, punch the file and the cache. A wb_lock-shared section like a
		 *    launder: a direct read's "and wait" barrier must not read the file between the
		 *    drop of a page's newer dirty data and the punch (it would return the file's old
		 *    bytes: neither the data nor zeros; found by the SPIN model -DDIRECT). */
		pthread_rwlock_rdlock(&pc->wb_lock);
		lock_pages(pc, p0, p1);
		uint64_t end = off + len;
		uint64_t full0 = UINT64_MAX, full1 = 0;
		for (uint64_t p = p0; p < p1; p++) {
			uint64_t ps = p * PAGE_SIZE, pe = ps + PAGE_SIZE;
			uint32_t *w = &pc->flags[p];
			if (ps >= off && pe <= end) {
				page_clear(w, PG_DIRTY | PG_UPTODATE | PG_RESERVED);
				/* the page reads as zeros now: defined again (pcache_poison) */
				if (page_poison_clear(pc, p))
					STAT_ADD(pc, poison_cleared, 1);
				if (full0 == UINT64_MAX)
					full0 = p;
				full1 = p + 1;
			} else {
				/* an edge page keeps its other bytes (and their dirt) */
				uint64_t from = ps > off ? ps : off, to = pe < end ? pe : end;
				if (page_flags(w) & PG_UPTODATE)
					memset(pc->mem + from, 0, to - from);
				page_clear(w, PG_RESERVED);
			}
		}
		uint64_t fend = end < pc->size ? end : pc->size;
		r = break_file(pc, off, (op == BREAK_TRUNCATE ? end : fend) - off, op);
		file_done = true;
		/* give the cache memory of fully punched pages back */
		if (full0 < full1)
			fallocate(pc->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				  (off_t)(full0 * PAGE_SIZE), (off_t)((full1 - full0) * PAGE_SIZE));
		unlock_pages(pc, p0, p1);
		pthread_rwlock_unlock(&pc->wb_lock);
		pcache_break_end(pc, p0, p1);
	}
	if (!r && op == BREAK_TRUNCATE && !file_done) {
		r = break_file(pc, off, 0, op);
	} else if (!r && op != BREAK_TRUNCATE && off + len > pc->size) {
		uint64_t from = off > pc->size ? off : pc->size;
		pthread_mutex_lock(&pc->rmw_lock);
		r = break_file(pc, from, off + len - from, op);
		pthread_mutex_unlock(&pc->rmw_lock);
	}
	pthread_mutex_unlock(&pc->break_lock);
	return r;
}

int pcache_break_punch(struct pcache *pc, uint64_t off, uint64_t len, bool zero)
{
	if (pc->readonly)
		return -EROFS;
	if (len == 0)
		return 0;
	if (off + len < off || off + len > (uint64_t)INT64_MAX)
		return -EINVAL;
	return break_range(pc, off, len, zero ? BREAK_ZERO : BREAK_PUNCH);
}

int pcache_truncate(struct pcache *pc, uint64_t size)
{
	if (pc->readonly)
		return -EROFS;
	if (size % PAGE_SIZE)
		return -EINVAL;
	if (size > (uint64_t)INT64_MAX)
		return -EFBIG;
	if (pcache_observer_refuses_truncate(pc))
		return -EOPNOTSUPP;
	STAT_ADD(pc, truncates, 1);
	/* off = the new end of file; the break covers the cached pages beyond it (len 0 if the
	 * cache ends before it: then only the ftruncate). */
	return break_range(pc, size, size < pc->size ? pc->size - size : 0, BREAK_TRUNCATE);
}
