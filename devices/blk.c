/* virtio-blk request parsing and execution. See blk.h. */
#include "devices/blk.h"

#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* The config layout is ABI (5.2.4). */
_Static_assert(offsetof(struct virtio_blk_config, blk_size) == 20, "blk_size");
_Static_assert(offsetof(struct virtio_blk_config, num_queues) == 34, "num_queues");
_Static_assert(offsetof(struct virtio_blk_config, max_discard_sectors) == 36, "discard");
_Static_assert(offsetof(struct virtio_blk_config, write_zeroes_may_unmap) == 56, "wz unmap");
_Static_assert(sizeof(struct virtio_blk_config) == 72, "config size");
_Static_assert(sizeof(struct virtio_blk_outhdr) == 16, "outhdr");
_Static_assert(sizeof(struct virtio_blk_dwz_seg) == 16, "dwz seg");

#define STAT(b, f, n) __atomic_add_fetch(&(b)->st.f, (n), __ATOMIC_RELAXED)

/* Negotiated features: written by a vCPU (FEATURES_OK, reset), read by the I/O thread. */
static bool has(const struct blk_dev *b, unsigned bit)
{
	return __atomic_load_n(&b->features, __ATOMIC_ACQUIRE) & (1ULL << bit);
}

int blk_init(struct blk_dev *b, struct blk_backend *be, char *err, size_t errlen)
{
	memset(b, 0, sizeof(*b));
	/* first, so blk_destroy is right after a failed init too */
	fault_set_init(&b->faults, "virtio-blk fault", FAULT_OPS_BLK, FAULT_EFFECTS_BLK);
	if (!be || be->size < BLK_BLOCK_SIZE || be->size % BLK_BLOCK_SIZE) {
		snprintf(err, errlen, "blk: backend size is not a positive multiple of %u",
			 BLK_BLOCK_SIZE);
		return -1;
	}
	b->be = be;
	ratelimit_init(&b->rl, "virtio-blk", 10);
	b->capacity = be->size / BLK_SECTOR;
	b->offered = (1ULL << VIRTIO_BLK_F_SIZE_MAX) | (1ULL << VIRTIO_BLK_F_SEG_MAX) |
		     (1ULL << VIRTIO_BLK_F_BLK_SIZE) | (1ULL << VIRTIO_BLK_F_FLUSH);
	if (be->readonly)
		b->offered |= 1ULL << VIRTIO_BLK_F_RO;
	else
		b->offered |= (1ULL << VIRTIO_BLK_F_DISCARD) | (1ULL << VIRTIO_BLK_F_WRITE_ZEROES);
	b->features = b->offered;
	b->workers = BLK_WORKERS_DEFAULT;

	struct virtio_blk_config *c = &b->cfg;
	c->capacity = htole64(b->capacity);
	c->size_max = htole32(BLK_SIZE_MAX);
	c->seg_max = htole32(BLK_SEG_MAX);
	c->blk_size = htole32(BLK_BLOCK_SIZE);
	c->num_queues = htole16(1);
	if (!be->readonly) {
		c->max_discard_sectors = htole32(BLK_MAX_DWZ_SECTORS);
		c->max_discard_seg = htole32(BLK_MAX_DWZ_SEG);
		c->discard_sector_alignment = htole32(BLK_BLOCK_SIZE / BLK_SECTOR);
		c->max_write_zeroes_sectors = htole32(BLK_MAX_DWZ_SECTORS);
		c->max_write_zeroes_seg = htole32(BLK_MAX_DWZ_SEG);
		c->write_zeroes_may_unmap = 1; /* we punch holes for WRITE_ZEROES with unmap */
	}
	/* 5.2.6: "a NUL-padded ASCII string up to 20 bytes long" (no NUL if 20 long). */
	char id[VIRTIO_BLK_ID_BYTES + 1] = { 0 };
	snprintf(id, sizeof(id), "cvmm-blk-%llu", (unsigned long long)be->serial);
	memcpy(b->id, id, VIRTIO_BLK_ID_BYTES);
	return 0;
}

void blk_destroy(struct blk_dev *b)
{
	if (b->be && b->be->ops->destroy)
		b->be->ops->destroy(b->be);
	b->be = NULL;
	if (b->dma && b->dma->destroy)
		b->dma->destroy(b->dma_ctx);
	b->dma = NULL;
	b->dma_ctx = NULL;
	ratelimit_destroy(&b->rl);
	fault_set_destroy(&b->faults);
}

