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
#include "mm/pcache.h"
#include "mm/iov.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

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

	struct pcache_stats st;     /* updated with relaxed atomics */
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pcache *registry;

#define STAT_ADD(pc, field, n) __atomic_add_fetch(&(pc)->st.field, (uint64_t)(n), __ATOMIC_RELAXED)

/* Widen race windows for tests (CVMM_RACE_DELAY_US, pcache.h). */
static void race_delay(struct pcache *pc)
{
	unsigned us = __atomic_load_n(&pc->race_delay_us, __ATOMIC_RELAXED);
	if (us)
		usleep(us);
}

void pcache_set_race_delay(struct pcache *pc, unsigned us)
{
	__atomic_store_n(&pc->race_delay_us, us, __ATOMIC_RELAXED);
}

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

__attribute__((format(printf, 3, 4)))
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (err && errlen)
		vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* ---- injection --------------------------------------------------------------------------- */

void pcache_set_inject(struct pcache *pc, const struct pcache_inject *inj)
{
	pthread_mutex_lock(&pc->inj_lock);
	pc->inj = *inj;
	pthread_mutex_unlock(&pc->inj_lock);
}

static int injected(struct pcache *pc, int *err, int *count)
{
	int r = 0;
	if (!__atomic_load_n(err, __ATOMIC_RELAXED))
		return 0;
	pthread_mutex_lock(&pc->inj_lock);
	if (*err && *count) {
		r = *err;
		if (*count > 0 && --*count == 0)
			*err = 0;
	}
	pthread_mutex_unlock(&pc->inj_lock);
	return r;
}

/* ---- file I/O ---------------------------------------------------------------------------- */

/* x meets the O_DIRECT fd's offset/length alignment */
static bool aligned(const struct pcache *pc, uint64_t x)
{
	return (x & (pc->dio_align - 1)) == 0;
}

/* preadv/pwritev the whole stream at off, resuming after short transfers. A read that reaches
 * the end of the file fills the rest with zeros (with O_DIRECT an unaligned end of file gives
 * a short read and the next read at the unaligned offset would fail with EINVAL, so the end
 * is recognised with fstat rather than by a zero return alone). 0 or -errno. */
