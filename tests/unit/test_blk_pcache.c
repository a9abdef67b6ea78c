/* virtio-blk on the host page cache (devices/blk_pcache.c) with buffers in the pmem window:
 * the coherency invariants a1..e1 of the `coherency` guest scenario, expressed host-side with
 * the fake shadow table (mm/shadow_fake.h) standing in for KVM and a temp file, through the
 * real request path (split ring -> walker with the window translation hook -> blk_handle ->
 * pins -> pcache direct I/O). Also: the pinned-page fallback, self-overlapping requests (d1,
 * d2, a DISCARD whose own segment table and status byte lie in the range it discards) under a
 * watchdog, buffers straddling RAM and the window, a DMA racing a break (b1), and the numbers
 * (CVMM_BENCH=1 prints the costs of a blk read over dirty vs clean pages and a blk write over
 * a mapped vs unmapped granule).
 *
 * Every test runs with 4 KiB and with 2 MiB granules, and with the disk at file offset 0 and
 * at 1 MiB ([blk] offset; disk byte d = file byte d + blk_off). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <linux/falloc.h>
#include <signal.h>
#include <time.h>

#include "devices/blk.h"
#include "tests/unit/test_blk_req.h"
#include "devices/virtqueue.h"
#include "tests/unit/test_pcache_env.h"

#define RAM_SIZE  (8u << 20)
#define HDR_GPA   0x10000
#define STAT_GPA  0x11000
#define SEG_GPA   0x12000
#define DATA_GPA  0x100000
#define WIN_SIZE  (8 * MIB)
#define W(off)    (ENV_BASE + (uint64_t)(off))

struct cfg {
	uint64_t gran, blk_off;
};

struct bx {
	struct env e;
	uint64_t blk_off;
	uint8_t *ram;
	struct guest_mem ram_mem;
	struct virtq_dma dma;   /* RAM plus the window's translation hook */
	struct virtq q;
	struct vq_req r;
	uint16_t avail;
	struct blk_dev b;
	uint64_t pmem_cursor;
};

/* ---- watchdog: a self-deadlock must fail the test, not hang the suite -------------------- */

static const char *watch_name = "";

static void on_alarm(int sig)
{
	(void)sig;
	char msg[256];
	int n = snprintf(msg, sizeof(msg), "\nWATCHDOG: %s did not terminate (self-deadlock?)\n",
			 watch_name);
	if (write(2, msg, (size_t)n) < 0) {
		/* nothing more to do */
	}
	abort();
}

static void watchdog(const char *name, unsigned s)
{
	watch_name = name;
	signal(SIGALRM, on_alarm);
	alarm(s);
}

/* ---- fixture ----------------------------------------------------------------------------- */

static int setup(void **state, const struct cfg *c)
{
	struct bx *x = calloc(1, sizeof(*x));
	assert_int_equal(env_open(&x->e, WIN_SIZE, WIN_SIZE, c->gran, true), 0);
	x->blk_off = c->blk_off;
	assert_int_equal(posix_memalign((void **)&x->ram, 4096, RAM_SIZE), 0);
	memset(x->ram, 0, RAM_SIZE);
	assert_int_equal(guest_mem_add(&x->ram_mem, 0, RAM_SIZE, x->ram), 0);
	char err[256];
	void *ctx;
	assert_int_equal(blk_dma_window_create(x->e.pc, ENV_BASE, &x->ram_mem, &ctx, &x->dma, err,
					       sizeof(err)), 0);
	assert_int_equal(virtq_setup(&x->q, &x->dma, QSZ, DESC_GPA, AVAIL_GPA, USED_GPA, false,
				     true, QSZ, err, sizeof(err)), 0);
	assert_non_null(x->q.translate);
	assert_int_equal(vq_req_init(&x->r, QSZ), 0);
	struct blk_backend *be;
	struct blk_pcache_opts o = { .pc = x->e.pc, .offset = c->blk_off };
	assert_int_equal(blk_pcache_open(&o, &be, err, sizeof(err)), 0);
	assert_int_equal(be->size, WIN_SIZE - c->blk_off);
	assert_int_equal(blk_init(&x->b, be, err, sizeof(err)), 0);
	blk_set_dma(&x->b, &blk_dma_window_ops, ctx);
	x->pmem_cursor = pcache_errseq_sample(x->e.pc);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct bx *x = *state;
	alarm(0);
	/* nothing may stay pinned after a request */
	for (uint64_t p = 0; p < WIN_SIZE; p += 4096)
		assert_int_equal(pcache_page_pins(x->e.pc, p), 0);
	assert_int_equal(pcache_map_check(x->e.m), 0);
	blk_destroy(&x->b);
	vq_req_free(&x->r);
	free(x->ram);
	env_close(&x->e);
	free(x);
	return 0;
}

static const struct cfg c4k = { 4 * KIB, 0 }, c2m = { 2 * MIB, 0 }, c4k_off = { 4 * KIB, 1 * MIB },
			c2m_off = { 2 * MIB, 1 * MIB };
static int setup_4k(void **s) { return setup(s, &c4k); }
static int setup_2m(void **s) { return setup(s, &c2m); }
static int setup_4k_off(void **s) { return setup(s, &c4k_off); }
static int setup_2m_off(void **s) { return setup(s, &c2m_off); }

/* ---- requests ---------------------------------------------------------------------------- */


/* Chain the segments, offer, pop, handle, push. Returns used.len. */
static uint32_t submit(struct bx *x, const struct seg *s, int n)
{
	uint32_t len = blk_req_submit(x->ram, &x->avail, &x->q, &x->r, &x->b, s, n);
	return len;
}

