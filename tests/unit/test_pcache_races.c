/* mm/: the interleavings of issue 12 ("no acknowledged byte lost"), each as a test on the fake
 * shadow table with the race-delay knob (pcache_set_race_delay) holding one thread inside the
 * window while another runs. Each failed on the code before its fix (the note of issue 12 says
 * how); the invariants come from the seed threads:
 *   - seed 000 (Arcangeli): the dirty bit of the pte must reach the page before the O_DIRECT
 *     read or the FLUSH that relies on it;
 *   - seed 004: gather every mapping (write-protect + shootdown) before writeback, and a
 *     buffered fallback copies only the bytes it writes into the page;
 *   - errseq (the kernel's file_check_and_advance_wb_err): an fsync whose own writeback failed
 *     reports it, whatever another fsync of the same file saw. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>

#include "tests/unit/test_pcache_env.h"

static void file_read_at(struct env *e, uint64_t off, void *buf, size_t len)
{
	int fd = open(e->path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

struct dw_arg { struct env *e; uint64_t off; size_t len; uint8_t byte; ssize_t r; };

static void *direct_write_thread(void *arg)
{
	struct dw_arg *a = arg;
	uint8_t *b = malloc(a->len);
	memset(b, a->byte, a->len);
	a->r = pcache_direct_write(a->e->pc, a->off, b, a->len);
	free(b);
	return NULL;
}

/* Finding 1. Granule G (2 MiB) is WRITABLE and the guest has stored to its page 511 (logged by
 * KVM, not yet DIRTY). A direct write to page 0 unmaps G and takes the log bits; while it holds
 * them (the race knob stops it there), a writeback of page 511 (a blk read's, or a FLUSH's)
 * runs. It must find the store: either in the log (the granule still counts as WRITABLE) or
 * as DIRTY (the unmapper applied it before G stopped counting). Before the fix the unmap
 * cleared the writable bit first, the writeback skipped G, and page 511 never reached the
 * file: the FLUSH was acknowledged without the data. */
static void test_writeback_racing_unmap_of_its_granule(void **state)
{
	(void)state;
	struct env e = { 0 };
	assert_int_equal(env_open(&e, 4 * MIB, 4 * MIB, 2 * MIB, true), 0);
	assert_int_equal(env_store8(&e, 0, 0x1111), PCACHE_FAULT_DONE); /* G WRITABLE */
	assert_int_equal(pcache_writeback_range(e.pc, 0, e.size), 0);
	assert_int_equal(shadow_fake_state(e.fk, ENV_BASE), FAKE_WRITABLE);
	const uint64_t p511 = 511 * 4096;
	assert_int_equal(env_store8(&e, p511, 0x5115115115115ULL), PCACHE_FAULT_DONE);
	assert_false(pcache_page_flags(e.pc, p511) & PG_DIRTY); /* only in the log */

	pcache_set_race_delay(e.pc, 300 * 1000);
	struct dw_arg a = { .e = &e, .off = 0, .len = 4096, .byte = 0xab };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, direct_write_thread, &a), 0);
	usleep(100 * 1000); /* the writer is inside the unmap, holding the log bits */
	assert_int_equal(pcache_writeback_range(e.pc, p511, 4096), 0);
	uint64_t got = 0;
	file_read_at(&e, p511, &got, 8);
	assert_int_equal(got, 0x5115115115115ULL);
	pthread_join(t, NULL);
	pcache_set_race_delay(e.pc, 0);
	assert_int_equal(a.r, 4096);
	memset(e.model, 0xab, 4096);
	assert_int_equal(pcache_writeback_range(e.pc, 0, e.size), 0);
	assert_int_equal(env_file_mismatch(&e), -1);
	assert_int_equal(pcache_map_check(e.m), 0);
	env_close(&e);
}

