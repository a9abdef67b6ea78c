/* Split virtqueue, driver side (virtio 1.2, 2.7), polled from ring 3.
 *
 * The rings and buffers come from the bump allocator (identity mapped: a pointer is the
 * guest-physical address the device wants). Requests complete by polling the used ring with
 * a deadline (rdtsc); a request that never completes is reported, never waited for forever,
 * and the queue is then unusable until the device is reset and the queue set up again.
 *
 * Memory ordering (x86 is TSO, but the barriers are spelled out, 2.7.13):
 *  - descriptors and the avail ring entry are written before avail->idx, which is stored with
 *    release semantics (2.7.13.3.1: "a suitable memory barrier before the idx update");
 *  - a full fence (mfence) separates that store from reading used->flags / avail_event
 *    (2.7.13.4.1: "a suitable memory barrier before reading flags or avail_event");
 *  - used->idx is loaded with acquire before the used element it publishes is read.
 *
 * Besides the normal path (vq_add_chain / vq_kick / vq_wait) there is a raw one for the
 * blk-bad scenario: take descriptors, write any fields into them, publish any head or move
 * avail->idx arbitrarily. Descriptors remember which head they were published under, so a
 * malformed chain is still freed exactly when (if) its head comes back. */
#ifndef GUEST_VIRTQ_H
#define GUEST_VIRTQ_H

#include <stdbool.h>
#include <stdint.h>

#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY 1

struct vq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vq_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[]; /* [size], then used_event */
};

struct vq_used_elem {
	uint32_t id;
	uint32_t len;
};

struct vq_used {
	uint16_t flags;
	uint16_t idx;
	struct vq_used_elem ring[]; /* [size], then avail_event */
};

/* One buffer of a request: device-readable ones first (2.6.4.2). */
struct vq_buf {
	uint64_t addr;
	uint32_t len;
	bool write; /* device-writable */
};

struct virtio_dev;

struct virtq {
	struct virtio_dev *dev; /* for the DEVICE_NEEDS_RESET check while polling */
	uint16_t index, size;
	uint16_t dev_max;          /* the device's maximum queue size (queue_size at reset) */
	struct vq_desc *desc;
	struct vq_avail *avail;
	struct vq_used *used;
	volatile uint16_t *notify; /* this queue's notification address */
	bool event_idx, indirect;  /* negotiated */
	uint16_t avail_idx;        /* our copy of avail->idx */
	uint16_t last_used;        /* next used ring slot to consume */
	uint16_t nfree;
	uint16_t *free;            /* [size] stack of free descriptor indices */
	uint16_t *owner;           /* [size] head a descriptor was published under, or NONE */
	struct vq_desc **itab;     /* [size] indirect table kept per head for reuse */
	uint16_t *itab_cap;        /* [size] its capacity in descriptors */
	uint8_t *inflight;         /* [size] 1 published, 2 used but not yet collected, 0 free */
	uint32_t *used_len;        /* [size] the used length of a head in state 2 */
	uint64_t timeout_ns;
	/* statistics */
	uint64_t kicks, kicks_suppressed, completions;
};

#define VQ_OWNER_NONE 0xffff

/* Outcomes of vq_wait / vq_poll. */
enum { VQ_DONE = 0, VQ_EMPTY = 1, VQ_TIMEOUT = -1, VQ_NEEDS_RESET = -2, VQ_BAD_USED = -3,
       VQ_FULL = -4 /* not submitted: too few free descriptors */ };

/* Allocate rings and bookkeeping for a queue of `size` (a power of two). Returns 0 or -1. The
 * memory is kept for re-initialisation after a device reset (vq_reinit). */
int vq_alloc(struct virtq *q, uint16_t size);
/* Zero the rings and forget every request (after a device reset, before queue setup). */
void vq_reinit(struct virtq *q);

/* Normal path. Adds bufs as one chain (or, if `indirect`, as one descriptor pointing to an
 * indirect table) and writes the head into the avail ring without publishing it. Returns 0 and
 * the head, or -1 if there are not enough free descriptors. */
int vq_add_chain(struct virtq *q, const struct vq_buf *bufs, unsigned n, bool indirect,
		 uint16_t *head);
/* Publish everything added since the last kick (release-store avail->idx) and notify the
 * device unless it suppressed notifications (flags or avail_event). */
void vq_kick(struct virtq *q);
/* Consume the next used element: VQ_DONE with *id and *len (the head is then marked used; its
 * descriptors stay allocated until vq_wait collects it), VQ_EMPTY, or VQ_BAD_USED (an id that
 * is not an outstanding head: the element is skipped). */
int vq_poll(struct virtq *q, uint32_t *id, uint32_t *len);
/* Wait until `head` comes back (other heads that come back meanwhile are recorded for their
 * own vq_wait), or the deadline (q->timeout_ns), or the device sets DEVICE_NEEDS_RESET.
 * VQ_DONE frees the chain's descriptors and gives its used length. */
int vq_wait(struct virtq *q, uint16_t head, uint32_t *len);
/* Non-blocking form of vq_wait for several vCPUs sharing a queue under one lock (the caller
 * holds it): consume what the device used, then VQ_DONE (descriptors freed, *len set) if `head`
 * is back, else VQ_EMPTY. */
int vq_try_collect(struct virtq *q, uint16_t head, uint32_t *len);
/* Heads still outstanding. */
unsigned vq_outstanding(const struct virtq *q);

/* Raw path (blk-bad). */
int vq_take(struct virtq *q); /* a free descriptor index, or -1 */
void vq_set(struct virtq *q, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
	    uint16_t next);
/* Record descs[0..n) as owned by `head`, put `head` (any value, even out of range) in the next
 * avail slot, publish and notify. */
void vq_submit_raw(struct virtq *q, uint16_t head, const uint16_t *descs, unsigned n);
/* Store avail->idx = our copy + delta (no ring entries written) and notify. */
void vq_bump_avail_raw(struct virtq *q, uint16_t delta);

const char *vq_result_str(int r);

#endif
