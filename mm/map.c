/* The shadow table: a window (struct pcache_map) cut into granules, each one KVM memslot
 * (ABSENT / READONLY / WRITABLE), installed and removed under the map's slot lock, and the
 * harvest of KVM's dirty log (rmap/mmu-notifier territory in Linux: the unmap is the
 * shootdown, the harvest is folio_mkclean's write-protect of every mapping, seed 004). */
#include "mm/pcache_internal.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Slot lock held. Make granule g absent, collecting what the guest dirtied. */
int unmap_granule_locked(struct pcache_map *m, uint32_t g)
{
	uint8_t cur = gstate_get(m, g);
	if (cur == GS_ABSENT)
		return 0;
	uint64_t bits[MAX_GPAGES / 64] = { 0 };
	int r = m->sh->ops->unmap(m->sh, g, cur == GS_WRITABLE, bits);
	if (r) {
		fprintf(stderr, "cvmm: pmem: cannot unmap granule %u: %s\n", g, strerror(-r));
		return r;
	}
	/* The stores KVM logged become DIRTY (with their hints) BEFORE the granule stops counting
	 * as WRITABLE: a writeback reads the writable bits without the slot lock, so one that
	 * finds the bit clear must find the dirt already applied; one that finds it set waits
	 * for this lock and then for nothing (seed 000: the dirty bit of the pte reaches the page
	 * before anyone relies on it; issue 12 finding 1: the other order let a FLUSH skip the
	 * granule while these bits were in a local array, and acknowledge without them). */
	if (cur == GS_WRITABLE) {
		map_apply_dirty_bits(m, g, bits);
		race_delay(m->pc); /* tests: a writeback runs here (test_pcache_races) */
	}
	__atomic_store_n(&m->gstate[g], GS_ABSENT, __ATOMIC_RELEASE);
	if (cur == GS_WRITABLE)
		set_bit64(m->gwritable, g, false);
	STAT_ADD(m->pc, slot_unmaps, 1);
	return 0;
}

/* Every page lock of granule g held. Install it as `want`. */
int map_install_granule(struct pcache_map *m, uint32_t g, uint8_t want)
{
	int r = 0;
	pthread_mutex_lock(&m->slot_lock);
	uint8_t cur = gstate_get(m, g);
	if (cur == want)
		goto out;
	if (cur != GS_ABSENT && (r = unmap_granule_locked(m, g)))
		goto out;
	/* The bit goes up before the slot exists, so a harvest that starts after any store to it
	 * visits the granule. */
	if (want == GS_WRITABLE)
		set_bit64(m->gwritable, g, true);
	r = m->sh->ops->map(m->sh, g, m->base + ((uint64_t)g << m->gshift),
			    m->pc->mem + ((uint64_t)g << m->gshift), m->granule, want == GS_WRITABLE);
	if (r) {
		if (want == GS_WRITABLE)
			set_bit64(m->gwritable, g, false);
		fprintf(stderr, "cvmm: pmem: cannot map granule %u: %s\n", g, strerror(-r));
		goto out;
	}
	__atomic_store_n(&m->gstate[g], want, __ATOMIC_RELEASE);
	STAT_ADD(m->pc, slot_maps, 1);
out:
	pthread_mutex_unlock(&m->slot_lock);
	return r;
}

/* Invariants of one granule (callers hold its page locks, or nothing runs concurrently).
 * BREAKING is set by a breaker WITHOUT the page locks (so that pins are refused at once, seed
 * 001); the breaker unmaps only once it holds the locks. So a fault holding them may install a
 * granule over a page that has just turned BREAKING, and the breaker removes it right after:
 * with `quiescent` false that clause is left out (found by test_blk_pcache_threads). */
bool map_granule_ok(struct pcache_map *m, uint32_t g, bool quiescent)
{
	struct pcache *pc = m->pc;
	uint8_t st = gstate_get(m, g);
	uint64_t first = (uint64_t)g << m->gpshift;
	for (uint64_t p = first; p < first + m->gpages; p++) {
		uint32_t f = page_flags(&pc->flags[p]);
		if ((f & PG_DIRTY) && !(f & PG_UPTODATE))
			return false;
		if (st != GS_ABSENT && (!(f & PG_UPTODATE) || (f & PG_POISON)))
			return false;
		if (st == GS_WRITABLE && (!(f & PG_RESERVED) || !m->writable ||
					  (quiescent && pin_breaking(&pc->pins[p]))))
			return false;
	}
	return true;
}

