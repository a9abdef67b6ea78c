/* crash: generations of pmem stores and blk writes made durable by virtio-pmem and virtio-blk
 * FLUSHes and announced on the console, for a host test that kills the VMM with SIGKILL at
 * random moments and checks that every acknowledged byte is in the file
 * (tests/integration/crash.sh, guest/tools/check-crash.py; issue 12).
 *
 *   scenario=crash [seed=N] [base=OFF] [region=8M] [pmem_pages=96] [blk_pages=96] [pm_max=12]
 *                  [bk_max=6] [idle_us=3000] [gens=0] [resume=0] [blk_off=BYTES]
 *                  [timeout_ms=2000] [blk_dev=N] [pmem_dev=N]
 *
 * CONFIGURATION. One backing file F is both the pmem window (window offset o = file offset o)
 * and the blk disk (disk byte d = file byte d + blk_off, the host's [blk] offset; fsx_io.h).
 * The scenario works in the region [base, base + region) of the window (base 4 KiB aligned,
 * default 0; the region must lie on the disk too). Its 4 KiB pages are split, once per seed,
 * into two DISJOINT pools picked at random over the whole region (so every 2 MiB granule holds
 * pages of both): pmem_pages pages that only pmem stores touch (page 0 of the region is always
 * one: the header) and blk_pages pages that only blk writes touch. No other page of the region
 * is ever written. The two views never write the same byte, but they share granules: a blk
 * write invalidates (unmaps) the granules that hold pages dirtied by pmem stores while a pmem
 * FLUSH writes those pages back (issue 12, finding 1). A separate disk file of the same size
 * ([blk] offset = 0) works too: the blk pool pages are then at the same offsets in that file
 * (check-crash.py --blk-file), and the views share nothing.
 *
 * THE DATA. The 8-byte little-endian word at window offset o (8-aligned) written in generation g:
 *
 *     enc(o, g) = g << 32 | ((o / 8) ^ T) & 0xffffffff,     T = mix64(seed) & 0xffffffff
 *
 * (mix64: lib/pattern.h). So any word says which generation wrote it and that it belongs at
 * o; zero means never written (the harness starts from a zero-filled file).
 *
 * GENERATION g (g = start, start + 1, ...) has pmem extents P_g and blk extents B_g, drawn from
 * xorshift64 (fsx_io.h) seeded with mix64(seed ^ g * 0xD6E8FEB86659FD93) | 1 in this order
 * (guest/tools/check-crash.py replays exactly this):
 *   order = rnd % 2
 *   n = 1 + rnd % pm_max pmem extents, each: page = pmem_pool[rnd % pmem_pages]; r = rnd % 4;
 *       r < 2: the whole page, else w0 = rnd % 512, nw = 1 + rnd % (512 - w0): words
 *       [w0, w0 + nw) of the page; then always words [0, 8) of the header page (region page 0)
 *   m = 1 + rnd % bk_max blk extents, each: page = blk_pool[rnd % blk_pages]; r = rnd % 4;
 *       r < 2: the whole page (8 sectors), else s0 = rnd % 8, ns = 1 + rnd % (8 - s0): sectors
 *       [s0, s0 + ns) of the page (sub-block writes: cvmm's blk_size is 4 KiB); an extent whose
 *       page an earlier extent of the generation already has is dropped (requests in flight
 *       together never share a block)
 * and runs:
 *   1. a blk FLUSH (it makes B_{g-1}, completed in generation g - 1, durable);
 *   2. order 0: the pmem stores of P_g (8-byte volatile stores of enc(o, g)), then the blk
 *      writes of B_g (RAM buffers of enc(o, g)) submitted with one kick; order 1: the blk
 *      writes first, then the stores (which then race with the writes' invalidations);
 *   3. a pmem FLUSH while those blk writes are in flight;
 *   4. wait for every blk write;
 *   5. if the two FLUSHes and every write returned OK: print `crash: acked g`;
 *   6. idle a random 0..idle_us microseconds (TSC-timed, not part of the layout).
 * The pmem FLUSH is the last FLUSH before the ack on purpose: with pmem and blk on one file a
 * blk FLUSH also writes back the window's dirty pages, and would rescue a page that the pmem
 * FLUSH missed (finding 1) if it came later in the generation. The next FLUSH comes only after
 * the idle time, so a kill then finds what the pmem FLUSH really wrote.
 *
 *     crash: acked G        means: P_1..P_G and B_1..B_(G-1) are durable
 *
 * (B_G has completed but waits for generation G + 1's blk FLUSH; one line per generation:
 * console output costs an exit per byte here). From then on every byte of those must be in the
 * file: a byte whose last acknowledged write is from generation k holds generation k's value or
 * that of a later generation that writes it, never older, never anything else. At most
 * generation G + 1 has begun (a run prints the ack of g before generation g + 1). An error ends
 * the run with `not ok` and status 1. gens=N ends after generation N with one more blk FLUSH and
 * `crash: done N` (everything <= N durable) and a passing verdict; gens=0 (default) runs until
 * killed.
 *
 * START. The guest prints one line before the first generation:
 *     # crash: layout seed=0x... base=N region=N pmem_pages=N blk_pages=N pm_max=N bk_max=N start=S
 * resume=1 continues a file that an earlier (killed) run left behind: the header word (window
 * offset base) holds enc(base, h) from the last generation h whose stores reached the file
 * (0: none); h is G or G + 1 for that run's last ack G. The run first writes B_(h-1) again (it
 * may be complete but not flushed), then starts at generation S = h, redoing it: rewriting those
 * generations' values never puts anything older than acknowledged into a location. A header
 * that is neither 0 nor enc(base, h) is a failure.
 */
