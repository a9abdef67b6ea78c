/* Direct I/O through the cache (the O_DIRECT paths of filemap.c / iomap): a direct read writes
 * back the range first (seed 000); a direct write invalidates around the file write and falls
 * back to writing through a page it cannot drop (seed 004). */
#include "mm/pcache_internal.h"

#include <limits.h>
#include <sys/types.h>

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ssize_t pcache_direct_readv(struct pcache *pc, uint64_t off, const struct iovec *iov, unsigned n)
{
	uint64_t len = iov_total(iov, n);
	if (len == 0)
		return 0;
	if (len > SSIZE_MAX || off + len < off)
		return -EINVAL;
	STAT_ADD(pc, direct_reads, 1);
	/* A media error (pcache_poison) in the range: EIO, what reading bad sectors of a pmem
	 * namespace through its block device gives. Nothing is read. */
	uint64_t q0, q1 = clamp_pages(pc, off, len, &q0);
	if (q0 < q1 && any_poisoned(pc, q0, q1)) {
		STAT_ADD(pc, poison_eio, 1);
		return -EIO;
	}
	/* Seed 000 (Arcangeli): "msync all the mappings ... before the O_DIRECT read hits the
	 * disk": harvest the guest's logged stores over the range (write-protecting again) and
	 * write every DIRTY page, or the read returns what the file held before them. No shootdown
	 * is needed for a read, and no page lock is held while the data moves, so the destination
	 * may be pinned cache memory, even of this very range (d2, seed 003). */
	/* Fail (EIO) rather than read the file if any writeback failed meanwhile: one of another
	 * thread (a FLUSH) may have taken a page of this range and failed to write it, and our
	 * "and wait" then waited for that failure: the file holds stale bytes (the spin model's
	 * granule.pml BUG_READ_OWN_ONLY). The guest retries; the page stays DIRTY. */
	uint64_t since = pcache_errseq_sample(pc);
	int r = pcache_writeback_range(pc, off, len);
	if (!r && pcache_errseq_sample(pc) != since)
		r = -EIO;
	if (r)
		return r;
	race_delay(pc);
	r = pcache_file_readv_any(pc, off, iov, n, len);
	if (r)
		return r;
	STAT_ADD(pc, direct_read_bytes, len);
	return (ssize_t)len;
}

ssize_t pcache_direct_read(struct pcache *pc, uint64_t off, void *buf, size_t len)
{
	struct iovec v = { buf, len };
	return pcache_direct_readv(pc, off, &v, 1);
}

/* The write-through fallback for page p (locked) that stays cached across a direct write of
 * [off, off+len): replace the bytes of the page the write covered with what it put in the
 * file (read back, not copied from the source: the source may be this very cache memory, d1),
 * keep the others. 0 or -errno. */
static int refresh_written(struct pcache *pc, uint64_t p, uint64_t off, uint64_t len)
{
	uint64_t ps = p * PAGE_SIZE;
	uint64_t from = off > ps ? off : ps;
	uint64_t to = off + len < ps + PAGE_SIZE ? off + len : ps + PAGE_SIZE;
	if (from >= to)
		return 0;
	if (from == ps && to == ps + PAGE_SIZE)
		return pcache_file_read(pc, pc->mem + ps, PAGE_SIZE, ps);
	uint8_t *b;
	if (posix_memalign((void **)&b, PAGE_SIZE, PAGE_SIZE))
		return -ENOMEM;
	int r = pcache_file_read(pc, b, PAGE_SIZE, ps);
	if (!r)
		memcpy(pc->mem + from, b + (from - ps), to - from);
	free(b);
	return r;
}

/* Pages [p0, p1) locked: is one of them poisoned and only partly inside [off, off+len)? */
static bool poison_partly_covered(struct pcache *pc, uint64_t p0, uint64_t p1, uint64_t off,
				  uint64_t len)
{
	if (!any_poisoned(pc, p0, p1))
		return false;
	for (uint64_t p = p0; p < p1; p++) {
		uint64_t ps = p * PAGE_SIZE;
		if ((page_flags(&pc->flags[p]) & PG_POISON) &&
		    !(ps >= off && ps + PAGE_SIZE <= off + len))
			return true;
	}
	return false;
}

