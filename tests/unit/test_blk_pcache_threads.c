/* The coherency protocol under concurrency, mm/ only (so it also builds with ThreadSanitizer,
 * tests/unit/tsan/tsan.mk): a "device" thread doing what blk_handle + blk_pcache do (pin
 * several ranges all-or-nothing, then a direct write from pinned window memory or a direct read
 * into it, often of the very range pinned: d1/d2; unpin dirtied), a "guest" thread storing and
 * loading through the fake shadow (faults when it would exit), a "breaker" thread punching and
 * zeroing ranges (DISCARD / WRITE_ZEROES: BREAKING, unmap, drain, punch), and a "host" thread
 * flushing, invalidating (external change) and host-writing.
 *
 * Checked: everything terminates (a watchdog aborts on a deadlock: the breaker draining a pin
 * whose holder waits on BREAKING, a page lock taken while faulting with one held, ...); no pin
 * is left; the granule invariants hold; after a final FLUSH every cached page equals the file;
 * and under TSan, no data race between the protocol's plain accesses.
 *
 * The guest touches only the lower half of the window and DMA buffers lie only in the upper
 * half: a guest store racing a DMA into the same bytes is a real race on real hardware too,
 * and would only make TSan (rightly) complain. Direct I/O and breaks cover the whole window. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <time.h>

#include "tests/unit/test_pcache_env.h"


#ifndef HAMMER_SCALE
#define HAMMER_SCALE 1
#endif

/* Under ThreadSanitizer: the cache's page DATA is accessed concurrently by design (a guest
 * store racing a writeback copy is logged again and written next time; a DMA into a page being
 * written back re-dirties it at unpin; the same holds in the kernel). Only the data is
 * exempted: every metadata word (page flags and locks, pins and BREAKING, dirty hints, granule
 * state) stays checked. */
#if defined(__SANITIZE_THREAD__)
void AnnotateBenignRaceSized(const char *f, int l, const volatile void *mem, unsigned long size,
			     const char *desc);
#define DATA_IS_RACY(p, n) \
	AnnotateBenignRaceSized(__FILE__, __LINE__, (p), (n), "page data (guest/DMA/writeback)")
#else
#define DATA_IS_RACY(p, n) ((void)(p), (void)(n))
#endif

#define WSIZE  (4 * MIB)
#define HALF   (WSIZE / 2)
#define PG     4096ULL

static int stop;
static uint64_t progress[4];

static uint64_t rnd(unsigned *s, uint64_t n)
{
	return (uint64_t)rand_r(s) % n;
}

struct targ {
	struct env *e;
	unsigned seed;
	int id;
	uint64_t ops;
};

/* The device: pins before any page lock, then direct I/O, then unpin (dirtied for reads). */
static void *device(void *p)
{
	struct targ *a = p;
	struct pcache *pc = a->e->pc;
	uint8_t *mem = pcache_mem(pc);
	uint8_t *priv = aligned_alloc(4096, 256 * 1024);
	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
		/* a window buffer in the upper half, 1..16 pages, any 512-byte alignment */
		uint64_t blen = (1 + rnd(&a->seed, 16)) * PG - (rnd(&a->seed, 2) ? 512 : 0);
		uint64_t boff = HALF + rnd(&a->seed, (HALF - blen) / 512) * 512;
		bool rd = rnd(&a->seed, 2); /* blk IN (device writes the buffer) or OUT */
		/* the file range: the buffer's own range (self-overlap), a shifted one, or any */
		uint64_t foff;
		switch (rnd(&a->seed, 3)) {
		case 0: foff = boff; break;
		case 1: foff = boff >= HALF + PG ? boff - PG : boff + PG; break;
		default: foff = rnd(&a->seed, (WSIZE - blen) / 512) * 512; break;
		}
		if (foff + blen > WSIZE)
			foff = WSIZE - blen;
		/* pin the buffer and, sometimes, a second unrelated range (header/status) too */
		struct pcache_range r[2] = { { boff, blen, rd }, { HALF + rnd(&a->seed, HALF / PG) * PG, 16, true } };
		unsigned nr = 1 + (unsigned)rnd(&a->seed, 2);
		int pr = pcache_pin_ranges(pc, r, nr);
		CHECK(pr == 0);
		if (rd) {
			ssize_t n = pcache_direct_read(pc, foff, mem + boff, blen);
			CHECK(n == (ssize_t)blen);
		} else if (rnd(&a->seed, 4) == 0) {
			/* from a private buffer (RAM), 2 iovecs */
			memset(priv, (int)(a->ops & 0xff), blen);
			struct iovec v[2] = { { priv, blen / 2 }, { priv + blen / 2, blen - blen / 2 } };
			CHECK(pcache_direct_writev(pc, foff, v, 2) == (ssize_t)blen);
		} else {
			CHECK(pcache_direct_write(pc, foff, mem + boff, blen) == (ssize_t)blen);
		}
		if (nr > 1)
			memset(mem + r[1].off, 0x5a, 16); /* the "status byte", under its pin */
		pcache_unpin_ranges(pc, r, nr, true);
		a->ops++;
		__atomic_store_n(&progress[a->id], a->ops, __ATOMIC_RELAXED);
	}
	free(priv);
	return NULL;
}

