/* Media errors on the window (memory-failure.c; issue 15 item 2): pcache_poison marks pages of
 * the cache as a persistent-memory device with bad media would have them, pcache_unpoison
 * repairs them, and the poisoned ranges are listed for the stats. The rules each path follows
 * are in pcache.h ("media errors"); the reasoning is here.
 *
 * The page state is one bit, PG_POISON, in the page's flags word, changed under the page lock,
 * and a gauge of poisoned pages (pcache_stats.poison_pages) that makes "nothing is poisoned"
 * one load on the hot paths (any_poisoned).
 *
 * Poisoning is an invalidation that leaves the bit behind: break the range (BREAKING: new pins
 * and faults wait; every granule holding one of its pages is unmapped in every map, the
 * guest's logged stores becoming DIRTY; the DMAs in flight drain), write the dirty pages back
 * (the guest's stores are in the file: nothing acknowledged is lost; the data is only hidden
 * while the poison lasts) and drop them (not UPTODATE), then set PG_POISON before BREAKING is
 * cleared. From then on the fault path never installs a granule that holds a poisoned page
 * (fault.c), so no guest access to a poisoned page can complete without the VMM.
 *
 * Why the neighbours are served without a mapping: a granule is one memslot, and its size is
 * fixed per map (memslots are numbered per granule; a sub-granule slot would need slot ids
 * the shadow table does not have). A memslot cannot hide one of its pages either (a PROT_NONE
 * host page makes KVM_RUN fail with EFAULT and no address, HOST.md). So the granule stays
 * ABSENT, and every access to it exits: KVM gives the VMM an MMIO exit with the exact address,
 * size and (for a store) the data, which the fault path completes on the cache page, the same
 * "partial" path that serves a granule while a break holds one of its pages. That costs an
 * exit (about 25 us here) per access to the other pages of a 64 KiB or 2 MiB granule while the
 * poison lasts: acceptable for fault injection; a 4 KiB granule avoids it. An instruction
 * fetch cannot be completed by the VMM (KVM reports it as an emulation failure), so a fetch
 * from such a neighbour is answered like one from the poisoned page, at its own address.
 *
 * Why a store clears the poison (the issue allows "dropped or clear the poison"): on real
 * pmem, writing the whole bad line (or ndctl clear-error) repairs it, and Linux's own pmem
 * driver clears poison when it writes a range. Dropping stores would lose data silently, the
 * one thing this cache never does (DESIGN.md): a guest that stored and read back would see
 * neither its bytes nor an error. With the page granular model a store clears its whole page:
 * the page is read again from the file (which holds what the page held when it was poisoned)
 * and the store is applied on it, so the other bytes of the page are the file's, not garbage.
 * A guest never gets a machine check for a store (an MCE on a store in kernel context is
 * fatal to Linux: HOST.md), which also matches hardware, where stores are posted.
 *
 * Direct I/O follows the block device of a real pmem namespace: reading bad sectors is EIO;
 * writing them repairs them. Here a direct write that covers a poisoned page wholly clears it;
 * one that covers it partly would leave bytes of the page neither written nor readable, so it
 * fails -EIO before anything is written (a failed write leaves the file as it was). A DMA pin
 * of a poisoned page fails -EIO whatever the direction: the device would read bad media, or
 * write into a page the guest cannot read back; the blk request completes IOERR.
 *
 * Writeback does not look at the bit: poisoning wrote the dirty pages already, and a page whose
 * write failed stays DIRTY (and UPTODATE) to be retried by later writebacks, as always. */
#include "mm/pcache_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* [off, off+len) rounded outward to pages, clamped to the cache. false: empty or outside. */
static bool page_span(struct pcache *pc, uint64_t off, uint64_t len, uint64_t *p0,
			 uint64_t *p1)
{
	if (len == 0 || off >= pc->size || off + len < off)
		return false;
	*p1 = clamp_pages(pc, off, len, p0);
	return *p0 < *p1;
}