/* Finding 2a. A blk IN (request A) has pinned page P for its buffer [P+2048, P+4096) and its
 * read has filled those bytes (DIRTY comes at unpin). A direct write B of [P, P+512) cannot
 * drop the pinned page and takes the write-through fallback: it must copy only its own bytes
 * into the page (seed 004's buffered fallback), not re-read the whole page from the file,
 * which reverted A's bytes while A completed OK. */
static void test_fallback_keeps_dma_bytes_of_pinned_page(void **state)
{
	(void)state;
	struct env e = { 0 };
	assert_int_equal(env_open(&e, 4 * MIB, 4 * MIB, 64 * KIB, true), 0);
	const uint64_t P = 40 * 4096;
	assert_int_equal(pcache_pin(e.pc, P + 2048, 2048, true), 0);
	memset(pcache_mem(e.pc) + P + 2048, 0xcd, 2048); /* A's DMA */
	memset(e.model + P + 2048, 0xcd, 2048);
	uint8_t w[512];
	memset(w, 0xef, sizeof(w));
	assert_int_equal(pcache_direct_write(e.pc, P, w, sizeof(w)), (ssize_t)sizeof(w));
	memcpy(e.model + P, w, sizeof(w));
	assert_memory_equal(pcache_mem(e.pc) + P, e.model + P, 4096); /* both in the page */
	pcache_unpin(e.pc, P + 2048, 2048, true);
	assert_int_equal(pcache_writeback_range(e.pc, 0, e.size), 0);
	assert_int_equal(env_file_mismatch(&e), -1);
	assert_int_equal(env_load8(&e, P + 2048), 0xcdcdcdcdcdcdcdcdULL);
	env_close(&e);
}

/* Finding 2b. The same, but A unpins (DIRTY) while B's file write is in flight: B found P
 * DIRTY and dropped it because "the write wins", true only for a page B covers wholly. */
static void test_partial_write_keeps_page_dirtied_during_it(void **state)
{
	(void)state;
	struct env e = { 0 };
	assert_int_equal(env_open(&e, 4 * MIB, 4 * MIB, 64 * KIB, true), 0);
	const uint64_t P = 40 * 4096;
	assert_int_equal(pcache_pin(e.pc, P + 2048, 2048, true), 0);
	memset(pcache_mem(e.pc) + P + 2048, 0xcd, 2048);
	memset(e.model + P + 2048, 0xcd, 2048);
	pcache_set_race_delay(e.pc, 200 * 1000);
	struct dw_arg a = { .e = &e, .off = P, .len = 512, .byte = 0xef };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, direct_write_thread, &a), 0);
	usleep(50 * 1000); /* B has laundered (nothing DIRTY yet) and waits before its write */
	pcache_unpin(e.pc, P + 2048, 2048, true); /* A completes: DIRTY */
	pthread_join(t, NULL);
	pcache_set_race_delay(e.pc, 0);
	assert_int_equal(a.r, 512);
	memset(e.model + P, 0xef, 512);
	assert_int_equal(pcache_writeback_range(e.pc, 0, e.size), 0);
	assert_int_equal(env_file_mismatch(&e), -1);
	env_close(&e);
}

/* Finding 3. Two FLUSHes of one device (blk requests run on workers) share its errseq cursor.
 * FLUSH A's own writeback fails; FLUSH B, on another worker, samples the error first and
 * advances the cursor past it (simulated here by the cursor value B leaves behind). A must
 * still fail: its page is not in the file. Before the fix it returned OK. */
