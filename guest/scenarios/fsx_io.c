/* The I/O layer shared by `coherency` and `fsx`. See fsx_io.h. */
#include "scenarios/fsx_io.h"

#include "drivers/virtio_devs.h"
#include "lib/pattern.h"

#define STATUS_CHECK_NS 200000000ull /* while waiting, read device_status this often (an exit) */

typedef uint64_t u64u __attribute__((aligned(1), may_alias));

struct cio cio;

bool cio_open(void)
{
	uint64_t off = arg_u64("blk_off", 0);

	if (!t_check(vpmem_open(&cio.p, vdev_pmem_arg(0)) == 0,
		     "virtio-pmem found, window mapped", "see above"))
		return false;
	if (!t_check(vblk_open(&cio.b, vdev_blk_arg()) == 0, "virtio-blk found and initialised",
		     "see above"))
		return false;
	vblk_describe(&cio.b);
	cio.win = cio.p.base;
	cio.wsize = cio.p.size;
	cio.blk_off = off;
	cio.disk_bytes = cio.b.capacity * SECTOR;
	cio.unit = cio.b.blk_size >= SECTOR && !(cio.b.blk_size & (cio.b.blk_size - 1)) ? cio.b.blk_size
											 : SECTOR;
	cio.timeout_ns = cio.b.q.timeout_ns;
	t_diag("cio: window offset o = file offset o; disk byte d = file byte d + blk_off 0x%lx; "
	       "both views cover file [0x%lx, 0x%lx)",
	       off, off, off + cio.disk_bytes < cio.wsize ? off + cio.disk_bytes : cio.wsize);
	return t_check(off % SECTOR == 0 && off < cio.wsize && cio.b.capacity > 0,
		       "blk_off is a multiple of 512 inside the window",
		       "blk_off 0x%lx, window 0x%lx bytes, disk %lu sectors", off, cio.wsize,
		       cio.b.capacity);
}

void cio_ctx_init(struct cio_ctx *c)
{
	c->r = mem_zalloc(sizeof(*c->r), 64);
	c->seg = mem_zalloc(sizeof(*c->seg), 64);
	c->preq = mem_zalloc(64, 64);
	c->presp = mem_zalloc(64, 64);
	c->nblk = c->npflush = 0;
}

/* Wait for `head` on a queue shared under `lock`; VQ_DONE, VQ_TIMEOUT or VQ_NEEDS_RESET. */
static int wait_head(struct virtq *q, spinlock_t *lock, uint16_t head, uint32_t *len)
{
	uint64_t deadline = deadline_after_ns(q->timeout_ns ? q->timeout_ns : 2000000000ull);
	uint64_t next_check = deadline_after_ns(STATUS_CHECK_NS);
	volatile uint16_t *used_idx = &q->used->idx;
	int r;

	for (;;) {
		/* racy hints; the lock is taken only when there is something to collect */
		if (*used_idx != *(volatile uint16_t *)&q->last_used ||
		    ((volatile uint8_t *)q->inflight)[head] == 2) {
			spin_lock(lock);
			r = vq_try_collect(q, head, len);
			spin_unlock(lock);
			if (r == VQ_DONE) {
				__atomic_thread_fence(__ATOMIC_ACQUIRE);
				return VQ_DONE;
			}
		}
		if (deadline_passed(next_check)) {
			if (q->dev && (virtio_status(q->dev) & VIRTIO_S_NEEDS_RESET))
				return VQ_NEEDS_RESET;
			next_check = deadline_after_ns(STATUS_CHECK_NS);
		}
		if (deadline_passed(deadline)) {
			spin_lock(lock);
			r = vq_try_collect(q, head, len);
			spin_unlock(lock);
			return r == VQ_DONE ? VQ_DONE : VQ_TIMEOUT;
		}
		cpu_relax();
	}
}

int cio_submit(struct cio_ctx *c, uint32_t type, uint64_t sector, const struct vq_buf *d,
	       unsigned n, bool kick)
{
	int r;

	if (cio.broken)
		return CIO_R_NOT_SENT;
	spin_lock(&cio.qlock);
	r = vblk_submit(&cio.b, c->r, type, sector, d, n, false);
	if (r == 0 && kick)
		vq_kick(&cio.b.q);
	spin_unlock(&cio.qlock);
	c->nblk++;
	return r < 0 ? VBLK_R_QUEUE_FULL : 0;
}

