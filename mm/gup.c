/* Pins for device DMA into the window (gup.c: pin_user_pages / unpin_user_pages_dirty_lock):
 * fault the pages in (with mkwrite for write intent), take the pin with a CAS that refuses
 * while BREAKING (seed 001), all or nothing over several ranges; DIRTY before unpin. */
#include "mm/pcache_internal.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Host-side fault of one page for a DMA, and the pin: make it UPTODATE (and RESERVED for write
 * intent) and take the pin, all under the page lock. The pin CAS never blocks (BREAKING makes it
 * fail: we unlock and wait), so this does not wait for anything while holding a page lock. Taking
 * pins only under the page lock means a thread holding the lock sees a pin count that can only
 * fall: invalidation and direct writes can test it and then drop the page without a pinner
 * slipping in between (the race Kara's PageTruncateInProgress recheck closes in seed 001).
 * Returns 0 (pinned), 1 (BREAKING: wait and retry) or -errno. */
static int prepare_pin_page(struct pcache *pc, uint64_t p, bool write)
{
	page_lock(&pc->flags[p]);
	if (pin_breaking(&pc->pins[p])) {
		page_unlock(&pc->flags[p]);
		return 1;
	}
	/* A media error (pcache_poison): the device would read bad media, or write into a page
	 * the guest cannot read back; the request fails (blk: IOERR). */
	if (page_flags(&pc->flags[p]) & PG_POISON) {
		page_unlock(&pc->flags[p]);
		STAT_ADD(pc, poison_eio, 1);
		return -EIO;
	}
	int r = pcache_read_missing(pc, p, p + 1);
	if (r)
		STAT_ADD(pc, read_errors, 1);
	if (!r && write && !(page_flags(&pc->flags[p]) & PG_RESERVED)) {
		/* seed 002: the device is about to store into the page: mkwrite now, while the
		 * request can still fail, not at writeback */
		r = pcache_mkwrite(pc, p, p + 1);
		if (r == 0)
			page_set(&pc->flags[p], PG_RESERVED);
		else if (r == -ENOSPC || r == -EDQUOT)
			STAT_ADD(pc, mkwrite_enospc, 1);
	}
	/* Seed 001: the CAS refuses while BREAKING is set (set without the page lock). */
	if (!r && !pin_try(&pc->pins[p]))
		r = 1;
	page_unlock(&pc->flags[p]);
	return r;
}

static void range_pages(const struct pcache_range *r, uint64_t *p0, uint64_t *p1)
{
	*p0 = r->off / PAGE_SIZE;
	*p1 = (r->off + r->len + PAGE_SIZE - 1) / PAGE_SIZE;
}

static void put_pins(struct pcache *pc, uint64_t p0, uint64_t p1, bool dirtied)
{
	for (uint64_t p = p0; p < p1; p++) {
		/* DESIGN: "after the device wrote a page, mark it DIRTY before unpinning" (KVM does
		 * not log VMM stores; a breaker waiting for the drain then sees the dirt to drop). */
		if (dirtied)
			pcache_mark_dirty(pc, p);
		pin_put(&pc->pins[p]);
	}
}

int pcache_pin_ranges(struct pcache *pc, const struct pcache_range *r, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		if (r[i].len == 0 || r[i].off >= pc->size || r[i].len > pc->size - r[i].off)
			return -EINVAL;
		if (r[i].write && pc->readonly)
			return -EROFS;
	}
	for (;;) {
		int res = 0;
		unsigned i;
		uint64_t p = 0, p0, p1;
		for (i = 0; i < n; i++) {
			range_pages(&r[i], &p0, &p1);
			for (p = p0; p < p1; p++)
				if ((res = prepare_pin_page(pc, p, r[i].write)))
					break;
			if (res)
				break;
		}
		if (!res) {
			STAT_ADD(pc, pins, 1);
			for (i = 0; i < n; i++) {
				range_pages(&r[i], &p0, &p1);
				STAT_ADD(pc, pages_pinned, p1 - p0);
			}
			race_delay(pc);
			return 0;
		}
		/* All or nothing (seed 001, Kara: on PageTruncateInProgress "put_page(page); ..bail"):
		 * drop every pin taken so far, then wait. Waiting with them held would deadlock with
		 * a breaker that set BREAKING on this page and is draining one we hold. */
		for (unsigned j = 0; j < i; j++) {
			range_pages(&r[j], &p0, &p1);
			put_pins(pc, p0, p1, false);
		}
		range_pages(&r[i], &p0, &p1);
		put_pins(pc, p0, p, false);
		if (res < 0)
			return res;
		STAT_ADD(pc, pin_waits_breaking, 1);
		pin_wait_unbroken(&pc->pins[p]); /* no pin and no page lock held */
	}
}

void pcache_unpin_ranges(struct pcache *pc, const struct pcache_range *r, unsigned n,
			 bool dirtied)
{
	for (unsigned i = 0; i < n; i++) {
		uint64_t p0, p1;
		range_pages(&r[i], &p0, &p1);
		put_pins(pc, p0, p1, dirtied && r[i].write);
	}
}

int pcache_pin(struct pcache *pc, uint64_t off, uint64_t len, bool write)
{
	struct pcache_range r = { off, len, write };
	return pcache_pin_ranges(pc, &r, 1);
}

void pcache_unpin(struct pcache *pc, uint64_t off, uint64_t len, bool dirtied)
{
	if (len == 0)
		return;
	struct pcache_range r = { off, len, true };
	pcache_unpin_ranges(pc, &r, 1, dirtied);
}