static int file_rwv(struct pcache *pc, bool wr, const struct iovec *iov, unsigned n, uint64_t off)
{
	int e = wr ? injected(pc, &pc->inj.pwrite_errno, &pc->inj.pwrite_count)
		   : injected(pc, &pc->inj.pread_errno, &pc->inj.pread_count);
	if (e)
		return -e;
	unsigned i = 0;
	size_t skip = 0;
	for (;;) {
		while (i < n && iov[i].iov_len == skip) {
			i++;
			skip = 0;
		}
		if (i >= n)
			return 0;
		struct iovec cur[64];
		unsigned k = 0;
		size_t want = 0;
		for (unsigned j = i; j < n && k < 64; j++) {
			size_t s = j == i ? skip : 0;
			if (iov[j].iov_len == s)
				continue;
			cur[k].iov_base = (uint8_t *)iov[j].iov_base + s;
			cur[k].iov_len = iov[j].iov_len - s;
			want += cur[k].iov_len;
			k++;
		}
		ssize_t r = wr ? pwritev(pc->fd, cur, (int)k, (off_t)off)
			       : preadv(pc->fd, cur, (int)k, (off_t)off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		bool eof = false;
		if (r == 0) {
			if (wr)
				return -EIO;
			eof = true;
		} else if (!wr && (size_t)r < want) {
			/* A short read of a regular file stops at its end. The file may have grown
			 * again since (a truncate into the window and back): fstat then says "not
			 * the end", but the read already saw the end, and the regrown part reads as
			 * zeros. With O_DIRECT an unaligned stop can only be that end, and resuming
			 * there would fail with EINVAL (test_blk_pcache_threads: a fault became a
			 * machine check, a pin failed). */
			struct stat st;
			eof = (pc->direct && !aligned(pc, off + (uint64_t)r)) ||
			      (fstat(pc->fd, &st) == 0 && off + (uint64_t)r >= (uint64_t)st.st_size);
		}
		off += (uint64_t)r;
		iov_advance(iov, n, &i, &skip, (size_t)r);
		if (eof) {
			iov_zero_rest(iov, n, i, skip);
			return 0;
		}
	}
}

/* Read len bytes at off; past EOF reads zeros. 0 or -errno. */
static int file_read(struct pcache *pc, void *buf, size_t len, uint64_t off)
{
	struct iovec v = { buf, len };
	return file_rwv(pc, false, &v, 1, off);
}

static int file_write(struct pcache *pc, const void *buf, size_t len, uint64_t off)
{
	struct iovec v = { (void *)buf, len };
	return file_rwv(pc, true, &v, 1, off);
}

static void record_error(struct pcache *pc, int err)
{
	pthread_mutex_lock(&pc->err_lock);
	pc->err_seq++;
	pc->err_last = err;
	pthread_mutex_unlock(&pc->err_lock);
}

uint64_t pcache_errseq_sample(struct pcache *pc)
{
	pthread_mutex_lock(&pc->err_lock);
	uint64_t s = pc->err_seq;
	pthread_mutex_unlock(&pc->err_lock);
	return s;
}

/* ---- dirty marking and hints ------------------------------------------------------------- */

/* Set the hint bits for page p (dh1 then dh0; seq_cst so that a writeback that clears dh0 and
 * then takes dh1 cannot miss a bit set here: see hints_take). */
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
static void mark_dirty(struct pcache *pc, uint64_t p)
{
	uint32_t old = __atomic_fetch_or(&pc->flags[p], PG_DIRTY, __ATOMIC_ACQ_REL);
	assert(old & PG_UPTODATE);
	(void)old;
	hint_set(pc, p);
}

/* Take the hints of pages [p0, p1) into out (a bitmap relative to dh1 word i: out[k] = hints of
 * dh1 word k). Calls fn for each dh1 word with hints. */
typedef int (*hint_fn)(struct pcache *pc, uint64_t first_page, uint64_t bits, void *arg);

static int hints_take(struct pcache *pc, uint64_t p0, uint64_t p1, hint_fn fn, void *arg)
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

/* ---- writeback of locked runs ------------------------------------------------------------ */

/* Write pages [p, p+n) (all locked by the caller, DIRTY already cleared) to the file. On failure
 * they are marked DIRTY again (the data is kept for a retry) and the error recorded for FLUSH. */
static int write_run(struct pcache *pc, uint64_t p, uint64_t n)
{
	int r = file_write(pc, pc->mem + p * PAGE_SIZE, n * PAGE_SIZE, p * PAGE_SIZE);
	if (r) {
		for (uint64_t k = 0; k < n; k++)
			mark_dirty(pc, p + k);
		record_error(pc, -r);
		STAT_ADD(pc, write_errors, 1);
		return r;
	}
	STAT_ADD(pc, pages_written, n);
	STAT_ADD(pc, wb_writes, 1);
	return 0;
}

/* Writeback callback for one dh1 word of hints: for each hinted page that is DIRTY, lock it and
 * extend a run over following hinted DIRTY pages that can be locked without waiting (ascending
 * order, so this never deadlocks with a fault or invalidation), clear DIRTY, write, unlock.
 * A run that reaches the end of the word goes on over the DIRTY pages after it, up to MAX_RUN
 * and the end of the range (*arg, a page number): their hints stay set and find them clean
 * later (DIRTY, not the hint, says what must be written). Without that, every run stopped at
 * a 256 KiB boundary: a FLUSH of 4096 dirty pages was 64 writes, not 16 (11.6 -> 9.0 ms). */
static int wb_word(struct pcache *pc, uint64_t first, uint64_t bits, void *arg)
{
	uint64_t pend = *(const uint64_t *)arg;
	int ret = 0;
	STAT_ADD(pc, wb_pages_examined, __builtin_popcountll(bits));
	while (bits) {
		unsigned b = (unsigned)__builtin_ctzll(bits);
		bits &= bits - 1;
		uint64_t p = first + b;
		if (!(page_flags(&pc->flags[p]) & PG_DIRTY))
			continue;
		page_lock(&pc->flags[p]);
		if (!page_test_clear_dirty(&pc->flags[p])) {
			page_unlock(&pc->flags[p]);
			continue;
		}
		/* the run: the hinted pages after p in this word, then any DIRTY page up to pend */
		uint64_t n = 1;
		while (n < MAX_RUN && (b + n < 64 ? (bits >> (b + n)) & 1 : p + n < pend)) {
			uint32_t *w = &pc->flags[p + n];
			if (!(page_flags(w) & PG_DIRTY) || !page_trylock(w))
				break;
			if (!page_test_clear_dirty(w)) {
				page_unlock(w);
				break;
			}
			if (b + n < 64)
				bits &= ~(1ULL << (b + n));
			n++;
		}
		race_delay(pc); /* DIRTY cleared, hint taken, not yet written: the f2 window */
		int r = write_run(pc, p, n);
		if (r && !ret)
			ret = r;
		for (uint64_t k = 0; k < n; k++)
			page_unlock(&pc->flags[p + k]);
	}
	return ret;
}

/* Launder: write back the DIRTY pages among locked pages [p0, p1), in runs. */
static int launder_locked(struct pcache *pc, uint64_t p0, uint64_t p1, bool skip_pinned)
{
	int ret = 0;
	uint64_t p = p0;
	while (p < p1) {
		if ((skip_pinned && pin_count(&pc->pins[p])) ||
		    !page_test_clear_dirty(&pc->flags[p])) {
			p++;
			continue;
		}
		uint64_t n = 1;
		while (p + n < p1 && n < MAX_RUN && !(skip_pinned && pin_count(&pc->pins[p + n])) &&
		       page_test_clear_dirty(&pc->flags[p + n]))
			n++;
		int r = write_run(pc, p, n);
		if (r && !ret)
			ret = r;
		p += n;
	}
	return ret;
}

/* ---- granules ---------------------------------------------------------------------------- */

static inline uint8_t gstate_get(struct pcache_map *m, uint32_t g)
{
	return __atomic_load_n(&m->gstate[g], __ATOMIC_ACQUIRE);
}

static void set_bit64(uint64_t *bm, uint64_t i, bool on)
{
	if (on)
		__atomic_fetch_or(&bm[i / 64], 1ULL << (i % 64), __ATOMIC_SEQ_CST);
	else
		__atomic_fetch_and(&bm[i / 64], ~(1ULL << (i % 64)), __ATOMIC_SEQ_CST);
}

/* OR a granule's dirty bitmap (from harvest/unmap) into DIRTY. */
static void apply_dirty_bits(struct pcache_map *m, uint32_t g, const uint64_t *bits)
{
	uint64_t first = (uint64_t)g << m->gpshift;
	uint64_t n = 0;
	for (uint32_t w = 0; w < (m->gpages + 63) / 64; w++) {
		uint64_t x = bits[w];
		while (x) {
			unsigned b = (unsigned)__builtin_ctzll(x);
			x &= x - 1;
			mark_dirty(m->pc, first + w * 64 + b);
			n++;
		}
	}
	if (n)
		STAT_ADD(m->pc, pages_harvested, n);
}

/* Slot lock held. Make granule g absent, collecting what the guest dirtied. */
static int unmap_granule_locked(struct pcache_map *m, uint32_t g)
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
	__atomic_store_n(&m->gstate[g], GS_ABSENT, __ATOMIC_RELEASE);
	if (cur == GS_WRITABLE) {
		set_bit64(m->gwritable, g, false);
		apply_dirty_bits(m, g, bits);
	}
	STAT_ADD(m->pc, slot_unmaps, 1);
	return 0;
}

