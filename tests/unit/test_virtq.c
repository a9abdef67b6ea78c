/* virtqueue: the split-ring walker over a synthetic guest memory. Good chains, indirect
 * tables, and every malformation a guest can produce (virtio 1.2, 2.7). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "devices/virtio.h"
#include "devices/virtqueue.h"

#define RAM_SIZE   (1u << 20)
#define HIGH_GPA   0x100000000ULL
#define HIGH_SIZE  (64u << 10)
#define QSZ        16
#define DESC_GPA   0x1000
#define AVAIL_GPA  0x2000
#define USED_GPA   0x3000
#define BUF_GPA    0x10000

struct fx {
	uint8_t *ram, *high;
	struct guest_mem mem;
	struct virtq q;
	struct vq_req r;
	uint16_t avail_idx;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	f->ram = calloc(1, RAM_SIZE);
	f->high = calloc(1, HIGH_SIZE);
	assert_int_equal(guest_mem_add(&f->mem, 0, RAM_SIZE, f->ram), 0);
	assert_int_equal(guest_mem_add(&f->mem, HIGH_GPA, HIGH_SIZE, f->high), 0);
	char err[128];
	assert_int_equal(virtq_setup(&f->q, &(struct virtq_dma){ .mem = &f->mem }, QSZ, DESC_GPA, AVAIL_GPA, USED_GPA, true, true,
				     QSZ, err, sizeof(err)), 0);
	assert_int_equal(vq_req_init(&f->r, QSZ), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	vq_req_free(&f->r);
	free(f->ram);
	free(f->high);
	free(f);
	return 0;
}

static struct virtq_desc *D(struct fx *f, unsigned i)
{
	return (struct virtq_desc *)(f->ram + DESC_GPA) + i;
}

static void set_desc(struct virtq_desc *d, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	d->addr = addr;
	d->len = len;
	d->flags = flags;
	d->next = next;
}

static struct virtq_avail *A(struct fx *f)
{
	return (struct virtq_avail *)(f->ram + AVAIL_GPA);
}

static struct virtq_used *U(struct fx *f)
{
	return (struct virtq_used *)(f->ram + USED_GPA);
}

static void offer(struct fx *f, uint16_t head)
{
	A(f)->ring[f->avail_idx % QSZ] = head;
	A(f)->idx = ++f->avail_idx;
}

/* Offer head and pop it; returns the pop result. */
static int offer_pop(struct fx *f, uint16_t head)
{
	offer(f, head);
	return virtq_pop(&f->q, &f->r);
}

/* ---- setup ---- */