/* IN/OUT of len bytes at disk offset doff with the data buffer at gpa (RAM or window). */
static uint8_t blk_io(struct bx *x, uint32_t type, uint64_t doff, uint64_t gpa, uint32_t len)
{
	struct virtio_blk_outhdr h = { .type = type, .sector = doff / 512 };
	memcpy(x->ram + HDR_GPA, &h, sizeof(h));
	x->ram[STAT_GPA] = 0xee;
	struct seg s[3] = { { HDR_GPA, 16, false }, { gpa, len, type == VIRTIO_BLK_T_IN },
			    { STAT_GPA, 1, true } };
	submit(x, s, 3);
	return x->ram[STAT_GPA];
}

/* File offset <-> disk offset. */
static uint64_t D(struct bx *x, uint64_t file_off)
{
	return file_off - x->blk_off;
}

static uint8_t blk_dwz(struct bx *x, uint32_t type, uint64_t doff, uint64_t len, uint32_t flags)
{
	struct virtio_blk_outhdr h = { .type = type };
	memcpy(x->ram + HDR_GPA, &h, sizeof(h));
	struct virtio_blk_dwz_seg sg = { .sector = doff / 512, .num_sectors = (uint32_t)(len / 512),
					 .flags = flags };
	memcpy(x->ram + SEG_GPA, &sg, sizeof(sg));
	x->ram[STAT_GPA] = 0xee;
	struct seg s[3] = { { HDR_GPA, 16, false }, { SEG_GPA, 16, false }, { STAT_GPA, 1, true } };
	submit(x, s, 3);
	return x->ram[STAT_GPA];
}

static uint8_t blk_flush(struct bx *x)
{
	struct virtio_blk_outhdr h = { .type = VIRTIO_BLK_T_FLUSH };
	memcpy(x->ram + HDR_GPA, &h, sizeof(h));
	x->ram[STAT_GPA] = 0xee;
	struct seg s[2] = { { HDR_GPA, 16, false }, { STAT_GPA, 1, true } };
	submit(x, s, 2);
	return x->ram[STAT_GPA];
}

/* ---- the guest's view of the window (loads/stores as the CPU would do them) -------------- */

static void fill(uint8_t *b, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)((i * 131 + seed * 7919 + (i >> 9)) ^ seed);
}

/* Store len bytes (8-byte aligned, multiple of 8) through the window. */
static void win_store(struct bx *x, uint64_t off, const uint8_t *data, size_t len)
{
	for (size_t i = 0; i < len; i += 8) {
		uint64_t v;
		memcpy(&v, data + i, 8);
		assert_int_equal(env_store8(&x->e, off + i, v), PCACHE_FAULT_DONE);
	}
}

/* The window's bytes [off, off+len) equal the model (the file as it must be). */
static void win_check(struct bx *x, uint64_t off, size_t len)
{
	for (size_t i = 0; i < len; i += 8) {
		uint64_t want;
		memcpy(&want, x->e.model + off + i, 8);
		uint64_t got = env_load8(&x->e, off + i);
		if (got != want)
			fail_msg("window load at 0x%llx: 0x%016llx, want 0x%016llx",
				 (unsigned long long)(off + i), (unsigned long long)got,
				 (unsigned long long)want);
	}
}

/* A blk read of [off, off+len) into RAM equals the model. */
static void blk_check(struct bx *x, uint64_t off, uint32_t len)
{
	memset(x->ram + DATA_GPA, 0xa5, len);
	assert_int_equal(blk_io(x, VIRTIO_BLK_T_IN, D(x, off), DATA_GPA, len), VIRTIO_BLK_S_OK);
	assert_memory_equal(x->ram + DATA_GPA, x->e.model + off, len);
}

static void pmem_flush(struct bx *x)
{
	assert_int_equal(pcache_flush(x->e.pc, &x->pmem_cursor), 0);
}

/* blk OUT of `data` from RAM; the model follows. */
static void blk_write(struct bx *x, uint64_t off, const uint8_t *data, uint32_t len)
{
	memcpy(x->ram + DATA_GPA, data, len);
	assert_int_equal(blk_io(x, VIRTIO_BLK_T_OUT, D(x, off), DATA_GPA, len), VIRTIO_BLK_S_OK);
	memcpy(x->e.model + off, data, len);
}

/* Region used by a test: past blk_off, so it is on the disk too. */
static uint64_t R(struct bx *x, uint64_t rel)
{
	return x->blk_off + 1 * MIB + rel;
}

/* ---- a: direct I/O vs the window ------------------------------------------------------------ */

/* a1 (seed 000): a pmem store, then a blk read of that range (no pmem FLUSH), returns the
 * stored bytes: the direct read writes back the dirty pages first. */
static void test_a1_store_then_blk_read(void **state)
{
	struct bx *x = *state;
	uint64_t off = R(x, 64 * KIB - 4096);
	uint8_t a[6000 + 8];
	fill(a, sizeof(a), 1);
	win_store(x, off + 96, a, 6000);           /* across a page (and 64 KiB) boundary */
	blk_check(x, off, 2 * 4096);
	win_check(x, off, 2 * 4096);
	assert_true(env_stats(&x->e).pages_written >= 2); /* written back, not read from the cache */
}

/* a2 (seed 000 + 004 shootdown): a blk write, then pmem loads return the new bytes, whether
 * the page was mapped clean, mapped dirty, or not mapped. */
static void test_a2_blk_write_then_load(void **state)
{
	struct bx *x = *state;
	uint64_t off = R(x, 128 * KIB);
	(void)env_load8(&x->e, off);               /* page 0 mapped clean */
	uint8_t a[4096];
	fill(a, sizeof(a), 2);
	win_store(x, off + 4096, a, 4096);         /* page 1 mapped dirty */
	uint8_t b[3 * 4096];
	fill(b, sizeof(b), 3);
	blk_write(x, off, b, sizeof(b));
	win_check(x, off, sizeof(b));
	uint8_t b2[4096];
	fill(b2, sizeof(b2), 4);
	blk_write(x, off + 4096, b2, sizeof(b2));
	win_check(x, off, sizeof(b));
	blk_check(x, off, sizeof(b));
	pmem_flush(x);
	assert_int_equal(env_file_mismatch(&x->e), -1);
}