static void test_flush_fails_when_its_own_writeback_failed(void **state)
{
	(void)state;
	struct env e = { 0 };
	assert_int_equal(env_open(&e, 4 * MIB, 0, 64 * KIB, true), 0);
	assert_int_equal(env_store8(&e, 8192, 77), PCACHE_FAULT_DONE);
	uint64_t cursor = pcache_errseq_sample(e.pc) + 1; /* B took A's error already */
	struct pcache_inject inj = { .pwrite_errno = EIO, .pwrite_count = 1 };
	pcache_set_inject(e.pc, &inj);
	assert_int_equal(pcache_flush(e.pc, &cursor), -EIO);
	/* the data stayed DIRTY: the next FLUSH writes it and succeeds */
	assert_int_equal(pcache_flush(e.pc, &cursor), 0);
	assert_int_equal(env_file_mismatch(&e), -1);
	/* an fdatasync failure of this very FLUSH likewise */
	inj = (struct pcache_inject){ .fdatasync_errno = EIO, .fdatasync_count = 1 };
	pcache_set_inject(e.pc, &inj);
	cursor = pcache_errseq_sample(e.pc) + 1;
	assert_int_equal(pcache_flush(e.pc, &cursor), -EIO);
	env_close(&e);
}

struct fl_arg { struct env *e; uint64_t *cursor; int r; };

static void *flush_thread(void *arg)
{
	struct fl_arg *a = arg;
	a->r = pcache_flush(a->e->pc, a->cursor);
	return NULL;
}

/* Finding 3, the full interleaving the spin model found (granule.pml BUG_FLUSH_OWN_ONLY):
 * FLUSH A takes page P's hint and its write fails (P is DIRTY again); FLUSH B, of the same
 * device, found no hint (A had it), waited for A's write and returns. If A advanced the shared
 * cursor first, B saw "no new error" and said OK with P not in the file. A FLUSH must fail if
 * an error was recorded while it ran (the errseq sampled at its start), not only if its own
 * writeback failed. Repeated: which of A and B checks the cursor first is up to the scheduler. */
static void test_overlapping_flushes_both_see_the_error(void **state)
{
	(void)state;
	for (int round = 0; round < 6; round++) {
		struct env e = { 0 };
		assert_int_equal(env_open(&e, 4 * MIB, 0, 64 * KIB, true), 0);
		assert_int_equal(env_store8(&e, 8192, 77), PCACHE_FAULT_DONE);
		uint64_t cursor = pcache_errseq_sample(e.pc);
		struct pcache_inject inj = { .pwrite_errno = EIO, .pwrite_count = 1 };
		pcache_set_inject(e.pc, &inj);
		pcache_set_race_delay(e.pc, 150 * 1000); /* A sits between taking P and its write */
		struct fl_arg a = { .e = &e, .cursor = &cursor };
		pthread_t t;
		assert_int_equal(pthread_create(&t, NULL, flush_thread, &a), 0);
		usleep(50 * 1000);
		int rb = pcache_flush(e.pc, &cursor); /* B */
		pthread_join(t, NULL);
		pcache_set_race_delay(e.pc, 0);
		assert_int_equal(a.r, -EIO);
		assert_int_equal(rb, -EIO); /* P is not in the file: B must not say OK */
		assert_true(pcache_page_flags(e.pc, 8192) & PG_DIRTY);
		assert_int_equal(pcache_flush(e.pc, &cursor), 0); /* the retry writes it */
		assert_int_equal(env_file_mismatch(&e), -1);
		env_close(&e);
	}
}

/* The read side (granule.pml BUG_READ_OWN_ONLY): a blk read of P beside a FLUSH whose write of
 * P fails waits for that write, then reads the file's stale bytes: it must fail, not return
 * them with OK. */
static void test_read_beside_failed_writeback_fails(void **state)
{
	(void)state;
	struct env e = { 0 };
	assert_int_equal(env_open(&e, 4 * MIB, 4 * MIB, 64 * KIB, true), 0);
	assert_int_equal(env_store8(&e, 8192, 0x7777), PCACHE_FAULT_DONE);
	uint64_t cursor = pcache_errseq_sample(e.pc);
	struct pcache_inject inj = { .pwrite_errno = EIO, .pwrite_count = 1 };
	pcache_set_inject(e.pc, &inj);
	pcache_set_race_delay(e.pc, 150 * 1000);
	struct fl_arg a = { .e = &e, .cursor = &cursor };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, flush_thread, &a), 0);
	usleep(50 * 1000);
	uint64_t got = 0;
	ssize_t r = pcache_direct_read(e.pc, 8192, &got, 8);
	pthread_join(t, NULL);
	pcache_set_race_delay(e.pc, 0);
	assert_int_equal(a.r, -EIO);
	if (r == 8)
		assert_int_equal(got, 0x7777); /* OK only with the store's bytes */
	else
		assert_int_equal(r, -EIO);
	assert_int_equal(pcache_direct_read(e.pc, 8192, &got, 8), 8); /* retried: written now */
	assert_int_equal(got, 0x7777);
	env_close(&e);
}

