/* Split virtqueue walker (virtio 1.2, 2.7). See virtqueue.h for the threat model. */
#include "devices/virtqueue.h"

#include <endian.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const vq_errors[VQ_E_NR] = {
	[VQ_OK] = "ok",
	[VQ_E_NEXT_RANGE] = "descriptor next index out of range",
	[VQ_E_CHAIN_LONG] = "descriptor chain too long (loop?)",
	[VQ_E_INDIRECT_FEAT] = "indirect descriptor without VIRTIO_F_INDIRECT_DESC",
	[VQ_E_INDIRECT_NEXT] = "indirect descriptor with NEXT set",
	[VQ_E_INDIRECT_LEN] = "bad indirect table length",
	[VQ_E_INDIRECT_NEST] = "nested indirect descriptor",
	[VQ_E_INDIRECT_ADDR] = "indirect table outside guest RAM",
	[VQ_E_BUF_ADDR] = "buffer outside guest RAM",
	[VQ_E_ORDER] = "device-readable buffer after a device-writable one",
	[VQ_E_TOO_BIG] = "chain larger than 4 GiB",
};

const char *vq_error_str(int e)
{
	return e >= 0 && e < VQ_E_NR ? vq_errors[e] : "unknown";
}

static __attribute__((format(printf, 4, 5))) int fail(char *err, size_t errlen, int rc,
							const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (err && errlen)
		vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return rc;
}

int virtq_setup(struct virtq *q, const struct virtq_dma *dma, uint16_t size, uint64_t desc_gpa,
		uint64_t avail_gpa, uint64_t used_gpa, bool event_idx, bool indirect,
		unsigned max_chain, char *err, size_t errlen)
{
	memset(q, 0, sizeof(*q));
	const struct guest_mem *mem = dma->mem;
	q->broken = true; /* until fully checked */
	/* 2.7: "Queue Size value is always a power of 2. The maximum Queue Size value is 32768."
	 * (uint16_t cannot exceed 65535; 0 is not a power of two.) */
	if (size == 0 || (size & (size - 1)) || size > VIRTQ_MAX_SIZE)
		return fail(err, errlen, -1, "queue size %u is not a power of two in 1..%u", size,
			    VIRTQ_MAX_SIZE);
	/* 2.7 table: alignment 16 / 2 / 4; the driver MUST respect it (2.7.1 driver reqs). */
	if (desc_gpa % 16 || avail_gpa % 2 || used_gpa % 4)
		return fail(err, errlen, -1,
			    "misaligned ring: desc 0x%llx (needs 16), avail 0x%llx (2), used 0x%llx (4)",
			    (unsigned long long)desc_gpa, (unsigned long long)avail_gpa,
			    (unsigned long long)used_gpa);
	uint64_t dlen = 16ULL * size, alen = 6 + 2ULL * size, ulen = 6 + 8ULL * size;
	q->desc = guest_mem_ptr(mem, desc_gpa, dlen);
	q->avail = guest_mem_ptr(mem, avail_gpa, alen);
	q->used = guest_mem_ptr(mem, used_gpa, ulen);
	if (!q->desc || !q->avail || !q->used)
		return fail(err, errlen, -1,
			    "ring outside guest RAM: %s at 0x%llx+%llu",
			    !q->desc ? "descriptor table" : !q->avail ? "available ring" : "used ring",
			    (unsigned long long)(!q->desc ? desc_gpa : !q->avail ? avail_gpa : used_gpa),
			    (unsigned long long)(!q->desc ? dlen : !q->avail ? alen : ulen));
	q->size = size;
	q->mem = mem;
	/* 2.7.5.3.1: "A driver MUST NOT create a descriptor chain longer than the Queue Size
	 * of the device" (indirect entries count: they are the chain). The device's own limit
	 * (2.7.4.2 "MAY have a reasonable limit") can be lower still. */
	q->max_chain = max_chain && max_chain < size ? max_chain : size;
	q->event_idx = event_idx;
	q->indirect = indirect;
	q->translate = dma->translate;
	q->translate_ctx = dma->ctx;
	q->broken = false;
	return 0;
}