int pcache_map_check(struct pcache_map *m)
{
	for (uint32_t g = 0; g < m->ngranules; g++)
		if (!map_granule_ok(m, g, true))
			return (int)g + 1;
	return 0;
}

/* Unmap every granule of every map that overlaps pages [p0, p1). Caller holds those pages'
 * locks (so no fault can re-install them until it unlocks).
 *
 * The slot lock is taken for every granule, even one that reads ABSENT: whoever removed it
 * applies the dirt it collected (to ALL the granule's pages, ours included) under that lock,
 * after gstate already reads ABSENT. Skipping on an unlocked ABSENT would let us drop a page
 * (clear DIRTY, UPTODATE) before that dirt lands on it: a DIRTY page that is not UPTODATE,
 * whose stale memory the next writeback writes over the file (found by
 * test_blk_pcache_threads under TSan timing: a host-write's unmap racing a break). */
int pcache_unmap_pages_locked(struct pcache *pc, uint64_t p0, uint64_t p1)
{
	int ret = 0;
	pthread_rwlock_rdlock(&pc->maps_lock);
	for (struct pcache_map *m = pc->maps; m; m = m->next) {
		uint32_t g0 = (uint32_t)(p0 >> m->gpshift), g1 = (uint32_t)((p1 - 1) >> m->gpshift);
		for (uint32_t g = g0; g <= g1; g++) {
			pthread_mutex_lock(&m->slot_lock);
			int r = unmap_granule_locked(m, g);
			pthread_mutex_unlock(&m->slot_lock);
			if (r && !ret)
				ret = r;
		}
	}
	pthread_rwlock_unlock(&pc->maps_lock);
	return ret;
}

/* Harvest the dirty log of every WRITABLE granule of m over pages [p0, p1): the
 * gather_all_mmap_users step of seed 004 (write-protect + shootdown), done per granule. */
static int harvest_map(struct pcache_map *m, uint64_t p0, uint64_t p1)
{
	if (m->sh->ops->harvest_all) { /* dirty ring: one pass over the logged pages, any range */
		STAT_ADD(m->pc, harvests, 1);
		int r = m->sh->ops->harvest_all(m->sh);
		if (r)
			fprintf(stderr, "cvmm: pmem: dirty ring harvest: %s\n", strerror(-r));
		return r;
	}
	uint32_t g0 = (uint32_t)(p0 >> m->gpshift), g1 = (uint32_t)((p1 - 1) >> m->gpshift);
	int ret = 0;
	for (uint32_t w = g0 / 64; w <= g1 / 64; w++) {
		uint64_t x = __atomic_load_n(&m->gwritable[w], __ATOMIC_SEQ_CST);
		while (x) {
			unsigned b = (unsigned)__builtin_ctzll(x);
			x &= x - 1;
			uint32_t g = w * 64 + b;
			if (g < g0 || g > g1)
				continue;
			uint64_t bits[MAX_GPAGES / 64] = { 0 };
			int r = 0;
			/* The bits are ORed into DIRTY before the slot lock is dropped: an invalidation
			 * unmaps under the same lock and then launders what is DIRTY, so harvested but
			 * not yet applied dirt can never be dropped with the page. */
			pthread_mutex_lock(&m->slot_lock);
			if (gstate_get(m, g) == GS_WRITABLE) {
				r = m->sh->ops->harvest(m->sh, g, bits);
				if (!r)
					map_apply_dirty_bits(m, g, bits);
			}
			pthread_mutex_unlock(&m->slot_lock);
			STAT_ADD(m->pc, harvests, 1);
			if (r) {
				fprintf(stderr, "cvmm: pmem: dirty log of granule %u: %s\n", g,
					strerror(-r));
				if (!ret)
					ret = r;
			}
		}
	}
	return ret;
}

int pcache_harvest_maps(struct pcache *pc, uint64_t p0, uint64_t p1)
{
	int ret = 0;
	pthread_rwlock_rdlock(&pc->maps_lock);
	for (struct pcache_map *m = pc->maps; m; m = m->next) {
		int r = harvest_map(m, p0, p1);
		if (r && !ret)
			ret = r;
	}
	pthread_rwlock_unlock(&pc->maps_lock);
	return ret;
}

uint64_t pcache_auto_granule(uint64_t size)
{
	/* About 1024 granules: a flush visits at most that many WRITABLE granules (one dirty-log
	 * ioctl each), a first touch reads at most one granule, and 1024 memslots are far below
	 * KVM's 32764. 64 KiB at the low end keeps first-touch reads cheap in a small window;
	 * 2 MiB at the top is the largest granule (one huge page). */
	uint64_t g = 64 * 1024;
	while (g < 2 * MIB && size / g > 1024)
		g *= 2;
	return g;
}