/* The guest: 8-byte loads and stores in the lower half, faulting as vcpu.c would. */
static void *guest(void *p)
{
	struct targ *a = p;
	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
		uint64_t off = rnd(&a->seed, HALF / 8) * 8;
		uint64_t v = a->ops * 0x9e3779b97f4a7c15ULL;
		bool wr = rnd(&a->seed, 3) == 0;
		int r = shadow_fake_access(a->e->fk, ENV_BASE + off, wr, &v, 8);
		if (r == 1) {
			int fr = pcache_fault(a->e->m, ENV_BASE + off, wr ? PCACHE_STORE : PCACHE_LOAD,
					      &v, 8);
			if (fr != PCACHE_FAULT_DONE) {
				char st[1024];
				pcache_stats_line(a->e->pc, st, sizeof(st));
				fprintf(stderr, "fault %s at window offset %#llx: result %d errno %d\n%s\n",
					wr ? "store" : "load", (unsigned long long)off, fr, errno, st);
			}
			CHECK(fr == PCACHE_FAULT_DONE);
		} else
			CHECK(r == 0);
		a->ops++;
		__atomic_store_n(&progress[a->id], a->ops, __ATOMIC_RELAXED);
	}
	return NULL;
}

/* The breaker: DISCARD / WRITE_ZEROES anywhere, page-aligned or not; now and then a truncate
 * (the control socket's) into the window and back to its size. */
static void *breaker(void *p)
{
	struct targ *a = p;
	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
		uint64_t len = 512 * (1 + rnd(&a->seed, 256));
		uint64_t off = rnd(&a->seed, (WSIZE - len) / 512) * 512;
		if (rnd(&a->seed, 8) == 0) {
			CHECK(pcache_truncate(a->e->pc, rnd(&a->seed, WSIZE / PG) * PG) == 0);
			CHECK(pcache_truncate(a->e->pc, WSIZE) == 0);
		} else {
			CHECK(pcache_break_punch(a->e->pc, off, len, rnd(&a->seed, 2)) == 0);
		}
		a->ops++;
		__atomic_store_n(&progress[a->id], a->ops, __ATOMIC_RELAXED);
		usleep((useconds_t)rnd(&a->seed, 500));
	}
	return NULL;
}

/* The host: FLUSH, external change, host-write (the control socket's paths). */
static void *host(void *p)
{
	struct targ *a = p;
	uint64_t cursor = pcache_errseq_sample(a->e->pc);
	uint8_t buf[8192];
	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
		switch (rnd(&a->seed, 3)) {
		case 0:
			CHECK(pcache_flush(a->e->pc, &cursor) == 0);
			break;
		case 1: {
			uint64_t off = rnd(&a->seed, WSIZE / PG - 4) * PG;
			int r = pcache_external_change(a->e->pc, off, 4 * PG);
			CHECK(r == 0); /* a DMA on a page of it is waited for, not refused */
			break;
		}
		default: {
			uint64_t len = 1 + rnd(&a->seed, sizeof(buf));
			uint64_t off = rnd(&a->seed, WSIZE - len);
			memset(buf, 0x33, len);
			CHECK(pcache_direct_write(a->e->pc, off, buf, len) == (ssize_t)len);
			break;
		}
		}
		a->ops++;
		__atomic_store_n(&progress[a->id], a->ops, __ATOMIC_RELAXED);
		usleep((useconds_t)rnd(&a->seed, 300));
	}
	return NULL;
}

