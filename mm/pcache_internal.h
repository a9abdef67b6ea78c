/* The host-side page cache: see pcache.h for the API and DESIGN.md for the protocol.
 *
 * State per 4 KiB page lives in two words (mm/page.h): flags+lock, and pin count+BREAKING.
 * State per granule of a map lives in gstate[] (ABSENT / READONLY / WRITABLE) and is changed
 * only under the map's slot lock by a thread that holds the page locks needed:
 *   - installing (ABSENT -> READONLY/WRITABLE, READONLY -> WRITABLE) needs ALL the granule's
 *     page locks (so no page of it can lose UPTODATE/RESERVED meanwhile: the invariants
 *     WRITABLE => every page UPTODATE+RESERVED, not BREAKING; READONLY => every page UPTODATE);
 *   - removing (-> ABSENT) needs the page locks of the pages being invalidated; the removal
 *     collects the pages the guest dirtied (shadow_ops.unmap), so nothing logged is lost.
 * Hence a page that is not UPTODATE is never guest-visible, and the fault path may read the
 * file straight into cache memory.
 *
 * Finding dirty pages without scanning the window: a page gets DIRTY either from a KVM dirty-log
 * harvest (only WRITABLE granules can have logged stores: each map keeps a bitmap of them, and a
 * harvest visits only those) or from the VMM's own stores (fault completion, DMA). Every DIRTY
 * page also has a bit in a two-level hint bitmap (dh1: one bit per page, dh0: one bit per dh1
 * word), so writeback of a 1 GiB window with one dirty page reads 64 dh0 words, one dh1 word and
 * one page word, not 262144 page words. */
#ifndef CVMM_MM_PCACHE_INTERNAL_H
#define CVMM_MM_PCACHE_INTERNAL_H

/* Private to mm/ (the role of Linux's mm/internal.h): the structures behind struct pcache and
 * struct pcache_map, the small inline helpers every operation uses, and the functions one
 * operation file calls in another. Which file holds what: mm/README.md "Files". */
#include "mm/pcache.h"

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>
#include <unistd.h>

#include "lib/iov.h"
#include "mm/page.h"


#define MIB (1024ULL * 1024)
#define GS_ABSENT   0
#define GS_READONLY 1
#define GS_WRITABLE 2
#define MAX_GRANULE (2 * MIB)
#define MAX_GPAGES  (MAX_GRANULE / PAGE_SIZE)
#define MAX_RUN     256   /* pages per writeback I/O: 1 MiB */

#define BOUNCE      (1 * MIB)

struct pcache_map {
	struct pcache *pc;
	struct shadow *sh;
	uint64_t base, size, granule;
	unsigned gshift;       /* log2(granule) */
	unsigned gpshift;      /* log2(pages per granule) */
	uint32_t gpages, ngranules;
	bool writable;
	uint8_t *gstate;       /* GS_*, atomic loads/stores; changed under slot_lock */
	uint64_t *gwritable;   /* bit per granule: WRITABLE (set before map, cleared after unmap) */
	pthread_mutex_t slot_lock;
	struct pcache_map *next;
};

struct pcache {
	/* registry (under reg_lock) */
	struct pcache *next;
	int refs;
	dev_t dev;
	ino_t ino;
	char path[PATH_MAX];

	int fd;
	bool direct, readonly;
	uint32_t dio_align;    /* offset/length/buffer alignment for the O_DIRECT fd */
	uint64_t size, npages;
	int memfd;
	uint8_t *mem;
	uint32_t *flags;       /* mm/page.h PG_* + lock */
	uint32_t *pins;        /* mm/page.h PIN_* */
	uint64_t *dh1, *dh0;   /* dirty hints */
	size_t ndh1, ndh0;

	pthread_rwlock_t maps_lock;
	struct pcache_map *maps;

	/* Writeback "and wait" (filemap_write_and_wait_range): every section that writes dirty
	 * pages (writeback, and the launder of a direct write or an invalidation) holds wb_lock
	 * shared, taken BEFORE any page lock; pcache_writeback_range ends by taking it exclusive
	 * once, which waits for every such section in flight. Without it a writeback could find
	 * no hint for a page whose hint another writeback had just taken (or whose DIRTY a
	 * launder had just cleared) and return before that page reached the file: a direct read
	 * then returns stale data, a FLUSH acknowledges data not yet written (the guest's f2).
	 * Writer-preferring, so a FLUSH in a loop on one vCPU cannot starve the barrier. */
	pthread_rwlock_t wb_lock;

	pthread_mutex_t err_lock;   /* errseq */
	uint64_t err_seq;
	int err_last;

	pthread_mutex_t break_lock; /* one break at a time (they are rare; keeps BREAKING simple) */
	pthread_mutex_t rmw_lock;   /* sub-block read-modify-write beyond the cached range */
	/* Innermost. Held across an unaligned-tail write's "size before, write, trim back" and
	 * around truncate's ftruncate, so the trim can tell its own extension from a truncate's:
	 * without it a truncate that restored the size between the write and the trim was undone
	 * (test_blk_pcache_threads: the file ended shorter than the window). */
	pthread_mutex_t size_lock;