#include "lib/pattern.h"
#include "scenarios/fsx_io.h"
#include "scenarios/scenario.h"

#define WORDS (PAGE / 8)
#define SECTORS (PAGE / SECTOR)
#define MAX_POOL 4096
#define MAX_PM 64
#define MAX_BK 16

static struct {
	uint64_t seed, base, region, npages, np, nb, pm_max, bk_max, gens, idle_us;
	uint32_t tag;
	uint32_t *pmem_pool, *blk_pool;
	struct cio_ctx c[MAX_BK];
	uint64_t *buf[MAX_BK];
	char why[160];
} s;

static inline uint64_t enc(uint64_t o, uint64_t g)
{
	return g << 32 | (((o >> 3) ^ s.tag) & 0xffffffffull);
}

static uint64_t rnd(uint64_t *st, uint64_t n)
{
	return xorshift64(st) % n;
}

/* The two pools: region page 0 first into pmem, then pmem_pages - 1 and blk_pages distinct
 * random pages (xorshift64 seeded with mix64(seed ^ 0x706f6f6c) | 1). */
static void make_pools(uint8_t *taken)
{
	uint64_t st = mix64(s.seed ^ 0x706f6f6cull) | 1;
	uint64_t n = 0;

	memset(taken, 0, s.npages);
	s.pmem_pool[n++] = 0;
	taken[0] = 1;
	while (n < s.np) {
		uint64_t p = rnd(&st, s.npages);

		if (!taken[p]) {
			taken[p] = 1;
			s.pmem_pool[n++] = p;
		}
	}
	for (n = 0; n < s.nb;) {
		uint64_t p = rnd(&st, s.npages);

		if (!taken[p]) {
			taken[p] = 1;
			s.blk_pool[n++] = p;
		}
	}
}

static void store_words(uint64_t page, uint64_t w0, uint64_t nw, uint64_t g)
{
	uint64_t o = s.base + page * PAGE + w0 * 8;
	volatile uint64_t *w = (volatile uint64_t *)(cio.win + o);

	for (uint64_t i = 0; i < nw; i++)
		w[i] = enc(o + 8 * i, g);
}

struct bext {
	uint64_t page, s0, ns;
};

struct step {
	uint64_t order, npm, nbk;
	uint64_t pm[MAX_PM + 1][3]; /* page, first word, words */
	struct bext bk[MAX_BK];
};

