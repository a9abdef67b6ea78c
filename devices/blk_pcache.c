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

struct dma_window {
	struct pcache *pc;
	uint64_t base, size;
};

static void *window_translate(void *ctx, uint64_t gpa, uint64_t len, bool writable)
{
	(void)writable;
	struct dma_window *w = ctx;
	/* wholly inside, overflow-safe: off < size and len <= size - off */
	if (gpa < w->base || len == 0)
		return NULL;
	uint64_t off = gpa - w->base;
	if (off >= w->size || len > w->size - off)
		return NULL;
	return pcache_mem(w->pc) + off;
}

#define MAX_RANGES 1024

/* The segments that lie in the window, as cache ranges (others are RAM: ignored). */
static unsigned window_ranges(struct dma_window *w, const struct iovec *iov, const uint64_t *gpa,
			      unsigned n, unsigned nout, struct pcache_range *r)
{
	unsigned k = 0;
	for (unsigned i = 0; i < n && k < MAX_RANGES; i++) {
		uint64_t len = iov[i].iov_len;
		if (!len || gpa[i] < w->base || gpa[i] - w->base >= w->size ||
		    len > w->size - (gpa[i] - w->base))
			continue;
		r[k].off = gpa[i] - w->base;
		r[k].len = len;
		r[k].write = i >= nout;
		k++;
	}
	return k;
}

static int window_pin(void *ctx, const struct iovec *iov, const uint64_t *gpa, unsigned n,
		      unsigned nout)
{
	struct dma_window *w = ctx;
	struct pcache_range r[MAX_RANGES];
	if (n > MAX_RANGES)
		return -E2BIG;
	unsigned k = window_ranges(w, iov, gpa, n, nout, r);
	return k ? pcache_pin_ranges(w->pc, r, k) : 0;
}

static void window_unpin(void *ctx, const struct iovec *iov, const uint64_t *gpa, unsigned n,
			 unsigned nout, bool wrote)
{
	struct dma_window *w = ctx;
	struct pcache_range r[MAX_RANGES];
	unsigned k = window_ranges(w, iov, gpa, n, nout, r);
	if (k)
		pcache_unpin_ranges(w->pc, r, k, wrote);
}

static void window_destroy(void *ctx)
{
	struct dma_window *w = ctx;
	if (!w)
		return;
	pcache_put(w->pc);
	free(w);
}

const struct blk_dma_ops blk_dma_window_ops = {
	.pin = window_pin,
	.unpin = window_unpin,
	.destroy = window_destroy,
};

int blk_dma_window_create(struct pcache *pc, uint64_t gpa_base, const struct guest_mem *ram,
			  void **ctx_out, struct virtq_dma *dma_out, char *err, size_t errlen)
{
	struct dma_window *w = calloc(1, sizeof(*w));
	if (!w) {
		snprintf(err, errlen, "blk: out of memory");
		return -1;
	}
	w->pc = pc;
	w->base = gpa_base;
	w->size = pcache_size(pc);
	pcache_get(pc);
	*ctx_out = w;
	*dma_out = (struct virtq_dma){ .mem = ram, .translate = window_translate, .ctx = w };
	return 0;
}
