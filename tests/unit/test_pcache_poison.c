/* mm/: pmem media errors (pcache_poison / pcache_unpoison, issue 15 item 2) on the fake shadow
 * table. A poisoned page is never mapped; poisoning loses nothing the guest stored; loads and
 * fetches of it get PCACHE_FAULT_POISON, the clean pages of its granule are served without a
 * mapping, direct reads and pins fail -EIO, a store or a whole-page direct write repairs it,
 * unpoison brings the file's content back, and the stats list the ranges merged. The last
 * test poisons and repairs in a loop while threads fault, pin and read (built with ASan and
 * with TSan, tests/unit/tsan/tsan.mk). */
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

/* Under ThreadSanitizer the cache's page DATA is accessed concurrently by design (a guest store
 * racing a writeback copy is logged again and written next time), as in
 * test_blk_pcache_threads: only the data is exempted; every metadata word (flags, locks, pins,
 * BREAKING, hints, granule state, the poison bit) stays checked. */
#if defined(__SANITIZE_THREAD__)
void AnnotateBenignRaceSized(const char *f, int l, const volatile void *mem, unsigned long size,
			     const char *desc);
#define DATA_IS_RACY(p, n) \
	AnnotateBenignRaceSized(__FILE__, __LINE__, (p), (n), "page data (guest/DMA/writeback)")
#else
#define DATA_IS_RACY(p, n) ((void)(p), (void)(n))
#endif