/* a3 (seed 000/004): pmem stores over 4 pages, a blk write over the middle 2, then pmem
 * FLUSH: the file holds A B B A (the FLUSH does not write stale dirty pages over it). */
static void test_a3_blk_write_over_dirty_then_flush(void **state)
{
	struct bx *x = *state;
	uint64_t off = R(x, 2 * MIB - 8192);       /* across a 2 MiB boundary */
	uint8_t a[4 * 4096], b[2 * 4096];
	fill(a, sizeof(a), 5);
	fill(b, sizeof(b), 6);
	win_store(x, off, a, sizeof(a));
	blk_write(x, off + 4096, b, sizeof(b));
	pmem_flush(x);
	assert_int_equal(env_file_mismatch(&x->e), -1);
	win_check(x, off, sizeof(a));
	blk_check(x, off, sizeof(a));
}

/* a4 (seed 000, "512byte block"): a 512-byte blk write into a page dirtied through pmem keeps
 * the page's other bytes (read-modify-write under the page lock, after laundering). */
static void test_a4_subblock_write_keeps_dirty_bytes(void **state)
{
	struct bx *x = *state;
	uint64_t off = R(x, 256 * KIB);
	uint8_t a[4096], b[512];
	fill(a, sizeof(a), 7);
	fill(b, sizeof(b), 8);
	win_store(x, off, a, sizeof(a));
	blk_write(x, off + 1536, b, sizeof(b));
	win_check(x, off, 4096);
	blk_check(x, off, 4096);
	pmem_flush(x);
	assert_int_equal(env_file_mismatch(&x->e), -1);
	/* and an unaligned 512-byte write across two dirty pages */
	win_store(x, off + 4096, a, sizeof(a));
	blk_write(x, off + 4096 - 512, b, 1024 > sizeof(b) ? sizeof(b) : 1024);
	win_check(x, off, 8192);
	pmem_flush(x);
	assert_int_equal(env_file_mismatch(&x->e), -1);
}

/* ---- b: DISCARD / WRITE_ZEROES vs the window and vs DMA --------------------------------------- */

/* b2 (seed 001 + DESIGN "drop dirty state"): after DISCARD / WRITE_ZEROES the range is zeros
 * through both views, also after FLUSH. */
static void test_b2_discard_zeros_both_views(void **state)
{
	struct bx *x = *state;
	static const struct {
		uint32_t type, flags;
	} kinds[] = { { VIRTIO_BLK_T_DISCARD, 0 }, { VIRTIO_BLK_T_WRITE_ZEROES, 0 },
		      { VIRTIO_BLK_T_WRITE_ZEROES, VIRTIO_BLK_WZ_UNMAP } };
	for (unsigned k = 0; k < 3; k++) {
		uint64_t off = R(x, 768 * KIB + k * 64 * KIB);
		uint8_t a[64 * 1024];
		fill(a, sizeof(a), 10 + k);
		win_store(x, off, a, sizeof(a));             /* dirty, mapped */
		assert_int_equal(blk_dwz(x, kinds[k].type, D(x, off), 64 * KIB, kinds[k].flags),
				 VIRTIO_BLK_S_OK);
		memset(x->e.model + off, 0, 64 * KIB);
		win_check(x, off, 64 * KIB);
		blk_check(x, off, 64 * KIB);
		pmem_flush(x);
		win_check(x, off, 64 * KIB);
		blk_check(x, off, 64 * KIB);
		assert_int_equal(env_file_mismatch(&x->e), -1);
	}
}

/* b1 (seed 001): a blk read whose buffer is in the window racing a break of that buffer's
 * range (the DISCARD path) from another thread: the break completes only after the DMA, and
 * the result is one order or the other: all data (break first) or all zeros (DMA first). */
struct b1_arg {
	struct bx *x;
	uint64_t off, len;
	unsigned delay_us;
	int r;
	uint64_t t_done;
};

static uint64_t mono_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

static void *b1_breaker(void *p)
{
	struct b1_arg *a = p;
	usleep(a->delay_us);
	a->r = pcache_break_punch(a->x->e.pc, a->off, a->len, false);
	a->t_done = mono_ns();
	return NULL;
}

static void test_b1_dma_vs_discard(void **state)
{
	struct bx *x = *state;
	watchdog("b1", 60);
	uint64_t src = R(x, 0), dst = R(x, 512 * KIB), len = 64 * KIB;
	uint8_t p[64 * 1024];
	fill(p, sizeof(p), 20);
	blk_write(x, src, p, sizeof(p));
	/* the pin path sleeps after pinning: a break that starts then must wait for the DMA */
	pcache_set_race_delay(x->e.pc, 300);
	unsigned seed = 1, data_first = 0, zeros_first = 0;
	for (int it = 0; it < 40; it++) {
		uint8_t q[64 * 1024];
		fill(q, sizeof(q), 100 + (unsigned)it);
		win_store(x, dst, q, sizeof(q));         /* poison Q, mapped dirty */
		struct b1_arg a = { x, dst, len, (unsigned)(rand_r(&seed) % 900), 0, 0 };
		pthread_t t;
		pthread_create(&t, NULL, b1_breaker, &a);
		usleep((unsigned)(rand_r(&seed) % 600));
		assert_int_equal(blk_io(x, VIRTIO_BLK_T_IN, D(x, src), W(dst), (uint32_t)len),
				 VIRTIO_BLK_S_OK);
		uint64_t t_dma = mono_ns();
		pthread_join(t, NULL);
		assert_int_equal(a.r, 0);
		/* all P or all zeros, through both views, never Q, never a mix */
		uint8_t got[64 * 1024];
		assert_int_equal(pcache_direct_read(x->e.pc, dst, got, len), (ssize_t)len);
		bool all_p = !memcmp(got, p, len);
		uint8_t z[64 * 1024] = { 0 };
		bool all_z = !memcmp(got, z, len);
		if (!all_p && !all_z)
			fail_msg("iteration %d: the range is neither all data nor all zeros", it);
		memcpy(x->e.model + dst, all_p ? p : z, len);
		win_check(x, dst, len);
		if (all_z) {
			/* DMA first, then the break: the break finished after the DMA's unpin */
			assert_true(a.t_done >= t_dma - 1000000);
			zeros_first++;
		} else {
			data_first++;
		}
	}
	pcache_set_race_delay(x->e.pc, 0);
	pmem_flush(x);
	assert_int_equal(env_file_mismatch(&x->e), -1);
	print_message("# b1: %u ended with the data (break first), %u with zeros (DMA first)\n",
		      data_first, zeros_first);
}