/* A request that misses its deadline is waited for late_ms (default 20000) more, to tell a slow
 * device (CIO_R_LATE, reported with the time) from one that never completes (the queue is then
 * given up: later requests return CIO_R_NOT_SENT). */
int cio_wait(struct cio_ctx *c)
{
	uint64_t t = rdtsc();
	int r = wait_head(&cio.b.q, &cio.qlock, c->r->head, &c->r->used_len);
	uint64_t saved = cio.b.q.timeout_ns;

	if (r == VQ_DONE)
		return *(volatile uint8_t *)&c->r->status;
	if (r == VQ_TIMEOUT) {
		cio.b.q.timeout_ns = arg_u64("late_ms", 20000) * 1000000ull;
		r = wait_head(&cio.b.q, &cio.qlock, c->r->head, &c->r->used_len);
		cio.b.q.timeout_ns = saved;
		if (r == VQ_DONE) {
			t_diag("cio: blk request type %u sector %lu completed after %lu ms, over the "
			       "%lu ms timeout (status %s)",
			       c->r->hdr.type, c->r->hdr.sector, tsc_to_ns(rdtsc() - t) / 1000000,
			       saved / 1000000, vblk_status_str(c->r->status));
			return CIO_R_LATE;
		}
	}
	cio.broken = true;
	t_diag("cio: blk request type %u sector %lu: %s after %lu ms; no more blk requests",
	       c->r->hdr.type, c->r->hdr.sector, vq_result_str(r), tsc_to_ns(rdtsc() - t) / 1000000);
	return r == VQ_NEEDS_RESET ? VBLK_R_NEEDS_RESET : VBLK_R_TIMEOUT;
}

const char *cio_status_str(int s)
{
	if (s == CIO_R_LATE)
		return "completed late (over timeout_ms)";
	if (s == CIO_R_NOT_SENT)
		return "not sent (an earlier request never completed)";
	return vblk_status_str(s);
}

static int do_req(struct cio_ctx *c, uint32_t type, uint64_t sector, const struct vq_buf *d,
		  unsigned n)
{
	int r = cio_submit(c, type, sector, d, n, true);

	return r ? r : cio_wait(c);
}

int cio_rw(struct cio_ctx *c, bool write, uint64_t o, void *buf, uint32_t len)
{
	struct vq_buf d = { (uint64_t)buf, len, !write };

	return do_req(c, write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN, cio_sector(o), &d, 1);
}

int cio_dwz(struct cio_ctx *c, uint32_t type, uint64_t o, uint64_t len, uint32_t flags)
{
	struct vq_buf d = { (uint64_t)c->seg, sizeof(*c->seg), false };

	c->seg->sector = cio_sector(o);
	c->seg->num_sectors = len / SECTOR;
	c->seg->flags = flags;
	return do_req(c, type, 0, &d, 1);
}

int cio_bflush(struct cio_ctx *c)
{
	return do_req(c, VIRTIO_BLK_T_FLUSH, 0, 0, 0);
}

void cio_pair(struct cio_ctx *c1, uint32_t t1, uint64_t sec1, const struct vq_buf *d1, unsigned n1,
	      struct cio_ctx *c2, uint32_t t2, uint64_t sec2, const struct vq_buf *d2, unsigned n2,
	      int *s1, int *s2)
{
	*s1 = cio_submit(c1, t1, sec1, d1, n1, false);
	*s2 = cio_submit(c2, t2, sec2, d2, n2, false);
	spin_lock(&cio.qlock);
	vq_kick(&cio.b.q);
	spin_unlock(&cio.qlock);
	if (!*s1)
		*s1 = cio_wait(c1);
	if (!*s2)
		*s2 = cio_wait(c2);
}