/* Every page lock of granule g held. Install it as `want`. */
static int install_granule(struct pcache_map *m, uint32_t g, uint8_t want)
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
static bool granule_ok(struct pcache_map *m, uint32_t g, bool quiescent)
{
	struct pcache *pc = m->pc;
	uint8_t st = gstate_get(m, g);
	uint64_t first = (uint64_t)g << m->gpshift;
	for (uint64_t p = first; p < first + m->gpages; p++) {
		uint32_t f = page_flags(&pc->flags[p]);
		if ((f & PG_DIRTY) && !(f & PG_UPTODATE))
			return false;
		if (st != GS_ABSENT && !(f & PG_UPTODATE))
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
		if (!granule_ok(m, g, true))
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
static int unmap_pages_locked(struct pcache *pc, uint64_t p0, uint64_t p1)
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

static void lock_pages(struct pcache *pc, uint64_t p0, uint64_t p1)
{
	for (uint64_t p = p0; p < p1; p++)
		page_lock(&pc->flags[p]);
}

static void unlock_pages(struct pcache *pc, uint64_t p0, uint64_t p1)
{
	for (uint64_t p = p1; p-- > p0;)
		page_unlock(&pc->flags[p]);
}

/* ---- read-in and mkwrite ----------------------------------------------------------------- */

/* Pages [p0, p1) locked: read every page that is not UPTODATE, in runs, straight into the
 * cache memory (page aligned, so O_DIRECT works). 0 or -errno (pages of a failed run stay not
 * UPTODATE). */
static int read_missing(struct pcache *pc, uint64_t p0, uint64_t p1)
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
			int r = file_read(pc, pc->mem + p * PAGE_SIZE, n * PAGE_SIZE, p * PAGE_SIZE);
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

static int do_fallocate(struct pcache *pc, uint64_t off, uint64_t len)
{
	int e = injected(pc, &pc->inj.fallocate_errno, &pc->inj.fallocate_count);
	if (e)
		return -e;
	while (fallocate(pc->fd, FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) < 0) {
		if (errno == EINTR)
			continue;
		if (errno == EOPNOTSUPP) /* nothing to reserve with: like a fs without page_mkwrite */
			return 0;
		return -errno;
	}
	return 0;
}

/* page_mkwrite (seed 002, Chinner: block reservation must happen on the first write fault of
 * every mapped page, or a later writeback meets ENOSPC and the data is silently lost): reserve
 * backing blocks for the holes in pages [p0, p1) with fallocate(KEEP_SIZE). SEEK_HOLE finds
 * the holes cheaply; a fully allocated range costs one lseek. 0 or -errno. */
static int mkwrite(struct pcache *pc, uint64_t p0, uint64_t p1)
{
	STAT_ADD(pc, mkwrite_runs, 1);
	uint64_t pos = p0 * PAGE_SIZE, end = p1 * PAGE_SIZE;
	if (__atomic_load_n(&pc->inj.fallocate_errno, __ATOMIC_RELAXED))
		return do_fallocate(pc, pos, end - pos);
	while (pos < end) {
		off_t hole = lseek(pc->fd, (off_t)pos, SEEK_HOLE);
		if (hole < 0) /* no SEEK_HOLE here: reserve the whole range */
			return do_fallocate(pc, pos, end - pos);
		if ((uint64_t)hole >= end)
			break;
		off_t data = lseek(pc->fd, hole, SEEK_DATA);
		uint64_t hend = (data < 0 || (uint64_t)data > end) ? end : (uint64_t)data;
		int r = do_fallocate(pc, (uint64_t)hole, hend - (uint64_t)hole);
		if (r)
			return r;
		pos = hend;
	}
	return 0;
}

static bool all_have(struct pcache *pc, uint64_t p0, uint64_t p1, uint32_t bits)
{
	for (uint64_t p = p0; p < p1; p++)
		if ((page_flags(&pc->flags[p]) & bits) != bits)
			return false;
	return true;
}

static void set_range(struct pcache *pc, uint64_t p0, uint64_t p1, uint32_t bits)
{
	for (uint64_t p = p0; p < p1; p++)
		page_set(&pc->flags[p], bits);
}

/* Reserve pages [p0, p1) (locked). If the whole range cannot be reserved for lack of space,
 * fall back to just page `must` so one store that fits is not refused because its granule
 * does not. Returns 0 if `must` is RESERVED afterwards, else -errno. */
static int reserve(struct pcache *pc, uint64_t p0, uint64_t p1, uint64_t must)
{
	if (all_have(pc, p0, p1, PG_RESERVED))
		return 0;
	int r = mkwrite(pc, p0, p1);
	if (r == 0) {
		set_range(pc, p0, p1, PG_RESERVED);
		return 0;
	}
	if (p1 - p0 > 1 && (r == -ENOSPC || r == -EDQUOT) &&
	    !(page_flags(&pc->flags[must]) & PG_RESERVED)) {
		int r2 = mkwrite(pc, must, must + 1);
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
	uint64_t lo = partial ? p : gp0, hi = partial ? p + 1 : gp1;

	if (read_missing(pc, lo, hi)) {
		/* The file cannot give us this data: a media error at this address for the guest. */
		if (!(page_flags(&pc->flags[p]) & PG_UPTODATE)) {
			res = PCACHE_FAULT_MCE;
			goto out;
		}
		partial = true; /* p was read; a neighbour failed: do not install */
		lo = p;
		hi = p + 1;
	}

	if (kind == PCACHE_STORE) {
		if (!m->writable) {
			STAT_ADD(pc, stores_discarded, 1);
			res = PCACHE_FAULT_DISCARDED;
		} else if ((rr = reserve(pc, lo, hi, p))) {
			/* ENOSPC/EDQUOT (or EIO) reserving blocks: refuse the store now, while the guest
			 * can still be told, instead of losing it at writeback (seed 002). */
			if (rr == -ENOSPC || rr == -EDQUOT)
				STAT_ADD(pc, mkwrite_enospc, 1);
			else
				STAT_ADD(pc, write_errors, 1);
			res = PCACHE_FAULT_MCE;
		} else {
			/* KVM completed the instruction and will not log this store: apply + DIRTY. */
			memcpy(pc->mem + off, data, len);
			mark_dirty(pc, p);
		}
	} else if (kind == PCACHE_LOAD) {
		memcpy(data, pc->mem + off, len);
	}

	if (!partial) {
		uint8_t want = (m->writable && all_have(pc, gp0, gp1, PG_RESERVED)) ? GS_WRITABLE
										      : GS_READONLY;
		install_granule(m, g, want); /* failure logged; the access itself is complete */
		assert(granule_ok(m, g, false));
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
		int r = read_missing(pc, gp0, gp1);
		if (r) {
			unlock_pages(pc, gp0, gp1);
			return fail(err, errlen, "pmem populate: reading '%s' at offset %llu: %s",
				    pc->path, (unsigned long long)(gp0 * PAGE_SIZE), strerror(-r));
		}
		/* The mlock case of seed 002: mkwrite runs now, at populate time, because no write
		 * fault will come later for a WRITABLE granule. Nothing is marked DIRTY. */
		if (m->writable && !all_have(pc, gp0, gp1, PG_RESERVED)) {
			r = mkwrite(pc, gp0, gp1);
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
		r = install_granule(m, g, want);
		assert(granule_ok(m, g, false));
		unlock_pages(pc, gp0, gp1);
		if (r)
			return fail(err, errlen, "pmem populate: cannot map granule %u: %s", g,
				    strerror(-r));
	}
	return 0;
}

/* ---- writeback and flush ----------------------------------------------------------------- */

static uint64_t clamp_pages(struct pcache *pc, uint64_t off, uint64_t len, uint64_t *p0)
{
	if (off >= pc->size || len == 0) {
		*p0 = 0;
		return 0;
	}
	uint64_t end = (len > pc->size - off) ? pc->size : off + len;
	*p0 = off / PAGE_SIZE;
	return (end + PAGE_SIZE - 1) / PAGE_SIZE;
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
					apply_dirty_bits(m, g, bits);
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

static int harvest_all_maps(struct pcache *pc, uint64_t p0, uint64_t p1)
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

int pcache_writeback_range(struct pcache *pc, uint64_t off, uint64_t len)
{
	uint64_t p0, p1 = clamp_pages(pc, off, len, &p0);
	if (p0 >= p1)
		return 0;
	pthread_rwlock_rdlock(&pc->wb_lock);
	int r = harvest_all_maps(pc, p0, p1);
	if (r) {
		record_error(pc, EIO);
		r = -EIO;
	}
	int r2 = hints_take(pc, p0, p1, wb_word, &p1);
	pthread_rwlock_unlock(&pc->wb_lock);
	/* ... and wait: a page another thread took the hint of (or laundered) before our
	 * hints_take is being written by it right now; that write must be in the file before we
	 * return (the kernel waits on PG_writeback here). */
	pthread_rwlock_wrlock(&pc->wb_lock);
	pthread_rwlock_unlock(&pc->wb_lock);
	return r ? r : r2;
}

int pcache_flush(struct pcache *pc, uint64_t *cursor)
{
	uint64_t t0 = now_ns();
	pcache_writeback_range(pc, 0, pc->size); /* errors are recorded in the errseq */
	int e = injected(pc, &pc->inj.fdatasync_errno, &pc->inj.fdatasync_count);
	/* After a punch or truncate the extent map changed: fsync makes that durable too
	 * (fdatasync need not). Cleared before the call so a punch during it is not missed. */
	bool meta = __atomic_exchange_n(&pc->meta_dirty, 0, __ATOMIC_ACQ_REL);
	if (!e && (meta ? fsync(pc->fd) : fdatasync(pc->fd)) < 0)
		e = errno;
	if (e) {
		record_error(pc, e);
		if (meta)
			__atomic_store_n(&pc->meta_dirty, 1, __ATOMIC_RELEASE);
	}
	STAT_ADD(pc, flushes, 1);
	STAT_ADD(pc, flush_ns, now_ns() - t0);
	pthread_mutex_lock(&pc->err_lock);
	int ret = 0;
	if (pc->err_seq != *cursor) {
		*cursor = pc->err_seq;
		ret = -pc->err_last;
	}
	pthread_mutex_unlock(&pc->err_lock);
	return ret;
}

/* ---- invalidate -------------------------------------------------------------------------- */

/* Pages [p0, p1) locked and unmapped: launder and drop them. A pinned page is neither
 * laundered (a DMA may still be writing it; it is marked DIRTY at unpin and written then) nor
 * dropped. */
static int drop_locked(struct pcache *pc, uint64_t p0, uint64_t p1)
{
	int ret = launder_locked(pc, p0, p1, true) ? -EIO : 0;
	for (uint64_t p = p0; p < p1; p++) {
		uint32_t *w = &pc->flags[p];
		if (pin_count(&pc->pins[p])) {
			if (!ret)
				ret = -EBUSY;
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
	 * UnlockPage. A fault meanwhile waits on the page lock and then reads the file afresh.
	 * wb_lock (shared, before the page locks): a FLUSH meanwhile waits for our launder. */
	pthread_rwlock_rdlock(&pc->wb_lock);
	lock_pages(pc, p0, p1);
	int r = unmap_pages_locked(pc, p0, p1);
	if (r) {
		/* A granule may still be mapped: dropping its pages would expose stale memory to
		 * the guest. Keep them; the caller gets the error (seed 000: never silent). */
		launder_locked(pc, p0, p1, false);
		unlock_pages(pc, p0, p1);
		pthread_rwlock_unlock(&pc->wb_lock);
		return -EIO;
	}
	r = drop_locked(pc, p0, p1);
	unlock_pages(pc, p0, p1);
	pthread_rwlock_unlock(&pc->wb_lock);
	return r;
}

int pcache_external_change(struct pcache *pc, uint64_t off, uint64_t len)
{
	return pcache_invalidate_range(pc, off, len);
}

/* ---- direct I/O -------------------------------------------------------------------------- */

static uint64_t iov_total(const struct iovec *iov, unsigned n)
{
	uint64_t t = 0;
	for (unsigned i = 0; i < n; i++)
		t += iov[i].iov_len;
	return t;
}

/* Every segment usable for O_DIRECT as it is (and few enough for one preadv/pwritev). */
static bool iov_dio_ok(const struct pcache *pc, const struct iovec *iov, unsigned n)
{
	if (n > IOV_MAX)
		return false;
	for (unsigned i = 0; i < n; i++)
		if (!aligned(pc, (uintptr_t)iov[i].iov_base) || !aligned(pc, iov[i].iov_len))
			return false;
	return true;
}

/* Copy len bytes between the stream (from byte `skip`) and buf (a separate bounce buffer). */
static void iov_copy(const struct iovec *iov, unsigned n, uint64_t skip, uint8_t *buf,
		     size_t len, bool to_iov)
{
	for (unsigned i = 0; i < n && len; i++) {
		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		size_t c = iov[i].iov_len - skip;
		if (c > len)
			c = len;
		uint8_t *p = (uint8_t *)iov[i].iov_base + skip;
		if (to_iov)
			memcpy(p, buf, c);
		else
			memcpy(buf, p, c);
		buf += c;
		len -= c;
		skip = 0;
	}
}

/* Read [off, off+len) of the file into the stream, through an aligned bounce buffer when the
 * stream or the range does not suit O_DIRECT. */
static int file_readv_any(struct pcache *pc, uint64_t off, const struct iovec *iov, unsigned n,
			  uint64_t len)
{
	if (aligned(pc, off) && aligned(pc, len) && iov_dio_ok(pc, iov, n))
		return file_rwv(pc, false, iov, n, off);
	uint8_t *b;
	if (posix_memalign((void **)&b, 4096, BOUNCE))
		return -ENOMEM;
	int r = 0;
	uint64_t A = pc->dio_align, end = off + len;
	for (uint64_t c = off & ~(A - 1); c < end && !r; c += BOUNCE) {
		uint64_t cend = c + BOUNCE < end ? c + BOUNCE : end;
		uint64_t aend = (cend + A - 1) & ~(A - 1);
		r = file_read(pc, b, aend - c, c);
		uint64_t from = c > off ? c : off;
		if (!r)
			iov_copy(iov, n, from - off, b + (from - c), cend - from, true);
	}
	free(b);
	return r;
}

/* Write the stream to [off, off+len) of the file. Unaligned edges are read-modify-written in
 * an aligned bounce buffer; the caller holds whatever lock covers those edges (the page
 * locks, or rmw_lock beyond the cached range). */
static int file_writev_any(struct pcache *pc, uint64_t off, const struct iovec *iov, unsigned n,
			   uint64_t len)
{
	if (aligned(pc, off) && aligned(pc, len) && iov_dio_ok(pc, iov, n))
		return file_rwv(pc, true, iov, n, off);
	uint8_t *b;
	if (posix_memalign((void **)&b, 4096, BOUNCE))
		return -ENOMEM;
	uint64_t A = pc->dio_align;
	uint64_t end = off + len;
	uint64_t tail = (end + A - 1) & ~(A - 1);
	/* An unaligned end may push the file's size past `end`: see size_lock. */
	if (tail > end)
		pthread_mutex_lock(&pc->size_lock);
	struct stat st;
	uint64_t fsize = fstat(pc->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
	int r = 0;
	for (uint64_t c = off & ~(A - 1); c < end && !r; c += BOUNCE) {
		uint64_t cend = c + BOUNCE < end ? c + BOUNCE : end;
		uint64_t aend = (cend + A - 1) & ~(A - 1);
		if (c < off)
			r = file_read(pc, b, A, c);
		if (!r && aend > cend)
			r = file_read(pc, b + (aend - A - c), A, aend - A);
		if (r)
			break;
		uint64_t from = c > off ? c : off;
		iov_copy(iov, n, from - off, b + (from - c), cend - from, false);
		r = file_write(pc, b, aend - c, c);
	}
	/* The aligned tail may have extended the file past what was asked for: trim it back.
	 * size_lock keeps truncates out from the size sample to here; another writer past `end`
	 * would have grown the file beyond `tail` (writers of the same block are serialized by
	 * the page locks or rmw_lock), so "ends exactly at tail" means "our extension". */
	if (!r && end > fsize && tail > end && fstat(pc->fd, &st) == 0 &&
	    (uint64_t)st.st_size == tail)
		if (ftruncate(pc->fd, (off_t)end) < 0)
			r = -errno;
	if (tail > end)
		pthread_mutex_unlock(&pc->size_lock);
	free(b);
	return r;
}

ssize_t pcache_direct_readv(struct pcache *pc, uint64_t off, const struct iovec *iov, unsigned n)
{
	uint64_t len = iov_total(iov, n);
	if (len == 0)
		return 0;
	if (len > SSIZE_MAX || off + len < off)
		return -EINVAL;
	STAT_ADD(pc, direct_reads, 1);
	/* Seed 000 (Arcangeli): "msync all the mappings ... before the O_DIRECT read hits the
	 * disk": harvest the guest's logged stores over the range (write-protecting again) and
	 * write every DIRTY page, or the read returns what the file held before them. No shootdown
	 * is needed for a read, and no page lock is held while the data moves, so the destination
	 * may be pinned cache memory, even of this very range (d2, seed 003). */
	int r = pcache_writeback_range(pc, off, len);
	if (r)
		return r;
	race_delay(pc);
	r = file_readv_any(pc, off, iov, n, len);
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
		r = file_writev_any(pc, off, iov, n, len);
		pthread_mutex_unlock(&pc->rmw_lock);
		goto out;
	}
	bool beyond = a1 > pc->size;
	if (beyond)
		pthread_mutex_lock(&pc->rmw_lock);

	/* LOCK ORDER (pcache.h; seed 003, the page lock vs mmap_sem deadlock): the caller took
	 * its pins (pcache_pin_ranges) before calling here; we take the page locks in ascending
	 * order, then slot locks inside unmap_pages_locked. Nothing from here to the unlock waits
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
	r = unmap_pages_locked(pc, p0, p1) ? -EIO : 0;
	if (!r) {
		for (uint64_t p = p0; p < p1; p++) {
			uint64_t ps = p * PAGE_SIZE;
			if (ps >= off && ps + PAGE_SIZE <= off + len && !pin_count(&pc->pins[p]))
				page_clear(&pc->flags[p], PG_DIRTY);
		}
		r = launder_locked(pc, p0, p1, false);
	}
	/* 2. The file write, page locks held: no fault can read the range half-written, so the
	 *    kernel's second invalidation (for pages faulted in during the I/O) has nothing to
	 *    do here. */
	bool wrote = false;
	if (!r) {
		race_delay(pc);
		r = file_writev_any(pc, off, iov, n, len);
		wrote = true;
	}
	/* 3. Drop the pages, or refresh the pinned ones. All legitimate dirt was laundered in
	 *    step 1 and the granules are unmapped, so a page DIRTY now was dirtied by a DMA that
	 *    unpinned during the write: it ran "before" this write, whose data wins; drop it. A
	 *    page still pinned cannot be dropped (its DMA holds a pointer into it): it is
	 *    refreshed from the file under its lock, so cache page == file (the write-through
	 *    fallback, seed 000: never leave the two views disagreeing). If the write did not
	 *    happen (launder or unmap failed) pages keep their data and a DIRTY page stays. */
	for (uint64_t p = p0; p < p1; p++) {
		uint32_t *w = &pc->flags[p];
		if (pin_count(&pc->pins[p])) {
			if (wrote && (page_flags(w) & PG_UPTODATE)) {
				int rr = file_read(pc, pc->mem + p * PAGE_SIZE, PAGE_SIZE,
						   p * PAGE_SIZE);
				STAT_ADD(pc, direct_write_fallback, 1);
				if (rr) {
					/* cannot happen short of a media error right after the write:
					 * the page may now disagree with the file; say so at FLUSH */
					record_error(pc, -rr);
					STAT_ADD(pc, read_errors, 1);
					if (!r)
						r = rr;
				} else {
					page_clear(w, PG_DIRTY);
				}
			}
			continue;
		}
		if (!wrote && (page_flags(w) & PG_DIRTY))
			continue; /* launder failed: keep the data for a retry */
		page_clear(w, PG_UPTODATE | PG_RESERVED | PG_DIRTY);
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

/* ---- pin / unpin ------------------------------------------------------------------------- */

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
	int r = read_missing(pc, p, p + 1);
	if (r)
		STAT_ADD(pc, read_errors, 1);
	if (!r && write && !(page_flags(&pc->flags[p]) & PG_RESERVED)) {
		/* seed 002: the device is about to store into the page: mkwrite now, while the
		 * request can still fail, not at writeback */
		r = mkwrite(pc, p, p + 1);
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
			mark_dirty(pc, p);
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

/* ---- break layouts + punch, truncate ----------------------------------------------------- */

static int file_zero_range(struct pcache *pc, uint64_t off, uint64_t len, bool zero)
{
	int mode = FALLOC_FL_KEEP_SIZE | (zero ? FALLOC_FL_ZERO_RANGE : FALLOC_FL_PUNCH_HOLE);
	while (fallocate(pc->fd, mode, (off_t)off, (off_t)len) < 0) {
		if (errno == EINTR)
			continue;
		if (errno != EOPNOTSUPP)
			return -errno;
		/* no punch/zero support: write zeros */
		uint8_t *z;
		if (posix_memalign((void **)&z, 4096, BOUNCE))
			return -ENOMEM;
		memset(z, 0, BOUNCE);
		int r = 0;
		for (uint64_t c = off; c < off + len && !r; c += BOUNCE) {
			uint64_t k = off + len - c < BOUNCE ? off + len - c : BOUNCE;
			struct iovec v = { z, k };
			r = file_writev_any(pc, c, &v, 1, k);
		}
		free(z);
		return r;
	}
	__atomic_store_n(&pc->meta_dirty, 1, __ATOMIC_RELEASE);
	return 0;
}

enum break_op { BREAK_PUNCH, BREAK_ZERO, BREAK_TRUNCATE };

/* The file side of a break, inside it (page locks of the cached part held). */
static int break_file(struct pcache *pc, uint64_t off, uint64_t len, enum break_op op)
{
	if (op == BREAK_TRUNCATE) {
		int r = 0;
		pthread_mutex_lock(&pc->size_lock);
		while (ftruncate(pc->fd, (off_t)off) < 0)
			if (errno != EINTR) {
				r = -errno;
				break;
			}
		pthread_mutex_unlock(&pc->size_lock);
		if (!r)
			__atomic_store_n(&pc->meta_dirty, 1, __ATOMIC_RELEASE);
		return r;
	}
	return file_zero_range(pc, off, len, op == BREAK_ZERO);
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
		/* 1. BREAKING: from here new pins are refused and faults wait (seed 001: drain all
		 *    pinned pages before an operation that changes the block map). */
		for (uint64_t p = p0; p < p1; p++)
			pin_set_breaking(&pc->pins[p]);
		/* 2. Unmap: a fault that checked BREAKING before step 1 holds its page locks; we
		 *    wait for it here and then remove what it installed. */
		lock_pages(pc, p0, p1);
		int ru = unmap_pages_locked(pc, p0, p1);
		unlock_pages(pc, p0, p1);
		/* 3. Drain the DMAs that started before the break, without holding page locks (a
		 *    pin holder may need one, e.g. to finish a direct write it is part of). A pinner
		 *    that meets BREAKING drops all its pins before waiting (pcache_pin_ranges), so
		 *    this drain cannot wait on a pin whose holder waits on us. */
		race_delay(pc);
		for (uint64_t p = p0; p < p1; p++)
			pin_wait_drained(&pc->pins[p]);
		if (ru) {
			for (uint64_t p = p0; p < p1; p++)
				pin_clear_breaking(&pc->pins[p]);
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
		for (uint64_t p = p0; p < p1; p++)
			pin_clear_breaking(&pc->pins[p]);
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
	STAT_ADD(pc, truncates, 1);
	/* off = the new end of file; the break covers the cached pages beyond it (len 0 if the
	 * cache ends before it: then only the ftruncate). */
	return break_range(pc, size, size < pc->size ? pc->size - size : 0, BREAK_TRUNCATE);
}

uint64_t pcache_file_size(struct pcache *pc)
{
	struct stat st;
	return fstat(pc->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* ---- open / close ------------------------------------------------------------------------ */

uint64_t pcache_size(const struct pcache *pc) { return pc->size; }
uint64_t pcache_file_ino(const struct pcache *pc) { return (uint64_t)pc->ino; }
bool pcache_is_readonly(const struct pcache *pc) { return pc->readonly; }

void pcache_get(struct pcache *pc)
{
	pthread_mutex_lock(&reg_lock);
	pc->refs++;
	pthread_mutex_unlock(&reg_lock);
}

bool pcache_same_file(const struct pcache *pc, const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && st.st_dev == pc->dev && st.st_ino == pc->ino;
}
uint8_t *pcache_mem(const struct pcache *pc) { return pc->mem; }
bool pcache_is_direct(const struct pcache *pc) { return pc->direct; }

uint32_t pcache_page_flags(struct pcache *pc, uint64_t off)
{
	return page_flags(&pc->flags[off / PAGE_SIZE]);
}

uint32_t pcache_page_pins(struct pcache *pc, uint64_t off)
{
	return __atomic_load_n(&pc->pins[off / PAGE_SIZE], __ATOMIC_ACQUIRE);
}

static void *zalloc_big(size_t bytes)
{
	/* calloc of a large block is a fresh anonymous mapping: the page words of an untouched
	 * part of the window cost no memory. */
	return calloc(1, bytes ? bytes : 1);
}

static uint32_t dio_alignment(int fd, bool direct)
{
	if (!direct)
		return 1;
#ifdef STATX_DIOALIGN
	struct statx sx;
	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
	    (sx.stx_mask & STATX_DIOALIGN) && sx.stx_dio_offset_align) {
		uint32_t a = sx.stx_dio_offset_align > sx.stx_dio_mem_align ? sx.stx_dio_offset_align
									   : sx.stx_dio_mem_align;
		if (a && !(a & (a - 1)) && a <= PAGE_SIZE)
			return a;
	}
#endif
	return PAGE_SIZE; /* safe for every block device */
}

static void pcache_free(struct pcache *pc)
{
	if (pc->mem)
		munmap(pc->mem, pc->size);
	if (pc->memfd >= 0)
		close(pc->memfd);
	if (pc->fd >= 0)
		close(pc->fd);
	free(pc->flags);
	free(pc->pins);
	free(pc->dh1);
	free(pc->dh0);
	pthread_rwlock_destroy(&pc->maps_lock);
	pthread_rwlock_destroy(&pc->wb_lock);
	pthread_mutex_destroy(&pc->err_lock);
	pthread_mutex_destroy(&pc->break_lock);
	pthread_mutex_destroy(&pc->rmw_lock);
	pthread_mutex_destroy(&pc->size_lock);
	pthread_mutex_destroy(&pc->inj_lock);
	free(pc);
}

int pcache_open(const char *path, uint64_t size, bool readonly, struct pcache **out, char *err,
		size_t errlen)
{
	*out = NULL;
	if (!path || !path[0])
		return fail(err, errlen, "pmem path: empty");
	if (size % (2 * MIB))
		return fail(err, errlen, "pmem size: %llu bytes is not a multiple of 2 MiB",
			    (unsigned long long)size);
	int oflags = (readonly ? O_RDONLY : O_RDWR | O_CREAT) | O_CLOEXEC;
	bool direct = true;
	int fd = open(path, oflags | O_DIRECT, 0644);
	if (fd < 0 && errno == EINVAL) {
		direct = false;
		fd = open(path, oflags, 0644);
	}
	if (fd < 0)
		return fail(err, errlen, "pmem path '%s': %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return fail(err, errlen, "pmem path '%s': not a regular file", path);
	}

	pthread_mutex_lock(&reg_lock);
	for (struct pcache *c = registry; c; c = c->next) {
		if (c->dev != st.st_dev || c->ino != st.st_ino)
			continue;
		int r = 0;
		if (size > c->size)
			r = fail(err, errlen, "pmem path '%s': already open with size %llu, smaller "
				 "than %llu", path, (unsigned long long)c->size,
				 (unsigned long long)size);
		else if (c->readonly && !readonly)
			r = fail(err, errlen, "pmem path '%s': already open read-only", path);
		else
			c->refs++;
		pthread_mutex_unlock(&reg_lock);
		close(fd);
		if (r == 0)
			*out = c;
		return r;
	}

	struct pcache *pc = calloc(1, sizeof(*pc));
	if (!pc) {
		pthread_mutex_unlock(&reg_lock);
		close(fd);
		return fail(err, errlen, "pmem: out of memory");
	}
	pc->fd = fd;
	pc->memfd = -1;
	pc->refs = 1;
	pc->dev = st.st_dev;
	pc->ino = st.st_ino;
	pc->direct = direct;
	pc->readonly = readonly;
	snprintf(pc->path, sizeof(pc->path), "%s", path);
	pthread_rwlock_init(&pc->maps_lock, NULL);
	pthread_rwlockattr_t wa;
	pthread_rwlockattr_init(&wa);
	pthread_rwlockattr_setkind_np(&wa, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&pc->wb_lock, &wa);
	pthread_rwlockattr_destroy(&wa);
	pthread_mutex_init(&pc->err_lock, NULL);
	pthread_mutex_init(&pc->break_lock, NULL);
	pthread_mutex_init(&pc->rmw_lock, NULL);
	pthread_mutex_init(&pc->size_lock, NULL);
	pthread_mutex_init(&pc->inj_lock, NULL);
	int r = -1;

	if (size == 0) {
		size = (uint64_t)st.st_size;
		if (size == 0 || size % (2 * MIB)) {
			fail(err, errlen, "pmem path '%s': file size %llu is not a nonzero multiple of "
			     "2 MiB (set [pmem] size to use a part of it, or resize the file)", path,
			     (unsigned long long)size);
			goto out;
		}
	} else if ((uint64_t)st.st_size < size) {
		/* A shorter file is extended to the window size (sparse: ftruncate allocates no
		 * blocks; mkwrite reserves them on the first store, seed 002). */
		if (readonly) {
			fail(err, errlen, "pmem path '%s': file is %llu bytes, shorter than size %llu, "
			     "and readonly = on forbids extending it", path,
			     (unsigned long long)st.st_size, (unsigned long long)size);
			goto out;
		}
		if (ftruncate(fd, (off_t)size) < 0) {
			fail(err, errlen, "pmem path '%s': extending to %llu bytes: %s", path,
			     (unsigned long long)size, strerror(errno));
			goto out;
		}
	}
	pc->size = size;
	pc->npages = size / PAGE_SIZE;
	pc->dio_align = dio_alignment(fd, direct);
	const char *rd = getenv("CVMM_RACE_DELAY_US");
	if (rd && *rd) {
		char *end;
		unsigned long us = strtoul(rd, &end, 10);
		if (*end || us > 10000000) {
			fail(err, errlen, "CVMM_RACE_DELAY_US='%s': want microseconds, 0..10000000",
			     rd);
			goto out;
		}
		pc->race_delay_us = (unsigned)us;
	}
	if (!direct)
		fprintf(stderr, "cvmm: pmem '%s': the filesystem refuses O_DIRECT (tmpfs?); using "
			"buffered I/O, so data also passes through the host page cache\n", path);

	pc->memfd = memfd_create("cvmm-pcache", MFD_CLOEXEC);
	if (pc->memfd < 0 || ftruncate(pc->memfd, (off_t)size) < 0) {
		fail(err, errlen, "pmem: cache memory (memfd of %llu bytes): %s",
		     (unsigned long long)size, strerror(errno));
		goto out;
	}
	pc->mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, pc->memfd, 0);
	if (pc->mem == MAP_FAILED) {
		pc->mem = NULL;
		fail(err, errlen, "pmem: mapping cache memory: %s", strerror(errno));
		goto out;
	}
	pc->ndh1 = (pc->npages + 63) / 64;
	pc->ndh0 = (pc->ndh1 + 63) / 64;
	pc->flags = zalloc_big(pc->npages * sizeof(uint32_t));
	pc->pins = zalloc_big(pc->npages * sizeof(uint32_t));
	pc->dh1 = zalloc_big(pc->ndh1 * sizeof(uint64_t));
	pc->dh0 = zalloc_big(pc->ndh0 * sizeof(uint64_t));
	if (!pc->flags || !pc->pins || !pc->dh1 || !pc->dh0) {
		fail(err, errlen, "pmem: out of memory for %llu page words",
		     (unsigned long long)pc->npages);
		goto out;
	}
	pc->next = registry;
	registry = pc;
	*out = pc;
	r = 0;
out:
	pthread_mutex_unlock(&reg_lock);
	if (r)
		pcache_free(pc);
	return r;
}

void pcache_put(struct pcache *pc)
{
	if (!pc)
		return;
	pthread_mutex_lock(&reg_lock);
	if (--pc->refs > 0) {
		pthread_mutex_unlock(&reg_lock);
		return;
	}
	for (struct pcache **pp = &registry; *pp; pp = &(*pp)->next)
		if (*pp == pc) {
			*pp = pc->next;
			break;
		}
	pthread_mutex_unlock(&reg_lock);
	assert(!pc->maps);
	/* Like closing the last mapping of a MAP_SHARED file: dirty data is written, not lost. */
	uint64_t cursor = pcache_errseq_sample(pc);
	int r = pcache_flush(pc, &cursor);
	if (r)
		fprintf(stderr, "cvmm: pmem '%s': writing back dirty data at exit: %s\n", pc->path,
			strerror(-r));
	pcache_free(pc);
}

/* ---- maps -------------------------------------------------------------------------------- */

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
	mark_dirty(m->pc, ((uint64_t)g << m->gpshift) + page);
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
		return fail(err, errlen, "pmem granule: %llu bytes is not a power of two in "
			    "4 KiB..2 MiB dividing the size", (unsigned long long)granule);
	}
	if (gpa_base % granule) {
		sh->ops->destroy(sh);
		return fail(err, errlen, "pmem: window base 0x%llx not aligned to the granule",
			    (unsigned long long)gpa_base);
	}
	if (writable && pc->readonly) {
		sh->ops->destroy(sh);
		return fail(err, errlen, "pmem path '%s': opened read-only, cannot map writable",
			    pc->path);
	}
	struct pcache_map *m = calloc(1, sizeof(*m));
	if (!m) {
		sh->ops->destroy(sh);
		return fail(err, errlen, "pmem: out of memory");
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
		return fail(err, errlen, "pmem: out of memory");
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

/* ---- statistics -------------------------------------------------------------------------- */

void pcache_stats_get(struct pcache *pc, struct pcache_stats *out)
{
	uint64_t *dst = (uint64_t *)out, *src = (uint64_t *)&pc->st;
	for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

void pcache_stats_line(struct pcache *pc, char *buf, size_t len)
{
	struct pcache_stats s;
	pcache_stats_get(pc, &s);
	snprintf(buf, len,
		 "faults %llu (load %llu, store %llu, store-ro %llu, fetch %llu), read %llu pages "
		 "(+%llu holes), "
		 "wrote %llu pages, %llu flushes (%.3f ms), mkwrite ENOSPC %llu",
		 (unsigned long long)(s.fault_load_absent + s.fault_store_absent +
				      s.fault_store_readonly + s.fault_fetch),
		 (unsigned long long)s.fault_load_absent, (unsigned long long)s.fault_store_absent,
		 (unsigned long long)s.fault_store_readonly, (unsigned long long)s.fault_fetch,
		 (unsigned long long)s.pages_read, (unsigned long long)s.pages_zeroed,
		 (unsigned long long)s.pages_written,
		 (unsigned long long)s.flushes, (double)s.flush_ns / 1e6,
		 (unsigned long long)s.mkwrite_enospc);
}

void pcache_stats_json(struct pcache *pc, FILE *f)
{
	struct pcache_stats s;
	pcache_stats_get(pc, &s);
#define U(x) (unsigned long long)(x)
	fprintf(f, "{\"faults\": {\"load_absent\": %llu, \"store_absent\": %llu, "
		   "\"store_readonly\": %llu, \"fetch\": %llu, \"waited_breaking\": %llu}, "
		   "\"pages_read\": %llu, \"pages_zeroed\": %llu, \"pages_written\": %llu, "
		   "\"wb_writes\": %llu, \"flushes\": %llu, "
		   "\"flush_s\": %.6f, \"mkwrite\": %llu, \"mkwrite_enospc\": %llu, "
		   "\"read_errors\": %llu, \"write_errors\": %llu, \"stores_discarded\": %llu, "
		   "\"slot_maps\": %llu, \"slot_unmaps\": %llu, \"harvests\": %llu, "
		   "\"pages_harvested\": %llu, \"invalidations\": %llu, \"pins\": %llu, "
		   "\"breaks\": %llu, \"direct_reads\": %llu, \"direct_writes\": %llu, "
		   "\"direct_read_bytes\": %llu, \"direct_write_bytes\": %llu, "
		   "\"direct_write_fallback_pages\": %llu, \"pages_pinned\": %llu, "
		   "\"pin_waits_breaking\": %llu, \"truncates\": %llu, "
		   "\"wb_pages_examined\": %llu}",
		U(s.fault_load_absent), U(s.fault_store_absent), U(s.fault_store_readonly),
		U(s.fault_fetch), U(s.fault_wait_breaking), U(s.pages_read), U(s.pages_zeroed),
		U(s.pages_written), U(s.wb_writes),
		U(s.flushes), (double)s.flush_ns / 1e9, U(s.mkwrite_runs), U(s.mkwrite_enospc),
		U(s.read_errors), U(s.write_errors), U(s.stores_discarded), U(s.slot_maps),
		U(s.slot_unmaps), U(s.harvests), U(s.pages_harvested), U(s.invalidations),
		U(s.pins), U(s.breaks), U(s.direct_reads), U(s.direct_writes),
		U(s.direct_read_bytes), U(s.direct_write_bytes), U(s.direct_write_fallback),
		U(s.pages_pinned), U(s.pin_waits_breaking), U(s.truncates), U(s.wb_pages_examined));
#undef U
}