/* ---- c: populate / mkwrite ----------------------------------------------------------------- */

/* c1 (seed 002): populate, then FLUSH (pmem or blk) writes nothing. */
static void test_c1_populate_then_flush(void **state)
{
	struct bx *x = *state;
	char err[256];
	assert_int_equal(pcache_populate(x->e.m, err, sizeof(err)), 0);
	uint64_t w0 = env_stats(&x->e).pages_written;
	assert_int_equal(blk_flush(x), VIRTIO_BLK_S_OK);
	pmem_flush(x);
	assert_int_equal(env_stats(&x->e).pages_written, w0);
}

/* c2 (seed 002): a blk read into a window buffer needs mkwrite of the buffer's pages; on
 * ENOSPC the request fails with IOERR, nothing stays pinned, and nothing flushed is lost. */
static void test_c2_dma_mkwrite_enospc(void **state)
{
	struct bx *x = *state;
	uint64_t off = R(x, 0);
	uint8_t a[4096];
	fill(a, sizeof(a), 30);
	win_store(x, off, a, sizeof(a));
	pmem_flush(x);
	/* a page of a fresh hole: its reservation fails */
	uint64_t dst = 7 * MIB + 64 * KIB;
	int fd = open(x->e.path, O_RDWR);
	assert_int_equal(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)dst,
				   64 * KIB), 0);
	close(fd);
	assert_int_equal(pcache_invalidate_range(x->e.pc, dst, 64 * KIB), 0);
	memset(x->e.model + dst, 0, 64 * KIB);
	struct pcache_inject inj = { .fallocate_errno = ENOSPC, .fallocate_count = -1 };
	pcache_set_inject(x->e.pc, &inj);
	assert_int_equal(blk_io(x, VIRTIO_BLK_T_IN, D(x, off), W(dst), 4096), VIRTIO_BLK_S_IOERR);
	struct pcache_inject none = { 0 };
	pcache_set_inject(x->e.pc, &none);
	assert_int_equal(pcache_page_pins(x->e.pc, dst), 0);
	assert_true(env_stats(&x->e).mkwrite_enospc >= 1);
	pmem_flush(x);
	assert_int_equal(env_file_mismatch(&x->e), -1);
}

/* ---- d: self-overlapping requests ------------------------------------------------------------ */

/* d1 (seed 003): a blk write whose source buffer is the window mapping of the very range it
 * writes terminates with the right bytes; also shifted by a page (source overlaps the
 * destination partly), with the source dirty in the window. */
static void test_d1_write_from_own_mapping(void **state)
{
	struct bx *x = *state;
	watchdog("d1", 20);
	uint64_t off = R(x, 1 * MIB + 256 * KIB);
	uint8_t a[16 * 1024];
	fill(a, sizeof(a), 40);
	win_store(x, off, a, sizeof(a));           /* dirty in the window, not in the file */
	assert_int_equal(blk_io(x, VIRTIO_BLK_T_OUT, D(x, off), W(off), sizeof(a)), VIRTIO_BLK_S_OK);
	win_check(x, off, sizeof(a));
	blk_check(x, off, sizeof(a));
	pmem_flush(x);
	assert_int_equal(env_file_mismatch(&x->e), -1);
	/* shifted: write pages 1..3's bytes over pages 0..2 (memmove semantics) */
	fill(a, sizeof(a), 41);
	win_store(x, off, a, sizeof(a));
	assert_int_equal(blk_io(x, VIRTIO_BLK_T_OUT, D(x, off), W(off + 4096), 3 * 4096),
			 VIRTIO_BLK_S_OK);
	memmove(x->e.model + off, x->e.model + off + 4096, 3 * 4096);
	win_check(x, off, sizeof(a));
	blk_check(x, off, sizeof(a));
	/* sub-block: a 512-byte write from its own mapping, unaligned inside the page */
	assert_int_equal(blk_io(x, VIRTIO_BLK_T_OUT, D(x, off + 1024), W(off + 1024), 512),
			 VIRTIO_BLK_S_OK);
	win_check(x, off, sizeof(a));
	pmem_flush(x);
	assert_int_equal(env_file_mismatch(&x->e), -1);
	assert_true(env_stats(&x->e).direct_write_fallback >= 1); /* the pinned source pages */
}

/* d2 (seed 003): a blk read into the window mapping of the very range it reads. */
static void test_d2_read_into_own_mapping(void **state)
{
	struct bx *x = *state;
	watchdog("d2", 20);
	uint64_t off = R(x, 1 * MIB + 320 * KIB);
	uint8_t a[16 * 1024];
	fill(a, sizeof(a), 50);
	win_store(x, off, a, sizeof(a));
	assert_int_equal(blk_io(x, VIRTIO_BLK_T_IN, D(x, off), W(off), sizeof(a)), VIRTIO_BLK_S_OK);
	win_check(x, off, sizeof(a));
	blk_check(x, off, sizeof(a));
	/* shifted: read pages 0..2 into the mapping of pages 1..3 */
	assert_int_equal(blk_io(x, VIRTIO_BLK_T_IN, D(x, off), W(off + 4096), 3 * 4096),
			 VIRTIO_BLK_S_OK);
	memmove(x->e.model + off + 4096, x->e.model + off, 3 * 4096);
	win_check(x, off, sizeof(a));
	pmem_flush(x);
	assert_int_equal(env_file_mismatch(&x->e), -1);
}