uint64_t pcache_map_granule(const struct pcache_map *m) { return m->granule; }
uint32_t pcache_map_ngranules(const struct pcache_map *m) { return m->ngranules; }

int pcache_map_granule_state(struct pcache_map *m, uint64_t gpa)
{
	if (gpa < m->base || gpa - m->base >= m->size)
		return -1;
	return gstate_get(m, (uint32_t)((gpa - m->base) >> m->gshift));
}

/* Where a shadow with harvest_all (the dirty ring) reports logged pages. */
static void map_sink(void *arg, uint32_t g, uint32_t page)
{
	struct pcache_map *m = arg;
	if (g >= m->ngranules || page >= m->gpages)
		return;
	pcache_mark_dirty(m->pc, ((uint64_t)g << m->gpshift) + page);
	STAT_ADD(m->pc, pages_harvested, 1);
}

int pcache_map_create(struct pcache *pc, struct shadow *sh, uint64_t gpa_base, uint64_t granule,
		      bool writable, struct pcache_map **out, char *err, size_t errlen)
{
	*out = NULL;
	if (!granule)
		granule = pcache_auto_granule(pc->size);
	if (granule < PAGE_SIZE || granule > MAX_GRANULE || (granule & (granule - 1)) ||
	    pc->size % granule) {
		sh->ops->destroy(sh);
		return pcache_fail(err, errlen, "pmem granule: %llu bytes is not a power of two in "
			    "4 KiB..2 MiB dividing the size", (unsigned long long)granule);
	}
	if (gpa_base % granule) {
		sh->ops->destroy(sh);
		return pcache_fail(err, errlen, "pmem: window base 0x%llx not aligned to the granule",
			    (unsigned long long)gpa_base);
	}
	if (writable && pc->readonly) {
		sh->ops->destroy(sh);
		return pcache_fail(err, errlen, "pmem path '%s': opened read-only, cannot map writable",
			    pc->path);
	}
	struct pcache_map *m = calloc(1, sizeof(*m));
	if (!m) {
		sh->ops->destroy(sh);
		return pcache_fail(err, errlen, "pmem: out of memory");
	}
	m->pc = pc;
	m->sh = sh;
	m->base = gpa_base;
	m->size = pc->size;
	m->granule = granule;
	m->gshift = (unsigned)__builtin_ctzll(granule);
	m->gpshift = m->gshift - PAGE_SHIFT;
	m->gpages = (uint32_t)(granule / PAGE_SIZE);
	m->ngranules = (uint32_t)(pc->size / granule);
	m->writable = writable;
	m->gstate = calloc(m->ngranules, 1);
	m->gwritable = calloc((m->ngranules + 63) / 64, sizeof(uint64_t));
	pthread_mutex_init(&m->slot_lock, NULL);
	if (!m->gstate || !m->gwritable) {
		free(m->gstate);
		free(m->gwritable);
		pthread_mutex_destroy(&m->slot_lock);
		free(m);
		sh->ops->destroy(sh);
		return pcache_fail(err, errlen, "pmem: out of memory");
	}
	sh->sink = map_sink;
	sh->sink_arg = m;
	pthread_rwlock_wrlock(&pc->maps_lock);
	m->next = pc->maps;
	pc->maps = m;
	pthread_rwlock_unlock(&pc->maps_lock);
	*out = m;
	return 0;
}

void pcache_map_destroy(struct pcache_map *m)
{
	if (!m)
		return;
	struct pcache *pc = m->pc;
	/* Remove every granule (collecting the guest's last logged stores into DIRTY, so the final
	 * writeback in pcache_put has them). The vCPUs are stopped by now. */
	pthread_mutex_lock(&m->slot_lock);
	for (uint32_t g = 0; g < m->ngranules; g++)
		unmap_granule_locked(m, g);
	pthread_mutex_unlock(&m->slot_lock);
	pthread_rwlock_wrlock(&pc->maps_lock);
	for (struct pcache_map **pp = &pc->maps; *pp; pp = &(*pp)->next)
		if (*pp == m) {
			*pp = m->next;
			break;
		}
	pthread_rwlock_unlock(&pc->maps_lock);
	m->sh->ops->destroy(m->sh);
	free(m->gstate);
	free(m->gwritable);
	pthread_mutex_destroy(&m->slot_lock);
	free(m);
}
