/* The fault path (filemap_fault + page_mkwrite + do_wp_page's reservation): a guest access to
 * an ABSENT granule or a store to a READONLY one. Reads missing pages in, reserves backing
 * blocks before a store is accepted (seed 002), completes the access on the cache page and
 * installs the granule. Also populate (the mlock / MAP_POPULATE analogue). */
#include "mm/pcache_internal.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <unistd.h>

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Pages [p0, p1) locked: read every page that is not UPTODATE, in runs, straight into the
 * cache memory (page aligned, so O_DIRECT works). 0 or -errno (pages of a failed run stay not
 * UPTODATE). */
int pcache_read_missing(struct pcache *pc, uint64_t p0, uint64_t p1)
{
	uint64_t p = p0;
	while (p < p1) {
		if (page_flags(&pc->flags[p]) & PG_UPTODATE) {
			p++;
			continue;
		}
		uint64_t n = 1;
		while (p + n < p1 && !(page_flags(&pc->flags[p + n]) & PG_UPTODATE))
			n++;
		/* A hole at the start of the run reads as zeros: punch the cache memory instead of
		 * reading (a fresh sparse image is all hole; punching also gives stale memory of an
		 * invalidated page back). SEEK_DATA costs one lseek per run. */
		uint64_t holes = 0;
		if (!__atomic_load_n(&pc->inj.pread_errno, __ATOMIC_RELAXED)) {
			off_t d = lseek(pc->fd, (off_t)(p * PAGE_SIZE), SEEK_DATA);
			if (d < 0 && errno == ENXIO)
				holes = n;
			else if (d > (off_t)(p * PAGE_SIZE))
				holes = ((uint64_t)d / PAGE_SIZE - p) < n ? (uint64_t)d / PAGE_SIZE - p : n;
		}
		if (holes) {
			if (fallocate(pc->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				      (off_t)(p * PAGE_SIZE), (off_t)(holes * PAGE_SIZE)) < 0)
				memset(pc->mem + p * PAGE_SIZE, 0, holes * PAGE_SIZE);
			STAT_ADD(pc, pages_zeroed, holes);
			n = holes;
		} else {
			int r = pcache_file_read(pc, pc->mem + p * PAGE_SIZE, n * PAGE_SIZE, p * PAGE_SIZE);
			if (r) {
				STAT_ADD(pc, read_errors, 1);
				return r;
			}
			STAT_ADD(pc, pages_read, n);
		}
		for (uint64_t k = 0; k < n; k++)
			page_set(&pc->flags[p + k], PG_UPTODATE);
		p += n;
	}
	return 0;
}

/* page_mkwrite (seed 002, Chinner: block reservation must happen on the first write fault of
 * every mapped page, or a later writeback meets ENOSPC and the data is silently lost): reserve
 * backing blocks for the holes in pages [p0, p1) with fallocate(KEEP_SIZE). SEEK_HOLE finds
 * the holes cheaply; a fully allocated range costs one lseek. 0 or -errno. */
int pcache_mkwrite(struct pcache *pc, uint64_t p0, uint64_t p1)
{
	STAT_ADD(pc, mkwrite_runs, 1);
	uint64_t pos = p0 * PAGE_SIZE, end = p1 * PAGE_SIZE;
	if (__atomic_load_n(&pc->inj.fallocate_errno, __ATOMIC_RELAXED))
		return pcache_file_reserve(pc, pos, end - pos);
	while (pos < end) {
		off_t hole = lseek(pc->fd, (off_t)pos, SEEK_HOLE);
		if (hole < 0) /* no SEEK_HOLE here: reserve the whole range */
			return pcache_file_reserve(pc, pos, end - pos);
		if ((uint64_t)hole >= end)
			break;
		off_t data = lseek(pc->fd, hole, SEEK_DATA);
		uint64_t hend = (data < 0 || (uint64_t)data > end) ? end : (uint64_t)data;
		int r = pcache_file_reserve(pc, (uint64_t)hole, hend - (uint64_t)hole);
		if (r)
			return r;
		pos = hend;
	}
	return 0;
}

/* Reserve pages [p0, p1) (locked). If the whole range cannot be reserved for lack of space,
 * fall back to just page `must` so one store that fits is not refused because its granule
 * does not. Returns 0 if `must` is RESERVED afterwards, else -errno. */
static int reserve(struct pcache *pc, uint64_t p0, uint64_t p1, uint64_t must)
{
	if (all_have(pc, p0, p1, PG_RESERVED))
		return 0;
	int r = pcache_mkwrite(pc, p0, p1);
	if (r == 0) {
		set_range(pc, p0, p1, PG_RESERVED);
		return 0;
	}
	if (p1 - p0 > 1 && (r == -ENOSPC || r == -EDQUOT) &&
	    !(page_flags(&pc->flags[must]) & PG_RESERVED)) {
		int r2 = pcache_mkwrite(pc, must, must + 1);
		if (r2 == 0) {
			page_set(&pc->flags[must], PG_RESERVED);
			return 0;
		}
		r = r2;
	}
	return (page_flags(&pc->flags[must]) & PG_RESERVED) ? 0 : r;
}