int vq_req_init(struct vq_req *r, unsigned cap)
{
	memset(r, 0, sizeof(*r));
	if (cap == 0)
		cap = 1;
	r->iov = calloc(cap, sizeof(*r->iov));
	r->gpa = calloc(cap, sizeof(*r->gpa));
	r->view = calloc(cap, sizeof(*r->view));
	r->view_gpa = calloc(cap, sizeof(*r->view_gpa));
	if (!r->iov || !r->gpa || !r->view || !r->view_gpa) {
		vq_req_free(r);
		return -1;
	}
	r->cap = cap;
	return 0;
}

void vq_req_free(struct vq_req *r)
{
	free(r->iov);
	free(r->gpa);
	free(r->view);
	free(r->view_gpa);
	memset(r, 0, sizeof(*r));
}

static void ring_broken(struct virtq *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ring_broken(struct virtq *q, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(q->why, sizeof(q->why), fmt, ap);
	va_end(ap);
	q->broken = true;
}

/* Read one descriptor out of guest memory exactly once (the guest may be rewriting it). */
static void load_desc(const struct virtq_desc *src, struct virtq_desc *d)
{
	struct virtq_desc tmp;
	memcpy(&tmp, (const void *)src, sizeof(tmp));
	__atomic_signal_fence(__ATOMIC_SEQ_CST); /* keep it one copy, not re-reads */
	d->addr = le64toh(tmp.addr);
	d->len = le32toh(tmp.len);
	d->flags = le16toh(tmp.flags);
	d->next = le16toh(tmp.next);
}

static void chain_error(struct vq_req *r, int e, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void chain_error(struct vq_req *r, int e, const char *fmt, ...)
{
	if (r->error)
		return; /* keep the first */
	r->error = e;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->why, sizeof(r->why), fmt, ap);
	va_end(ap);
}

/* Add one data descriptor to the request. Buffer problems are recorded (first one wins) and
 * the walk goes on, so that the chain's final descriptor can still be found: a device may
 * then still report the error in the chain's status byte. */
static void add_buffer(const struct virtq *q, struct vq_req *r, const struct virtq_desc *d,
		       bool *seen_write, bool is_last)
{
	bool wr = d->flags & VIRTQ_DESC_F_WRITE;
	void *host = NULL;
	bool translated = false;
	if (d->len) {
		host = guest_mem_ptr(q->mem, d->addr, d->len);
		/* Not RAM: perhaps the pmem window (device DMA into DAX memory). The hook takes
		 * only a buffer wholly inside its region, so one straddling RAM and the window,
		 * or running out of both, is refused here like any bad address. */
		if (!host && q->translate && d->addr + (uint64_t)d->len > d->addr &&
		    (host = q->translate(q->translate_ctx, d->addr, d->len, wr)))
			translated = true;
		if (!host)
			chain_error(r, VQ_E_BUF_ADDR, "buffer 0x%llx+%u is not inside guest RAM%s",
				    (unsigned long long)d->addr, d->len,
				    q->translate ? " or the pmem window" : "");
	}
	/* 2.7.4.1 (driver): "MUST place any device-writable descriptor elements after any
	 * device-readable descriptor elements". Our devices split the request into a readable
	 * and a writable byte stream, so a violation makes the request meaningless. */
	if (!wr && *seen_write)
		chain_error(r, VQ_E_ORDER, "device-readable buffer 0x%llx after a writable one",
			    (unsigned long long)d->addr);
	if (wr)
		*seen_write = true;
	if (is_last) {
		r->err_status = NULL;
		/* Only in RAM: a byte in the window may be touched only under a pin, and a bad
		 * chain is not pinned. */
		if (wr && d->len && host && !translated)
			r->err_status = (uint8_t *)host + d->len - 1;
	}
	if (!d->len || !host || r->error)
		return;
	/* nseg < cap is guaranteed: ndesc <= max_chain <= cap was checked by the caller. */
	if (wr) {
		r->in_len += d->len;
	} else {
		r->out_len += d->len;
		r->nout++;
	}
	if (r->in_len > UINT32_MAX || r->out_len > UINT32_MAX) {
		chain_error(r, VQ_E_TOO_BIG, "more than 4 GiB in one direction");
		return;
	}
	r->iov[r->nseg].iov_base = host;
	r->iov[r->nseg].iov_len = d->len;
	r->gpa[r->nseg] = d->addr;
	r->nseg++;
	if (translated)
		r->ntranslated++;
}

/* Walk an indirect table (2.7.5.3). Returns false if the walk had to stop (structure). */
static bool walk_indirect(const struct virtq *q, struct vq_req *r, const struct virtq_desc *ind,
			  bool *seen_write, unsigned limit)
{
	if (!q->indirect) {
		chain_error(r, VQ_E_INDIRECT_FEAT, "INDIRECT flag but the feature was not negotiated");
		return false;
	}
	/* 2.7.5.3.1: "MUST NOT set both VIRTQ_DESC_F_INDIRECT and VIRTQ_DESC_F_NEXT". */
	if (ind->flags & VIRTQ_DESC_F_NEXT) {
		chain_error(r, VQ_E_INDIRECT_NEXT, "INDIRECT descriptor also has NEXT");
		return false;
	}
	/* The table is desc[len / 16]; a length that is not a multiple of 16 or holds more
	 * descriptors than a chain may have is refused (2.7.4.2: the device MAY have a
	 * reasonable limit of descriptors in a chain). */
	if (ind->len == 0 || ind->len % 16 || ind->len / 16 > limit) {
		chain_error(r, VQ_E_INDIRECT_LEN, "indirect table length %u (must be a nonzero "
			    "multiple of 16, at most %u entries)", ind->len, limit);
		return false;
	}
	const struct virtq_desc *table = guest_mem_ptr(q->mem, ind->addr, ind->len);
	if (!table) {
		chain_error(r, VQ_E_INDIRECT_ADDR, "indirect table 0x%llx+%u is not inside guest RAM",
			    (unsigned long long)ind->addr, ind->len);
		return false;
	}
	unsigned n = ind->len / 16, i = 0;
	for (;;) {
		struct virtq_desc d;
		load_desc(&table[i], &d);
		/* The walk is bounded by max_chain descriptors in total, so a loop inside the
		 * table ends here. */
		if (++r->ndesc > limit) {
			chain_error(r, VQ_E_CHAIN_LONG, "chain longer than %u descriptors (loop?)",
				    limit);
			return false;
		}
		/* 2.7.5.3.1: "MUST NOT set the VIRTQ_DESC_F_INDIRECT flag within an indirect
		 * descriptor (ie. only one table per descriptor)". */
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			chain_error(r, VQ_E_INDIRECT_NEST, "INDIRECT inside an indirect table");
			return false;
		}
		bool more = d.flags & VIRTQ_DESC_F_NEXT;
		add_buffer(q, r, &d, seen_write, !more);
		if (!more)
			return true;
		if (d.next >= n) {
			chain_error(r, VQ_E_NEXT_RANGE, "indirect next %u >= table length %u", d.next, n);
			return false;
		}
		i = d.next;
	}
}