/* Finding 4. The direct write cannot unmap the granule (the ioctl fails): the granule stays
 * mapped, so none of its pages may lose UPTODATE/RESERVED. Before the fix the pages were
 * dropped anyway; the guest's next store and a harvest hit assert(UPTODATE) and aborted. */
static void test_direct_write_keeps_pages_when_unmap_fails(void **state)
{
	(void)state;
	struct env e = { 0 };
	assert_int_equal(env_open(&e, 4 * MIB, 4 * MIB, 64 * KIB, true), 0);
	assert_int_equal(env_store8(&e, 0, 1), PCACHE_FAULT_DONE); /* granule 0 WRITABLE */
	assert_int_equal(pcache_writeback_range(e.pc, 0, e.size), 0);
	e.fk->fail_unmap = -EIO;
	uint8_t w[4096];
	memset(w, 0x77, sizeof(w));
	assert_true(pcache_direct_write(e.pc, 4096, w, sizeof(w)) < 0);
	assert_int_equal(shadow_fake_state(e.fk, ENV_BASE), FAKE_WRITABLE);
	assert_int_equal(pcache_map_check(e.m), 0);
	for (uint64_t p = 0; p < 16; p++)
		assert_true(pcache_page_flags(e.pc, p * 4096) & PG_UPTODATE);
	/* the guest goes on storing into the still-mapped granule; writeback keeps it */
	assert_int_equal(env_store8(&e, 4096 + 8, 0x4242), PCACHE_FAULT_DONE);
	assert_int_equal(env_store8(&e, 2 * 4096, 0x4343), PCACHE_FAULT_DONE);
	assert_int_equal(pcache_writeback_range(e.pc, 0, e.size), 0);
	assert_int_equal(env_file_mismatch(&e), -1);
	/* and a retry once the ioctl works again goes through */
	assert_int_equal(pcache_direct_write(e.pc, 4096, w, sizeof(w)), (ssize_t)sizeof(w));
	memcpy(e.model + 4096, w, sizeof(w));
	assert_int_equal(pcache_writeback_range(e.pc, 0, e.size), 0);
	assert_int_equal(env_file_mismatch(&e), -1);
	env_close(&e);
}

/* Issue 13 (DESIGN "fault", mkwrite): a store from guest KERNEL mode that finds no backing
 * blocks is accepted into the cache (a machine check in kernel context is fatal to Linux: a
 * 6.1 guest panicked on ext4's DAX block zeroing), its page DIRTY and not RESERVED (granule
 * READONLY); each FLUSH reports the writeback's ENOSPC and keeps the page DIRTY; once space is
 * back, a FLUSH writes it and succeeds. A user-mode store (PCACHE_STORE) is still refused. */
