/* Pins vs BREAKING, and the futex page lock, hammered by threads. Built twice: with ASan+UBSan
 * like every unit test, and with ThreadSanitizer (tests/unit/tsan/tsan.mk), where the plain
 * (non-atomic) accesses below make TSan prove the happens-before edges the protocol claims:
 *   - a pin taken with the CAS (seed 001) and dropped with pin_put happens-before the breaker's
 *     drain completes, and the breaker's clear happens-before any later pin;
 *   - a page lock's unlock happens-before the next lock of that page.
 * A data race report, a torn page or a count mismatch fails the test. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>

#include "tests/unit/test_pcache_env.h"

#ifndef HAMMER_SCALE
#define HAMMER_SCALE 1
#endif

/* ---- the raw pin word -------------------------------------------------------------------- */

#define NWORDS 8
static uint32_t pin_words[NWORDS];
static uint64_t guarded[NWORDS];        /* plain data: written by the breaker only while drained */
static int in_break[NWORDS];            /* atomic: breaker inside its exclusive section */
static int stop_flag;
static uint64_t pins_taken, pins_refused, breaks_done;

static void *raw_pinner(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;
	uint64_t taken = 0, refused = 0;
	while (!__atomic_load_n(&stop_flag, __ATOMIC_ACQUIRE)) {
		unsigned i = (unsigned)rand_r(&seed) % NWORDS;
		if (!pin_try(&pin_words[i])) {
			refused++;
			pin_wait_unbroken(&pin_words[i]);
			continue;
		}
		/* while pinned: the breaker must not be in its section, and its last write must be
		 * visible (TSan checks the read below against the breaker's write) */
		CHECK(__atomic_load_n(&in_break[i], __ATOMIC_RELAXED) == 0);
		volatile uint64_t v = guarded[i];
		(void)v;
		taken++;
		pin_put(&pin_words[i]);
	}
	__atomic_add_fetch(&pins_taken, taken, __ATOMIC_RELAXED);
	__atomic_add_fetch(&pins_refused, refused, __ATOMIC_RELAXED);
	return NULL;
}

static void *raw_breaker(void *arg)
{
	(void)arg;
	for (int n = 0; n < 2000 * HAMMER_SCALE; n++) {
		unsigned i = (unsigned)n % NWORDS;
		CHECK(pin_set_breaking(&pin_words[i]));
		pin_wait_drained(&pin_words[i]);
		__atomic_store_n(&in_break[i], 1, __ATOMIC_RELAXED);
		guarded[i]++; /* exclusive: no pin can exist now */
		CHECK(pin_count(&pin_words[i]) == 0);
		__atomic_store_n(&in_break[i], 0, __ATOMIC_RELAXED);
		pin_clear_breaking(&pin_words[i]);
		__atomic_add_fetch(&breaks_done, 1, __ATOMIC_RELAXED);
	}
	__atomic_store_n(&stop_flag, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void test_pin_word_vs_breaking(void **state)
{
	(void)state;
	pthread_t t[4], b;
	stop_flag = 0;
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, raw_pinner, (void *)(uintptr_t)(i + 1));
	pthread_create(&b, NULL, raw_breaker, NULL);
	pthread_join(b, NULL);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < NWORDS; i++) {
		assert_int_equal(pin_words[i], 0);
		assert_int_equal(guarded[i], 2000 * HAMMER_SCALE / NWORDS);
	}
	assert_int_equal(breaks_done, 2000 * HAMMER_SCALE);
	assert_true(pins_taken > 0);
}

/* ---- the futex page lock ----------------------------------------------------------------- */

#define LPAGES 16
static uint32_t lock_words[LPAGES];
static uint64_t counters[LPAGES];       /* plain: only touched under the page lock */

static void *locker(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;
	for (int n = 0; n < 20000 * HAMMER_SCALE; n++) {
		/* lock a short ascending run, like a fault locks a granule */
		unsigned a = (unsigned)rand_r(&seed) % LPAGES;
		unsigned len = 1 + (unsigned)rand_r(&seed) % 4;
		unsigned e = a + len > LPAGES ? LPAGES : a + len;
		for (unsigned p = a; p < e; p++)
			page_lock(&lock_words[p]);
		for (unsigned p = a; p < e; p++)
			counters[p]++;
		/* DIRTY set by someone not holding the lock does not disturb it */
		__atomic_fetch_or(&lock_words[(a + 7) % LPAGES], PG_DIRTY, __ATOMIC_ACQ_REL);
		for (unsigned p = e; p-- > a;)
			page_unlock(&lock_words[p]);
	}
	return NULL;
}