static void draw(uint64_t g, struct step *d)
{
	uint64_t st = mix64(s.seed ^ (g * 0xD6E8FEB86659FD93ull)) | 1;
	uint64_t m;

	d->order = rnd(&st, 2);
	d->npm = 1 + rnd(&st, s.pm_max);
	for (uint64_t i = 0; i < d->npm; i++) {
		d->pm[i][0] = s.pmem_pool[rnd(&st, s.np)];
		if (rnd(&st, 4) < 2) {
			d->pm[i][1] = 0;
			d->pm[i][2] = WORDS;
		} else {
			d->pm[i][1] = rnd(&st, WORDS);
			d->pm[i][2] = 1 + rnd(&st, WORDS - d->pm[i][1]);
		}
	}
	d->pm[d->npm][0] = 0; /* the header */
	d->pm[d->npm][1] = 0;
	d->pm[d->npm][2] = 8;
	d->npm++;
	m = 1 + rnd(&st, s.bk_max);
	d->nbk = 0;
	for (uint64_t i = 0; i < m; i++) {
		struct bext e = { s.blk_pool[rnd(&st, s.nb)], 0, SECTORS };
		bool dup = false;

		if (rnd(&st, 4) >= 2) {
			e.s0 = rnd(&st, SECTORS);
			e.ns = 1 + rnd(&st, SECTORS - e.s0);
		}
		for (uint64_t j = 0; j < d->nbk; j++)
			dup |= d->bk[j].page == e.page;
		if (!dup)
			d->bk[d->nbk++] = e;
	}
}

/* Submit generation g's blk writes (one kick); statuses of the submissions in st[]. */
static void blk_submit(uint64_t g, const struct step *d, int *st)
{
	for (uint64_t i = 0; i < d->nbk; i++) {
		uint64_t o = s.base + d->bk[i].page * PAGE + d->bk[i].s0 * SECTOR;
		struct vq_buf b = { (uint64_t)s.buf[i], d->bk[i].ns * SECTOR, false };

		for (uint64_t w = 0; w < d->bk[i].ns * SECTOR / 8; w++)
			s.buf[i][w] = enc(o + 8 * w, g);
		st[i] = cio_submit(&s.c[i], VIRTIO_BLK_T_OUT, cio_sector(o), &b, 1, false);
	}
	spin_lock(&cio.qlock);
	vq_kick(&cio.b.q);
	spin_unlock(&cio.qlock);
}

static bool blk_wait(uint64_t g, const struct step *d, int *st)
{
	bool ok = true;

	for (uint64_t i = 0; i < d->nbk; i++) {
		if (!st[i])
			st[i] = cio_wait(&s.c[i]);
		if (st[i] != VIRTIO_BLK_S_OK)
			ok = t_check(false, "crash: blk write", "generation %lu: write of page %lu sectors "
				     "[%lu, %lu): %s", g, d->bk[i].page, d->bk[i].s0,
				     d->bk[i].s0 + d->bk[i].ns, cio_status_str(st[i]));
	}
	return ok;
}

static bool blk_flush(uint64_t g)
{
	int r = cio_bflush(&s.c[0]);

	return r == VIRTIO_BLK_S_OK ||
	       t_check(false, "crash: blk FLUSH", "generation %lu: %s", g, cio_status_str(r));
}

static bool step(uint64_t g)
{
	static struct step d;
	int st[MAX_BK];
	bool ok = true;

	draw(g, &d);
	if (!blk_flush(g))
		return false;
	if (d.order == 0)
		for (uint64_t i = 0; i < d.npm; i++)
			store_words(d.pm[i][0], d.pm[i][1], d.pm[i][2], g);
	blk_submit(g, &d, st);
	if (d.order == 1)
		for (uint64_t i = 0; i < d.npm; i++)
			store_words(d.pm[i][0], d.pm[i][1], d.pm[i][2], g);
	if (!cio_pflush(&s.c[MAX_BK - 1], s.why, sizeof(s.why)))
		ok = t_check(false, "crash: pmem FLUSH", "generation %lu: %s", g, s.why);
	if (!blk_wait(g, &d, st) || !ok)
		return false;
	printf("crash: acked %lu\n", g);
	if (s.idle_us) {
		uint64_t end = deadline_after_ns((rdtsc() >> 4) % (s.idle_us + 1) * 1000);

		while (!deadline_passed(end))
			cpu_relax();
	}
	return true;
}