static void run(uint64_t gran, unsigned delay_us, double secs)
{
	struct env e = { 0 };
	assert_int_equal(env_open(&e, WSIZE, WSIZE, gran, true), 0);
	pcache_set_race_delay(e.pc, delay_us);
	DATA_IS_RACY(pcache_mem(e.pc), WSIZE);
	__atomic_store_n(&stop, 0, __ATOMIC_RELEASE);
	memset(progress, 0, sizeof(progress));
	void *(*fn[4])(void *) = { device, guest, breaker, host };
	struct targ a[4];
	pthread_t t[4];
	for (int i = 0; i < 4; i++) {
		a[i] = (struct targ){ &e, (unsigned)(i * 7919 + 17), i, 0 };
		pthread_create(&t[i], NULL, fn[i], &a[i]);
	}
	/* Watchdog: every thread must keep making progress. */
	uint64_t last[4] = { 0 };
	int stalled = 0;
	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		usleep(200 * 1000);
		clock_gettime(CLOCK_MONOTONIC, &now);
		double el = (double)(now.tv_sec - t0.tv_sec) + (double)(now.tv_nsec - t0.tv_nsec) / 1e9;
		bool moved = true;
		for (int i = 0; i < 4; i++) {
			uint64_t p = __atomic_load_n(&progress[i], __ATOMIC_RELAXED);
			if (p == last[i])
				moved = false;
			last[i] = p;
		}
		stalled = moved ? 0 : stalled + 1;
		if (stalled >= 50) { /* 10 s without every thread moving: a deadlock */
			fprintf(stderr, "WATCHDOG: no progress for 10 s: device %llu guest %llu breaker "
				"%llu host %llu ops\n", (unsigned long long)last[0],
				(unsigned long long)last[1], (unsigned long long)last[2],
				(unsigned long long)last[3]);
			abort();
		}
		if (el >= secs)
			break;
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 4; i++) {
		/* a deadlock near the end shows here: the threads never finish their last op */
		struct timespec dl;
		clock_gettime(CLOCK_REALTIME, &dl);
		dl.tv_sec += 20;
		if (pthread_timedjoin_np(t[i], NULL, &dl)) {
			fprintf(stderr, "WATCHDOG: thread %d did not finish within 20 s of the stop "
				"(deadlock): device %llu guest %llu breaker %llu host %llu ops\n", i,
				(unsigned long long)progress[0], (unsigned long long)progress[1],
				(unsigned long long)progress[2], (unsigned long long)progress[3]);
			abort();
		}
	}
	for (int i = 0; i < 4; i++)
		assert_true(a[i].ops > 0);

	/* Quiescent: no pins, invariants, and after a FLUSH the cache equals the file. */
	for (uint64_t p = 0; p < WSIZE; p += PG)
		assert_int_equal(pcache_page_pins(e.pc, p), 0);
	assert_int_equal(pcache_map_check(e.m), 0);
	uint64_t c = pcache_errseq_sample(e.pc);
	assert_int_equal(pcache_flush(e.pc, &c), 0);
	/* a host-write past a truncated end grows the file back: it can only have grown */
	assert_true(pcache_file_size(e.pc) >= WSIZE);
	int fd = open(e.path, O_RDONLY);
	uint8_t pg[4096];
	for (uint64_t p = 0; p < WSIZE; p += PG) {
		if (!(pcache_page_flags(e.pc, p) & PG_UPTODATE))
			continue;
		assert_int_equal(pread(fd, pg, PG, (off_t)p), (ssize_t)PG);
		if (memcmp(pg, pcache_mem(e.pc) + p, PG))
			fail_msg("page at 0x%llx: cache and file differ after FLUSH",
				 (unsigned long long)p);
	}
	close(fd);
	struct pcache_stats s;
	pcache_stats_get(e.pc, &s);
	print_message("# granule %llu KiB, delay %u us: device %llu, guest %llu, breaker %llu, host "
		      "%llu ops; pin retries after BREAKING %llu, fallback pages %llu\n",
		      (unsigned long long)(gran / 1024), delay_us, (unsigned long long)a[0].ops,
		      (unsigned long long)a[1].ops, (unsigned long long)a[2].ops,
		      (unsigned long long)a[3].ops, (unsigned long long)s.pin_waits_breaking,
		      (unsigned long long)s.direct_write_fallback);
	env_close(&e);
}

static void test_threads_4k(void **state)
{
	(void)state;
	run(4 * KIB, 0, 1.5 * HAMMER_SCALE);
}

static void test_threads_64k_delay(void **state)
{
	(void)state;
	run(64 * KIB, 200, 1.5 * HAMMER_SCALE);
}

static void test_threads_2m(void **state)
{
	(void)state;
	run(2 * MIB, 0, 1.5 * HAMMER_SCALE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_threads_4k),
		cmocka_unit_test(test_threads_64k_delay),
		cmocka_unit_test(test_threads_2m),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
