/* Split virtqueue, driver side. See virtq.h. */
#include "drivers/virtq.h"

#include "drivers/virtio_pci.h"
#include "lib/rt.h"

#define STATUS_CHECK_NS 200000 /* how often a waiting driver reads device_status (an exit) */

static inline uint16_t *used_event(struct virtq *q)
{
	return &q->avail->ring[q->size];
}

static inline volatile uint16_t *avail_event(struct virtq *q)
{
	return (volatile uint16_t *)&q->used->ring[q->size];
}

/* 2.7.10 / the Linux helper: would moving idx from old to new_idx pass event? */
static inline bool need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

int vq_alloc(struct virtq *q, uint16_t size)
{
	if (!size || (size & (size - 1)))
		return -1;
	q->size = size;
	q->desc = mem_alloc(16ull * size, 4096);
	q->avail = mem_alloc(6 + 2ull * size, 4096);
	q->used = mem_alloc(6 + 8ull * size, 4096);
	q->free = mem_alloc(2ull * size, 16);
	q->owner = mem_alloc(2ull * size, 16);
	q->itab = mem_zalloc(8ull * size, 16);
	q->itab_cap = mem_zalloc(2ull * size, 16);
	q->inflight = mem_alloc(size, 16);
	q->used_len = mem_alloc(4ull * size, 16);
	if (!q->used_len || !q->desc || !q->avail || !q->used || !q->free || !q->owner || !q->itab || !q->itab_cap ||
	    !q->inflight)
		return -1;
	vq_reinit(q);
	return 0;
}

void vq_reinit(struct virtq *q)
{
	memset(q->desc, 0, 16ull * q->size);
	memset(q->avail, 0, 6 + 2ull * q->size);
	memset(q->used, 0, 6 + 8ull * q->size);
	memset(q->inflight, 0, q->size);
	for (unsigned i = 0; i < q->size; i++) {
		q->free[i] = q->size - 1 - i; /* pop order 0, 1, 2... */
		q->owner[i] = VQ_OWNER_NONE;
	}
	q->nfree = q->size;
	q->avail_idx = 0;
	q->last_used = 0;
	/* Without EVENT_IDX, ask for no used-buffer notifications (2.7.7.1: flags MAY be 1); with
	 * it, flags MUST be 0 and used_event 0 means one notification per 65536 buffers. */
	q->avail->flags = q->event_idx ? 0 : VIRTQ_AVAIL_F_NO_INTERRUPT;
}

unsigned vq_outstanding(const struct virtq *q)
{
	unsigned n = 0;

	for (unsigned i = 0; i < q->size; i++)
		n += q->inflight[i] != 0;
	return n;
}

int vq_take(struct virtq *q)
{
	return q->nfree ? q->free[--q->nfree] : -1;
}

void vq_set(struct virtq *q, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	struct vq_desc *d = &q->desc[i];

	d->addr = addr;
	d->len = len;
	d->flags = flags;
	d->next = next;
}

static void put_avail(struct virtq *q, uint16_t head)
{
	q->avail->ring[q->avail_idx & (q->size - 1)] = head;
	q->avail_idx++;
	if (head < q->size)
		q->inflight[head] = 1;
}

int vq_add_chain(struct virtq *q, const struct vq_buf *bufs, unsigned n, bool indirect,
		 uint16_t *head)
{
	uint16_t h, prev = 0;

	if (!n || (indirect ? q->nfree < 1 : q->nfree < n))
		return -1;
	if (indirect) {
		struct vq_desc *t;

		h = vq_take(q);
		if (q->itab_cap[h] < n) {
			unsigned cap = n < 16 ? 16 : n;

			if (!(t = mem_alloc(16ull * cap, 16))) {
				q->free[q->nfree++] = h;
				return -1;
			}
			q->itab[h] = t;
			q->itab_cap[h] = cap;
		}
		t = q->itab[h];
		for (unsigned i = 0; i < n; i++) {
			t[i].addr = bufs[i].addr;
			t[i].len = bufs[i].len;
			t[i].flags = (bufs[i].write ? VIRTQ_DESC_F_WRITE : 0) |
				     (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0);
			t[i].next = i + 1 < n ? i + 1 : 0;
		}
		vq_set(q, h, (uint64_t)t, 16 * n, VIRTQ_DESC_F_INDIRECT, 0);
		q->owner[h] = h;
	} else {
		h = 0;
		for (unsigned i = 0; i < n; i++) {
			uint16_t d = vq_take(q);

			vq_set(q, d, bufs[i].addr, bufs[i].len, bufs[i].write ? VIRTQ_DESC_F_WRITE : 0, 0);
			if (i == 0)
				h = d;
			else {
				q->desc[prev].flags |= VIRTQ_DESC_F_NEXT;
				q->desc[prev].next = d;
			}
			prev = d;
		}
		for (uint16_t d = h;; d = q->desc[d].next) {
			q->owner[d] = h;
			if (!(q->desc[d].flags & VIRTQ_DESC_F_NEXT))
				break;
		}
	}
	put_avail(q, h);
	*head = h;
	return 0;
}