static void file_read_at(struct env *e, uint64_t off, void *buf, size_t len)
{
	int fd = open(e->path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

static uint64_t model8(struct env *e, uint64_t off)
{
	uint64_t v;
	memcpy(&v, e->model + off, 8);
	return v;
}

/* An instruction fetch at off: completes in a mapped granule (no exit), else the fault path. */
static enum pcache_fault_result env_fetch(struct env *e, uint64_t off)
{
	if (shadow_fake_state(e->fk, ENV_BASE + off) != FAKE_ABSENT)
		return PCACHE_FAULT_DONE;
	return pcache_fault(e->m, ENV_BASE + off, PCACHE_FETCH, NULL, 0);
}

static int granule_state(struct env *e, uint64_t off)
{
	return shadow_fake_state(e->fk, ENV_BASE + off);
}

/* The whole story on one granule size: a poisoned page inside a mapped, dirty granule. */
static void poison_in_granule(uint64_t gran)
{
	struct env e = { 0 };
	assert_int_equal(env_open(&e, 4 * MIB, 4 * MIB, gran, true), 0);
	const uint64_t P = 2 * MIB + 5 * 4096;            /* the page to poison */
	const uint64_t N = P - 4096;                      /* a clean page (same granule if > 4K) */
	const uint64_t F = 2 * MIB + 64 * KIB + 4096;     /* beyond a 64K granule, same 2M one */

	/* Mapped WRITABLE, then stores that only the dirty log knows about (not yet DIRTY). */
	assert_int_equal(env_store8(&e, P, 0x1111), PCACHE_FAULT_DONE);
	assert_int_equal(env_store8(&e, N, 0x2222), PCACHE_FAULT_DONE);
	assert_int_equal(env_store8(&e, F, 0x3333), PCACHE_FAULT_DONE);
	assert_int_equal(pcache_writeback_range(e.pc, 0, e.size), 0);
	assert_int_equal(env_store8(&e, P + 8, 0x5eed5eed5eedULL), PCACHE_FAULT_DONE);
	assert_int_equal(env_store8(&e, N + 8, 0x4444), PCACHE_FAULT_DONE);
	assert_int_equal(granule_state(&e, P), FAKE_WRITABLE);
	assert_false(pcache_page_flags(e.pc, P) & PG_DIRTY);

	/* Poison a few bytes inside P: rounded out to the page. */
	assert_int_equal(pcache_poison(e.pc, P + 100, 10), 0);
	assert_true(pcache_page_flags(e.pc, P) & PG_POISON);
	assert_false(pcache_page_flags(e.pc, N) & PG_POISON);
	assert_int_equal(granule_state(&e, P), FAKE_ABSENT);
	/* nothing lost: P's logged store reached the file at poison time */
	uint64_t got = 0;
	file_read_at(&e, P + 8, &got, 8);
	assert_int_equal(got, 0x5eed5eed5eedULL);
	assert_int_equal(pcache_map_check(e.m), 0);

	struct pcache_stats s = env_stats(&e);
	assert_int_equal(s.poison_pages, 1);
	struct pcache_extent x[4];
	assert_int_equal(pcache_poison_list(e.pc, x, 4), 1);
	assert_int_equal(x[0].off, P);
	assert_int_equal(x[0].len, 4096);

	/* Loads and fetches of the bad page: POISON, every time, counted. */
	uint64_t v = 0;
	assert_int_equal(env_access(&e, P + 8, false, &v, 8), PCACHE_FAULT_POISON);
	assert_int_equal(env_access(&e, P + 4000, false, &v, 4), PCACHE_FAULT_POISON);
	assert_int_equal(env_fetch(&e, P + 16), PCACHE_FAULT_POISON);
	assert_int_equal(env_stats(&e).poison_faults, 3);
	assert_int_equal(granule_state(&e, P), FAKE_ABSENT);

	/* The clean pages of the granule: loads and stores served by the fault path, the granule
	 * never installed (4K: the neighbour is its own granule and is installed). */
	uint64_t faults0 = env_stats(&e).fault_load_absent;
	assert_int_equal(env_load8(&e, N + 8), 0x4444);
	assert_int_equal(env_load8(&e, N + 8), 0x4444);
	assert_int_equal(env_load8(&e, N + 16), model8(&e, N + 16));
	assert_int_equal(env_store8(&e, N + 24, 0x6666), PCACHE_FAULT_DONE);
	assert_int_equal(env_load8(&e, N + 24), 0x6666);
	if (gran > 4096) {
		assert_int_equal(granule_state(&e, N), FAKE_ABSENT);
		assert_int_equal(env_stats(&e).fault_load_absent - faults0, 4); /* each one exited */
		/* a fetch there cannot be served without mapping the bad page: POISON too */
		assert_int_equal(env_fetch(&e, N), PCACHE_FAULT_POISON);
	} else {
		assert_int_not_equal(granule_state(&e, N), FAKE_ABSENT);
		assert_int_equal(env_fetch(&e, N), PCACHE_FAULT_DONE);
	}
	if (gran < 2 * MIB) { /* F is in another granule: unaffected */
		assert_int_equal(env_load8(&e, F), 0x3333);
		assert_int_not_equal(granule_state(&e, F), FAKE_ABSENT);
	} else {
		assert_int_equal(env_load8(&e, F), 0x3333);
		assert_int_equal(granule_state(&e, F), FAKE_ABSENT);
	}
	assert_int_equal(pcache_map_check(e.m), 0);

	/* Direct reads: -EIO if they overlap the bad page, fine beside it. */
	uint8_t *b = malloc(16384);
	assert_int_equal(pcache_direct_read(e.pc, P, b, 4096), -EIO);
	assert_int_equal(pcache_direct_read(e.pc, P - 512, b, 1024), -EIO);
	assert_int_equal(pcache_direct_read(e.pc, N, b, 8192), -EIO);
	assert_int_equal(pcache_direct_read(e.pc, N, b, 4096), 4096);
	assert_memory_equal(b, e.model + N, 4096); /* with the store made meanwhile */
	assert_int_equal(pcache_direct_read(e.pc, P + 4096, b, 4096), 4096);
	assert_memory_equal(b, e.model + P + 4096, 4096);
	/* Pins: -EIO on the bad page whatever the direction, nothing left pinned; fine beside. */
	assert_int_equal(pcache_pin(e.pc, P, 4096, false), -EIO);
	assert_int_equal(pcache_pin(e.pc, N, 8192, true), -EIO);
	assert_int_equal(pcache_page_pins(e.pc, N) & PIN_COUNT, 0);
	assert_int_equal(pcache_pin(e.pc, N, 4096, false), 0);
	pcache_unpin(e.pc, N, 4096, false);
	s = env_stats(&e);
	assert_int_equal(s.poison_eio, 5);
	assert_int_equal(granule_state(&e, P), FAKE_ABSENT);

	/* Unpoison: the page works again, with the file's content (what the guest had stored). */
	assert_int_equal(pcache_unpoison(e.pc, P, 1), 0);
	assert_int_equal(env_stats(&e).poison_pages, 0);
	assert_int_equal(pcache_poison_list(e.pc, x, 4), 0);
	assert_int_equal(env_load8(&e, P + 8), 0x5eed5eed5eedULL);
	assert_int_equal(env_load8(&e, P), 0x1111);
	assert_int_not_equal(granule_state(&e, P), FAKE_ABSENT);
	assert_int_equal(pcache_direct_read(e.pc, P, b, 4096), 4096);
	assert_memory_equal(b, e.model + P, 4096);
	assert_int_equal(pcache_pin(e.pc, P, 4096, true), 0);
	pcache_unpin(e.pc, P, 4096, false);
	free(b);

	assert_int_equal(pcache_writeback_range(e.pc, 0, e.size), 0);
	assert_int_equal(env_file_mismatch(&e), -1);
	assert_int_equal(pcache_map_check(e.m), 0);
	env_close(&e);
}

static void test_poison_4k_granule(void **state) { (void)state; poison_in_granule(4 * KIB); }
static void test_poison_64k_granule(void **state) { (void)state; poison_in_granule(64 * KIB); }
static void test_poison_2m_granule(void **state) { (void)state; poison_in_granule(2 * MIB); }

/* A store to a poisoned page repairs it: the page is read again from the file and the store
 * applied on it. A store to a read-only window is discarded and the poison stays. */
static void test_store_clears_poison(void **state)
{
	(void)state;
	struct env e = { 0 };
	assert_int_equal(env_open(&e, 2 * MIB, 2 * MIB, 64 * KIB, true), 0);
	const uint64_t P = 12 * 4096;
	assert_int_equal(env_store8(&e, P + 64, 0xabcd), PCACHE_FAULT_DONE); /* dirty, mapped */
	assert_int_equal(pcache_poison(e.pc, P, 4096), 0);
	assert_int_equal(env_store8(&e, P + 8, 0x77), PCACHE_FAULT_DONE);
	struct pcache_stats s = env_stats(&e);
	assert_int_equal(s.poison_pages, 0);
	assert_int_equal(s.poison_cleared, 1);
	assert_int_equal(s.poison_faults, 0);
	assert_int_equal(env_load8(&e, P + 8), 0x77);
	assert_int_equal(env_load8(&e, P + 64), 0xabcd); /* the rest of the page: the file's */
	assert_int_equal(env_load8(&e, P + 128), model8(&e, P + 128));
	assert_int_not_equal(granule_state(&e, P), FAKE_ABSENT);
	assert_int_equal(pcache_writeback_range(e.pc, 0, e.size), 0);
	assert_int_equal(env_file_mismatch(&e), -1);
	pcache_map_destroy(e.m);
	e.m = NULL;

	/* read-only window on the same cache: the store is discarded, the poison stays */
	assert_int_equal(env_map(&e, 64 * KIB, false), 0);
	assert_int_equal(pcache_poison(e.pc, P, 4096), 0);
	uint64_t v = 0x99;
	assert_int_equal(env_access(&e, P + 8, true, &v, 8), PCACHE_FAULT_DISCARDED);
	assert_true(pcache_page_flags(e.pc, P) & PG_POISON);
	assert_int_equal(env_access(&e, P + 8, false, &v, 8), PCACHE_FAULT_POISON);
	assert_int_equal(pcache_unpoison(e.pc, P, 4096), 0);
	assert_int_equal(env_load8(&e, P + 8), 0x77);
	env_close(&e);
}

/* Direct writes: one covering a poisoned page only partly fails -EIO and writes nothing; one
 * covering it wholly repairs it. A DISCARD / WRITE_ZEROES of the whole page repairs it too. */
static void test_direct_write_and_punch_over_poison(void **state)
{
	(void)state;
	struct env e = { 0 };
	assert_int_equal(env_open(&e, 2 * MIB, 2 * MIB, 2 * MIB, true), 0);
	const uint64_t P = 8 * 4096, Q = 10 * 4096;
	assert_int_equal(pcache_poison(e.pc, P, 4096), 0);
	assert_int_equal(pcache_poison(e.pc, Q, 4096), 0);
	uint8_t *b = malloc(3 * 4096);
	memset(b, 0xa5, 3 * 4096);
	/* partly over P (and wholly over P+1): -EIO, the file as it was */
	assert_int_equal(pcache_direct_write(e.pc, P + 512, b, 8192), -EIO);
	assert_int_equal(pcache_direct_write(e.pc, P - 4096, b, 4096 + 512), -EIO);
	assert_int_equal(env_file_mismatch(&e), -1);
	assert_true(pcache_page_flags(e.pc, P) & PG_POISON);
	/* wholly over P and its neighbours: written, P repaired, Q untouched */
	assert_int_equal(pcache_direct_write(e.pc, P - 4096, b, 3 * 4096), 3 * 4096);
	memset(e.model + P - 4096, 0xa5, 3 * 4096);
	assert_false(pcache_page_flags(e.pc, P) & PG_POISON);
	assert_true(pcache_page_flags(e.pc, Q) & PG_POISON);
	assert_int_equal(env_load8(&e, P), 0xa5a5a5a5a5a5a5a5ULL);
	assert_int_equal(pcache_direct_read(e.pc, P, b, 4096), 4096);
	assert_int_equal(env_stats(&e).poison_cleared, 1);
	/* WRITE_ZEROES over Q: repaired, reads zeros through both views */
	assert_int_equal(pcache_break_punch(e.pc, Q, 4096, true), 0);
	memset(e.model + Q, 0, 4096);
	assert_false(pcache_page_flags(e.pc, Q) & PG_POISON);
	assert_int_equal(env_load8(&e, Q + 8), 0);
	assert_int_equal(pcache_direct_read(e.pc, Q, b, 4096), 4096);
	assert_true(b[0] == 0 && b[4095] == 0);
	assert_int_equal(env_stats(&e).poison_pages, 0);
	/* the granule (2 MiB: all of it) maps again */
	assert_int_not_equal(granule_state(&e, 0), FAKE_ABSENT);
	assert_int_equal(pcache_writeback_range(e.pc, 0, e.size), 0);
	assert_int_equal(env_file_mismatch(&e), -1);
	assert_int_equal(pcache_map_check(e.m), 0);
	free(b);
	env_close(&e);
}

/* Several windows on one file: the poison unmaps the granule in every map; the list merges
 * adjacent pages and splits when a page in the middle is repaired; JSON in the stats. */
static void test_two_maps_and_list(void **state)
{
	(void)state;
	struct env e = { 0 };
	assert_int_equal(env_open(&e, 4 * MIB, 4 * MIB, 64 * KIB, true), 0);
	struct shadow_fake *f2;
	struct pcache_map *m2 = env_second_map(&e, &f2);
	assert_int_equal(env_store8(&e, 8192, 0x31), PCACHE_FAULT_DONE);
	uint64_t w = 0x32;
	assert_int_equal(pcache_fault(m2, ENV_BASE + 64 * MIB + 16384, PCACHE_STORE, &w, 8),
			 PCACHE_FAULT_DONE);
	w = 0x33; /* logged only, in the second window */
	assert_int_equal(shadow_fake_access(f2, ENV_BASE + 64 * MIB + 20480, true, &w, 8), 0);
	*(uint64_t *)(e.model + 16384) = 0x32;
	*(uint64_t *)(e.model + 20480) = 0x33;
	assert_int_equal(pcache_map_granule_state(m2, ENV_BASE + 64 * MIB), 2);

	assert_int_equal(pcache_poison(e.pc, 8192, 8192), 0);       /* pages 2, 3 */
	assert_int_equal(pcache_poison(e.pc, 16384, 4096), 0);      /* page 4: merges */
	assert_int_equal(pcache_poison(e.pc, 40960, 1), 0);         /* page 10 */
	assert_int_equal(pcache_poison(e.pc, 40960, 4096), 0);      /* idempotent */
	assert_int_equal(pcache_poison(e.pc, 4 * MIB, 4096), -EINVAL);
	assert_int_equal(pcache_poison(e.pc, 0, 0), -EINVAL);
	assert_int_equal(pcache_map_granule_state(m2, ENV_BASE + 64 * MIB), 0);
	assert_int_equal(pcache_map_granule_state(e.m, ENV_BASE), 0);
	uint64_t got = 0;
	file_read_at(&e, 16384, &got, 8); /* the poisoned page's dirt: in the file */
	assert_int_equal(got, 0x32);
	/* the second window's logged store beside it: harvested by the unmap, not lost */
	assert_true(pcache_page_flags(e.pc, 20480) & PG_DIRTY);
	uint64_t v = 0;
	assert_int_equal(pcache_fault(m2, ENV_BASE + 64 * MIB + 16384, PCACHE_LOAD, &v, 8),
			 PCACHE_FAULT_POISON);
	assert_int_equal(pcache_fault(m2, ENV_BASE + 64 * MIB + 65536, PCACHE_LOAD, &v, 8),
			 PCACHE_FAULT_DONE); /* same 1 MiB granule, clean page */
	assert_int_equal(pcache_map_granule_state(m2, ENV_BASE + 64 * MIB), 0);

	struct pcache_extent x[4];
	assert_int_equal(pcache_poison_list(e.pc, x, 4), 2);
	assert_int_equal(x[0].off, 8192);
	assert_int_equal(x[0].len, 12288);
	assert_int_equal(x[1].off, 40960);
	assert_int_equal(x[1].len, 4096);
	assert_int_equal(pcache_poison_list(e.pc, x, 1), 2); /* counts past max */
	assert_int_equal(pcache_unpoison(e.pc, 12288, 1), 0);
	assert_int_equal(pcache_poison_list(e.pc, x, 4), 3);
	assert_int_equal(x[1].off, 16384);
	assert_int_equal(x[1].len, 4096);

	char *js = NULL;
	size_t jl = 0;
	FILE *f = open_memstream(&js, &jl);
	pcache_poison_json(e.pc, f);
	fclose(f);
	assert_string_equal(js, "[{\"off\": 8192, \"len\": 4096}, {\"off\": 16384, \"len\": 4096}, "
				"{\"off\": 40960, \"len\": 4096}]");
	free(js);
	f = open_memstream(&js, &jl);
	pcache_stats_json(e.pc, f);
	fclose(f);
	assert_non_null(strstr(js, "\"poison\": {\"pages\": 3, \"faults\": 1, \"eio\": 0, "
				   "\"cleared\": 0, \"ranges\": [{\"off\": 8192, "));
	assert_true(js[strlen(js) - 1] == '}' && js[strlen(js) - 2] == '}');
	free(js);
	char line[512];
	pcache_stats_line(e.pc, line, sizeof(line));
	assert_non_null(strstr(line, "poisoned 3 pages (1 machine checks"));

	assert_int_equal(pcache_unpoison(e.pc, 0, 4 * MIB), 0);
	assert_int_equal(pcache_poison_list(e.pc, NULL, 0), 0);
	assert_int_equal(pcache_writeback_range(e.pc, 0, e.size), 0);
	assert_int_equal(env_file_mismatch(&e), -1);
	assert_int_equal(pcache_map_check(m2), 0);
	pcache_map_destroy(m2);
	env_close(&e);
}

/* The write of a dirty page fails while it is poisoned: the page keeps its data (DIRTY), the
 * error is reported at FLUSH, a later writeback writes it, and unpoison shows it again. */
static void test_poison_of_unwritable_dirty_page(void **state)
{
	(void)state;
	struct env e = { 0 };
	assert_int_equal(env_open(&e, 2 * MIB, 2 * MIB, 64 * KIB, true), 0);
	const uint64_t P = 3 * 4096;
	uint64_t cursor = pcache_errseq_sample(e.pc);
	assert_int_equal(env_store8(&e, P, 0xdada), PCACHE_FAULT_DONE);
	struct pcache_inject inj = { .pwrite_errno = EIO, .pwrite_count = 1 };
	pcache_set_inject(e.pc, &inj);
	assert_int_equal(pcache_poison(e.pc, P, 4096), 0);
	assert_true(pcache_page_flags(e.pc, P) & PG_POISON);
	assert_true(pcache_page_flags(e.pc, P) & PG_DIRTY);
	uint64_t v;
	assert_int_equal(env_access(&e, P, false, &v, 8), PCACHE_FAULT_POISON);
	assert_int_equal(pcache_flush(e.pc, &cursor), -EIO);    /* the poison's launder failed */
	assert_int_equal(pcache_flush(e.pc, &cursor), 0);       /* retried: written now */
	assert_int_equal(env_file_mismatch(&e), -1);
	assert_int_equal(pcache_unpoison(e.pc, P, 4096), 0);
	assert_int_equal(env_load8(&e, P), 0xdada);
	assert_int_equal(pcache_map_check(e.m), 0);
	env_close(&e);
}

/* A DMA in flight when the poison comes: the poison waits for it (BREAKING: no new pin; the
 * drain), and the bytes the device wrote reach the file before the page is dropped. */
struct poison_arg { struct pcache *pc; uint64_t off; int r; int done; };

static void *poison_thread(void *arg)
{
	struct poison_arg *a = arg;
	a->r = pcache_poison(a->pc, a->off, 4096);
	__atomic_store_n(&a->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void test_poison_waits_for_dma(void **state)
{
	(void)state;
	struct env e = { 0 };
	assert_int_equal(env_open(&e, 2 * MIB, 2 * MIB, 64 * KIB, true), 0);
	const uint64_t P = 20 * 4096;
	assert_int_equal(pcache_pin(e.pc, P, 4096, true), 0);
	struct poison_arg a = { .pc = e.pc, .off = P };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, poison_thread, &a), 0);
	usleep(100 * 1000);
	assert_false(__atomic_load_n(&a.done, __ATOMIC_ACQUIRE)); /* waits for the DMA */
	assert_false(pcache_page_flags(e.pc, P) & PG_POISON);
	assert_int_equal(pcache_pin(e.pc, P + 4096, 4096, false), 0); /* beside it: fine */
	pcache_unpin(e.pc, P + 4096, 4096, false);
	memset(pcache_mem(e.pc) + P + 100, 0xd1, 200); /* the device writes */
	memset(e.model + P + 100, 0xd1, 200);
	pcache_unpin(e.pc, P, 4096, true);
	pthread_join(t, NULL);
	assert_int_equal(a.r, 0);
	assert_true(pcache_page_flags(e.pc, P) & PG_POISON);
	assert_int_equal(env_file_mismatch(&e), -1); /* the DMA's bytes were written */
	assert_int_equal(pcache_pin(e.pc, P, 4096, false), -EIO);
	assert_int_equal(pcache_unpoison(e.pc, P, 4096), 0);
	assert_int_equal(env_load8(&e, P + 100), 0xd1d1d1d1d1d1d1d1ULL);
	assert_null(pcache_broken(e.pc));
	env_close(&e);
}

/* ---- poison / unpoison racing faults, pins and direct reads ------------------------------ */

#define NSTORERS 2
#define SLOTS    64                        /* 8-byte slots per storer, one per page */

struct hammer {
	struct env *e;
	int stop;                           /* atomic */
	uint64_t loads, poisoned_loads, pins, pin_eio, reads, read_eio;  /* atomics */
};

/* Storer t owns page t*SLOTS + i (slot at offset t*8 in it), pages [0, 128); pages [128, 256)
 * are DMA buffers (pinner_reader); pages [256, 512) are only loaded (the file's pattern).
 * Poison hits them all. */
static uint64_t store_page(int t, int i) { return (uint64_t)(t * SLOTS + i) * 4096; }

static void *storer(void *arg)
{
	struct hammer *h = ((void **)arg)[0];
	int t = (int)(intptr_t)((void **)arg)[1];
	struct env *e = h->e;
	unsigned seed = 77u + (unsigned)t;
	uint64_t last[SLOTS] = { 0 };
	for (uint64_t n = 0; !__atomic_load_n(&h->stop, __ATOMIC_ACQUIRE); n++) {
		int i = (int)(rand_r(&seed) % SLOTS);
		uint64_t off = store_page(t, i) + (uint64_t)t * 8;
		if (rand_r(&seed) % 2) {
			uint64_t v = ((uint64_t)t << 56) | (n & 0xffffffffffULL) << 8 | (uint64_t)i;
			/* a store never gets POISON (it repairs the page) */
			CHECK(env_access(e, off, true, &v, 8) == PCACHE_FAULT_DONE);
			memcpy(e->model + off, &v, 8); /* this thread's slot only */
			last[i] = v;
		} else {
			uint64_t v = 0;
			enum pcache_fault_result r = env_access(e, off, false, &v, 8);
			CHECK(r == PCACHE_FAULT_DONE || r == PCACHE_FAULT_POISON);
			if (r == PCACHE_FAULT_DONE) { /* its own last store, or the file's pattern */
				uint64_t want = last[i];
				if (!want)
					memcpy(&want, e->model + off, 8);
				CHECK(v == want);
			}
		}
	}
	return NULL;
}

static void *loader(void *arg)
{
	struct hammer *h = arg;
	struct env *e = h->e;
	unsigned seed = 5;
	while (!__atomic_load_n(&h->stop, __ATOMIC_ACQUIRE)) {
		uint64_t off = (256 + rand_r(&seed) % 256) * 4096 + (rand_r(&seed) % 512) * 8;
		uint64_t v = 0, want;
		memcpy(&want, e->model + off, 8);
		enum pcache_fault_result r = env_access(e, off, false, &v, 8);
		CHECK(r == PCACHE_FAULT_DONE || r == PCACHE_FAULT_POISON);
		CHECK(r != PCACHE_FAULT_DONE || v == want);
		__atomic_add_fetch(r == PCACHE_FAULT_DONE ? &h->loads : &h->poisoned_loads, 1,
				   __ATOMIC_RELAXED);
	}
	return NULL;
}

/* DMA into pages [128, 256), which nothing else touches: a device writing the bytes the page
 * holds (so the expected content stays the model's), held a while, then a direct read. */
static void *pinner_reader(void *arg)
{
	struct hammer *h = arg;
	struct env *e = h->e;
	unsigned seed = 9;
	uint8_t *b = malloc(8192);
	while (!__atomic_load_n(&h->stop, __ATOMIC_ACQUIRE)) {
		uint64_t off = (128 + rand_r(&seed) % 127) * 4096;
		bool wr = rand_r(&seed) % 2;
		int r = pcache_pin(e->pc, off, 8192, wr);
		CHECK(r == 0 || r == -EIO);
		if (r == 0) {
			/* pinned pages are never poisoned under the DMA (the poison drains pins) */
			CHECK(!(pcache_page_flags(e->pc, off) & PG_POISON));
			if (wr)
				memcpy(pcache_mem(e->pc) + off, e->model + off, 8192);
			usleep(300);
			CHECK(!(pcache_page_flags(e->pc, off) & PG_POISON));
			CHECK(!(pcache_page_flags(e->pc, off + 4096) & PG_POISON));
			CHECK(pcache_page_flags(e->pc, off) & PG_UPTODATE);
			CHECK(memcmp(pcache_mem(e->pc) + off, e->model + off, 8192) == 0);
			pcache_unpin(e->pc, off, 8192, wr);
			__atomic_add_fetch(&h->pins, 1, __ATOMIC_RELAXED);
		} else {
			__atomic_add_fetch(&h->pin_eio, 1, __ATOMIC_RELAXED);
		}
		if (rand_r(&seed) % 4) /* a direct read costs milliseconds of disk: one in four */
			continue;
		ssize_t n = pcache_direct_read(e->pc, off, b, 8192);
		CHECK(n == 8192 || n == -EIO);
		if (n == 8192)
			CHECK(memcmp(b, e->model + off, 8192) == 0);
		__atomic_add_fetch(n == 8192 ? &h->reads : &h->read_eio, 1, __ATOMIC_RELAXED);
	}
	free(b);
	return NULL;
}

static void hammer_granule(uint64_t gran)
{
	struct env e = { 0 };
	assert_int_equal(env_open(&e, 2 * MIB, 2 * MIB, gran, true), 0);
	DATA_IS_RACY(pcache_mem(e.pc), e.size);
	struct hammer h = { .e = &e };
	pthread_t ts[NSTORERS + 2];
	void *args[NSTORERS][2];
	for (int t = 0; t < NSTORERS; t++) {
		args[t][0] = &h;
		args[t][1] = (void *)(intptr_t)t;
		assert_int_equal(pthread_create(&ts[t], NULL, storer, args[t]), 0);
	}
	assert_int_equal(pthread_create(&ts[NSTORERS], NULL, loader, &h), 0);
	assert_int_equal(pthread_create(&ts[NSTORERS + 1], NULL, pinner_reader, &h), 0);
	unsigned seed = 3;
	int rounds = 300 * HAMMER_SCALE;
	for (int n = 0; n < rounds; n++) {
		uint64_t p = rand_r(&seed) % 512, k = 1 + rand_r(&seed) % 3;
		assert_int_equal(pcache_poison(e.pc, p * 4096, k * 4096), 0);
		if (n % 4 == 0)
			assert_int_equal(pcache_writeback_range(e.pc, 0, e.size), 0);
		usleep(200);
		assert_int_equal(pcache_unpoison(e.pc, (rand_r(&seed) % 512) * 4096, 8 * 4096), 0);
	}
	/* end with a few pages poisoned: their granules must be absent */
	assert_int_equal(pcache_poison(e.pc, 300 * 4096, 4096), 0);
	__atomic_store_n(&h.stop, 1, __ATOMIC_RELEASE);
	for (int t = 0; t < NSTORERS + 2; t++)
		pthread_join(ts[t], NULL);
	assert_int_equal(granule_state(&e, 300 * 4096), FAKE_ABSENT);
	assert_int_equal(pcache_map_check(e.m), 0);
	assert_null(pcache_broken(e.pc));
	/* nothing any storer stored was lost through all the poisoning */
	assert_int_equal(pcache_unpoison(e.pc, 0, e.size), 0);
	assert_int_equal(pcache_writeback_range(e.pc, 0, e.size), 0);
	assert_int_equal(env_file_mismatch(&e), -1);
	struct pcache_stats s = env_stats(&e);
	assert_int_equal(s.poison_pages, 0);
	fprintf(stderr, "granule %llu KiB: %llu loads, %llu poisoned, %llu pins, %llu pin EIO, "
		"%llu reads, %llu read EIO, %llu cleared by stores\n",
		(unsigned long long)(gran / KIB), (unsigned long long)h.loads,
		(unsigned long long)h.poisoned_loads, (unsigned long long)h.pins,
		(unsigned long long)h.pin_eio, (unsigned long long)h.reads,
		(unsigned long long)h.read_eio, (unsigned long long)s.poison_cleared);
	env_close(&e);
}

static void test_poison_races_64k(void **state) { (void)state; hammer_granule(64 * KIB); }
static void test_poison_races_2m(void **state) { (void)state; hammer_granule(2 * MIB); }

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_poison_4k_granule),
		cmocka_unit_test(test_poison_64k_granule),
		cmocka_unit_test(test_poison_2m_granule),
		cmocka_unit_test(test_store_clears_poison),
		cmocka_unit_test(test_direct_write_and_punch_over_poison),
		cmocka_unit_test(test_two_maps_and_list),
		cmocka_unit_test(test_poison_of_unwritable_dirty_page),
		cmocka_unit_test(test_poison_waits_for_dma),
		cmocka_unit_test(test_poison_races_64k),
		cmocka_unit_test(test_poison_races_2m),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