/* A DISCARD whose own segment table and status byte lie in the range it discards: the device
 * drops its pins before the break (which waits for the range's pins to drain). */
static void test_discard_own_buffers(void **state)
{
	struct bx *x = *state;
	watchdog("discard of its own buffers", 20);
	uint64_t off = R(x, 3 * MIB);
	uint8_t a[64 * 1024];
	fill(a, sizeof(a), 60);
	win_store(x, off, a, sizeof(a));
	struct virtio_blk_outhdr h = { .type = VIRTIO_BLK_T_DISCARD };
	memcpy(x->ram + HDR_GPA, &h, sizeof(h));
	struct virtio_blk_dwz_seg sg = { .sector = D(x, off) / 512, .num_sectors = 64 * KIB / 512 };
	uint64_t seg_off = off + 8192, st_off = off + 12288;
	pcache_direct_write(x->e.pc, seg_off, &sg, sizeof(sg)); /* the table, in the range */
	memcpy(x->e.model + seg_off, &sg, sizeof(sg));
	struct seg s[3] = { { HDR_GPA, 16, false }, { W(seg_off), 16, false }, { W(st_off), 1, true } };
	submit(x, s, 3);
	memset(x->e.model + off, 0, 64 * KIB);
	x->e.model[st_off] = VIRTIO_BLK_S_OK;     /* the status byte, written after the break */
	win_check(x, off, 64 * KIB);
	pmem_flush(x);
	assert_int_equal(env_file_mismatch(&x->e), -1);
}

/* ---- e: the host changes the file while the guest has the page mapped and dirty ------------ */

/* e1 (seed 004): a host-write (the control socket's path) while the guest has the page mapped
 * and dirty: the guest then loads the new bytes, and its stores outside the range survive. */
static void test_e1_host_write_into_dirty_page(void **state)
{
	struct bx *x = *state;
	uint64_t off = R(x, 1 * MIB + 512 * KIB);
	uint8_t a[4096], b[50];
	fill(a, sizeof(a), 70);
	fill(b, sizeof(b), 71);
	win_store(x, off, a, sizeof(a));
	assert_int_equal(pcache_direct_write(x->e.pc, off + 100, b, sizeof(b)), (ssize_t)sizeof(b));
	memcpy(x->e.model + off + 100, b, sizeof(b));
	win_check(x, off, 4096);
	/* a store after the change lands in the fresh page and reaches the file */
	assert_int_equal(env_store8(&x->e, off + 200, 0x0123456789abcdefULL), PCACHE_FAULT_DONE);
	pmem_flush(x);
	assert_int_equal(env_file_mismatch(&x->e), -1);
	/* External change (a host tool wrote the file behind our back, then said so): the
	 * protocol is lock; unmap; write back local dirty data; drop UPTODATE; unlock. So a page
	 * mapped clean shows the tool's bytes afterwards, and a guest store made before the
	 * invalidation is in the file (its page is written back whole: a tool must not change a
	 * page the guest has dirty and expect a byte-wise merge; host-write above is the
	 * coherent way to do that). */
	uint64_t clean = off + 4096, dirty = off + 8192;
	(void)env_load8(&x->e, clean);                                     /* mapped clean */
	assert_int_equal(env_store8(&x->e, dirty + 8, 0x1111), PCACHE_FAULT_DONE); /* dirty */
	uint8_t c[64];
	fill(c, sizeof(c), 72);
	int fd = open(x->e.path, O_WRONLY);
	assert_int_equal(pwrite(fd, c, sizeof(c), (off_t)(clean + 1000)), (ssize_t)sizeof(c));
	close(fd);
	memcpy(x->e.model + clean + 1000, c, sizeof(c));
	assert_int_equal(pcache_external_change(x->e.pc, clean, 2 * 4096), 0);
	assert_int_equal(pcache_map_granule_state(x->e.m, W(clean)), 0);   /* shot down */
	win_check(x, clean, 2 * 4096);
	assert_int_equal(env_file_mismatch(&x->e), -1); /* the store before it: written back */
	/* a store after it lands in a freshly read page */
	assert_int_equal(env_store8(&x->e, clean + 1000, 0x2222), PCACHE_FAULT_DONE);
	win_check(x, clean, 2 * 4096);
	pmem_flush(x);
	assert_int_equal(env_file_mismatch(&x->e), -1);
}

/* ---- f: FLUSHes on another vCPU ------------------------------------------------------------ */

/* f2: a pmem store, then a blk read of it, while another thread FLUSHes in a loop. The
 * flusher may have taken the page's dirty hint and not yet written it when the read's own
 * writeback runs: the read must wait for that write ("write AND WAIT"), or it returns the
 * file's old bytes. */
struct f2_arg {
	struct bx *x;
	int stop;
	uint64_t flushes;
};

static void *f2_flusher(void *p)
{
	struct f2_arg *a = p;
	uint64_t cursor = pcache_errseq_sample(a->x->e.pc);
	while (!__atomic_load_n(&a->stop, __ATOMIC_ACQUIRE)) {
		if (pcache_flush(a->x->e.pc, &cursor))
			abort();
		a->flushes++;
	}
	return NULL;
}