ssize_t pcache_direct_writev(struct pcache *pc, uint64_t off, const struct iovec *iov,
			     unsigned n)
{
	if (pc->readonly)
		return -EROFS;
	uint64_t len = iov_total(iov, n);
	if (len == 0)
		return 0;
	if (len > SSIZE_MAX || off + len < off || off + len > (uint64_t)INT64_MAX)
		return -EINVAL;
	STAT_ADD(pc, direct_writes, 1);
	uint64_t A = pc->dio_align > PAGE_SIZE ? pc->dio_align : PAGE_SIZE;
	uint64_t a0 = off & ~(A - 1), a1 = (off + len + A - 1) & ~(A - 1);
	uint64_t p0, p1 = clamp_pages(pc, a0, a1 - a0, &p0);
	int r;

	if (p0 >= p1) { /* wholly beyond the cached range: plain file I/O */
		pthread_mutex_lock(&pc->rmw_lock);
		r = pcache_file_writev_any(pc, off, iov, n, len);
		if (!r)
			pcache_observe_write(pc, off, iov, n, len); /* the write log, rmw_lock held */
		pthread_mutex_unlock(&pc->rmw_lock);
		goto out;
	}
	bool beyond = a1 > pc->size;
	if (beyond)
		pthread_mutex_lock(&pc->rmw_lock);

	/* LOCK ORDER (pcache.h; seed 003, the page lock vs mmap_sem deadlock): the caller took
	 * its pins (pcache_pin_ranges) before calling here; we take the page locks in ascending
	 * order, then slot locks inside pcache_unmap_pages_locked. Nothing from here to the unlock waits
	 * for a pin, for BREAKING or for a fault: the source is read through the VMM's own
	 * mapping of the cache memory, never through the guest's, so a source that is the window
	 * mapping of this very range (d1) cannot make us fault on a page we hold locked.
	 *
	 * 1. Invalidate (seed 004): lock, unmap (the shootdown; the unmap collects what the guest
	 *    stored), forget the dirt of pages the write covers wholly (their data is replaced),
	 *    launder the others: a partly covered page's other bytes must be in the file before
	 *    the edge's read-modify-write reads them back (a4). A pinned page is laundered whole:
	 *    it stays cached, so its data must be in the file under the new bytes.
	 *    wb_lock shared (before the page locks): a FLUSH waits for this launder. */
	pthread_rwlock_rdlock(&pc->wb_lock);
	lock_pages(pc, p0, p1);
	/* A granule that cannot be unmapped stays mapped: none of its pages may lose UPTODATE or
	 * RESERVED (the guest goes on using them), so nothing below runs and the request fails
	 * (issue 12 finding 4; pcache_invalidate_range keeps them the same way). */
	/* A media error (pcache_poison) on a page the write covers only partly: its other bytes
	 * would be neither written nor readable: -EIO before anything is written. A page it
	 * covers wholly is repaired by the write (below). */
	bool unmapped = false;
	r = poison_partly_covered(pc, p0, p1, off, len) ? -EIO : 0;
	if (r)
		STAT_ADD(pc, poison_eio, 1);
	else
		unmapped = pcache_unmap_pages_locked(pc, p0, p1) == 0;
	if (!r && !unmapped)
		r = -EIO;
	if (!r) {
		for (uint64_t p = p0; p < p1; p++) {
			uint64_t ps = p * PAGE_SIZE;
			if (ps >= off && ps + PAGE_SIZE <= off + len && !pin_count(&pc->pins[p]))
				page_clear(&pc->flags[p], PG_DIRTY);
		}
		r = pcache_launder_locked(pc, p0, p1, false);
	}
	/* 2. The file write, page locks held: no fault can read the range half-written, so the
	 *    kernel's second invalidation (for pages faulted in during the I/O) has nothing to
	 *    do here. */
	int wrote = 0; /* 1: the file write ran, 2: and succeeded */
	if (!r) {
		race_delay(pc);
		r = pcache_file_writev_any(pc, off, iov, n, len);
		wrote = r == 0 ? 2 : 1;
		if (!r)
			pcache_observe_write(pc, off, iov, n, len); /* the write log, locks held */
	}
	/* 3. Drop the pages, or keep the ones that cannot go. All legitimate dirt was laundered
	 *    in step 1 and the granules are unmapped, so a page DIRTY now was dirtied by a DMA
	 *    that unpinned during the write. A page the write covers wholly is dropped (the write
	 *    ran after that DMA: its data wins). A page still pinned (its DMA holds a pointer into
	 *    it), or DIRTY and only partly covered (the DMA's bytes beside ours are newer than the
	 *    file), stays cached and takes the write-through fallback: the bytes the write
	 *    covered are refreshed from the file, its other bytes are kept (seed 004: the
	 *    kernel's buffered fallback copies only what it writes into the page; re-reading the
	 *    whole page reverted a DMA that had completed OK, issue 12 finding 2). If the write
	 *    did not happen (launder failed) pages keep their data and a DIRTY page stays. */
	for (uint64_t p = p0; unmapped && p < p1; p++) {
		uint32_t *w = &pc->flags[p];
		uint64_t ps = p * PAGE_SIZE;
		bool whole = ps >= off && ps + PAGE_SIZE <= off + len;
		bool pinned = pin_count(&pc->pins[p]) != 0;
		if (!wrote) {
			if (!pinned && !(page_flags(w) & PG_DIRTY))
				page_clear(w, PG_UPTODATE | PG_RESERVED);
			continue;
		}
		if (pinned || (!whole && (page_flags(w) & PG_DIRTY))) {
			if (!(page_flags(w) & PG_UPTODATE))
				continue;
			int rr = refresh_written(pc, p, off, len);
			STAT_ADD(pc, direct_write_fallback, 1);
			if (rr) {
				/* short of a media error right after the write, cannot happen: the
				 * page may now disagree with the file; say so at FLUSH */
				pcache_set_error(pc, -rr);
				STAT_ADD(pc, read_errors, 1);
				if (!r)
					r = rr;
			}
			/* DIRTY is left as it is: a DMA into the page may unpin (mark_dirty)
			 * between the refresh and a clear, and its bytes would then never reach
			 * the file (granule.pml found it). At worst one redundant writeback. */
			continue;
		}
		page_clear(w, PG_UPTODATE | PG_RESERVED | PG_DIRTY);
		/* written wholly: a poisoned page is repaired (pmem_clear_poison on a write) */
		if (whole && wrote == 2 && page_poison_clear(pc, p))
			STAT_ADD(pc, poison_cleared, 1);
	}
	unlock_pages(pc, p0, p1);
	pthread_rwlock_unlock(&pc->wb_lock);
	if (beyond)
		pthread_mutex_unlock(&pc->rmw_lock);
out:
	if (r)
		return r;
	STAT_ADD(pc, direct_write_bytes, len);
	return (ssize_t)len;
}

ssize_t pcache_direct_write(struct pcache *pc, uint64_t off, const void *buf, size_t len)
{
	struct iovec v = { (void *)buf, len };
	return pcache_direct_writev(pc, off, &v, 1);
}