static void test_setup_checks(void **state)
{
	struct fx *f = *state;
	struct virtq q;
	char err[160];
	/* size: 0, not a power of two */
	assert_int_equal(virtq_setup(&q, &(struct virtq_dma){ .mem = &f->mem }, 0, DESC_GPA, AVAIL_GPA, USED_GPA, 0, 0, 8, err, sizeof(err)), -1);
	assert_int_equal(virtq_setup(&q, &(struct virtq_dma){ .mem = &f->mem }, 24, DESC_GPA, AVAIL_GPA, USED_GPA, 0, 0, 8, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "power of two"));
	assert_true(q.broken);
	/* alignment: desc 16, avail 2, used 4 */
	assert_int_equal(virtq_setup(&q, &(struct virtq_dma){ .mem = &f->mem }, 8, DESC_GPA + 8, AVAIL_GPA, USED_GPA, 0, 0, 8, err, sizeof(err)), -1);
	assert_int_equal(virtq_setup(&q, &(struct virtq_dma){ .mem = &f->mem }, 8, DESC_GPA, AVAIL_GPA + 1, USED_GPA, 0, 0, 8, err, sizeof(err)), -1);
	assert_int_equal(virtq_setup(&q, &(struct virtq_dma){ .mem = &f->mem }, 8, DESC_GPA, AVAIL_GPA, USED_GPA + 2, 0, 0, 8, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "misaligned"));
	/* areas past the end of RAM, straddling the end, in the hole, wrapping */
	assert_int_equal(virtq_setup(&q, &(struct virtq_dma){ .mem = &f->mem }, 8, RAM_SIZE, AVAIL_GPA, USED_GPA, 0, 0, 8, err, sizeof(err)), -1);
	assert_int_equal(virtq_setup(&q, &(struct virtq_dma){ .mem = &f->mem }, 8, RAM_SIZE - 64, AVAIL_GPA, USED_GPA, 0, 0, 8, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "descriptor table"));
	/* the used ring with its avail_event: 6 + 8 * 8 = 70 bytes; 68 left is not enough */
	assert_int_equal(virtq_setup(&q, &(struct virtq_dma){ .mem = &f->mem }, 8, DESC_GPA, AVAIL_GPA, RAM_SIZE - 68, 0, 0, 8, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "used ring"));
	assert_int_equal(virtq_setup(&q, &(struct virtq_dma){ .mem = &f->mem }, 8, DESC_GPA, AVAIL_GPA, RAM_SIZE - 72, 0, 0, 8, err, sizeof(err)), 0);
	assert_int_equal(virtq_setup(&q, &(struct virtq_dma){ .mem = &f->mem }, 8, DESC_GPA, 0x80000000ULL, USED_GPA, 0, 0, 8, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "available ring"));
	assert_int_equal(virtq_setup(&q, &(struct virtq_dma){ .mem = &f->mem }, 8, 0xfffffffffffffff0ULL, AVAIL_GPA, USED_GPA, 0, 0, 8, err, sizeof(err)), -1);
	/* 32768 is the largest size; a 32768-entry ring does not fit our 1 MiB at 0x1000 with
	 * the others, but the size itself is accepted when it fits (areas may overlap: the
	 * guest only hurts itself) */
	assert_int_equal(virtq_setup(&q, &(struct virtq_dma){ .mem = &f->mem }, 32768, 0xc0000, AVAIL_GPA, USED_GPA, 0, 0, 8, err, sizeof(err)), -1);
	assert_int_equal(virtq_setup(&q, &(struct virtq_dma){ .mem = &f->mem }, 32768, 0x80000, 0x10000, 0x20000, 0, 0, 8, err, sizeof(err)), 0);
	assert_false(q.broken);
	/* chains are limited by the queue size too (2.7.5.3.1), whatever the device allows */
	assert_int_equal(virtq_setup(&q, &(struct virtq_dma){ .mem = &f->mem }, 4, DESC_GPA, AVAIL_GPA, USED_GPA, 0, 1, 256, err, sizeof(err)), 0);
	assert_int_equal(q.max_chain, 4);
	assert_int_equal(virtq_setup(&q, &(struct virtq_dma){ .mem = &f->mem }, 64, DESC_GPA, AVAIL_GPA, USED_GPA, 0, 1, 0, err, sizeof(err)), 0);
	assert_int_equal(q.max_chain, 64);
	assert_int_equal(virtq_setup(&q, &(struct virtq_dma){ .mem = &f->mem }, 64, DESC_GPA, AVAIL_GPA, USED_GPA, 0, 1, 10, err, sizeof(err)), 0);
	assert_int_equal(q.max_chain, 10);
}

/* ---- good chains ---- */

static void test_empty(void **state)
{
	struct fx *f = *state;
	assert_int_equal(virtq_pop(&f->q, &f->r), VQ_POP_EMPTY);
}