/* resume: B_(h-1) again, before generation h's blk FLUSH */
static bool redo_blk(uint64_t g)
{
	static struct step d;
	int st[MAX_BK];

	draw(g, &d);
	blk_submit(g, &d, st);
	return blk_wait(g, &d, st);
}

static void crash(void)
{
	uint64_t start = 1, hdr;
	uint8_t *taken;

	s.seed = arg_u64("seed", 0x63726173ull);
	s.base = arg_u64("base", 0);
	s.region = arg_u64("region", 8ull << 20);
	s.np = arg_u64("pmem_pages", 96);
	s.nb = arg_u64("blk_pages", 96);
	s.pm_max = arg_u64("pm_max", 12);
	s.bk_max = arg_u64("bk_max", 6);
	s.gens = arg_u64("gens", 0);
	s.idle_us = arg_u64("idle_us", 3000);
	s.tag = (uint32_t)mix64(s.seed);
	s.npages = s.region / PAGE;
	if (!cio_open())
		return;
	if (!t_check(s.base % PAGE == 0 && s.region % PAGE == 0 && s.region &&
			     s.base + s.region <= cio.wsize && cio_on_disk(s.base, s.region) &&
			     s.np >= 1 && s.nb >= 1 && s.np + s.nb <= s.npages &&
			     s.np + s.nb <= MAX_POOL && s.pm_max >= 1 && s.pm_max <= MAX_PM &&
			     s.bk_max >= 1 && s.bk_max <= MAX_BK,
		     "crash: layout fits the window and the disk",
		     "base 0x%lx region 0x%lx (window 0x%lx, disk from 0x%lx, 0x%lx bytes), pools "
		     "%lu + %lu pages (<= %u), pm_max %lu (<= %u), bk_max %lu (<= %u)",
		     s.base, s.region, cio.wsize, cio.blk_off, cio.disk_bytes, s.np, s.nb, MAX_POOL,
		     s.pm_max, MAX_PM, s.bk_max, MAX_BK))
		return;
	s.pmem_pool = mem_alloc(s.np * sizeof(uint32_t), 64);
	s.blk_pool = mem_alloc(s.nb * sizeof(uint32_t), 64);
	taken = mem_alloc(s.npages, 64);
	for (unsigned i = 0; i < MAX_BK; i++) {
		cio_ctx_init(&s.c[i]);
		s.buf[i] = mem_alloc(PAGE, PAGE);
	}
	if (!s.pmem_pool || !s.blk_pool || !taken || !s.buf[MAX_BK - 1]) {
		t_check(false, "crash: memory for the pools and buffers", "out of RAM");
		return;
	}
	make_pools(taken);
	if (arg_u64("resume", 0)) {
		hdr = *(volatile uint64_t *)(cio.win + s.base);
		if (hdr && !t_check((hdr & 0xffffffffull) == enc(s.base, 0) && hdr >> 32,
				    "crash: resume: the header word is a generation's",
				    "file offset 0x%lx holds 0x%lx, not 0 or enc(0x%lx, h) = h << 32 | "
				    "0x%lx", s.base, hdr, s.base, enc(s.base, 0)))
			return;
		if (hdr)
			start = hdr >> 32;
	}
	printf("# crash: layout seed=0x%lx base=%lu region=%lu pmem_pages=%lu blk_pages=%lu "
	       "pm_max=%lu bk_max=%lu start=%lu\n",
	       s.seed, s.base, s.region, s.np, s.nb, s.pm_max, s.bk_max, start);
	if (start > 1 && !redo_blk(start - 1))
		return;
	for (uint64_t g = start; !s.gens || g <= s.gens; g++)
		if (!step(g))
			return;
	if (!blk_flush(s.gens))
		return;
	printf("crash: done %lu\n", s.gens);
	t_check(true, "crash: generations acknowledged", "%lu..%lu", start, s.gens);
}

const struct scenario scenario_crash = { .name = "crash", .run = crash };