static void test_kernel_store_without_space_is_reported_at_flush(void **state)
{
	(void)state;
	struct env e = { 0 };
	assert_int_equal(env_open(&e, 4 * MIB, 0, 64 * KIB, true), 0);
	struct pcache_inject inj = { .fallocate_errno = ENOSPC, .fallocate_count = -1 };
	pcache_set_inject(e.pc, &inj);
	uint64_t v = 0xfeedface, off = 5 * 4096;
	assert_int_equal(pcache_fault(e.m, ENV_BASE + off, PCACHE_STORE, &v, 8), PCACHE_FAULT_MCE);
	assert_int_equal(pcache_fault(e.m, ENV_BASE + off, PCACHE_STORE_UNBACKED, &v, 8),
			 PCACHE_FAULT_DONE);
	memcpy(e.model + off, &v, 8);
	uint32_t f = pcache_page_flags(e.pc, off);
	assert_true((f & PG_DIRTY) && (f & PG_UPTODATE) && !(f & PG_RESERVED));
	assert_int_equal(shadow_fake_state(e.fk, ENV_BASE + off), FAKE_READONLY);
	assert_int_equal(env_stats(&e).stores_unbacked, 1);
	assert_int_equal(pcache_map_check(e.m), 0);
	/* the host file system is full: the FLUSH says so, twice, and keeps the data */
	uint64_t cursor = pcache_errseq_sample(e.pc);
	inj.pwrite_errno = ENOSPC;
	inj.pwrite_count = -1;
	pcache_set_inject(e.pc, &inj);
	assert_int_equal(pcache_flush(e.pc, &cursor), -ENOSPC);
	assert_int_equal(pcache_flush(e.pc, &cursor), -ENOSPC);
	assert_true(pcache_page_flags(e.pc, off) & PG_DIRTY);
	assert_int_equal(env_load8(&e, off), v);
	/* space is back: the FLUSH writes it */
	struct pcache_inject none = { 0 };
	pcache_set_inject(e.pc, &none);
	assert_int_equal(pcache_flush(e.pc, &cursor), 0);
	assert_int_equal(env_file_mismatch(&e), -1);
	env_close(&e);
}

struct inv_arg { struct env *e; uint64_t off, len; int r; int done; };

static void *invalidate_thread(void *arg)
{
	struct inv_arg *a = arg;
	a->r = pcache_invalidate_range(a->e->pc, a->off, a->len);
	__atomic_store_n(&a->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Issue 14 defect 5. A host tool changed page P of the file and says `invalidate` while a blk
 * request has P pinned for DMA. The invalidate must give a definite answer, not EBUSY: it waits
 * for the DMAs in flight (new pins wait meanwhile), then drops P, and the guest's next load
 * sees the tool's bytes. Before, a pinned page was skipped with EBUSY (the control socket
 * retried for 1 s and gave up), so a guest keeping requests in flight refused it forever. */
static void test_invalidate_waits_for_pins_instead_of_ebusy(void **state)
{
	(void)state;
	struct env e = { 0 };
	assert_int_equal(env_open(&e, 4 * MIB, 4 * MIB, 64 * KIB, true), 0);
	const uint64_t P = 70 * 4096;
	assert_int_equal(env_load8(&e, P), *(uint64_t *)(e.model + P)); /* cached, mapped */
	assert_int_equal(pcache_pin(e.pc, P, 4096, false), 0);          /* a DMA in flight */
	uint8_t tool[4096];
	memset(tool, 0x3c, sizeof(tool));
	env_file_write(&e, P, tool, sizeof(tool));                        /* the host tool */
	struct inv_arg a = { .e = &e, .off = P, .len = 4096 };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, invalidate_thread, &a), 0);
	usleep(100 * 1000);
	assert_int_equal(__atomic_load_n(&a.done, __ATOMIC_ACQUIRE), 0); /* waits for the DMA */
	pcache_unpin(e.pc, P, 4096, false);
	pthread_join(t, NULL);
	assert_int_equal(a.r, 0);
	assert_int_equal(env_load8(&e, P), 0x3c3c3c3c3c3c3c3cULL);
	assert_int_equal(pcache_writeback_range(e.pc, 0, e.size), 0);
	assert_int_equal(env_file_mismatch(&e), -1);
	env_close(&e);
}

/* Failing shadow ioctls (map, unmap, harvest fail at random) under a random mix of guest
 * stores and loads, direct writes and reads, writebacks, FLUSHes, invalidations and punches:
 * every operation either completes coherently or returns an error with nothing lost, and
 * nothing aborts (issue 12: "no assert aborts cvmm on a path a failing ioctl can reach").
 * The model holds what each successful operation wrote; loads and direct reads must match it,
 * and once the failures stop, one FLUSH puts exactly the model in the file. */