	pthread_mutex_t inj_lock;
	struct pcache_inject inj;

	int meta_dirty;             /* atomic: a punch/zero/truncate since the last flush: the
				     * next flush uses fsync (the extent change must be durable
				     * too), not fdatasync */
	unsigned race_delay_us;     /* CVMM_RACE_DELAY_US (tests): see pcache_set_race_delay */

	/* The observer (pcache.h): ops read atomically; obs_lock (writer-preferring) is held shared
	 * around each callback and exclusive to change them. Innermost, below size_lock. */
	pthread_rwlock_t obs_lock;
	const struct pcache_observer_ops *obs_ops; /* atomic */
	void *obs_ctx;

	struct pcache_stats st;     /* updated with relaxed atomics */

	/* An invariant found broken (pcache_bug): set once, never cleared; the VM glue stops
	 * the VM with this message (pcache_broken) instead of cvmm aborting on an assert. */
	int broken;                 /* atomic */
	char broken_why[192];
	/* pcache_power_cut: from now on nothing reaches the file (writes fail -EIO, the last put
	 * writes nothing back). Atomic; set once. */
	int power_cut;
};

/* The file is frozen by a power cut (pcache_power_cut). */
static inline bool pcache_is_cut(struct pcache *pc)
{
	return __atomic_load_n(&pc->power_cut, __ATOMIC_ACQUIRE);
}

#define STAT_ADD(pc, field, n) __atomic_add_fetch(&(pc)->st.field, (uint64_t)(n), __ATOMIC_RELAXED)

/* Widen race windows for tests (CVMM_RACE_DELAY_US, pcache.h). */
static inline void race_delay(struct pcache *pc)
{
	unsigned us = __atomic_load_n(&pc->race_delay_us, __ATOMIC_RELAXED);
	if (us)
		usleep(us);
}

/* x meets the O_DIRECT fd's offset/length alignment */
static inline bool aligned(const struct pcache *pc, uint64_t x)
{
	return (x & (pc->dio_align - 1)) == 0;
}

static inline uint8_t gstate_get(struct pcache_map *m, uint32_t g)
{
	return __atomic_load_n(&m->gstate[g], __ATOMIC_ACQUIRE);
}

static inline void set_bit64(uint64_t *bm, uint64_t i, bool on)
{
	if (on)
		__atomic_fetch_or(&bm[i / 64], 1ULL << (i % 64), __ATOMIC_SEQ_CST);
	else
		__atomic_fetch_and(&bm[i / 64], ~(1ULL << (i % 64)), __ATOMIC_SEQ_CST);
}

static inline void lock_pages(struct pcache *pc, uint64_t p0, uint64_t p1)
{
	for (uint64_t p = p0; p < p1; p++)
		page_lock(&pc->flags[p]);
}

static inline void unlock_pages(struct pcache *pc, uint64_t p0, uint64_t p1)
{
	for (uint64_t p = p1; p-- > p0;)
		page_unlock(&pc->flags[p]);
}

static inline bool all_have(struct pcache *pc, uint64_t p0, uint64_t p1, uint32_t bits)
{
	for (uint64_t p = p0; p < p1; p++)
		if ((page_flags(&pc->flags[p]) & bits) != bits)
			return false;
	return true;
}

static inline void set_range(struct pcache *pc, uint64_t p0, uint64_t p1, uint32_t bits)
{
	for (uint64_t p = p0; p < p1; p++)
		page_set(&pc->flags[p], bits);
}

/* Page p locked: set / clear its poison, keeping the poison_pages gauge. True if it changed. */
static inline bool page_poison_set(struct pcache *pc, uint64_t p)
{
	if (__atomic_fetch_or(&pc->flags[p], PG_POISON, __ATOMIC_ACQ_REL) & PG_POISON)
		return false;
	STAT_ADD(pc, poison_pages, 1);
	return true;
}

static inline bool page_poison_clear(struct pcache *pc, uint64_t p)
{
	if (!(__atomic_fetch_and(&pc->flags[p], ~PG_POISON, __ATOMIC_ACQ_REL) & PG_POISON))
		return false;
	STAT_ADD(pc, poison_pages, -1);
	return true;
}

/* Is any page of [p0, p1) poisoned? One load when nothing is (the common case). Exact for
 * pages the caller holds locked (the bit and the gauge change in the poisoner's lock
 * section); a lock-free caller may miss a poison that is being set (it then ran before it). */
static inline bool any_poisoned(struct pcache *pc, uint64_t p0, uint64_t p1)
{
	if (!__atomic_load_n(&pc->st.poison_pages, __ATOMIC_ACQUIRE))
		return false;
	for (uint64_t p = p0; p < p1; p++)
		if (page_flags(&pc->flags[p]) & PG_POISON)
			return true;
	return false;
}

