/* virtio-blk on the host page cache: the backend used when the disk is the very file behind
 * the virtio-pmem window (vmm/machine.c detects it by dev+inode), and the glue that lets
 * the disk's requests use buffers inside that window (device DMA into DAX memory).
 *
 * The two views of one file stay coherent the way Linux keeps mmap and O_DIRECT coherent
 * (DESIGN.md "The protocol, operation by operation"; mm/pcache.h has the details):
 *   IN            pcache_direct_readv: write back the range's dirty pages first (seed 000:
 *                 "msync ... before the O_DIRECT read hits the disk"), then read the file.
 *   OUT           pcache_direct_writev: lock the range's pages (ascending), unmap them from
 *                 the guest (the shootdown), launder or forget their dirt, write the file,
 *                 drop them (seed 004); a page pinned for DMA is refreshed from the file under
 *                 its lock instead (the buffered-I/O fallback); sub-block edges are
 *                 read-modify-written under the page lock (a4).
 *   FLUSH         pcache_flush with this disk's own errseq cursor: the window's dirty pages
 *                 and fdatasync (fsync after a punch); an error is reported once per device.
 *   DISCARD       break layouts + punch (seed 001): BREAKING, unmap, drain pins, drop the
 *   WRITE_ZEROES  dirt, punch (or zero) file and cache, clear BREAKING. The range reads as
 *                 zeros through both views afterwards (b2), even for DISCARD.
 *
 * Disk offsets: disk byte d is file byte `offset + d` ([blk] offset; the guest learns it from
 * its command line, blk_off=, to find the window's bytes on the disk).
 *
 * Window DMA (blk_dma_window_*): the queue's translation hook (devices/virtqueue.h) maps a
 * buffer wholly inside the window to pcache_mem + (gpa - base) without touching it; blk_handle
 * then pins every such segment through blk_dma_window_ops.pin, all or nothing, before it reads
 * the header and before the backend locks any page; unpin marks the pages the device wrote
 * DIRTY (KVM does not log VMM stores). The lock order this relies on is written out at the
 * top of mm/pcache.h and next to pcache_direct_writev. */
#include "devices/blk.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mm/pcache.h"

struct blk_pcache {
	struct blk_backend be;
	struct pcache *pc;
	uint64_t base;          /* file offset of disk byte 0 */
	uint64_t errseq;        /* this disk's FLUSH cursor (pcache_flush) */
};

static struct blk_pcache *P(struct blk_backend *be)
{
	return (struct blk_pcache *)be;
}

static int pc_read(struct blk_backend *be, const struct iovec *iov, const uint64_t *gpa,
		   unsigned n, uint64_t off, uint64_t len)
{
	(void)gpa;
	struct blk_pcache *b = P(be);
	ssize_t r = pcache_direct_readv(b->pc, b->base + off, iov, n);
	if (r < 0)
		return (int)r;
	return (uint64_t)r == len ? 0 : -EIO;
}

static int pc_write(struct blk_backend *be, const struct iovec *iov, const uint64_t *gpa,
		    unsigned n, uint64_t off, uint64_t len)
{
	(void)gpa;
	struct blk_pcache *b = P(be);
	if (be->readonly)
		return -EROFS;
	ssize_t r = pcache_direct_writev(b->pc, b->base + off, iov, n);
	if (r < 0)
		return (int)r;
	return (uint64_t)r == len ? 0 : -EIO;
}

static int pc_flush(struct blk_backend *be)
{
	struct blk_pcache *b = P(be);
	/* Several workers may FLUSH at once: the cursor is read and advanced under the cache's
	 * errseq lock, and each FLUSH also returns its own writeback's error (pcache_flush). */
	return pcache_flush(b->pc, &b->errseq);
}

static int pc_discard(struct blk_backend *be, uint64_t off, uint64_t len)
{
	struct blk_pcache *b = P(be);
	if (be->readonly)
		return -EROFS;
	int r = pcache_break_punch(b->pc, b->base + off, len, false);
	/* 5.2.6.2: discard is advisory, but the break already zeroed the cache; a file system
	 * that cannot punch got zeros written instead (file_zero_range), so an error here is a
	 * real one. */
	return r;
}