static void test_f2_store_read_vs_flush_loop(void **state)
{
	struct bx *x = *state;
	watchdog("f2", 120);
	uint64_t off = R(x, 2 * MIB + 512 * KIB);
	struct f2_arg a = { .x = x };
	/* writeback sleeps between taking a page (hint, DIRTY) and writing it */
	pcache_set_race_delay(x->e.pc, 200);
	pthread_t t;
	pthread_create(&t, NULL, f2_flusher, &a);
	unsigned seed = 3;
	for (int it = 0; it < 300; it++) {
		uint64_t o = off + (uint64_t)(rand_r(&seed) % 16) * 4096 + (uint64_t)(rand_r(&seed) % 512) * 8;
		uint64_t v = ((uint64_t)rand_r(&seed) << 32) | (uint64_t)it;
		assert_int_equal(env_store8(&x->e, o, v), PCACHE_FAULT_DONE);
		uint64_t got = 0;
		assert_int_equal(pcache_direct_read(x->e.pc, o, &got, 8), 8);
		if (got != v)
			fail_msg("iteration %d: blk read after a store returned 0x%llx, stored 0x%llx", it,
				 (unsigned long long)got, (unsigned long long)v);
	}
	__atomic_store_n(&a.stop, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	pcache_set_race_delay(x->e.pc, 0);
	pmem_flush(x);
	assert_int_equal(env_file_mismatch(&x->e), -1);
}

/* ---- fallback, walker, misc ----------------------------------------------------------------- */

/* A blk write over a page another DMA holds pinned: the page cannot be dropped; it is
 * refreshed from the file under its lock (the buffered-I/O fallback). */
static void test_pinned_fallback(void **state)
{
	struct bx *x = *state;
	uint64_t off = R(x, 2 * MIB + 64 * KIB);
	uint8_t a[8192], b[8192];
	fill(a, sizeof(a), 80);
	fill(b, sizeof(b), 81);
	win_store(x, off, a, sizeof(a));
	assert_int_equal(pcache_pin(x->e.pc, off, 4096, false), 0); /* an unrelated DMA */
	uint64_t fb = env_stats(&x->e).direct_write_fallback;
	blk_write(x, off, b, sizeof(b));
	assert_int_equal(env_stats(&x->e).direct_write_fallback, fb + 1);
	assert_true(pcache_page_flags(x->e.pc, off) & PG_UPTODATE);      /* kept */
	assert_false(pcache_page_flags(x->e.pc, off + 4096) & PG_UPTODATE); /* dropped */
	assert_memory_equal(pcache_mem(x->e.pc) + off, b, 4096);
	pcache_unpin(x->e.pc, off, 4096, false);
	win_check(x, off, sizeof(b));
	pmem_flush(x);
	assert_int_equal(env_file_mismatch(&x->e), -1);
}

/* The walker: a buffer wholly in the window is accepted (header and status there too); one
 * straddling RAM and the window, or running off the window's end, is refused (IOERR). */
static void test_walker_window_buffers(void **state)
{
	struct bx *x = *state;
	uint64_t off = R(x, 4 * MIB);
	uint8_t a[8192];
	fill(a, sizeof(a), 90);
	blk_write(x, off, a, sizeof(a));
	/* header, data and status all in the window */
	uint64_t hdr = off + 64 * KIB, st = off + 64 * KIB + 100, buf = off + 128 * KIB;
	struct virtio_blk_outhdr h = { .type = VIRTIO_BLK_T_IN, .sector = D(x, off) / 512 };
	pcache_direct_write(x->e.pc, hdr, &h, sizeof(h));
	memcpy(x->e.model + hdr, &h, sizeof(h));
	struct seg s[3] = { { W(hdr), 16, false }, { W(buf), 8192, true }, { W(st), 1, true } };
	submit(x, s, 3);
	memcpy(x->e.model + buf, a, sizeof(a));
	x->e.model[st] = VIRTIO_BLK_S_OK;
	win_check(x, off + 64 * KIB, 64 * KIB + 8192);
	assert_true(x->b.st.dma_requests >= 1);
	/* straddling RAM's end and beyond (not the window): refused as outside */
	uint64_t ioerr = x->b.st.ioerr;
	assert_int_equal(blk_io(x, VIRTIO_BLK_T_IN, 0, RAM_SIZE - 4096, 8192), VIRTIO_BLK_S_IOERR);
	/* running off the window's end */
	assert_int_equal(blk_io(x, VIRTIO_BLK_T_IN, 0, W(WIN_SIZE - 4096), 8192),
			 VIRTIO_BLK_S_IOERR);
	/* starting below the window, ending in it */
	assert_int_equal(blk_io(x, VIRTIO_BLK_T_IN, 0, ENV_BASE - 4096, 8192), VIRTIO_BLK_S_IOERR);
	assert_int_equal(x->b.st.ioerr, ioerr + 3);
	/* a bad chain whose status byte is in the window: not touched (not pinned), length 0 */
	uint8_t before = pcache_mem(x->e.pc)[st];
	struct seg bad[3] = { { HDR_GPA, 16, false }, { RAM_SIZE - 100, 200, true },
			      { W(st), 1, true } };
	memcpy(x->ram + HDR_GPA, &h, sizeof(h));
	assert_int_equal(submit(x, bad, 3), 0);
	assert_int_equal(pcache_mem(x->e.pc)[st], before);
	pmem_flush(x);
	assert_int_equal(env_file_mismatch(&x->e), -1);
}

/* A truncate (the control socket's) with the disk on the file: pages beyond the new end read
 * zeros through both views; the window keeps its size; a store there extends the file. */
static void test_truncate_both_views(void **state)
{
	struct bx *x = *state;
	uint64_t cut = WIN_SIZE - 1 * MIB;
	uint8_t a[4096];
	fill(a, sizeof(a), 95);
	win_store(x, cut + 4096, a, sizeof(a));   /* dirty beyond the cut: dropped */
	assert_int_equal(pcache_pin(x->e.pc, cut - 4096, 4096, false), 0); /* a DMA below: fine */
	assert_int_equal(pcache_truncate(x->e.pc, cut), 0);
	pcache_unpin(x->e.pc, cut - 4096, 4096, false);
	assert_int_equal(pcache_file_size(x->e.pc), cut);
	assert_int_equal(pcache_truncate(x->e.pc, cut + 1), -EINVAL);
	memset(x->e.model + cut, 0, WIN_SIZE - cut);
	win_check(x, cut, 64 * KIB);
	blk_check(x, cut, 64 * KIB);              /* past EOF: zeros */
	pmem_flush(x);
	assert_int_equal(pcache_file_size(x->e.pc), cut); /* nothing dirty beyond: not regrown */
	/* the window stays: a store beyond EOF is accepted, and its writeback extends the file */
	assert_int_equal(env_store8(&x->e, cut + 8, 0x77), PCACHE_FAULT_DONE);
	pmem_flush(x);
	assert_int_equal(pcache_file_size(x->e.pc), cut + 4096);
	assert_int_equal(truncate(x->e.path, WIN_SIZE), 0); /* for the comparison */
	assert_int_equal(env_file_mismatch(&x->e), -1);
}

/* FLUSH errors reach each device once (errseq): the blk disk and the pmem device both. */
static void test_flush_error_reported_to_blk(void **state)
{
	struct bx *x = *state;
	uint8_t a[4096];
	fill(a, sizeof(a), 97);
	win_store(x, R(x, 0), a, sizeof(a));
	struct pcache_inject inj = { .pwrite_errno = EIO, .pwrite_count = 1 };
	pcache_set_inject(x->e.pc, &inj);
	assert_int_equal(blk_flush(x), VIRTIO_BLK_S_IOERR);  /* the writeback failed */
	assert_int_equal(blk_flush(x), VIRTIO_BLK_S_OK);     /* retried, and reported once */
	assert_int_equal(pcache_flush(x->e.pc, &x->pmem_cursor), -EIO); /* pmem sees it too */
	assert_int_equal(pcache_flush(x->e.pc, &x->pmem_cursor), 0);
	assert_int_equal(env_file_mismatch(&x->e), -1);
}

/* ---- numbers (CVMM_BENCH=1) ------------------------------------------------------------------ */

static double bench_us(struct bx *x, bool dirty, bool write, bool mapped, int iters)
{
	uint64_t off = R(x, 4 * MIB), len = 64 * KIB;
	uint8_t a[64 * 1024];
	fill(a, sizeof(a), 99);
	double total = 0;
	for (int i = 0; i < iters; i++) {
		if (dirty)
			win_store(x, off, a, sizeof(a));
		else if (mapped)
			(void)env_load8(&x->e, off);
		else
			pmem_flush(x);
		if (!dirty && !mapped)
			assert_int_equal(pcache_invalidate_range(x->e.pc, off, len), 0);
		uint64_t t0 = mono_ns();
		if (write)
			assert_int_equal(blk_io(x, VIRTIO_BLK_T_OUT, D(x, off), DATA_GPA, (uint32_t)len),
					 VIRTIO_BLK_S_OK);
		else
			assert_int_equal(blk_io(x, VIRTIO_BLK_T_IN, D(x, off), DATA_GPA, (uint32_t)len),
					 VIRTIO_BLK_S_OK);
		total += (double)(mono_ns() - t0) / 1000.0;
		if (write)
			memcpy(x->e.model + off, x->ram + DATA_GPA, len);
	}
	return total / iters;
}

/* A media error (pcache_poison) seen through virtio-blk, as through a pmem namespace's block
 * device: a read over the bad page fails IOERR, so does a request whose buffer lies on it (its
 * pin fails), a write covering it partly fails IOERR leaving the file as it was, one covering
 * it wholly repairs it; the window then reads the written bytes. */
static void test_media_error(void **state)
{
	struct bx *x = *state;
	const uint64_t F = 3 * MIB + 8192;      /* file offset of the bad page */
	const uint64_t B = 5 * MIB;             /* a window page used as a DMA buffer */
	assert_int_equal(pcache_poison(x->e.pc, F, 4096), 0);
	assert_int_equal(blk_io(x, VIRTIO_BLK_T_IN, D(x, F), DATA_GPA, 4096), VIRTIO_BLK_S_IOERR);
	assert_int_equal(blk_io(x, VIRTIO_BLK_T_IN, D(x, F) - 512, DATA_GPA, 1024),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(blk_io(x, VIRTIO_BLK_T_IN, D(x, F) + 4096, DATA_GPA, 4096), VIRTIO_BLK_S_OK);
	assert_memory_equal(x->ram + DATA_GPA, x->e.model + F + 4096, 4096);
	/* the buffer on the bad page: in both directions the pin fails */
	assert_int_equal(blk_io(x, VIRTIO_BLK_T_IN, D(x, B), W(F), 4096), VIRTIO_BLK_S_IOERR);
	assert_int_equal(blk_io(x, VIRTIO_BLK_T_OUT, D(x, B), W(F), 4096), VIRTIO_BLK_S_IOERR);
	/* a partial write over it: IOERR, nothing written */
	memset(x->ram + DATA_GPA, 0x5a, 8192);
	assert_int_equal(blk_io(x, VIRTIO_BLK_T_OUT, D(x, F) + 512, DATA_GPA, 1024),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(env_file_mismatch(&x->e), -1);
	uint64_t v;
	assert_int_equal(env_access(&x->e, F, false, &v, 8), PCACHE_FAULT_POISON);
	/* a whole-page write repairs it */
	assert_int_equal(blk_io(x, VIRTIO_BLK_T_OUT, D(x, F), DATA_GPA, 4096), VIRTIO_BLK_S_OK);
	memset(x->e.model + F, 0x5a, 4096);
	assert_int_equal(env_load8(&x->e, F + 8), 0x5a5a5a5a5a5a5a5aULL);
	assert_int_equal(blk_io(x, VIRTIO_BLK_T_IN, D(x, F), DATA_GPA, 4096), VIRTIO_BLK_S_OK);
	assert_memory_equal(x->ram + DATA_GPA, x->e.model + F, 4096);
	struct pcache_stats st = env_stats(&x->e);
	assert_int_equal(st.poison_pages, 0);
	assert_int_equal(st.poison_eio, 5);
	assert_int_equal(st.poison_cleared, 1);
	assert_int_equal(env_file_mismatch(&x->e), -1);
}

static void test_bench(void **state)
{
	struct bx *x = *state;
	if (!getenv("CVMM_BENCH")) {
		skip();
		return;
	}
	int n = 200;
	double rd_dirty = bench_us(x, true, false, false, n);
	double rd_clean = bench_us(x, false, false, true, n);
	double wr_mapped = bench_us(x, false, true, true, n);
	double wr_unmapped = bench_us(x, false, true, false, n);
	print_message("# bench (granule %llu KiB, 64 KiB requests, fake shadow, %s): blk read over "
		      "16 dirty pages %.1f us, over clean mapped pages %.1f us; blk write over a "
		      "mapped granule %.1f us, over an unmapped one %.1f us\n",
		      (unsigned long long)(x->e.gran / 1024),
		      pcache_is_direct(x->e.pc) ? "O_DIRECT" : "buffered", rd_dirty, rd_clean,
		      wr_mapped, wr_unmapped);
}

#define T4(fn) cmocka_unit_test_setup_teardown(fn, setup_4k, teardown), \
	       cmocka_unit_test_setup_teardown(fn, setup_2m, teardown), \
	       cmocka_unit_test_setup_teardown(fn, setup_4k_off, teardown), \
	       cmocka_unit_test_setup_teardown(fn, setup_2m_off, teardown)

/* Several windows (issue 15 item 1): a request may point into any window of the VM; two
 * windows onto one file share its cache (pinned in one call); the pins are all or nothing
 * across caches: when the second cache refuses, the first's pins are dropped. */
static void test_dma_several_windows(void **state)
{
	(void)state;
	struct env a = { 0 }, b = { 0 };
	assert_int_equal(env_open(&a, 4 * MIB, 4 * MIB, 64 * KIB, true), 0);
	assert_int_equal(env_open(&b, 4 * MIB, 4 * MIB, 64 * KIB, true), 0);
	const uint64_t GA = 0x100000000ULL, GA2 = 0x200000000ULL, GB = 0x300000000ULL;
	struct blk_dma_window win[3] = { { a.pc, GA }, { b.pc, GB }, { a.pc, GA2 } };
	struct guest_mem none = { 0 };
	struct virtq_dma dma;
	void *ctx;
	char err[256];
	assert_int_equal(blk_dma_windows_create(win, 3, &none, &ctx, &dma, err, sizeof(err)), 0);
	/* translation: each window onto its own cache, wholly inside only */
	assert_ptr_equal(dma.translate(dma.ctx, GA + 4096, 4096, false), pcache_mem(a.pc) + 4096);
	assert_ptr_equal(dma.translate(dma.ctx, GA2 + 8192, 4096, true), pcache_mem(a.pc) + 8192);
	assert_ptr_equal(dma.translate(dma.ctx, GB, 4 * MIB, true), pcache_mem(b.pc));
	assert_null(dma.translate(dma.ctx, GB + 4 * MIB - 4096, 8192, true));
	assert_null(dma.translate(dma.ctx, GA - 4096, 4096, true));
	/* one request: a page of a through each of its windows, a page of b */
	struct iovec iov[3] = { { pcache_mem(a.pc), 4096 }, { pcache_mem(b.pc) + 65536, 4096 },
				{ pcache_mem(a.pc) + 8192, 4096 } };
	uint64_t gpa[3] = { GA, GB + 65536, GA2 + 8192 };
	assert_int_equal(blk_dma_window_ops.pin(ctx, iov, gpa, 3, 1), 0);
	assert_int_equal(pcache_page_pins(a.pc, 0), 1);
	assert_int_equal(pcache_page_pins(a.pc, 8192), 1);
	assert_int_equal(pcache_page_pins(b.pc, 65536), 1);
	blk_dma_window_ops.unpin(ctx, iov, gpa, 3, 1, true);
	assert_int_equal(pcache_page_pins(a.pc, 0), 0);
	assert_int_equal(pcache_page_pins(a.pc, 8192), 0);
	assert_int_equal(pcache_page_pins(b.pc, 65536), 0);
	assert_true(pcache_page_flags(b.pc, 65536) & PG_DIRTY);  /* the device wrote it */
	assert_true(pcache_page_flags(a.pc, 8192) & PG_DIRTY);
	assert_false(pcache_page_flags(a.pc, 0) & PG_DIRTY);     /* read by the device */
	/* b cannot back a written page: nothing stays pinned in a either */
	struct pcache_inject inj = { .fallocate_errno = ENOSPC, .fallocate_count = -1 };
	pcache_set_inject(b.pc, &inj);
	iov[1].iov_base = pcache_mem(b.pc) + 2 * MIB;
	gpa[1] = GB + 2 * MIB;
	assert_int_equal(blk_dma_window_ops.pin(ctx, iov, gpa, 3, 1), -ENOSPC);
	for (uint64_t p = 0; p < 4 * MIB; p += 4096) {
		assert_int_equal(pcache_page_pins(a.pc, p), 0);
		assert_int_equal(pcache_page_pins(b.pc, p), 0);
	}
	blk_dma_window_ops.destroy(ctx);
	env_close(&a);
	env_close(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dma_several_windows),
		T4(test_a1_store_then_blk_read),
		T4(test_a2_blk_write_then_load),
		T4(test_a3_blk_write_over_dirty_then_flush),
		T4(test_a4_subblock_write_keeps_dirty_bytes),
		T4(test_b2_discard_zeros_both_views),
		T4(test_b1_dma_vs_discard),
		T4(test_c1_populate_then_flush),
		T4(test_c2_dma_mkwrite_enospc),
		T4(test_d1_write_from_own_mapping),
		T4(test_d2_read_into_own_mapping),
		T4(test_discard_own_buffers),
		T4(test_e1_host_write_into_dirty_page),
		T4(test_f2_store_read_vs_flush_loop),
		T4(test_pinned_fallback),
		T4(test_walker_window_buffers),
		T4(test_truncate_both_views),
		T4(test_flush_error_reported_to_blk),
		T4(test_media_error),
		cmocka_unit_test_setup_teardown(test_bench, setup_4k, teardown),
		cmocka_unit_test_setup_teardown(test_bench, setup_2m, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