static inline uint64_t clamp_pages(struct pcache *pc, uint64_t off, uint64_t len, uint64_t *p0)
{
	if (off >= pc->size || len == 0) {
		*p0 = 0;
		return 0;
	}
	uint64_t end = (len > pc->size - off) ? pc->size : off + len;
	*p0 = off / PAGE_SIZE;
	return (end + PAGE_SIZE - 1) / PAGE_SIZE;
}

/* ---- pcache.c ---------------------------------------------------------------------------- */

/* Format a one-line error into err; returns -1. */
__attribute__((format(printf, 3, 4)))
int pcache_fail(char *err, size_t errlen, const char *fmt, ...);
/* An invariant of the protocol does not hold: say which (once), and mark the cache broken so
 * the VM stops with the message (pcache_broken), rather than abort cvmm on a path a failing
 * ioctl or a bug can reach, or go on and write stale memory over the file. */
void pcache_bug(struct pcache *pc, const char *what, const char *file, int line);
#define PCACHE_CHECK(pc, cond, what) \
	do { if (!(cond)) pcache_bug((pc), (what), __FILE__, __LINE__); } while (0)

/* A fault injected for this call (pcache_set_inject): the errno to fail with, or 0. */
int pcache_injected(struct pcache *pc, int *err, int *count);

/* ---- pcache_file.c: file I/O, no page state ---------------------------------------------- */

/* preadv/pwritev the whole stream at off, resuming after short transfers; a read past the end
 * of the file gives zeros. 0 or -errno. */
int pcache_file_rwv(struct pcache *pc, bool wr, const struct iovec *iov, unsigned n, uint64_t off);
int pcache_file_read(struct pcache *pc, void *buf, size_t len, uint64_t off);
int pcache_file_write(struct pcache *pc, const void *buf, size_t len, uint64_t off);
/* Any offset, length and buffer alignment (bounce buffer when O_DIRECT cannot take it). The
 * writer's unaligned edges are read-modify-written: the caller holds the lock covering them. */
int pcache_file_readv_any(struct pcache *pc, uint64_t off, const struct iovec *iov, unsigned n,
			  uint64_t len);
int pcache_file_writev_any(struct pcache *pc, uint64_t off, const struct iovec *iov, unsigned n,
			   uint64_t len);
/* fallocate(KEEP_SIZE): reserve blocks (0 where the filesystem cannot). 0 or -errno. */
int pcache_file_reserve(struct pcache *pc, uint64_t off, uint64_t len);
/* Punch (zero = false) or zero a range of the file, writing zeros where neither is supported. */
int pcache_file_zero_range(struct pcache *pc, uint64_t off, uint64_t len, bool zero);

/* ---- observer.c: report file changes to the observer (pcache.h), if one is set ---------- */

void pcache_observe_writeback(struct pcache *pc, uint64_t off, const void *data, size_t len);
/* A direct write of [off, off+len) that succeeded; the caller still holds the locks covering
 * the sectors it touched (their other bytes are read back from the file when unaligned). */
void pcache_observe_write(struct pcache *pc, uint64_t off, const struct iovec *iov, unsigned n,
			  uint64_t len);
void pcache_observe_zero(struct pcache *pc, uint64_t off, uint64_t len, bool punch);
void pcache_observe_truncate(struct pcache *pc, uint64_t size);
void pcache_observe_flush(struct pcache *pc);
/* An observer is set that cannot take a truncate. */
bool pcache_observer_refuses_truncate(struct pcache *pc);

/* ---- dirty.c ----------------------------------------------------------------------------- */

void pcache_mark_dirty(struct pcache *pc, uint64_t p);
typedef int (*hint_fn)(struct pcache *pc, uint64_t first_page, uint64_t bits, void *arg);
int pcache_hints_take(struct pcache *pc, uint64_t p0, uint64_t p1, hint_fn fn, void *arg);
void map_apply_dirty_bits(struct pcache_map *m, uint32_t g, const uint64_t *bits);

/* ---- map.c ------------------------------------------------------------------------------- */

int unmap_granule_locked(struct pcache_map *m, uint32_t g);
int map_install_granule(struct pcache_map *m, uint32_t g, uint8_t want);
bool map_granule_ok(struct pcache_map *m, uint32_t g, bool quiescent);
int pcache_unmap_pages_locked(struct pcache *pc, uint64_t p0, uint64_t p1);
int pcache_harvest_maps(struct pcache *pc, uint64_t p0, uint64_t p1);

/* ---- fault.c ----------------------------------------------------------------------------- */

int pcache_read_missing(struct pcache *pc, uint64_t p0, uint64_t p1);
int pcache_mkwrite(struct pcache *pc, uint64_t p0, uint64_t p1);

/* ---- truncate.c ------------------------------------------------------------------------- */

int pcache_break_begin(struct pcache *pc, uint64_t p0, uint64_t p1);
void pcache_break_end(struct pcache *pc, uint64_t p0, uint64_t p1);

/* ---- writeback.c ------------------------------------------------------------------------- */

void pcache_set_error(struct pcache *pc, int err);
int pcache_launder_locked(struct pcache *pc, uint64_t p0, uint64_t p1, bool skip_pinned);

#endif