static int pc_write_zeroes(struct blk_backend *be, uint64_t off, uint64_t len, bool unmap)
{
	struct blk_pcache *b = P(be);
	if (be->readonly)
		return -EROFS;
	/* unmap: the range may be deallocated (a punched hole reads zeros); else keep blocks */
	return pcache_break_punch(b->pc, b->base + off, len, !unmap);
}

static void pc_destroy(struct blk_backend *be)
{
	struct blk_pcache *b = P(be);
	pcache_put(b->pc);
	free(b);
}

static const struct blk_backend_ops pcache_ops = {
	.read = pc_read,
	.write = pc_write,
	.flush = pc_flush,
	.discard = pc_discard,
	.write_zeroes = pc_write_zeroes,
	.destroy = pc_destroy,
};

int blk_pcache_open(const struct blk_pcache_opts *o, struct blk_backend **out, char *err,
		    size_t errlen)
{
	*out = NULL;
	if (o->offset % BLK_BLOCK_SIZE) {
		snprintf(err, errlen, "blk offset: %llu is not a multiple of %u",
			 (unsigned long long)o->offset, BLK_BLOCK_SIZE);
		return -1;
	}
	uint64_t fsize = pcache_file_size(o->pc);
	uint64_t size = o->size;
	if (!size) {
		if (o->offset >= fsize) {
			snprintf(err, errlen, "blk offset: %llu is at or past the end of the file "
				 "(%llu bytes)", (unsigned long long)o->offset,
				 (unsigned long long)fsize);
			return -1;
		}
		size = fsize - o->offset;
	} else if (o->offset + size < o->offset) {
		snprintf(err, errlen, "blk size: offset + size overflows");
		return -1;
	}
	uint64_t disk = size - size % BLK_BLOCK_SIZE;
	if (!disk) {
		snprintf(err, errlen, "blk: the disk would be smaller than one %u-byte block",
			 BLK_BLOCK_SIZE);
		return -1;
	}
	struct blk_pcache *b = calloc(1, sizeof(*b));
	if (!b) {
		snprintf(err, errlen, "blk: out of memory");
		return -1;
	}
	pcache_get(o->pc);
	b->pc = o->pc;
	b->base = o->offset;
	b->errseq = pcache_errseq_sample(o->pc);
	b->be.ops = &pcache_ops;
	b->be.size = disk;
	b->be.readonly = o->readonly;
	b->be.serial = pcache_file_ino(o->pc);
	*out = &b->be;
	return 0;
}

/* ---- window DMA ---------------------------------------------------------------------------- */

/* The windows a disk's requests may point into. Ranges are pinned per cache: all of one
 * cache's in ONE pcache_pin_ranges call (two windows onto one file share a cache, and a second
 * call could wait for a break that waits for the first call's pins: pins before locks, seed
 * 003), caches in a fixed order, all or nothing. */
struct dma_window {
	struct pcache *pc;
	uint64_t base, size;
};

struct dma_windows {
	unsigned n;
	struct dma_window w[BLK_DMA_WINDOWS_MAX];
};

static void *window_translate(void *ctx, uint64_t gpa, uint64_t len, bool writable)
{
	(void)writable;
	struct dma_windows *ws = ctx;
	if (len == 0)
		return NULL;
	for (unsigned i = 0; i < ws->n; i++) {
		struct dma_window *w = &ws->w[i];
		/* wholly inside, overflow-safe: off < size and len <= size - off */
		if (gpa < w->base)
			continue;
		uint64_t off = gpa - w->base;
		if (off >= w->size || len > w->size - off)
			continue;
		return pcache_mem(w->pc) + off;
	}
	return NULL;
}

#define MAX_RANGES 1024

/* The segments that lie in a window of cache pc, as cache ranges (others are RAM or another
 * cache's: ignored). */