/* ---- fault ------------------------------------------------------------------------------- */

static bool any_breaking(struct pcache *pc, uint64_t p0, uint64_t p1)
{
	for (uint64_t p = p0; p < p1; p++)
		if (pin_breaking(&pc->pins[p]))
			return true;
	return false;
}

/* A fault on granule [gp0, gp1) (all its pages locked) that holds a poisoned page
 * (mm/memory_failure.c has the reasoning). Returns PCACHE_FAULT_DONE to go on with the access
 * (the caller completes it without installing the granule while any page stays poisoned), or
 * the answer for the guest. */
static enum pcache_fault_result poison_fault(struct pcache_map *m, uint64_t p,
					     enum pcache_access kind)
{
	struct pcache *pc = m->pc;
	bool bad = page_flags(&pc->flags[p]) & PG_POISON;
	if (kind == PCACHE_LOAD || kind == PCACHE_FETCH) {
		/* A load of the bad page: a machine check at its address. A fetch from a clean page
		 * of the granule cannot be completed without mapping the bad one: the same. */
		if (bad || kind == PCACHE_FETCH) {
			STAT_ADD(pc, poison_faults, 1);
			return PCACHE_FAULT_POISON;
		}
		return PCACHE_FAULT_DONE;
	}
	if (!bad)
		return PCACHE_FAULT_DONE;
	if (!m->writable) {
		STAT_ADD(pc, stores_discarded, 1);
		return PCACHE_FAULT_DISCARDED; /* ROM: the store goes nowhere, the poison stays */
	}
	/* A store repairs its page: read again from the file (it was dropped when poisoned, or is
	 * kept DIRTY if its write failed), then the store is applied on it by the caller. */
	page_poison_clear(pc, p);
	STAT_ADD(pc, poison_cleared, 1);
	return PCACHE_FAULT_DONE;
}

static enum pcache_fault_result fault_one(struct pcache_map *m, uint64_t gpa,
					  enum pcache_access kind, void *data, unsigned len)
{
	struct pcache *pc = m->pc;
	uint64_t off = gpa - m->base;
	uint64_t p = off >> PAGE_SHIFT;
	uint32_t g = (uint32_t)(off >> m->gshift);
	uint64_t gp0 = (uint64_t)g << m->gpshift, gp1 = gp0 + m->gpages;
	enum pcache_fault_result res = PCACHE_FAULT_DONE;
	int rr;

	uint8_t seen = gstate_get(m, g);
	if (kind == PCACHE_FETCH)
		STAT_ADD(pc, fault_fetch, 1);
	else if (kind == PCACHE_STORE_UNBACKED)
		; /* the second call for a store already counted */
	else if (kind == PCACHE_LOAD)
		STAT_ADD(pc, fault_load_absent, 1);
	else if (seen == GS_READONLY)
		STAT_ADD(pc, fault_store_readonly, 1);
	else
		STAT_ADD(pc, fault_store_absent, 1);

	for (;;) {
		/* DESIGN: "A fault on a page under BREAKING waits" (the punch must not see the
		 * page come back mapped or re-dirtied). */
		if (pin_breaking(&pc->pins[p])) {
			STAT_ADD(pc, fault_wait_breaking, 1);
			pin_wait_unbroken(&pc->pins[p]);
		}
		lock_pages(pc, gp0, gp1);
		if (!pin_breaking(&pc->pins[p]))
			break;
		unlock_pages(pc, gp0, gp1);
	}
	/* Another page of the granule under a break: complete this access on its own page but do
	 * not install the granule (the breaker has unmapped it and it must stay so). */
	bool partial = any_breaking(pc, gp0, gp1);
	/* Media errors (pcache_poison): a granule holding a poisoned page is never installed; its
	 * clean pages are served here, one exit per access. Exact: every page lock is held. */
	if (any_poisoned(pc, gp0, gp1)) {
		res = poison_fault(m, p, kind);
		if (res != PCACHE_FAULT_DONE)
			goto out;
		partial = partial || any_poisoned(pc, gp0, gp1);
	}
	uint64_t lo = partial ? p : gp0, hi = partial ? p + 1 : gp1;

	if (pcache_read_missing(pc, lo, hi)) {
		/* The file cannot give us this data: a media error at this address for the guest. */
		if (!(page_flags(&pc->flags[p]) & PG_UPTODATE)) {
			res = PCACHE_FAULT_MCE;
			goto out;
		}
		partial = true; /* p was read; a neighbour failed: do not install */
		lo = p;
		hi = p + 1;
	}

