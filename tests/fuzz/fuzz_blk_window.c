/* libFuzzer target: virtio-blk requests whose buffers lie in guest RAM AND in the virtio-pmem
 * window (device DMA into DAX memory), executed on the page-cache backend of the window's own
 * file, so every request goes through the protocol: pins (all or nothing), direct reads and
 * writes with their invalidations, the write-through fallback, DISCARD / WRITE_ZEROES breaks.
 * After every request no page may be left pinned or BREAKING (a leaked pin would block every
 * later break, invalidate and truncate of that page forever), and no invariant may break.
 *
 * Input: byte 0 bit 0 read-only disk, bit 1 EVENT_IDX; byte 1 masks feature bits 8..15; the
 * rest is guest RAM from GPA 0 (avail ring at 0, descriptors at 0x100, used ring at 0x600).
 * The window is [WIN_GPA, WIN_GPA + 2 MiB): descriptors pointing there are pinned cache pages.
 * The disk is the window's file (4 MiB: half of it beyond the window's cache), so a request
 * can be its own source or destination (d1/d2 of the coherency scenario).
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -D_GNU_SOURCE \
 *         tests/fuzz/fuzz_blk_window.c devices/blk.c devices/blk_pcache.c devices/virtqueue.c \
 *         devices/virtio.c lib/*.c mm/*.c -pthread */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/blk.h"
#include "devices/virtqueue.h"
#include "mm/page.h"
#include "mm/pcache.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RAM_SIZE  0x10000
#define QSIZE     64
#define AVAIL_GPA 0x0
#define DESC_GPA  0x100
#define USED_GPA  0x600
#define WIN_GPA   0x200000ULL
#define WIN_SIZE  (2ULL << 20)
#define FILE_SIZE (4ULL << 20)

/* One cache and file for the whole run (opening a file per input would be the whole cost). */
static struct pcache *pc;

static void setup_once(void)
{
	if (pc)
		return;
	char path[] = "/tmp/cvmm-fuzz-window.XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0 || ftruncate(fd, (off_t)FILE_SIZE) < 0)
		abort();
	close(fd);
	char err[256];
	if (pcache_open(path, WIN_SIZE, false, &pc, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
	unlink(path); /* the cache keeps it open */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	setup_once();
	bool ro = data[0] & 1, event_idx = data[0] & 2;
	uint64_t feature_mask = (uint64_t)data[1] << 8 | 0xff;
	data += 2;
	size -= 2;

	uint8_t *ram = calloc(1, RAM_SIZE);
	if (!ram)
		abort();
	memcpy(ram, data, size < RAM_SIZE ? size : RAM_SIZE);
	struct guest_mem mem = { 0 };
	guest_mem_add(&mem, 0, RAM_SIZE, ram);

	char err[256];
	struct blk_backend *be;
	struct blk_pcache_opts o = { .pc = pc, .offset = 0, .size = FILE_SIZE, .readonly = ro };
	if (blk_pcache_open(&o, &be, err, sizeof(err)))
		abort();
	struct blk_dev b;
	if (blk_init(&b, be, err, sizeof(err)))
		abort();
	b.features = b.offered & (feature_mask | ~0xffffULL);
	void *ctx;
	struct virtq_dma dma;
	if (blk_dma_window_create(pc, WIN_GPA, &mem, &ctx, &dma, err, sizeof(err)))
		abort();
	blk_set_dma(&b, &blk_dma_window_ops, ctx);
	struct virtq q;
	struct vq_req r;
	if (vq_req_init(&r, QSIZE) ||
	    virtq_setup(&q, &dma, QSIZE, DESC_GPA, AVAIL_GPA, USED_GPA, event_idx, true, QSIZE, err,
			sizeof(err)))
		abort();
	for (unsigned i = 0; i < 4 * QSIZE; i++) {
		if (virtq_pop(&q, &r) != VQ_POP_OK)
			break;
		uint32_t len = blk_handle(&b, 0, &r);
		if (len > r.in_len + (r.error ? 1 : 0))
			abort();
		virtq_push(&q, r.head, len);
		/* no pin and no BREAKING bit outlives its request */
		for (uint64_t off = 0; off < WIN_SIZE; off += PAGE_SIZE)
			if (pcache_page_pins(pc, off)) {
				fprintf(stderr, "page 0x%llx left with pin word 0x%x\n",
					(unsigned long long)off, pcache_page_pins(pc, off));
				abort();
			}
		if (pcache_broken(pc)) {
			fprintf(stderr, "%s\n", pcache_broken(pc));
			abort();
		}
	}
	vq_req_free(&r);
	blk_destroy(&b); /* destroys the backend and the window glue (its pcache reference) */
	free(ram);
	return 0;
}
