/* libFuzzer target: the split-virtqueue walker over a guest memory whose every byte (rings,
 * descriptors, indirect tables) comes from the fuzzer, with ring placement, queue size,
 * negotiated features and chain limit chosen by the fuzzer too. The walker must never read
 * or write outside guest RAM (each region is its own heap block, so ASan sees an escape),
 * never loop, and every request it hands out must be consistent.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -D_GNU_SOURCE \
 *         tests/fuzz/fuzz_virtq.c devices/virtqueue.c devices/virtio.c lib/guest_mem.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "devices/virtqueue.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define LO_GPA  0x0
#define LO_SIZE 0x8000
#define HI_GPA  0x100000
#define HI_SIZE 0x2000
#define PARAMS  10

static int inside(const uint8_t *p, size_t len, const uint8_t *base, size_t bsize)
{
	return p >= base && len <= bsize && (size_t)(p - base) <= bsize - len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < PARAMS)
		return 0;
	const uint8_t *p = data;
	uint16_t qsize = (uint16_t)(1u << (p[0] & 7));     /* 1..128 */
	bool event_idx = p[0] & 0x10, indirect = p[0] & 0x20;
	unsigned max_chain = p[1] ? p[1] : 1;
	/* ring addresses: mostly inside the low region, sometimes anywhere */
	uint64_t desc = (uint64_t)(p[2] | p[3] << 8), avail = (uint64_t)(p[4] | p[5] << 8),
		 used = (uint64_t)(p[6] | p[7] << 8);
	if (p[8] & 1)
		desc |= HI_GPA;
	if (p[8] & 2)
		used |= HI_GPA;
	unsigned rounds = (p[9] & 3) + 1;
	data += PARAMS;
	size -= PARAMS;

	uint8_t *lo = malloc(LO_SIZE), *hi = malloc(HI_SIZE);
	if (!lo || !hi)
		abort();
	size_t n = size < LO_SIZE ? size : LO_SIZE;
	memset(lo, 0, LO_SIZE);
	memcpy(lo, data, n);
	memset(hi, 0, HI_SIZE);
	if (size > LO_SIZE)
		memcpy(hi, data + LO_SIZE, size - LO_SIZE < HI_SIZE ? size - LO_SIZE : HI_SIZE);
	struct guest_mem mem = { 0 };
	guest_mem_add(&mem, LO_GPA, LO_SIZE, lo);
	guest_mem_add(&mem, HI_GPA, HI_SIZE, hi);

	struct virtq q;
	struct vq_req r;
	char err[128];
	if (vq_req_init(&r, max_chain))
		abort();
	if (virtq_setup(&q, &(struct virtq_dma){ .mem = &mem }, qsize, desc, avail, used, event_idx, indirect, max_chain, err,
			sizeof(err)) == 0) {
		volatile uint8_t sink = 0;
		/* Several rounds: the device's own writes (into writable buffers, which may be
		 * the rings themselves) act like a guest rewriting memory between notifies. */
		for (unsigned round = 0; round < rounds; round++) {
			virtq_disable_notify(&q);
			for (unsigned i = 0; i < 2u * qsize + 2; i++) {
				int rc = virtq_pop(&q, &r);
				if (rc != VQ_POP_OK)
					break;
				if (r.head >= qsize || r.nout > r.nseg || r.nseg > r.cap ||
				    r.ndesc > max_chain + 1)
					abort();
				uint64_t out = 0, in = 0;
				for (unsigned k = 0; k < r.nseg; k++) {
					uint8_t *b = r.iov[k].iov_base;
					size_t l = r.iov[k].iov_len;
					if (!l || !(inside(b, l, lo, LO_SIZE) || inside(b, l, hi, HI_SIZE)))
						abort();
					if (guest_mem_ptr(&mem, r.gpa[k], l) != b)
						abort();
					if (k < r.nout) {
						out += l;
						for (size_t j = 0; j < l; j++)
							sink ^= b[j];
					} else {
						in += l;
						memset(b, 0x5a, l); /* the device writes what it may */
					}
				}
				if (out != r.out_len || in != r.in_len)
					abort();
				if (r.error && (r.nseg || r.error >= VQ_E_NR || !r.why[0]))
					abort();
				if (r.err_status) {
					if (!inside(r.err_status, 1, lo, LO_SIZE) &&
					    !inside(r.err_status, 1, hi, HI_SIZE))
						abort();
					*r.err_status = 1;
				}
				virtq_push(&q, r.head, (uint32_t)in);
			}
			virtq_should_notify(&q);
			virtq_enable_notify(&q);
		}
		(void)sink;
	}
	vq_req_free(&r);
	free(lo);
	free(hi);
	return 0;
}
