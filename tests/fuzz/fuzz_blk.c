/* libFuzzer target: virtio-blk request parsing and execution, fed by the split-ring walker
 * over a guest memory whose contents come from the fuzzer (requests, headers, segments,
 * rings). The backend is an in-memory disk that aborts on any access outside the disk or a
 * transfer whose iovecs do not add up to the length, and on any write to a read-only disk;
 * ASan catches guest-memory escapes (each region is its own heap block).
 *
 * Input: byte 0 bit 0 read-only disk, bit 1 EVENT_IDX, bits 2..4 a fault rule from `rules`
 * below (0: none; torn writes slice the request's iovecs short); byte 1 masks feature bits 8..15
 * (FLUSH, DISCARD, WRITE_ZEROES); the rest is guest RAM from GPA 0 (avail ring at 0,
 * descriptors at 0x100, used ring at 0x600). Seeds: tests/fuzz/corpus/fuzz_blk/.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -D_GNU_SOURCE \
 *         tests/fuzz/fuzz_blk.c devices/blk.c devices/fault.c devices/virtqueue.c devices/virtio.c \
 *         lib/guest_mem.c */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "devices/blk.h"
#include "devices/virtqueue.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define LO_SIZE   0x10000
#define HI_GPA    0x100000
#define HI_SIZE   0x4000
#define QSIZE     64
/* The available ring first, so that short inputs already reach it; descriptors right after. */
#define AVAIL_GPA 0x0       /* 6 + 2 * 64 bytes */
#define DESC_GPA  0x100     /* 64 * 16 = 0x400 */
#define USED_GPA  0x600     /* 6 + 8 * 64 */
#define DISK_SIZE (64u << 10)

struct mem_disk {
	struct blk_backend be;
	uint8_t data[DISK_SIZE];
};

static void check(struct blk_backend *be, const struct iovec *iov, unsigned n, uint64_t off,
		  uint64_t len)
{
	uint64_t sum = 0;
	for (unsigned i = 0; i < n; i++)
		sum += iov[i].iov_len;
	if (sum != len || off > be->size || len > be->size - off || off % 512 || len % 512)
		abort();
}

static int md_read(struct blk_backend *be, const struct iovec *iov, const uint64_t *gpa,
		   unsigned n, uint64_t off, uint64_t len)
{
	struct mem_disk *m = (struct mem_disk *)be;
	(void)gpa;
	check(be, iov, n, off, len);
	for (unsigned i = 0; i < n; i++) {
		memcpy(iov[i].iov_base, m->data + off, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	return 0;
}

static int md_write(struct blk_backend *be, const struct iovec *iov, const uint64_t *gpa,
		    unsigned n, uint64_t off, uint64_t len)
{
	struct mem_disk *m = (struct mem_disk *)be;
	(void)gpa;
	if (be->readonly)
		abort();
	check(be, iov, n, off, len);
	for (unsigned i = 0; i < n; i++) {
		memcpy(m->data + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	return 0;
}

static int md_flush(struct blk_backend *be)
{
	(void)be;
	return 0;
}

static int md_discard(struct blk_backend *be, uint64_t off, uint64_t len)
{
	if (be->readonly || off > be->size || len > be->size - off)
		abort();
	return 0;
}

static int md_wz(struct blk_backend *be, uint64_t off, uint64_t len, bool unmap)
{
	(void)unmap;
	if (be->readonly || off > be->size || len > be->size - off)
		abort();
	memset(((struct mem_disk *)be)->data + off, 0, len);
	return 0;
}

static void md_destroy(struct blk_backend *be)
{
	(void)be;
}

static const struct blk_backend_ops md_ops = { md_read, md_write, md_flush, md_discard, md_wz,
						md_destroy };

static struct mem_disk disk;

/* The injected faults an input may pick (devices/fault.h): each takes a path of its own in
 * blk.c (a torn write issues a shorter transfer than the request's). */
static const char *const rules[8] = {
	NULL,
	"op=write effect=torn:1",
	"op=write range=0-64K when=after:1 effect=torn:7",
	"op=any when=prob:0.5 seed=1 effect=ioerr",
	"op=any range=4K+4K effect=unsupp",
	"op=write-zeroes when=once effect=ioerr",
	"op=flush effect=ioerr",
	"op=discard range=60K+4K effect=delay:0us",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	bool ro = data[0] & 1, event_idx = data[0] & 2;
	const char *rule = rules[(data[0] >> 2) & 7];
	uint64_t feature_mask = (uint64_t)data[1] << 8 | 0xff; /* drop FLUSH/DISCARD/WZ at will */
	data += 2;
	size -= 2;

	uint8_t *lo = malloc(LO_SIZE), *hi = malloc(HI_SIZE);
	if (!lo || !hi)
		abort();
	memset(lo, 0, LO_SIZE);
	memset(hi, 0, HI_SIZE);
	memcpy(lo, data, size < LO_SIZE ? size : LO_SIZE);
	if (size > LO_SIZE)
		memcpy(hi, data + LO_SIZE, size - LO_SIZE < HI_SIZE ? size - LO_SIZE : HI_SIZE);
	struct guest_mem mem = { 0 };
	guest_mem_add(&mem, 0, LO_SIZE, lo);
	guest_mem_add(&mem, HI_GPA, HI_SIZE, hi);

	disk.be = (struct blk_backend){ .ops = &md_ops, .size = DISK_SIZE, .readonly = ro,
					.serial = 1234 };
	struct blk_dev b;
	char err[128];
	if (blk_init(&b, &disk.be, err, sizeof(err)))
		abort();
	b.features = b.offered & (feature_mask | ~0xffffULL);
	if (rule && fault_add_text(&b.faults, rule, err, sizeof(err)) < 0)
		abort();
	struct virtq q;
	struct vq_req r;
	if (vq_req_init(&r, QSIZE) ||
	    virtq_setup(&q, &(struct virtq_dma){ .mem = &mem }, QSIZE, DESC_GPA, AVAIL_GPA, USED_GPA, event_idx, true, QSIZE,
			err, sizeof(err)))
		abort();
	/* Bounded: the device's writes may rewrite the rings as it goes. */
	for (unsigned i = 0; i < 4 * QSIZE; i++) {
		if (virtq_pop(&q, &r) != VQ_POP_OK)
			break;
		uint32_t len = blk_handle(&b, 0, &r);
		if (len > r.in_len + (r.error ? 1 : 0))
			abort(); /* never claims more than the chain could hold */
		virtq_push(&q, r.head, len);
	}
	virtq_should_notify(&q);
	vq_req_free(&r);
	b.be = NULL; /* the disk is static */
	blk_destroy(&b);
	free(lo);
	free(hi);
	return 0;
}