int virtq_pop(struct virtq *q, struct vq_req *r)
{
	if (q->broken)
		return VQ_POP_BROKEN;
	/* Acquire: the ring entries and descriptors published by this idx are read after it. */
	uint16_t avail_idx = le16toh(__atomic_load_n(&q->avail->idx, __ATOMIC_ACQUIRE));
	uint16_t pending = (uint16_t)(avail_idx - q->last_avail);
	if (pending == 0)
		return VQ_POP_EMPTY;
	/* The driver can have at most `size` buffers outstanding (2.7: Queue Size is the
	 * maximum number of buffers), and "MUST NOT decrement the available idx" (2.7.6.1). A
	 * jump past that means the ring is garbage: we cannot tell real chains from junk. */
	if (pending > q->size) {
		ring_broken(q, "available idx jumped from %u to %u (queue size %u)", q->last_avail,
			    avail_idx, q->size);
		return VQ_POP_BROKEN;
	}
	uint16_t head = le16toh(__atomic_load_n(&q->avail->ring[q->last_avail & (q->size - 1)],
						__ATOMIC_RELAXED));
	if (head >= q->size) {
		/* Not even a valid chain id to give back in the used ring. */
		ring_broken(q, "available ring slot %u holds head %u >= queue size %u",
			    q->last_avail & (q->size - 1), head, q->size);
		return VQ_POP_BROKEN;
	}
	q->last_avail++;
	q->popped++;

	r->head = head;
	r->nseg = r->nout = 0;
	r->out_len = r->in_len = 0;
	r->ndesc = 0;
	r->error = VQ_OK;
	r->err_status = NULL;
	r->why[0] = 0;
	r->ntranslated = 0;

	/* The request arrays hold max_chain segments; the walk never goes past that. */
	unsigned limit = q->max_chain < r->cap ? q->max_chain : r->cap;

	bool seen_write = false;
	uint16_t i = head;
	for (;;) {
		struct virtq_desc d;
		load_desc(&q->desc[i], &d);
		/* A direct chain longer than the queue size must revisit a descriptor: a loop
		 * ("A driver MUST NOT create a descriptor chain longer than the Queue Size",
		 * 2.7.5.3.1; 2.7.5.1: loops are forbidden). Counting bounds the walk. */
		if (++r->ndesc > limit) {
			chain_error(r, VQ_E_CHAIN_LONG, "chain longer than %u descriptors (loop?)", limit);
			break;
		}
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			/* 2.7.5.3.2: zero or more direct descriptors then one indirect one. The
			 * indirect descriptor itself is not a buffer; its WRITE flag is ignored. */
			r->ndesc--;
			walk_indirect(q, r, &d, &seen_write, limit);
			break;
		}
		bool more = d.flags & VIRTQ_DESC_F_NEXT;
		add_buffer(q, r, &d, &seen_write, !more);
		if (!more)
			break;
		if (d.next >= q->size) {
			chain_error(r, VQ_E_NEXT_RANGE, "next %u >= queue size %u", d.next, q->size);
			break;
		}
		i = d.next;
	}
	/* The error status location is only trustworthy if the walk reached the real end of the
	 * chain: a structural error leaves err_status as set by the last descriptor seen, so
	 * clear it for those. */
	switch (r->error) {
	case VQ_E_NEXT_RANGE: case VQ_E_CHAIN_LONG: case VQ_E_INDIRECT_FEAT:
	case VQ_E_INDIRECT_NEXT: case VQ_E_INDIRECT_LEN: case VQ_E_INDIRECT_NEST:
	case VQ_E_INDIRECT_ADDR:
		r->err_status = NULL;
		break;
	default:
		break;
	}
	if (r->error) {
		q->bad_chains++;
		r->nseg = r->nout = 0;
		r->out_len = r->in_len = 0;
		r->ntranslated = 0;
	}
	return VQ_POP_OK;
}

