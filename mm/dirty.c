/* Dirty state: PG_DIRTY on a page and its bit in the two-level hint bitmap (so writeback finds
 * dirty pages without scanning the window), and the application of KVM's logged stores to
 * pages (folio_mark_dirty; the dirty bit of the pte reaching the page, seed 000). */
#include "mm/pcache_internal.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Set the hint bits for page p (dh1 then dh0; seq_cst so that a writeback that clears dh0 and
 * then takes dh1 cannot miss a bit set here: see pcache_hints_take). */
static void hint_set(struct pcache *pc, uint64_t p)
{
	uint64_t i = p / 64, j = i / 64;
	uint64_t b1 = 1ULL << (p % 64), b0 = 1ULL << (i % 64);
	if (!(__atomic_load_n(&pc->dh1[i], __ATOMIC_SEQ_CST) & b1))
		__atomic_fetch_or(&pc->dh1[i], b1, __ATOMIC_SEQ_CST);
	if (!(__atomic_load_n(&pc->dh0[j], __ATOMIC_SEQ_CST) & b0))
		__atomic_fetch_or(&pc->dh0[j], b0, __ATOMIC_SEQ_CST);
}

/* Mark page p DIRTY (lock not needed). The data must already be in the cache page: writeback
 * clears DIRTY before it copies, so data stored before this call is in that copy or the next.
 * The hint is set even if DIRTY already was: the thread that set DIRTY may not have set its
 * hint yet, and this caller may complete (a fault returns to the guest, which then issues a
 * blk read) before it does; a writeback that ran in that window would miss the page. Found
 * by the SPIN model (tests/model/pcache.pml -DFLUSHRACE, a DMA unpin racing a fault store).
 * hint_set is two loads when the bits are set already. */
void pcache_mark_dirty(struct pcache *pc, uint64_t p)
{
	uint32_t old = __atomic_fetch_or(&pc->flags[p], PG_DIRTY, __ATOMIC_ACQ_REL);
	if (!(old & PG_UPTODATE)) {
		/* A store into a page that is not the file's data (a granule left mapped over a
		 * dropped page): writing it back would put stale bytes in the file. Stop instead. */
		if (!(old & PG_DIRTY))
			__atomic_fetch_and(&pc->flags[p], ~PG_DIRTY, __ATOMIC_ACQ_REL);
		pcache_bug(pc, "DIRTY page is UPTODATE", __FILE__, __LINE__);
		return;
	}
	hint_set(pc, p);
}

int pcache_hints_take(struct pcache *pc, uint64_t p0, uint64_t p1, hint_fn fn, void *arg)
{
	if (p0 >= p1)
		return 0;
	uint64_t i0 = p0 / 64, i1 = (p1 - 1) / 64;
	int ret = 0;
	for (uint64_t j = i0 / 64; j <= i1 / 64; j++) {
		uint64_t w0 = __atomic_load_n(&pc->dh0[j], __ATOMIC_SEQ_CST);
		while (w0) {
			unsigned b = (unsigned)__builtin_ctzll(w0);
			w0 &= w0 - 1;
			uint64_t i = j * 64 + b;
			if (i < i0 || i > i1)
				continue;
			uint64_t mask = ~0ULL;
			if (i == i0)
				mask &= ~0ULL << (p0 % 64);
			if (i == i1 && p1 % 64)
				mask &= ~0ULL >> (64 - p1 % 64);
			/* Clear the summary bit first, then take the page bits; re-set the summary if
			 * bits outside the range remain. A marker sets dh1 then dh0, so a bit it sets
			 * after our take has its summary bit set after our clear. */
			__atomic_fetch_and(&pc->dh0[j], ~(1ULL << b), __ATOMIC_SEQ_CST);
			uint64_t old = __atomic_fetch_and(&pc->dh1[i], ~mask, __ATOMIC_SEQ_CST);
			if (old & ~mask)
				__atomic_fetch_or(&pc->dh0[j], 1ULL << b, __ATOMIC_SEQ_CST);
			if (old & mask) {
				int r = fn(pc, i * 64, old & mask, arg);
				if (r && !ret)
					ret = r;
			}
		}
	}
	return ret;
}

/* OR a granule's dirty bitmap (from harvest/unmap) into DIRTY. */
void map_apply_dirty_bits(struct pcache_map *m, uint32_t g, const uint64_t *bits)
{
	uint64_t first = (uint64_t)g << m->gpshift;
	uint64_t n = 0;
	for (uint32_t w = 0; w < (m->gpages + 63) / 64; w++) {
		uint64_t x = bits[w];
		while (x) {
			unsigned b = (unsigned)__builtin_ctzll(x);
			x &= x - 1;
			pcache_mark_dirty(m->pc, first + w * 64 + b);
			n++;
		}
	}
	if (n)
		STAT_ADD(m->pc, pages_harvested, n);
}
