/* Shared by the virtio-blk unit tests (test_blk.c, test_blk_pcache.c): one request built as a
 * descriptor chain in synthetic guest RAM, offered, popped, handled by blk_handle and pushed,
 * as the transport's I/O thread would. The ring is at the tests' DESC_GPA / AVAIL_GPA with
 * QSZ entries; chains always use descriptors 0..n-1 (one request at a time). */
#ifndef CVMM_TEST_BLK_REQ_H
#define CVMM_TEST_BLK_REQ_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/blk.h"
#include "devices/virtqueue.h"

struct seg {
	uint64_t gpa;
	uint32_t len;
	bool wr;
};

/* Chain s[0..n) into descriptors 0..n-1, offer it (*avail is the driver's avail idx), pop,
 * handle, push. Returns the used length. */
static inline uint32_t blk_req_submit(uint8_t *ram, uint64_t desc_gpa, uint64_t avail_gpa,
				      uint16_t qsz, uint16_t *avail, struct virtq *q,
				      struct vq_req *r, struct blk_dev *b, const struct seg *s,
				      int n)
{
	struct virtq_desc *d = (struct virtq_desc *)(ram + desc_gpa);
	for (int i = 0; i < n; i++) {
		d[i].addr = s[i].gpa;
		d[i].len = s[i].len;
		d[i].flags = (uint16_t)((s[i].wr ? VIRTQ_DESC_F_WRITE : 0) |
					(i + 1 < n ? VIRTQ_DESC_F_NEXT : 0));
		d[i].next = (uint16_t)(i + 1);
	}
	struct virtq_avail *a = (struct virtq_avail *)(ram + avail_gpa);
	a->ring[*avail % qsz] = 0;
	a->idx = ++*avail;
	assert_int_equal(virtq_pop(q, r), VQ_POP_OK);
	uint32_t len = blk_handle(b, 0, r);
	virtq_push(q, r->head, len);
	return len;
}

#endif