void virtq_push(struct virtq *q, uint16_t head, uint32_t len)
{
	struct virtq_used_elem *e = &q->used->ring[q->used_idx & (q->size - 1)];
	__atomic_store_n(&e->id, htole32(head), __ATOMIC_RELAXED);
	__atomic_store_n(&e->len, htole32(len), __ATOMIC_RELAXED);
	q->used_idx++;
	/* Release: the element (and the data written into the buffers) before the index. */
	__atomic_store_n(&q->used->idx, htole16(q->used_idx), __ATOMIC_RELEASE);
}

bool virtq_should_notify(struct virtq *q)
{
	/* Full fence: used->idx must be visible before we read the driver's wish, or the
	 * driver may re-enable interrupts after our read and sleep forever (2.7.7). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!q->event_idx) {
		uint16_t flags = le16toh(__atomic_load_n(&q->avail->flags, __ATOMIC_RELAXED));
		return !(flags & VIRTQ_AVAIL_F_NO_INTERRUPT);
	}
	uint16_t used_event = le16toh(__atomic_load_n(&q->avail->ring[q->size], __ATOMIC_RELAXED));
	uint16_t old = q->signalled_used, new_idx = q->used_idx;
	bool valid = q->signalled_valid;
	q->signalled_used = new_idx;
	q->signalled_valid = true;
	if (!valid)
		return true;
	return vring_need_event(used_event, new_idx, old);
}

void virtq_disable_notify(struct virtq *q)
{
	if (!q->event_idx)
		__atomic_store_n(&q->used->flags, htole16(VIRTQ_USED_F_NO_NOTIFY), __ATOMIC_RELAXED);
	/* With EVENT_IDX, avail_event simply stays behind while we work: the driver only
	 * notifies when it crosses it (2.7.10). */
}

bool virtq_enable_notify(struct virtq *q)
{
	if (q->broken)
		return false;
	if (q->event_idx) {
		uint16_t *avail_event = (uint16_t *)&q->used->ring[q->size];
		__atomic_store_n(avail_event, htole16(q->last_avail), __ATOMIC_RELAXED);
	} else {
		__atomic_store_n(&q->used->flags, 0, __ATOMIC_RELAXED);
	}
	/* Full fence: publish the wish before re-checking, else a buffer added in between
	 * would get neither a notification nor our attention. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return le16toh(__atomic_load_n(&q->avail->idx, __ATOMIC_ACQUIRE)) != q->last_avail;
}