static unsigned window_ranges(struct dma_windows *ws, struct pcache *pc, const struct iovec *iov,
			      const uint64_t *gpa, unsigned n, unsigned nout,
			      struct pcache_range *r)
{
	unsigned k = 0;
	for (unsigned i = 0; i < n && k < MAX_RANGES; i++) {
		uint64_t len = iov[i].iov_len;
		for (unsigned j = 0; j < ws->n; j++) {
			struct dma_window *w = &ws->w[j];
			if (w->pc != pc || !len || gpa[i] < w->base || gpa[i] - w->base >= w->size ||
			    len > w->size - (gpa[i] - w->base))
				continue;
			r[k].off = gpa[i] - w->base;
			r[k].len = len;
			r[k].write = i >= nout;
			k++;
			break;
		}
	}
	return k;
}

/* Distinct caches, in window order (the order is fixed for the VM's life). */
static bool first_of_cache(struct dma_windows *ws, unsigned j)
{
	for (unsigned i = 0; i < j; i++)
		if (ws->w[i].pc == ws->w[j].pc)
			return false;
	return true;
}

static void unpin_caches(struct dma_windows *ws, unsigned upto, const struct iovec *iov,
			 const uint64_t *gpa, unsigned n, unsigned nout, bool wrote)
{
	struct pcache_range r[MAX_RANGES];
	for (unsigned j = 0; j < upto; j++) {
		if (!first_of_cache(ws, j))
			continue;
		unsigned k = window_ranges(ws, ws->w[j].pc, iov, gpa, n, nout, r);
		if (k)
			pcache_unpin_ranges(ws->w[j].pc, r, k, wrote);
	}
}

static int window_pin(void *ctx, const struct iovec *iov, const uint64_t *gpa, unsigned n,
		      unsigned nout)
{
	struct dma_windows *ws = ctx;
	struct pcache_range r[MAX_RANGES];
	if (n > MAX_RANGES)
		return -E2BIG;
	for (unsigned j = 0; j < ws->n; j++) {
		if (!first_of_cache(ws, j))
			continue;
		unsigned k = window_ranges(ws, ws->w[j].pc, iov, gpa, n, nout, r);
		int e = k ? pcache_pin_ranges(ws->w[j].pc, r, k) : 0;
		if (e) {
			unpin_caches(ws, j, iov, gpa, n, nout, false);
			return e;
		}
	}
	return 0;
}

static void window_unpin(void *ctx, const struct iovec *iov, const uint64_t *gpa, unsigned n,
			 unsigned nout, bool wrote)
{
	struct dma_windows *ws = ctx;
	unpin_caches(ws, ws->n, iov, gpa, n, nout, wrote);
}

static void window_destroy(void *ctx)
{
	struct dma_windows *ws = ctx;
	if (!ws)
		return;
	for (unsigned i = 0; i < ws->n; i++)
		pcache_put(ws->w[i].pc);
	free(ws);
}

const struct blk_dma_ops blk_dma_window_ops = {
	.pin = window_pin,
	.unpin = window_unpin,
	.destroy = window_destroy,
};

int blk_dma_windows_create(const struct blk_dma_window *win, unsigned n,
			   const struct guest_mem *ram, void **ctx_out, struct virtq_dma *dma_out,
			   char *err, size_t errlen)
{
	if (n == 0 || n > BLK_DMA_WINDOWS_MAX) {
		snprintf(err, errlen, "blk: %u DMA windows (1..%d)", n, BLK_DMA_WINDOWS_MAX);
		return -1;
	}
	struct dma_windows *ws = calloc(1, sizeof(*ws));
	if (!ws) {
		snprintf(err, errlen, "blk: out of memory");
		return -1;
	}
	for (unsigned i = 0; i < n; i++) {
		ws->w[i].pc = win[i].pc;
		ws->w[i].base = win[i].gpa_base;
		ws->w[i].size = pcache_size(win[i].pc);
		pcache_get(win[i].pc);
	}
	ws->n = n;
	*ctx_out = ws;
	*dma_out = (struct virtq_dma){ .mem = ram, .translate = window_translate, .ctx = ws };
	return 0;
}

int blk_dma_window_create(struct pcache *pc, uint64_t gpa_base, const struct guest_mem *ram,
			  void **ctx_out, struct virtq_dma *dma_out, char *err, size_t errlen)
{
	struct blk_dma_window w = { .pc = pc, .gpa_base = gpa_base };
	return blk_dma_windows_create(&w, 1, ram, ctx_out, dma_out, err, errlen);
}