bool cio_pflush(struct cio_ctx *c, char *why, size_t whylen)
{
	struct vq_buf d[2] = {
		{ (uint64_t)c->preq, 4, false },
		{ (uint64_t)c->presp, 4, true },
	};
	uint16_t head;
	uint32_t used, ret;
	int r;

	__asm__ volatile("sfence" ::: "memory");
	*c->preq = VIRTIO_PMEM_REQ_TYPE_FLUSH;
	*(volatile uint32_t *)c->presp = VPMEM_RET_NONE;
	spin_lock(&cio.plock);
	r = vq_add_chain(&cio.p.q, d, 2, false, &head);
	if (r == 0)
		vq_kick(&cio.p.q);
	spin_unlock(&cio.plock);
	c->npflush++;
	if (r < 0) {
		snprintf(why, whylen, "pmem FLUSH: queue full");
		return false;
	}
	r = wait_head(&cio.p.q, &cio.plock, head, &used);
	if (r == VQ_TIMEOUT) { /* slow or never? wait late_ms more to tell (see cio_wait) */
		uint64_t saved = cio.p.q.timeout_ns, t = rdtsc();

		cio.p.q.timeout_ns = arg_u64("late_ms", 20000) * 1000000ull;
		r = wait_head(&cio.p.q, &cio.plock, head, &used);
		cio.p.q.timeout_ns = saved;
		if (r == VQ_DONE) {
			snprintf(why, whylen, "pmem FLUSH completed only %lu ms after its %lu ms timeout "
					      "(ret 0x%x)", tsc_to_ns(rdtsc() - t) / 1000000,
				 saved / 1000000, *(volatile uint32_t *)c->presp);
			return false;
		}
	}
	ret = *(volatile uint32_t *)c->presp;
	if (r != VQ_DONE || ret != 0) {
		snprintf(why, whylen, "pmem FLUSH: %s, ret 0x%x", vq_result_str(r), ret);
		return false;
	}
	return true;
}

/* ---- data --------------------------------------------------------------------------- */

void gen_bytes(uint8_t *dst, uint64_t off, uint64_t len, uint64_t s)
{
	uint64_t i = 0;

	for (; i < len && ((off + i) & 7); i++)
		dst[i] = pattern_byte(s, off + i);
	for (; i + 8 <= len; i += 8)
		*(u64u *)(dst + i) = pattern_word(s, (off + i) >> 3);
	for (; i < len; i++)
		dst[i] = pattern_byte(s, off + i);
}

void win_write(uint64_t o, const uint8_t *src, uint64_t len, int style)
{
	volatile uint8_t *w = cio.win + o;
	uint64_t i = 0;

	if (style == WIN_WORDS)
		for (; i < len && ((o + i) & 7); i++)
			w[i] = src[i];
	if (style != WIN_BYTES)
		for (; i + 8 <= len; i += 8)
			*(volatile u64u *)(w + i) = *(const u64u *)(src + i);
	for (; i < len; i++)
		w[i] = src[i];
}

void win_read(uint8_t *dst, uint64_t o, uint64_t len, int style)
{
	volatile uint8_t *w = cio.win + o;
	uint64_t i = 0;

	if (style == WIN_WORDS)
		for (; i < len && ((o + i) & 7); i++)
			dst[i] = w[i];
	if (style != WIN_BYTES)
		for (; i + 8 <= len; i += 8)
			*(u64u *)(dst + i) = *(volatile u64u *)(w + i);
	for (; i < len; i++)
		dst[i] = w[i];
}

void win_fill(uint64_t o, uint64_t len, uint64_t s)
{
	volatile uint8_t *w = cio.win + o;
	uint64_t i = 0;

	for (; i < len && ((o + i) & 7); i++)
		w[i] = pattern_byte(s, o + i);
	for (; i + 8 <= len; i += 8)
		*(volatile uint64_t *)(w + i) = pattern_word(s, (o + i) >> 3);
	for (; i < len; i++)
		w[i] = pattern_byte(s, o + i);
}

uint64_t win_cmp(uint64_t o, const uint8_t *exp, uint64_t len)
{
	volatile uint8_t *w = cio.win + o;
	uint64_t i = 0;

	for (; i < len && ((o + i) & 7); i++)
		if (w[i] != exp[i])
			return i;
	for (; i + 8 <= len; i += 8)
		if (*(volatile uint64_t *)(w + i) != *(const u64u *)(exp + i))
			break;
	for (; i < len; i++)
		if (w[i] != exp[i])
			return i;
	return len;
}

uint64_t mem_diff(const uint8_t *a, const uint8_t *b, uint64_t len)
{
	uint64_t i = 0;

	for (; i + 8 <= len; i += 8)
		if (*(const u64u *)(a + i) != *(const u64u *)(b + i))
			break;
	for (; i < len; i++)
		if (a[i] != b[i])
			return i;
	return len;
}