static uint64_t rnd(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static void shadow_failures_random(uint64_t gran, uint64_t seed)
{
	struct env e = { 0 };
	assert_int_equal(env_open(&e, 4 * MIB, 4 * MIB, gran, true), 0);
	uint64_t cursor = pcache_errseq_sample(e.pc), x = seed;
	uint8_t buf[3 * 4096];
	for (int op = 0; op < 3000; op++) {
		switch (rnd(&x) % 8) { /* a failure armed for the next ioctl of that kind */
		case 0: e.fk->fail_map = -EIO; break;
		case 1: e.fk->fail_unmap = -EIO; break;
		case 2: e.fk->fail_harvest = -EIO; break;
		default: break;
		}
		uint64_t off = (rnd(&x) % (e.size / 8)) * 8;
		uint64_t len = 1 + rnd(&x) % sizeof(buf);
		if (off + len > e.size)
			len = e.size - off;
		switch (rnd(&x) % 8) {
		case 0: case 1: { /* guest store */
			uint64_t v = rnd(&x);
			assert_int_equal(env_store8(&e, off, v), PCACHE_FAULT_DONE);
			break;
		}
		case 2: /* guest load */
			assert_int_equal(env_load8(&e, off), *(uint64_t *)(e.model + off));
			break;
		case 3: /* direct write (blk OUT, host-write) */
			for (uint64_t i = 0; i < len; i++)
				buf[i] = (uint8_t)rnd(&x);
			if (pcache_direct_write(e.pc, off, buf, len) == (ssize_t)len)
				memcpy(e.model + off, buf, len);
			break;
		case 4: /* direct read (blk IN) */
			if (pcache_direct_read(e.pc, off, buf, len) == (ssize_t)len)
				assert_memory_equal(buf, e.model + off, len);
			break;
		case 5:
			(void)pcache_flush(e.pc, &cursor);
			break;
		case 6:
			(void)pcache_invalidate_range(e.pc, off & ~4095ULL, 4096);
			break;
		default: /* DISCARD of whole pages */
			if (pcache_break_punch(e.pc, off & ~4095ULL, 4096, false) == 0)
				memset(e.model + (off & ~4095ULL), 0, 4096);
			break;
		}
		assert_int_equal(pcache_map_check(e.m), 0);
		assert_null(pcache_broken(e.pc)); /* no invariant check tripped (it stops the VM) */
	}
	e.fk->fail_map = e.fk->fail_unmap = e.fk->fail_harvest = 0;
	(void)pcache_flush(e.pc, &cursor); /* may still report an earlier error, once */
	assert_int_equal(pcache_flush(e.pc, &cursor), 0);
	assert_int_equal(env_file_mismatch(&e), -1);
	env_close(&e);
}

static void test_shadow_failures_lose_nothing(void **state)
{
	(void)state;
	shadow_failures_random(64 * KIB, 0x9e3779b97f4a7c15ULL);
	shadow_failures_random(2 * MIB, 12345);
	shadow_failures_random(4 * KIB, 777);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_writeback_racing_unmap_of_its_granule),
		cmocka_unit_test(test_fallback_keeps_dma_bytes_of_pinned_page),
		cmocka_unit_test(test_partial_write_keeps_page_dirtied_during_it),
		cmocka_unit_test(test_flush_fails_when_its_own_writeback_failed),
		cmocka_unit_test(test_overlapping_flushes_both_see_the_error),
		cmocka_unit_test(test_read_beside_failed_writeback_fails),
		cmocka_unit_test(test_direct_write_keeps_pages_when_unmap_fails),
		cmocka_unit_test(test_invalidate_waits_for_pins_instead_of_ebusy),
		cmocka_unit_test(test_kernel_store_without_space_is_reported_at_flush),
		cmocka_unit_test(test_shadow_failures_lose_nothing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
