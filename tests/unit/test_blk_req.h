/* Shared by the virtio-blk unit tests (test_blk.c, test_blk_pcache.c): one request built as a
 * descriptor chain in synthetic guest RAM, offered, popped, handled by blk_handle and pushed,
 * as the transport's I/O thread would. The ring is at DESC_GPA / AVAIL_GPA / USED_GPA below
 * with QSZ entries; chains always use descriptors 0..n-1 (one request at a time). */
#ifndef CVMM_TEST_BLK_REQ_H
#define CVMM_TEST_BLK_REQ_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/blk.h"
#include "devices/virtqueue.h"

/* The ring both tests set up in their synthetic guest RAM. */
#define QSZ       256
#define DESC_GPA  0x1000
#define AVAIL_GPA 0x2000
#define USED_GPA  0x3000

struct seg {
	uint64_t gpa;
	uint32_t len;
	bool wr;
};

/* Chain s[0..n) into descriptors 0..n-1, offer it (*avail is the driver's avail idx), pop,
 * handle, push. Returns the used length. */
static inline uint32_t blk_req_submit(uint8_t *ram, uint16_t *avail, struct virtq *q,
				      struct vq_req *r, struct blk_dev *b, const struct seg *s,
				      int n)
{
	struct virtq_desc *d = (struct virtq_desc *)(ram + DESC_GPA);
	for (int i = 0; i < n; i++) {
		d[i].addr = s[i].gpa;
		d[i].len = s[i].len;
		d[i].flags = (uint16_t)((s[i].wr ? VIRTQ_DESC_F_WRITE : 0) |
					(i + 1 < n ? VIRTQ_DESC_F_NEXT : 0));
		d[i].next = (uint16_t)(i + 1);
	}
	struct virtq_avail *a = (struct virtq_avail *)(ram + AVAIL_GPA);
	a->ring[*avail % QSZ] = 0;
	a->idx = ++*avail;
	assert_int_equal(virtq_pop(q, r), VQ_POP_OK);
	uint32_t len = blk_handle(b, 0, r);
	virtq_push(q, r->head, len);
	return len;
}

#endif