static void test_simple_chain(void **state)
{
	struct fx *f = *state;
	set_desc(D(f, 3), BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 7);
	set_desc(D(f, 7), BUF_GPA + 0x100, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	set_desc(D(f, 1), HIGH_GPA + 8, 1, VIRTQ_DESC_F_WRITE, 0);
	assert_int_equal(offer_pop(f, 3), VQ_POP_OK);
	struct vq_req *r = &f->r;
	assert_int_equal(r->error, VQ_OK);
	assert_int_equal(r->head, 3);
	assert_int_equal(r->nseg, 3);
	assert_int_equal(r->nout, 1);
	assert_int_equal(r->out_len, 16);
	assert_int_equal(r->in_len, 513);
	assert_ptr_equal(r->iov[0].iov_base, f->ram + BUF_GPA);
	assert_ptr_equal(r->iov[1].iov_base, f->ram + BUF_GPA + 0x100);
	assert_ptr_equal(r->iov[2].iov_base, f->high + 8);
	assert_int_equal(r->gpa[2], HIGH_GPA + 8);
	assert_int_equal(r->ndesc, 3);
	/* the final descriptor is writable: err_status points at its last byte */
	assert_ptr_equal(r->err_status, f->high + 8);
	assert_int_equal(virtq_pop(&f->q, &f->r), VQ_POP_EMPTY);

	virtq_push(&f->q, r->head, 513);
	assert_int_equal(U(f)->idx, 1);
	assert_int_equal(U(f)->ring[0].id, 3);
	assert_int_equal(U(f)->ring[0].len, 513);
}

static void test_ring_wraps(void **state)
{
	struct fx *f = *state;
	set_desc(D(f, 0), BUF_GPA, 8, 0, 0);
	/* many times around the 16-entry ring and across the 16-bit index wrap */
	f->q.last_avail = f->avail_idx = 65530;
	f->q.used_idx = 65530;
	for (int i = 0; i < 40; i++) {
		assert_int_equal(offer_pop(f, 0), VQ_POP_OK);
		assert_int_equal(f->r.error, VQ_OK);
		virtq_push(&f->q, 0, 0);
	}
	assert_int_equal(U(f)->idx, (uint16_t)(65530 + 40));
	/* a full ring of QSZ outstanding is fine */
	for (int i = 0; i < QSZ; i++)
		offer(f, 0);
	for (int i = 0; i < QSZ; i++)
		assert_int_equal(virtq_pop(&f->q, &f->r), VQ_POP_OK);
	assert_int_equal(virtq_pop(&f->q, &f->r), VQ_POP_EMPTY);
}

static void test_zero_length_buffers(void **state)
{
	struct fx *f = *state;
	/* a zero-length buffer is no segment, and its address is never used */
	set_desc(D(f, 0), 0xdeadbeef00000000ULL, 0, VIRTQ_DESC_F_NEXT, 1);
	set_desc(D(f, 1), BUF_GPA, 4, VIRTQ_DESC_F_WRITE, 0);
	assert_int_equal(offer_pop(f, 0), VQ_POP_OK);
	assert_int_equal(f->r.error, VQ_OK);
	assert_int_equal(f->r.nseg, 1);
	assert_int_equal(f->r.nout, 0);
	assert_int_equal(f->r.in_len, 4);
}

static void test_indirect(void **state)
{
	struct fx *f = *state;
	struct virtq_desc *t = (struct virtq_desc *)(f->ram + 0x8000);
	set_desc(&t[0], BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 2);
	set_desc(&t[2], BUF_GPA + 0x1000, 4096, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	set_desc(&t[1], BUF_GPA + 0x3000, 1, VIRTQ_DESC_F_WRITE, 0);
	/* the indirect descriptor's WRITE flag is ignored (2.7.5.3.2) */
	set_desc(D(f, 5), 0x8000, 3 * 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_WRITE, 0);
	assert_int_equal(offer_pop(f, 5), VQ_POP_OK);
	assert_int_equal(f->r.error, VQ_OK);
	assert_int_equal(f->r.head, 5);
	assert_int_equal(f->r.nseg, 3);
	assert_int_equal(f->r.nout, 1);
	assert_int_equal(f->r.in_len, 4097);
	assert_ptr_equal(f->r.iov[2].iov_base, f->ram + BUF_GPA + 0x3000);
	assert_ptr_equal(f->r.err_status, f->ram + BUF_GPA + 0x3000);
}

static void test_direct_then_indirect(void **state)
{
	struct fx *f = *state;
	/* 2.7.5.3.2: "zero or more normal chained descriptors followed by a single descriptor
	 * with INDIRECT" */
	struct virtq_desc *t = (struct virtq_desc *)(f->ram + 0x8000);
	set_desc(&t[0], BUF_GPA + 0x100, 8, VIRTQ_DESC_F_WRITE, 0);
	set_desc(D(f, 0), BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
	set_desc(D(f, 1), 0x8000, 16, VIRTQ_DESC_F_INDIRECT, 0);
	assert_int_equal(offer_pop(f, 0), VQ_POP_OK);
	assert_int_equal(f->r.error, VQ_OK);
	assert_int_equal(f->r.nseg, 2);
	assert_int_equal(f->r.out_len, 16);
	assert_int_equal(f->r.in_len, 8);
}

/* ---- malformed chains: consumed as bad requests, the queue goes on ---- */

static void expect_bad(struct fx *f, uint16_t head, int err, bool has_status)
{
	assert_int_equal(offer_pop(f, head), VQ_POP_OK);
	assert_int_equal(f->r.error, err);
	assert_int_equal(f->r.head, head);
	assert_int_equal(f->r.nseg, 0);
	assert_true(f->r.why[0] != 0);
	if (has_status)
		assert_non_null(f->r.err_status);
	else
		assert_null(f->r.err_status);
	assert_false(f->q.broken);
	virtq_push(&f->q, head, 0);
	/* and a good chain after it still works */
	set_desc(D(f, 15), BUF_GPA, 1, VIRTQ_DESC_F_WRITE, 0);
	assert_int_equal(offer_pop(f, 15), VQ_POP_OK);
	assert_int_equal(f->r.error, VQ_OK);
}

static void test_next_out_of_range(void **state)
{
	struct fx *f = *state;
	set_desc(D(f, 0), BUF_GPA, 16, VIRTQ_DESC_F_NEXT, QSZ);
	expect_bad(f, 0, VQ_E_NEXT_RANGE, false);
	set_desc(D(f, 0), BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 0xffff);
	expect_bad(f, 0, VQ_E_NEXT_RANGE, false);
}

static void test_loops(void **state)
{
	struct fx *f = *state;
	/* self loop */
	set_desc(D(f, 2), BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 2);
	expect_bad(f, 2, VQ_E_CHAIN_LONG, false);
	/* a longer cycle that never returns to the head */
	set_desc(D(f, 0), BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
	set_desc(D(f, 1), BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 2);
	set_desc(D(f, 2), BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 3);
	set_desc(D(f, 3), BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
	expect_bad(f, 0, VQ_E_CHAIN_LONG, false);
	/* a writable loop: still no status byte (the chain has no end) */
	set_desc(D(f, 4), BUF_GPA, 16, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 4);
	expect_bad(f, 4, VQ_E_CHAIN_LONG, false);
	/* a loop inside an indirect table */
	struct virtq_desc *t = (struct virtq_desc *)(f->ram + 0x8000);
	set_desc(&t[0], BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
	set_desc(&t[1], BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 0);
	set_desc(D(f, 6), 0x8000, 32, VIRTQ_DESC_F_INDIRECT, 0);
	expect_bad(f, 6, VQ_E_CHAIN_LONG, false);
}

static void test_chain_too_long(void **state)
{
	struct fx *f = *state;
	/* no loop, but longer than the device's limit */
	f->q.max_chain = 4;
	for (int i = 0; i < 5; i++)
		set_desc(D(f, i), BUF_GPA, 16, i < 4 ? VIRTQ_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	expect_bad(f, 0, VQ_E_CHAIN_LONG, false);
	/* exactly at the limit is fine */
	assert_int_equal(offer_pop(f, 1), VQ_POP_OK);
	assert_int_equal(f->r.error, VQ_OK);
	assert_int_equal(f->r.nseg, 4);
	/* direct part plus indirect entries count together */
	struct virtq_desc *t = (struct virtq_desc *)(f->ram + 0x8000);
	for (int i = 0; i < 3; i++)
		set_desc(&t[i], BUF_GPA, 16, i < 2 ? VIRTQ_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	set_desc(D(f, 8), BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 9);
	set_desc(D(f, 9), BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 10);
	set_desc(D(f, 10), 0x8000, 48, VIRTQ_DESC_F_INDIRECT, 0);
	expect_bad(f, 8, VQ_E_CHAIN_LONG, false);
}

static void test_indirect_malformed(void **state)
{
	struct fx *f = *state;
	struct virtq_desc *t = (struct virtq_desc *)(f->ram + 0x8000);
	set_desc(&t[0], BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
	set_desc(&t[1], BUF_GPA, 1, VIRTQ_DESC_F_WRITE, 0);
	/* length not a multiple of 16, zero, more entries than allowed */
	set_desc(D(f, 0), 0x8000, 24, VIRTQ_DESC_F_INDIRECT, 0);
	expect_bad(f, 0, VQ_E_INDIRECT_LEN, false);
	set_desc(D(f, 0), 0x8000, 0, VIRTQ_DESC_F_INDIRECT, 0);
	expect_bad(f, 0, VQ_E_INDIRECT_LEN, false);
	set_desc(D(f, 0), 0x8000, 16 * (QSZ + 1), VIRTQ_DESC_F_INDIRECT, 0);
	expect_bad(f, 0, VQ_E_INDIRECT_LEN, false);
	set_desc(D(f, 0), 0x8000, 0xfffffff0u, VIRTQ_DESC_F_INDIRECT, 0);
	expect_bad(f, 0, VQ_E_INDIRECT_LEN, false);
	/* INDIRECT with NEXT */
	set_desc(D(f, 0), 0x8000, 32, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
	expect_bad(f, 0, VQ_E_INDIRECT_NEXT, false);
	/* table outside RAM, straddling its end, overflowing */
	set_desc(D(f, 0), RAM_SIZE - 16, 32, VIRTQ_DESC_F_INDIRECT, 0);
	expect_bad(f, 0, VQ_E_INDIRECT_ADDR, false);
	set_desc(D(f, 0), 0xfffffffffffffff0ULL, 32, VIRTQ_DESC_F_INDIRECT, 0);
	expect_bad(f, 0, VQ_E_INDIRECT_ADDR, false);
	/* nested */
	set_desc(&t[1], 0x9000, 16, VIRTQ_DESC_F_INDIRECT, 0);
	set_desc(D(f, 0), 0x8000, 32, VIRTQ_DESC_F_INDIRECT, 0);
	expect_bad(f, 0, VQ_E_INDIRECT_NEST, false);
	/* next inside the table past its end (the queue size would allow it) */
	set_desc(&t[1], BUF_GPA, 1, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2);
	expect_bad(f, 0, VQ_E_NEXT_RANGE, false);
	/* feature not negotiated */
	set_desc(&t[1], BUF_GPA, 1, VIRTQ_DESC_F_WRITE, 0);
	f->q.indirect = false;
	expect_bad(f, 0, VQ_E_INDIRECT_FEAT, false);
}

static void test_buffers_outside_ram(void **state)
{
	struct fx *f = *state;
	const struct { uint64_t addr; uint32_t len; } bad[] = {
		{ RAM_SIZE, 1 },                    /* just past the end */
		{ RAM_SIZE - 8, 16 },               /* straddling the end */
		{ 0x80000000ULL, 512 },             /* in the hole between regions */
		{ HIGH_GPA - 4, 8 },                /* straddling into the high region */
		{ HIGH_GPA + HIGH_SIZE - 1, 2 },    /* straddling the high region's end */
		{ 0xfffffffffffffff8ULL, 16 },      /* wrapping around 2^64 */
		{ 0, 0xffffffffu },                 /* longer than RAM */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		/* readable bad buffer, good writable status: the status can still be written */
		set_desc(D(f, 0), bad[i].addr, bad[i].len, VIRTQ_DESC_F_NEXT, 1);
		set_desc(D(f, 1), BUF_GPA, 1, VIRTQ_DESC_F_WRITE, 0);
		expect_bad(f, 0, VQ_E_BUF_ADDR, true);
		/* the bad buffer is the writable last one: no status byte */
		set_desc(D(f, 0), BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
		set_desc(D(f, 1), bad[i].addr, bad[i].len, VIRTQ_DESC_F_WRITE, 0);
		expect_bad(f, 0, VQ_E_BUF_ADDR, false);
	}
	/* a buffer ending exactly at the end of RAM is fine */
	set_desc(D(f, 0), RAM_SIZE - 16, 16, VIRTQ_DESC_F_WRITE, 0);
	assert_int_equal(offer_pop(f, 0), VQ_POP_OK);
	assert_int_equal(f->r.error, VQ_OK);
	assert_ptr_equal(f->r.iov[0].iov_base, f->ram + RAM_SIZE - 16);
}

static void test_direction_order(void **state)
{
	struct fx *f = *state;
	/* readable after writable (2.7.4.1) */
	set_desc(D(f, 0), BUF_GPA, 16, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	set_desc(D(f, 1), BUF_GPA + 16, 16, VIRTQ_DESC_F_NEXT, 2);
	set_desc(D(f, 2), BUF_GPA + 32, 1, VIRTQ_DESC_F_WRITE, 0);
	expect_bad(f, 0, VQ_E_ORDER, true);
	/* the same with the chain ending in a readable descriptor: no status */
	set_desc(D(f, 0), BUF_GPA, 16, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	set_desc(D(f, 1), BUF_GPA + 16, 16, 0, 0);
	expect_bad(f, 0, VQ_E_ORDER, false);
}

static void test_readonly_status_not_writable(void **state)
{
	struct fx *f = *state;
	/* a good chain whose final descriptor is device-readable: err_status stays NULL, so a
	 * device never writes a status into a buffer the driver marked read-only */
	set_desc(D(f, 0), BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
	set_desc(D(f, 1), BUF_GPA + 16, 1, 0, 0);
	assert_int_equal(offer_pop(f, 0), VQ_POP_OK);
	assert_int_equal(f->r.error, VQ_OK);
	assert_int_equal(f->r.in_len, 0);
	assert_null(f->r.err_status);
}

static void test_too_big(void **state)
{
	struct fx *f = *state;
	/* two 3 GiB buffers: 6 GiB in one direction (2.7.5.1: chains are < 2^32 bytes). The
	 * memory is reserved, never touched. */
	size_t big = 3ULL << 30;
	void *m = mmap(NULL, big, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	assert_true(m != MAP_FAILED);
	struct guest_mem mem = f->mem;
	assert_int_equal(guest_mem_add(&mem, 0x200000000ULL, big, m), 0);
	f->q.mem = &mem;
	set_desc(D(f, 0), BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
	set_desc(D(f, 1), 0x200000000ULL, (uint32_t)(big - 1), VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
	set_desc(D(f, 2), 0x200000000ULL, (uint32_t)(big - 1), VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 3);
	set_desc(D(f, 3), BUF_GPA, 1, VIRTQ_DESC_F_WRITE, 0);
	assert_int_equal(offer_pop(f, 0), VQ_POP_OK);
	assert_int_equal(f->r.error, VQ_E_TOO_BIG);
	assert_ptr_equal(f->r.err_status, f->ram + BUF_GPA);
	f->q.mem = &f->mem;
	munmap(m, big);
}

/* ---- broken rings ---- */

static void test_avail_idx_jump(void **state)
{
	struct fx *f = *state;
	set_desc(D(f, 0), BUF_GPA, 16, 0, 0);
	A(f)->idx = QSZ + 1; /* 17 new buffers in a 16-entry ring */
	assert_int_equal(virtq_pop(&f->q, &f->r), VQ_POP_BROKEN);
	assert_true(f->q.broken);
	assert_non_null(strstr(f->q.why, "jumped"));
	/* it stays broken, even if the index comes back */
	A(f)->idx = 1;
	assert_int_equal(virtq_pop(&f->q, &f->r), VQ_POP_BROKEN);
	assert_false(virtq_enable_notify(&f->q));
}

static void test_avail_idx_backwards(void **state)
{
	struct fx *f = *state;
	set_desc(D(f, 0), BUF_GPA, 16, 0, 0);
	assert_int_equal(offer_pop(f, 0), VQ_POP_OK);
	/* "MUST NOT decrement the available idx" (2.7.6): 0 - 1 = 65535 outstanding */
	A(f)->idx = 0;
	assert_int_equal(virtq_pop(&f->q, &f->r), VQ_POP_BROKEN);
}

static void test_head_out_of_range(void **state)
{
	struct fx *f = *state;
	assert_int_equal(offer_pop(f, QSZ), VQ_POP_BROKEN);
	assert_non_null(strstr(f->q.why, "head"));
}

/* ---- notification suppression ---- */

static void test_no_event_idx_flags(void **state)
{
	struct fx *f = *state;
	f->q.event_idx = false;
	set_desc(D(f, 0), BUF_GPA, 16, 0, 0);
	assert_int_equal(offer_pop(f, 0), VQ_POP_OK);
	virtq_push(&f->q, 0, 0);
	assert_true(virtq_should_notify(&f->q));
	A(f)->flags = VIRTQ_AVAIL_F_NO_INTERRUPT;
	assert_false(virtq_should_notify(&f->q));
	/* available-buffer side: used->flags NO_NOTIFY while busy */
	virtq_disable_notify(&f->q);
	assert_int_equal(U(f)->flags, VIRTQ_USED_F_NO_NOTIFY);
	assert_false(virtq_enable_notify(&f->q));
	assert_int_equal(U(f)->flags, 0);
	offer(f, 0);
	assert_true(virtq_enable_notify(&f->q)); /* one arrived: process before sleeping */
}

static void test_event_idx(void **state)
{
	struct fx *f = *state;
	uint16_t *used_event = &A(f)->ring[QSZ];
	uint16_t *avail_event = (uint16_t *)&U(f)->ring[QSZ];
	set_desc(D(f, 0), BUF_GPA, 16, 0, 0);
	/* first completion always notifies (nothing signalled yet) */
	assert_int_equal(offer_pop(f, 0), VQ_POP_OK);
	virtq_push(&f->q, 0, 0);
	*used_event = 0;
	assert_true(virtq_should_notify(&f->q));
	/* driver wants an interrupt when used idx passes 3: completions 2 and 3 stay quiet */
	*used_event = 3;
	for (int i = 2; i <= 3; i++) {
		assert_int_equal(offer_pop(f, 0), VQ_POP_OK);
		virtq_push(&f->q, 0, 0);
		assert_false(virtq_should_notify(&f->q));
	}
	/* the 4th (used idx 3 -> 4) crosses used_event = 3 */
	assert_int_equal(offer_pop(f, 0), VQ_POP_OK);
	virtq_push(&f->q, 0, 0);
	assert_true(virtq_should_notify(&f->q));
	/* a batch that jumps over used_event still notifies once */
	*used_event = 5;
	for (int i = 0; i < 4; i++) {
		assert_int_equal(offer_pop(f, 0), VQ_POP_OK);
		virtq_push(&f->q, 0, 0);
	}
	assert_true(virtq_should_notify(&f->q));
	/* avail_event: enable_notify publishes where we are */
	assert_false(virtq_enable_notify(&f->q));
	assert_int_equal(*avail_event, f->q.last_avail);
	assert_int_equal(vring_need_event(10, 11, 10), 1);
	assert_int_equal(vring_need_event(10, 10, 9), 0);
	assert_int_equal(vring_need_event(65535, 1, 65534), 1); /* across the wrap */
}

/* ---- helpers and the drain loop ---- */

static void test_iov_helpers(void **state)
{
	(void)state;
	uint8_t a[5] = "abcde", b[3] = "fgh", c[4] = "ijkl";
	struct iovec v[3] = { { a, 5 }, { b, 3 }, { c, 4 } };
	uint64_t g[3] = { 100, 200, 300 };
	char out[16] = { 0 };
	assert_int_equal(iov_to_buf(v, 3, 3, out, 7), 7);
	assert_memory_equal(out, "defghij", 7);
	assert_int_equal(iov_to_buf(v, 3, 10, out, 16), 2);
	assert_int_equal(iov_from_buf(v, 3, 4, "XYZ", 3), 3);
	assert_memory_equal(a, "abcdX", 5);
	assert_memory_equal(b, "YZh", 3);
	assert_int_equal(iov_memset(v, 3, 6, '-', 4), 4);
	assert_memory_equal(b, "Y--", 3);
	assert_memory_equal(c, "--kl", 4);
	assert_int_equal(iov_memset(v, 3, 11, '!', 9), 1);
	assert_memory_equal(c, "--k!", 4);
	struct iovec s[3];
	uint64_t sg[3];
	assert_int_equal(iov_slice(v, g, 3, 4, 6, s, sg, 3), 3);
	assert_ptr_equal(s[0].iov_base, a + 4);
	assert_int_equal(s[0].iov_len, 1);
	assert_int_equal(s[2].iov_len, 2);
	assert_int_equal(sg[0], 104);
	assert_int_equal(sg[2], 300);
	assert_int_equal(iov_slice(v, g, 3, 4, 6, s, sg, 2), -1);  /* not enough room */
	assert_int_equal(iov_slice(v, g, 3, 10, 3, s, sg, 3), -1); /* past the end */
	assert_int_equal(iov_slice(v, g, 3, 12, 0, s, sg, 3), 0);
}

static int handled;
static uint32_t fake_handle(void *dev, unsigned q, struct vq_req *r)
{
	(void)dev;
	(void)q;
	handled++;
	return r->error ? 0 : (uint32_t)r->in_len;
}
static int notified;
static void fake_notify(void *ctx)
{
	(void)ctx;
	notified++;
}

static void test_drain(void **state)
{
	struct fx *f = *state;
	struct virtio_dev_ops ops = { .handle = fake_handle };
	set_desc(D(f, 0), BUF_GPA, 4, VIRTQ_DESC_F_WRITE, 0);
	set_desc(D(f, 1), BUF_GPA, 4, VIRTQ_DESC_F_NEXT, 1); /* a loop: bad, but consumed */
	for (int i = 0; i < 10; i++)
		offer(f, (uint16_t)(i == 4));
	handled = notified = 0;
	int stop = 0;
	bool broken;
	assert_int_equal(virtio_queue_drain(&f->q, &f->r, &ops, NULL, 0, &stop, &broken,
					    fake_notify, NULL), 10);
	assert_false(broken);
	assert_int_equal(handled, 10);
	assert_int_equal(notified, 1);
	assert_int_equal(U(f)->idx, 10);
	assert_int_equal(U(f)->ring[4].id, 1);
	assert_int_equal(U(f)->ring[4].len, 0);
	assert_int_equal(U(f)->ring[5].len, 4);
	/* stop is honoured between requests */
	offer(f, 0);
	stop = 1;
	assert_int_equal(virtio_queue_drain(&f->q, &f->r, &ops, NULL, 0, &stop, &broken,
					    fake_notify, NULL), 0);
	/* a broken ring is reported */
	stop = 0;
	A(f)->idx += 100;
	virtio_queue_drain(&f->q, &f->r, &ops, NULL, 0, &stop, &broken, fake_notify, NULL);
	assert_true(broken);
}

static void test_ratelimit(void **state)
{
	(void)state;
	struct ratelimit rl;
	ratelimit_init(&rl, "test", 3);
	for (int i = 0; i < 50; i++)
		rl_log(&rl, "complaint %d", i);
	assert_int_equal(rl.total, 50);
	assert_true(rl.count <= 3);
	assert_true(rl.suppressed > 0);
	ratelimit_destroy(&rl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_setup_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_simple_chain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ring_wraps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zero_length_buffers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_indirect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_direct_then_indirect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_next_out_of_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chain_too_long, setup, teardown),
		cmocka_unit_test_setup_teardown(test_indirect_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_buffers_outside_ram, setup, teardown),
		cmocka_unit_test_setup_teardown(test_direction_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readonly_status_not_writable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_big, setup, teardown),
		cmocka_unit_test_setup_teardown(test_avail_idx_jump, setup, teardown),
		cmocka_unit_test_setup_teardown(test_avail_idx_backwards, setup, teardown),
		cmocka_unit_test_setup_teardown(test_head_out_of_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_event_idx_flags, setup, teardown),
		cmocka_unit_test_setup_teardown(test_event_idx, setup, teardown),
		cmocka_unit_test(test_iov_helpers),
		cmocka_unit_test_setup_teardown(test_drain, setup, teardown),
		cmocka_unit_test(test_ratelimit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