static void test_page_lock_contention(void **state)
{
	(void)state;
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, locker, (void *)(uintptr_t)(i + 11));
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	/* recount with the same seeds */
	uint64_t want[LPAGES] = { 0 };
	for (int i = 0; i < 4; i++) {
		unsigned seed = (unsigned)(i + 11);
		for (int n = 0; n < 20000 * HAMMER_SCALE; n++) {
			unsigned a = (unsigned)rand_r(&seed) % LPAGES;
			unsigned len = 1 + (unsigned)rand_r(&seed) % 4;
			unsigned e = a + len > LPAGES ? LPAGES : a + len;
			for (unsigned p = a; p < e; p++)
				want[p]++;
		}
	}
	for (int p = 0; p < LPAGES; p++) {
		assert_int_equal(counters[p], want[p]);
		assert_false(lock_words[p] & (PG_LOCKED | PG_WAITERS));
	}
}

/* ---- pcache: DMA pins vs break+punch ----------------------------------------------------- */

#define DPAGES 64   /* 256 KiB region exercised */
struct dma_arg { struct env *e; unsigned id; };
static int dma_stop;

/* Each writer owns pages id, id+NW, ...: it pins one with write intent, fills it with one
 * byte value, marks it dirtied and unpins. A page must end either fully one value or zero. */
#define NW 3
static void *dma_writer(void *arg)
{
	struct dma_arg *a = arg;
	unsigned seed = a->id * 77 + 1;
	uint8_t val = (uint8_t)(a->id * 50 + 1);
	while (!__atomic_load_n(&dma_stop, __ATOMIC_ACQUIRE)) {
		unsigned k = (unsigned)rand_r(&seed) % (DPAGES / NW);
		uint64_t off = (uint64_t)(k * NW + a->id) * 4096;
		CHECK(pcache_pin(a->e->pc, off, 4096, true) == 0);
		memset(pcache_mem(a->e->pc) + off, val, 4096);
		val = (uint8_t)(val + 1) ? (uint8_t)(val + 1) : 1;
		pcache_unpin(a->e->pc, off, 4096, true);
	}
	return NULL;
}

static void *loader(void *arg)
{
	struct dma_arg *a = arg;
	unsigned seed = 999;
	while (!__atomic_load_n(&dma_stop, __ATOMIC_ACQUIRE)) {
		/* loads by the guest through faults on the upper half (disjoint from the DMAs) */
		uint64_t off = (DPAGES + (uint64_t)(rand_r(&seed) % DPAGES)) * 4096;
		uint64_t v;
		enum pcache_fault_result r = pcache_fault(a->e->m, ENV_BASE + off, PCACHE_LOAD, &v, 8);
		CHECK(r == PCACHE_FAULT_DONE);
		/* and read-only DMA pins there */
		CHECK(pcache_pin(a->e->pc, off, 4096, false) == 0);
		volatile uint8_t x = pcache_mem(a->e->pc)[off + 5];
		(void)x;
		pcache_unpin(a->e->pc, off, 4096, false);
	}
	return NULL;
}

static void test_pcache_dma_vs_punch(void **state)
{
	(void)state;
	struct env e = { 0 };
	assert_int_equal(env_open(&e, 2 * MIB, 0, 64 * KIB, true), 0);
	pthread_t w[NW], l, self_b;
	struct dma_arg wa[NW], la = { &e, 0 };
	dma_stop = 0;
	for (unsigned i = 0; i < NW; i++) {
		wa[i] = (struct dma_arg){ &e, i };
		pthread_create(&w[i], NULL, dma_writer, &wa[i]);
	}
	pthread_create(&l, NULL, loader, &la);
	(void)self_b;
	unsigned seed = 5;
	for (int n = 0; n < 150 * HAMMER_SCALE; n++) {
		/* page-aligned punches over both halves */
		uint64_t p = (uint64_t)(rand_r(&seed) % (2 * DPAGES));
		uint64_t len = 1 + (uint64_t)(rand_r(&seed) % 8);
		if (p + len > 2 * DPAGES)
			len = 2 * DPAGES - p;
		assert_int_equal(pcache_break_punch(e.pc, p * 4096, len * 4096, n & 1), 0);
	}
	__atomic_store_n(&dma_stop, 1, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < NW; i++)
		pthread_join(w[i], NULL);
	pthread_join(l, NULL);

	assert_int_equal(pcache_map_check(e.m), 0);
	uint64_t c = pcache_errseq_sample(e.pc);
	assert_int_equal(pcache_flush(e.pc, &c), 0);
	/* every DMA page in the file: all zero or one whole DMA fill, never torn by a punch */
	int fd = open(e.path, O_RDONLY);
	uint8_t pg[4096];
	for (unsigned p = 0; p < DPAGES; p++) {
		assert_int_equal(pread(fd, pg, 4096, p * 4096), 4096);
		for (int i = 1; i < 4096; i++)
			if (pg[i] != pg[0])
				fail_msg("page %u torn at byte %d: %u vs %u", p, i, pg[i], pg[0]);
		if (pcache_page_flags(e.pc, p * 4096) & PG_UPTODATE)
			assert_memory_equal(pg, pcache_mem(e.pc) + p * 4096, 4096);
		assert_int_equal(pcache_page_pins(e.pc, p * 4096), 0);
	}
	close(fd);
	env_close(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pin_word_vs_breaking),
		cmocka_unit_test(test_page_lock_contention),
		cmocka_unit_test(test_pcache_dma_vs_punch),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