void vq_kick(struct virtq *q)
{
	uint16_t old = q->avail->idx, now = q->avail_idx;
	bool notify;

	/* 2.7.13.3.1: descriptors and ring entries before idx */
	__atomic_store_n(&q->avail->idx, now, __ATOMIC_RELEASE);
	/* 2.7.13.4.1: idx visible before we look at the device's suppression fields */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (q->event_idx)
		notify = need_event(*avail_event(q), now, old);
	else
		notify = !(__atomic_load_n(&q->used->flags, __ATOMIC_RELAXED) & VIRTQ_USED_F_NO_NOTIFY);
	if (notify) {
		*q->notify = q->index; /* 4.1.4.4: the 16-bit queue index */
		q->kicks++;
	} else {
		q->kicks_suppressed++;
	}
}

void vq_submit_raw(struct virtq *q, uint16_t head, const uint16_t *descs, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		q->owner[descs[i]] = head;
	put_avail(q, head);
	vq_kick(q);
}

void vq_bump_avail_raw(struct virtq *q, uint16_t delta)
{
	q->avail_idx += delta;
	vq_kick(q);
}

int vq_poll(struct virtq *q, uint32_t *id, uint32_t *len)
{
	uint16_t u = __atomic_load_n(&q->used->idx, __ATOMIC_ACQUIRE);
	struct vq_used_elem e;

	if (u == q->last_used)
		return VQ_EMPTY;
	e = q->used->ring[q->last_used & (q->size - 1)];
	q->last_used++;
	*id = e.id;
	*len = e.len;
	if (e.id >= q->size || q->inflight[e.id] != 1)
		return VQ_BAD_USED;
	q->inflight[e.id] = 2; /* used, not yet collected: its descriptors stay allocated */
	q->used_len[e.id] = e.len;
	q->completions++;
	return VQ_DONE;
}

/* Hand a used head back to the caller: free its descriptors. */
static void collect(struct virtq *q, uint16_t head, uint32_t *len)
{
	*len = q->used_len[head];
	q->inflight[head] = 0;
	for (unsigned i = 0; i < q->size; i++)
		if (q->owner[i] == head) {
			q->owner[i] = VQ_OWNER_NONE;
			q->free[q->nfree++] = i;
		}
}

int vq_wait(struct virtq *q, uint16_t head, uint32_t *len)
{
	uint64_t deadline = deadline_after_ns(q->timeout_ns);
	uint64_t next_check = deadline_after_ns(STATUS_CHECK_NS);
	uint32_t id, l;
	int r;

	for (;;) {
		while ((r = vq_poll(q, &id, &l)) != VQ_EMPTY)
			if (r == VQ_BAD_USED)
				t_diag("virtq %u: used element with id %u that is not outstanding (len %u)",
				       q->index, id, l);
		if (head < q->size && q->inflight[head] == 2) {
			collect(q, head, len);
			return VQ_DONE;
		}
		if (deadline_passed(next_check)) {
			if (q->dev && (virtio_status(q->dev) & VIRTIO_S_NEEDS_RESET))
				return VQ_NEEDS_RESET;
			next_check = deadline_after_ns(STATUS_CHECK_NS);
		}
		if (deadline_passed(deadline)) {
			while (vq_poll(q, &id, &l) != VQ_EMPTY)
				;
			if (head < q->size && q->inflight[head] == 2) {
				collect(q, head, len);
				return VQ_DONE;
			}
			if (q->dev && (virtio_status(q->dev) & VIRTIO_S_NEEDS_RESET))
				return VQ_NEEDS_RESET;
			return VQ_TIMEOUT;
		}
		cpu_relax();
	}
}

int vq_try_collect(struct virtq *q, uint16_t head, uint32_t *len)
{
	uint32_t id, l;
	int r;

	while ((r = vq_poll(q, &id, &l)) != VQ_EMPTY)
		if (r == VQ_BAD_USED)
			t_diag("virtq %u: used element with id %u that is not outstanding (len %u)",
			       q->index, id, l);
	if (head < q->size && q->inflight[head] == 2) {
		collect(q, head, len);
		return VQ_DONE;
	}
	return VQ_EMPTY;
}

const char *vq_result_str(int r)
{
	switch (r) {
	case VQ_DONE: return "done";
	case VQ_EMPTY: return "empty";
	case VQ_TIMEOUT: return "timeout";
	case VQ_NEEDS_RESET: return "DEVICE_NEEDS_RESET";
	case VQ_BAD_USED: return "bad used element";
	case VQ_FULL: return "queue full";
	}
	return "?";
}