void blk_set_dma(struct blk_dev *b, const struct blk_dma_ops *ops, void *ctx)
{
	b->dma = ops;
	b->dma_ctx = ctx;
}

void blk_stats_json(struct blk_dev *b, FILE *f)
{
	struct blk_stats s;
	uint64_t *dst = (uint64_t *)&s, *src = (uint64_t *)&b->st;
	for (size_t i = 0; i < sizeof(s) / sizeof(uint64_t); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
#define U(x) (unsigned long long)(x)
	fprintf(f, "{\"backend\": \"%s\", \"capacity_bytes\": %llu, \"requests\": %llu, "
		   "\"read_bytes\": %llu, \"write_bytes\": %llu, \"flushes\": %llu, "
		   "\"discards\": %llu, \"write_zeroes\": %llu, \"get_id\": %llu, "
		   "\"ioerr\": %llu, \"unsupp\": %llu, \"dropped\": %llu, "
		   "\"window_dma_requests\": %llu, \"window_pin_errors\": %llu, "
		   "\"flush\": \"%s\", \"flushes_ignored\": %llu, \"faults_injected\": %llu, "
		   "\"faults\": ",
		b->backend_name ? b->backend_name : "file", U(b->capacity * BLK_SECTOR),
		U(s.requests), U(s.read_bytes), U(s.write_bytes), U(s.flushes), U(s.discards),
		U(s.write_zeroes), U(s.get_id), U(s.ioerr), U(s.unsupp), U(s.dropped),
		U(s.dma_requests), U(s.dma_pin_errors), b->flush_ignore ? "ignore" : "sync",
		U(s.flushes_ignored), U(fault_fired(&b->faults)));
#undef U
	fault_list_json(&b->faults, f);
	fputc('}', f);
}

/* Drop the request's window pins (if any): the device wrote its writable segments. */
static void dma_unpin(struct blk_dev *b, struct vq_req *r, bool *pinned, bool wrote)
{
	if (*pinned)
		b->dma->unpin(b->dma_ctx, r->iov, r->gpa, r->nseg, r->nout, wrote);
	*pinned = false;
}

/* Write the status byte. If it lies in the window and the request holds no pins (a failed
 * pin, or DISCARD / WRITE_ZEROES, which dropped theirs), pin just that segment around the
 * store. Returns false if it could not be written. */
static bool put_status(struct blk_dev *b, struct vq_req *r, uint8_t *status, uint8_t st,
		       bool *pinned)
{
	if (*pinned || !r->ntranslated) {
		*status = st;
		dma_unpin(b, r, pinned, true);
		return true;
	}
	unsigned last = r->nseg - 1;
	if (!b->dma || b->dma->pin(b->dma_ctx, &r->iov[last], &r->gpa[last], 1, 0) < 0)
		return false;
	*status = st;
	b->dma->unpin(b->dma_ctx, &r->iov[last], &r->gpa[last], 1, 0, true);
	return true;
}

/* Is [sector, sector + bytes/512) inside the disk? Overflow-safe. */
static bool in_range(const struct blk_dev *b, uint64_t sector, uint64_t bytes)
{
	uint64_t n = bytes / BLK_SECTOR;
	return sector <= b->capacity && n <= b->capacity - sector;
}

/* Sleep us microseconds, all of them (a signal may cut a nanosleep short). */
static void sleep_us(uint64_t us)
{
	struct timespec t = { .tv_sec = (time_t)(us / 1000000), .tv_nsec = (long)(us % 1000000) * 1000 };
	while (nanosleep(&t, &t) < 0 && errno == EINTR)
		;
}

/* Consult the fault rules for a request that passed its checks. Returns true if the request
 * ends here with status *st (ioerr, unsupp: the backend is not called). A delay sleeps and
 * returns false: the request then runs. A torn write returns false with *torn set to the
 * sectors to write before failing (torn is NULL for requests other than writes; fault.c
 * refuses torn rules for other ops). */
static bool inject(struct blk_dev *b, enum fault_op op, const struct fault_extent *ext,
		   unsigned n, uint8_t *st, uint64_t *torn)
{
	struct fault_action a;
	if (!fault_check(&b->faults, op, ext, n, &a))
		return false;
	switch (a.effect) {
	case FAULT_DELAY:
		sleep_us(a.delay_us);
		return false;
	case FAULT_UNSUPP:
		*st = VIRTIO_BLK_S_UNSUPP;
		return true;
	case FAULT_TORN:
		if (!torn) { /* cannot happen: fail the request rather than ignore the rule */
			*st = VIRTIO_BLK_S_IOERR;
			return true;
		}
		*torn = a.torn_sectors;
		return false;
	default:
		*st = VIRTIO_BLK_S_IOERR;
		return true;
	}
}

static uint8_t do_rw(struct blk_dev *b, struct vq_req *r, bool write, uint64_t sector,
		     uint64_t out_data, uint64_t in_data, uint32_t *written)
{
	/* IN: device-writable data, nothing readable besides the header; OUT: the reverse. */
	uint64_t len = write ? out_data : in_data, extra = write ? in_data : out_data;
	const char *what = write ? "write" : "read";
	if (extra) {
		rl_log(&b->rl, "%s at sector %llu: %llu stray %s bytes", what,
		       (unsigned long long)sector, (unsigned long long)extra,
		       write ? "device-writable" : "device-readable");
		return VIRTIO_BLK_S_IOERR;
	}
	/* 5.2.6: data is "in multiples of 512 bytes". */
	if (len % BLK_SECTOR) {
		rl_log(&b->rl, "%s at sector %llu: length %llu is not a multiple of 512", what,
		       (unsigned long long)sector, (unsigned long long)len);
		return VIRTIO_BLK_S_IOERR;
	}
	/* 5.2.6.2: a write on a read-only device fails "and MUST NOT write any data". */
	if (write && b->be->readonly) {
		rl_log(&b->rl, "write at sector %llu on a read-only disk", (unsigned long long)sector);
		return VIRTIO_BLK_S_IOERR;
	}
	if (!in_range(b, sector, len)) {
		rl_log(&b->rl, "%s of %llu bytes at sector %llu is past the end (%llu sectors)", what,
		       (unsigned long long)len, (unsigned long long)sector,
		       (unsigned long long)b->capacity);
		return VIRTIO_BLK_S_IOERR;
	}
	if (len == 0)
		return VIRTIO_BLK_S_OK;
	uint64_t off = sector * BLK_SECTOR, torn = 0;
	uint8_t st;
	if (inject(b, write ? FAULT_OP_WRITE : FAULT_OP_READ, &(struct fault_extent){ off, len }, 1,
		   &st, write ? &torn : NULL))
		return st;
	/* A torn write: only its first `torn` sectors reach the disk (in_range above bounds
	 * len, so no product here overflows: torn is compared in sectors). */
	uint64_t io_len = torn && torn < len / BLK_SECTOR ? torn * BLK_SECTOR : len;
	/* The data part of the stream: readable after the header, or writable before the
	 * status byte. */
	const struct iovec *iov = write ? r->iov : r->iov + r->nout;
	const uint64_t *gpa = write ? r->gpa : r->gpa + r->nout;
	unsigned n = write ? r->nout : r->nseg - r->nout;
	int k = iov_slice(iov, gpa, n, write ? sizeof(struct virtio_blk_outhdr) : 0, io_len,
			  r->view, r->view_gpa, r->cap);
	if (k < 0) /* cannot happen: the lengths were computed from these segments */
		return VIRTIO_BLK_S_IOERR;
	int rc = write ? b->be->ops->write(b->be, r->view, r->view_gpa, (unsigned)k, off, io_len)
		       : b->be->ops->read(b->be, r->view, r->view_gpa, (unsigned)k, off, len);
	if (torn) {
		/* the torn part is written (or failed on its own); either way the guest sees the
		 * write fail, and the write-through flush below is not owed for a failed write */
		if (rc == 0)
			STAT(b, write_bytes, io_len);
		return VIRTIO_BLK_S_IOERR;
	}
	if (rc == 0 && write && !has(b, VIRTIO_BLK_F_FLUSH) && !b->flush_ignore)
		/* 5.2.6.2: FLUSH offered but not negotiated: a write is stable when completed
		 * (unless flush = ignore: then nothing is synced, by request). */
		rc = b->be->ops->flush(b->be);
	if (rc < 0) {
		rl_log(&b->rl, "%s of %llu bytes at sector %llu: %s", what, (unsigned long long)len,
		       (unsigned long long)sector, strerror(-rc));
		return VIRTIO_BLK_S_IOERR;
	}
	if (write) {
		STAT(b, write_bytes, len);
	} else {
		STAT(b, read_bytes, len);
		*written = (uint32_t)len; /* <= 4 GiB - 1: the walker refuses bigger chains */
	}
	return VIRTIO_BLK_S_OK;
}

static uint8_t do_dwz(struct blk_dev *b, struct vq_req *r, uint32_t type, uint64_t out_data,
		      uint64_t in_data, bool *pinned)
{
	bool discard = type == VIRTIO_BLK_T_DISCARD;
	const char *what = discard ? "discard" : "write-zeroes";
	if (b->be->readonly) {
		rl_log(&b->rl, "%s on a read-only disk", what);
		return VIRTIO_BLK_S_IOERR;
	}
	if (!has(b, discard ? VIRTIO_BLK_F_DISCARD : VIRTIO_BLK_F_WRITE_ZEROES)) {
		rl_log(&b->rl, "%s without the feature negotiated", what);
		return VIRTIO_BLK_S_UNSUPP;
	}
	uint32_t max_seg = BLK_MAX_DWZ_SEG, max_sect = BLK_MAX_DWZ_SECTORS;
	if (in_data || out_data == 0 || out_data % sizeof(struct virtio_blk_dwz_seg) ||
	    out_data / sizeof(struct virtio_blk_dwz_seg) > max_seg) {
		rl_log(&b->rl, "%s: %llu bytes of segments (want 1..%u x 16) and %llu stray "
		       "device-writable bytes", what, (unsigned long long)out_data, max_seg,
		       (unsigned long long)in_data);
		return VIRTIO_BLK_S_IOERR;
	}
	unsigned nseg = (unsigned)(out_data / sizeof(struct virtio_blk_dwz_seg));
	struct virtio_blk_dwz_seg seg[BLK_MAX_DWZ_SEG];
	iov_to_buf(r->iov, r->nout, sizeof(struct virtio_blk_outhdr), seg,
		   nseg * sizeof(seg[0]));
	/* No self-deadlock: the segments are copied out; drop every window pin before the
	 * break, which waits for the pins on its range to drain (ours too, were we to keep
	 * them: a guest may well put the segment table or the status byte in the range it
	 * discards). The status byte is pinned again on its own when it is written. */
	dma_unpin(b, r, pinned, false);
	/* Check every segment before touching the disk. */
	for (unsigned i = 0; i < nseg; i++) {
		uint64_t sector = le64toh(seg[i].sector);
		uint32_t num = le32toh(seg[i].num_sectors), flags = le32toh(seg[i].flags);
		seg[i].sector = sector;
		seg[i].num_sectors = num;
		seg[i].flags = flags;
		/* 5.2.6.2: UNSUPP "if any unknown flag is set", and for discard "if the unmap
		 * flag is set". */
		if ((flags & ~(uint32_t)VIRTIO_BLK_WZ_UNMAP) || (discard && flags)) {
			rl_log(&b->rl, "%s segment %u: flags 0x%x not supported", what, i, flags);
			return VIRTIO_BLK_S_UNSUPP;
		}
		if (num > max_sect || !in_range(b, sector, (uint64_t)num * BLK_SECTOR)) {
			rl_log(&b->rl, "%s segment %u: %u sectors at %llu (max %u, capacity %llu)",
			       what, i, num, (unsigned long long)sector, max_sect,
			       (unsigned long long)b->capacity);
			return VIRTIO_BLK_S_IOERR;
		}
	}
	struct fault_extent ext[BLK_MAX_DWZ_SEG];
	for (unsigned i = 0; i < nseg; i++)
		ext[i] = (struct fault_extent){ seg[i].sector * BLK_SECTOR,
						(uint64_t)seg[i].num_sectors * BLK_SECTOR };
	uint8_t st;
	if (inject(b, discard ? FAULT_OP_DISCARD : FAULT_OP_WRITE_ZEROES, ext, nseg, &st, NULL))
		return st;
	for (unsigned i = 0; i < nseg; i++) {
		if (!seg[i].num_sectors)
			continue;
		uint64_t off = seg[i].sector * BLK_SECTOR, len = (uint64_t)seg[i].num_sectors * BLK_SECTOR;
		int rc = discard ? b->be->ops->discard(b->be, off, len)
				 : b->be->ops->write_zeroes(b->be, off, len,
							    seg[i].flags & VIRTIO_BLK_WZ_UNMAP);
		if (rc < 0) {
			rl_log(&b->rl, "%s of %llu bytes at sector %llu: %s", what,
			       (unsigned long long)len, (unsigned long long)seg[i].sector,
			       strerror(-rc));
			return VIRTIO_BLK_S_IOERR;
		}
	}
	if (discard)
		STAT(b, discards, 1);
	else
		STAT(b, write_zeroes, 1);
	return VIRTIO_BLK_S_OK;
}

uint32_t blk_handle(void *dev, unsigned q, struct vq_req *r)
{
	struct blk_dev *b = dev;
	(void)q;
	STAT(b, requests, 1);
	if (r->error) {
		/* A malformed chain: report it in its status byte if it has a usable one, else
		 * give it back untouched (used length 0). */
		if (r->err_status) {
			rl_log(&b->rl, "request %u: %s: failed with IOERR", r->head, r->why);
			*r->err_status = VIRTIO_BLK_S_IOERR;
			STAT(b, ioerr, 1);
			return 0; /* see "used length" below: only the last byte was written */
		}
		rl_log(&b->rl, "request %u: %s; no status byte to report it: returned with length 0",
		       r->head, r->why);
		STAT(b, dropped, 1);
		return 0;
	}
	/* The status byte is the last byte of the device-writable stream (5.2.6). Writable
	 * segments come last (the walker enforces it) and are never empty, so it is the last
	 * byte of the last segment. */
	if (r->in_len == 0) {
		rl_log(&b->rl, "request %u: no device-writable status byte: returned with length 0",
		       r->head);
		STAT(b, dropped, 1);
		return 0;
	}
	const struct iovec *last = &r->iov[r->nseg - 1];
	uint8_t *status = (uint8_t *)last->iov_base + last->iov_len - 1;
	uint64_t in_data = r->in_len - 1;
	uint32_t written = 0;
	uint8_t st;
	bool pinned = false;

	/* Buffers in the pmem window: pin them all before touching any byte of the request
	 * (its header may be there too) and before the backend takes a page lock: pins before
	 * locks (seed 003; mm/pcache.h lock order). */
	if (r->ntranslated) {
		STAT(b, dma_requests, 1);
		int rc = b->dma ? b->dma->pin(b->dma_ctx, r->iov, r->gpa, r->nseg, r->nout)
				: -EFAULT;
		if (rc < 0) {
			STAT(b, dma_pin_errors, 1);
			rl_log(&b->rl, "request %u: buffers in the pmem window cannot be pinned (%s): "
			       "failed with IOERR", r->head, strerror(-rc));
			st = VIRTIO_BLK_S_IOERR;
			goto done;
		}
		pinned = true;
	}

	struct virtio_blk_outhdr h;
	if (r->out_len < sizeof(h)) {
		rl_log(&b->rl, "request %u: header is %llu bytes, want 16", r->head,
		       (unsigned long long)r->out_len);
		st = VIRTIO_BLK_S_IOERR;
		goto done;
	}
	iov_to_buf(r->iov, r->nout, 0, &h, sizeof(h));
	uint32_t type = le32toh(h.type);
	uint64_t sector = le64toh(h.sector);
	uint64_t out_data = r->out_len - sizeof(h);

	switch (type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		st = do_rw(b, r, type == VIRTIO_BLK_T_OUT, sector, out_data, in_data, &written);
		break;
	case VIRTIO_BLK_T_FLUSH:
		if (out_data || in_data) {
			rl_log(&b->rl, "flush with %llu data bytes", (unsigned long long)(out_data + in_data));
			st = VIRTIO_BLK_S_IOERR;
			break;
		}
		if (!has(b, VIRTIO_BLK_F_FLUSH)) {
			st = VIRTIO_BLK_S_UNSUPP;
			break;
		}
		/* Requests of the queue run on several workers (vq_exec), so writes may be in
		 * flight beside this FLUSH; what it promises is the writes that completed before
		 * it was submitted, and those have returned from the backend: its sync covers
		 * them. A FLUSH whose own sync (or the page cache's writeback) fails says so. */
		/* an injected fault comes before flush = ignore: a test asked for it */
		if (inject(b, FAULT_OP_FLUSH, NULL, 0, &st, NULL)) {
			STAT(b, flushes, 1);
			break;
		}
		st = VIRTIO_BLK_S_OK;
		if (b->flush_ignore) {
			STAT(b, flushes_ignored, 1);
		} else if (!b->be->readonly) {
			int rc = b->be->ops->flush(b->be);
			if (rc < 0) {
				rl_log(&b->rl, "flush: %s", strerror(-rc));
				st = VIRTIO_BLK_S_IOERR;
			}
		}
		STAT(b, flushes, 1);
		break;
	case VIRTIO_BLK_T_GET_ID:
		if (out_data) {
			rl_log(&b->rl, "get-id with %llu device-readable data bytes",
			       (unsigned long long)out_data);
			st = VIRTIO_BLK_S_IOERR;
			break;
		}
		/* The id, NUL-padded to the whole data area (the string is NUL-padded anyway), so
		 * the used length is exact however big the buffer. */
		written = (uint32_t)(in_data < VIRTIO_BLK_ID_BYTES ? in_data : VIRTIO_BLK_ID_BYTES);
		iov_from_buf(r->iov + r->nout, r->nseg - r->nout, 0, b->id, written);
		if (written < in_data)
			written += (uint32_t)iov_memset(r->iov + r->nout, r->nseg - r->nout, written,
							0, in_data - written);
		STAT(b, get_id, 1);
		st = VIRTIO_BLK_S_OK;
		break;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		st = do_dwz(b, r, type, out_data, in_data, &pinned);
		break;
	default:
		rl_log(&b->rl, "request type %u not supported", type);
		st = VIRTIO_BLK_S_UNSUPP;
		break;
	}
done:
	if (st == VIRTIO_BLK_S_IOERR)
		STAT(b, ioerr, 1);
	else if (st == VIRTIO_BLK_S_UNSUPP)
		STAT(b, unsupp, 1);
	if (!put_status(b, r, status, st, &pinned)) {
		rl_log(&b->rl, "request %u: its status byte in the pmem window cannot be pinned: "
		       "returned with length 0", r->head);
		STAT(b, dropped, 1);
		return 0;
	}
	/* Used length (2.7.8.2): "MUST write at least len bytes to descriptor, beginning at the
	 * first device-writable buffer" and "MAY write more than len bytes". On success the whole
	 * writable part was written (data, then status): len = in_len. A failed request whose
	 * writable part is more than the status byte only had its last byte written, so it
	 * reports 0 (the status byte is still there for the driver; drivers read it, not len). */
	if (written == in_data)
		return written + 1;
	return 0;
}

/* ---- virtio_dev_ops ---------------------------------------------------------------------- */

static uint64_t blk_features(void *dev)
{
	return ((struct blk_dev *)dev)->offered;
}

static int blk_set_features(void *dev, uint64_t f)
{
	struct blk_dev *b = dev;
	__atomic_store_n(&b->features, f, __ATOMIC_RELEASE);
	return 0;
}

static void blk_config_read(void *dev, uint32_t off, void *data, unsigned size)
{
	struct blk_dev *b = dev;
	memcpy(data, (const uint8_t *)&b->cfg + off, size);
}

static void blk_config_write(void *dev, uint32_t off, const void *data, unsigned size)
{
	/* Only `writeback` is writable, and only with CONFIG_WCE, which is not offered. */
	(void)dev;
	(void)off;
	(void)data;
	(void)size;
}

static void blk_reset(void *dev)
{
	struct blk_dev *b = dev;
	__atomic_store_n(&b->features, b->offered, __ATOMIC_RELEASE);
}

/* Requests may run concurrently: blk_handle keeps its state in the request, the stats are
 * atomic, both backends are thread-safe (blk_file: O_DIRECT I/O needs no lock, the bounce
 * path takes one; blk_pcache: mm/pcache.h), and the order of overlapping requests in flight
 * is not defined by virtio (the driver waits for one before it depends on it). */
static unsigned blk_workers(void *dev)
{
	return ((struct blk_dev *)dev)->workers;
}

const struct virtio_dev_ops blk_virtio_ops = {
	.device_id = VIRTIO_ID_BLOCK,
	.pci_class = 0x018000, /* mass storage, other */
	.num_queues = 1,
	.queue_size_max = BLK_QUEUE_SIZE,
	.max_chain = BLK_QUEUE_SIZE,
	.config_size = sizeof(struct virtio_blk_config),
	.features = blk_features,
	.set_features = blk_set_features,
	.config_read = blk_config_read,
	.config_write = blk_config_write,
	.handle = blk_handle,
	.reset = blk_reset,
	.workers = blk_workers,
};