	if (kind == PCACHE_STORE || kind == PCACHE_STORE_UNBACKED) {
		if (!m->writable) {
			STAT_ADD(pc, stores_discarded, 1);
			res = PCACHE_FAULT_DISCARDED;
		} else if ((rr = reserve(pc, lo, hi, p)) && kind == PCACHE_STORE) {
			/* ENOSPC/EDQUOT (or EIO) reserving blocks: refuse the store now, while the guest
			 * can still be told, instead of losing it at writeback (seed 002). */
			if (rr == -ENOSPC || rr == -EDQUOT)
				STAT_ADD(pc, mkwrite_enospc, 1);
			else
				STAT_ADD(pc, write_errors, 1);
			res = PCACHE_FAULT_MCE;
		} else {
			/* Reserved; or a kernel-mode store accepted without backing: DIRTY, and its
			 * writeback's error reaches the guest at FLUSH (PCACHE_STORE_UNBACKED). */
			if (rr)
				STAT_ADD(pc, stores_unbacked, 1);
			/* KVM completed the instruction and will not log this store: apply + DIRTY. */
			memcpy(pc->mem + off, data, len);
			pcache_mark_dirty(pc, p);
		}
	} else if (kind == PCACHE_LOAD) {
		memcpy(data, pc->mem + off, len);
	}

	if (!partial) {
		uint8_t want = (m->writable && all_have(pc, gp0, gp1, PG_RESERVED)) ? GS_WRITABLE
										      : GS_READONLY;
		map_install_granule(m, g, want); /* failure logged; the access itself is complete */
		PCACHE_CHECK(pc, map_granule_ok(m, g, false), "granule state matches its pages");
	}
out:
	unlock_pages(pc, gp0, gp1);
	return res;
}

enum pcache_fault_result pcache_fault(struct pcache_map *m, uint64_t gpa,
				      enum pcache_access kind, void *data, unsigned len)
{
	if (gpa < m->base || gpa - m->base >= m->size || len > 8 ||
	    (kind != PCACHE_FETCH && (len == 0 || gpa - m->base + len > m->size)))
		return PCACHE_FAULT_OUTSIDE;
	if (kind == PCACHE_FETCH)
		return fault_one(m, gpa, kind, NULL, 0);
	uint64_t in = gpa & (PAGE_SIZE - 1);
	if (in + len <= PAGE_SIZE)
		return fault_one(m, gpa, kind, data, len);
	/* KVM splits accesses at page boundaries, but be safe: two pages, in order. */
	unsigned first = (unsigned)(PAGE_SIZE - in);
	enum pcache_fault_result r = fault_one(m, gpa, kind, data, first);
	if (r != PCACHE_FAULT_DONE)
		return r;
	return fault_one(m, gpa + first, kind, (uint8_t *)data + first, len - first);
}

/* ---- populate ---------------------------------------------------------------------------- */

int pcache_populate(struct pcache_map *m, char *err, size_t errlen)
{
	struct pcache *pc = m->pc;
	bool warned = false;
	for (uint32_t g = 0; g < m->ngranules; g++) {
		uint64_t gp0 = (uint64_t)g << m->gpshift, gp1 = gp0 + m->gpages;
		lock_pages(pc, gp0, gp1);
		if (any_poisoned(pc, gp0, gp1)) { /* never installed while poisoned (pcache_poison) */
			unlock_pages(pc, gp0, gp1);
			continue;
		}
		int r = pcache_read_missing(pc, gp0, gp1);
		if (r) {
			unlock_pages(pc, gp0, gp1);
			return pcache_fail(err, errlen, "pmem populate: reading '%s' at offset %llu: %s",
				    pc->path, (unsigned long long)(gp0 * PAGE_SIZE), strerror(-r));
		}
		/* The mlock case of seed 002: mkwrite runs now, at populate time, because no write
		 * fault will come later for a WRITABLE granule. Nothing is marked DIRTY. */
		if (m->writable && !all_have(pc, gp0, gp1, PG_RESERVED)) {
			r = pcache_mkwrite(pc, gp0, gp1);
			if (r == 0) {
				set_range(pc, gp0, gp1, PG_RESERVED);
			} else if (!warned) {
				fprintf(stderr, "cvmm: pmem populate: cannot reserve blocks in '%s' "
					"(%s): those granules stay read-only; a store there gets a "
					"machine check if space is still short\n", pc->path,
					strerror(-r));
				warned = true;
			}
		}
		uint8_t want = (m->writable && all_have(pc, gp0, gp1, PG_RESERVED)) ? GS_WRITABLE
										      : GS_READONLY;
		r = map_install_granule(m, g, want);
		PCACHE_CHECK(pc, map_granule_ok(m, g, false), "granule state matches its pages");
		unlock_pages(pc, gp0, gp1);
		if (r)
			return pcache_fail(err, errlen, "pmem populate: cannot map granule %u: %s", g,
				    strerror(-r));
	}
	return 0;
}