int pcache_poison(struct pcache *pc, uint64_t off, uint64_t len)
{
	uint64_t p0, p1;
	if (!page_span(pc, off, len, &p0, &p1))
		return -EINVAL;
	pthread_mutex_lock(&pc->break_lock);
	/* BREAKING, unmap every granule over the pages in every map (harvesting), drain pins. A
	 * fault meanwhile waits (its own page) or completes without installing (a neighbour). */
	int r = pcache_break_begin(pc, p0, p1) ? -EIO : 0;
	if (!r) {
		/* wb_lock shared before the page locks, as every launder (a FLUSH waits for it) */
		pthread_rwlock_rdlock(&pc->wb_lock);
		lock_pages(pc, p0, p1);
		/* A failed write is recorded for the next FLUSH and leaves the page DIRTY: kept. */
		pcache_launder_locked(pc, p0, p1, false);
		for (uint64_t p = p0; p < p1; p++) {
			if (!(page_flags(&pc->flags[p]) & PG_DIRTY))
				page_clear(&pc->flags[p], PG_UPTODATE | PG_RESERVED);
			page_poison_set(pc, p);
		}
		unlock_pages(pc, p0, p1);
		pthread_rwlock_unlock(&pc->wb_lock);
	}
	pcache_break_end(pc, p0, p1);
	pthread_mutex_unlock(&pc->break_lock);
	return r;
}

int pcache_unpoison(struct pcache *pc, uint64_t off, uint64_t len)
{
	uint64_t p0, p1;
	if (!page_span(pc, off, len, &p0, &p1))
		return -EINVAL;
	/* A poisoned page is mapped nowhere and pinned by no one: clearing the bit is all. The
	 * next access reads it (it was dropped when poisoned) and may install its granule. */
	for (uint64_t p = p0; p < p1; p++) {
		if (!(page_flags(&pc->flags[p]) & PG_POISON))
			continue;
		page_lock(&pc->flags[p]);
		page_poison_clear(pc, p);
		page_unlock(&pc->flags[p]);
	}
	return 0;
}

/* Call fn for each maximal run of poisoned pages, ascending. A snapshot: pages poisoned or
 * repaired meanwhile may or may not be in it. */
static void poison_walk(struct pcache *pc, void (*fn)(void *arg, uint64_t off, uint64_t len),
			void *arg)
{
	if (!__atomic_load_n(&pc->st.poison_pages, __ATOMIC_ACQUIRE))
		return;
	uint64_t p = 0;
	while (p < pc->npages) {
		if (!(page_flags(&pc->flags[p]) & PG_POISON)) {
			p++;
			continue;
		}
		uint64_t n = 1;
		while (p + n < pc->npages && (page_flags(&pc->flags[p + n]) & PG_POISON))
			n++;
		fn(arg, p * PAGE_SIZE, n * PAGE_SIZE);
		p += n;
	}
}

struct list_arg { struct pcache_extent *out; size_t max, n; };

static void list_one(void *arg, uint64_t off, uint64_t len)
{
	struct list_arg *a = arg;
	if (a->n < a->max)
		a->out[a->n] = (struct pcache_extent){ off, len };
	a->n++;
}

size_t pcache_poison_list(struct pcache *pc, struct pcache_extent *out, size_t max)
{
	struct list_arg a = { out, out ? max : 0, 0 };
	poison_walk(pc, list_one, &a);
	return a.n;
}

struct json_arg { FILE *f; bool first; };

static void json_one(void *arg, uint64_t off, uint64_t len)
{
	struct json_arg *a = arg;
	fprintf(a->f, "%s{\"off\": %llu, \"len\": %llu}", a->first ? "" : ", ",
		(unsigned long long)off, (unsigned long long)len);
	a->first = false;
}

void pcache_poison_json(struct pcache *pc, FILE *f)
{
	struct json_arg a = { f, true };
	fputc('[', f);
	poison_walk(pc, json_one, &a);
	fputc(']', f);
}
