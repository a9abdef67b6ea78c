/* File I/O of the cache: the resumable preadv/pwritev loop, reads and writes of any alignment
 * through a bounce buffer, block reservation (fallocate) and zeroing/punching. No page state
 * here: callers hold whatever locks cover the range (mm/pcache_internal.h). */
#include "mm/pcache_internal.h"
#include "lib/file_io.h"

#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The one resumable loop (lib/file_io.h: "a short read is the end of the file at that
 * moment"), with the injection knob in front. */
int pcache_file_rwv(struct pcache *pc, bool wr, const struct iovec *iov, unsigned n, uint64_t off)
{
	if (wr && pcache_is_cut(pc))
		return -EIO;
	int e = wr ? pcache_injected(pc, &pc->inj.pwrite_errno, &pc->inj.pwrite_count)
		   : pcache_injected(pc, &pc->inj.pread_errno, &pc->inj.pread_count);
	if (e)
		return -e;
	return file_rwv(pc->fd, wr, iov, n, off, pc->dio_align);
}

/* Read len bytes at off; past EOF reads zeros. 0 or -errno. */
int pcache_file_read(struct pcache *pc, void *buf, size_t len, uint64_t off)
{
	struct iovec v = { buf, len };
	return pcache_file_rwv(pc, false, &v, 1, off);
}

int pcache_file_write(struct pcache *pc, const void *buf, size_t len, uint64_t off)
{
	struct iovec v = { (void *)buf, len };
	return pcache_file_rwv(pc, true, &v, 1, off);
}

/* Every segment usable for O_DIRECT as it is (and few enough for one preadv/pwritev). */
static bool iov_dio_ok(const struct pcache *pc, const struct iovec *iov, unsigned n)
{
	if (n > IOV_MAX)
		return false;
	for (unsigned i = 0; i < n; i++)
		if (!aligned(pc, (uintptr_t)iov[i].iov_base) || !aligned(pc, iov[i].iov_len))
			return false;
	return true;
}

/* Read [off, off+len) of the file into the stream, through an aligned bounce buffer when the
 * stream or the range does not suit O_DIRECT. */
int pcache_file_readv_any(struct pcache *pc, uint64_t off, const struct iovec *iov, unsigned n,
			  uint64_t len)
{
	if (aligned(pc, off) && aligned(pc, len) && iov_dio_ok(pc, iov, n))
		return pcache_file_rwv(pc, false, iov, n, off);
	uint8_t *b;
	if (posix_memalign((void **)&b, 4096, BOUNCE))
		return -ENOMEM;
	int r = 0;
	uint64_t A = pc->dio_align, end = off + len;
	for (uint64_t c = off & ~(A - 1); c < end && !r; c += BOUNCE) {
		uint64_t cend = c + BOUNCE < end ? c + BOUNCE : end;
		uint64_t aend = (cend + A - 1) & ~(A - 1);
		r = pcache_file_read(pc, b, aend - c, c);
		uint64_t from = c > off ? c : off;
		if (!r)
			iov_from_buf(iov, n, from - off, b + (from - c), cend - from);
	}
	free(b);
	return r;
}

/* Write the stream to [off, off+len) of the file. Unaligned edges are read-modify-written in
 * an aligned bounce buffer; the caller holds whatever lock covers those edges (the page
 * locks, or rmw_lock beyond the cached range). */
int pcache_file_writev_any(struct pcache *pc, uint64_t off, const struct iovec *iov, unsigned n,
			   uint64_t len)
{
	if (aligned(pc, off) && aligned(pc, len) && iov_dio_ok(pc, iov, n))
		return pcache_file_rwv(pc, true, iov, n, off);
	uint8_t *b;
	if (posix_memalign((void **)&b, 4096, BOUNCE))
		return -ENOMEM;
	uint64_t A = pc->dio_align;
	uint64_t end = off + len;
	uint64_t tail = (end + A - 1) & ~(A - 1);
	/* An unaligned end may push the file's size past `end`: see size_lock. */
	if (tail > end)
		pthread_mutex_lock(&pc->size_lock);
	struct stat st;
	uint64_t fsize = fstat(pc->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
	int r = 0;
	for (uint64_t c = off & ~(A - 1); c < end && !r; c += BOUNCE) {
		uint64_t cend = c + BOUNCE < end ? c + BOUNCE : end;
		uint64_t aend = (cend + A - 1) & ~(A - 1);
		if (c < off)
			r = pcache_file_read(pc, b, A, c);
		if (!r && aend > cend)
			r = pcache_file_read(pc, b + (aend - A - c), A, aend - A);
		if (r)
			break;
		uint64_t from = c > off ? c : off;
		iov_to_buf(iov, n, from - off, b + (from - c), cend - from);
		r = pcache_file_write(pc, b, aend - c, c);
	}
	/* The aligned tail may have extended the file past what was asked for: trim it back.
	 * size_lock keeps truncates out from the size sample to here; another writer past `end`
	 * would have grown the file beyond `tail` (writers of the same block are serialized by
	 * the page locks or rmw_lock), so "ends exactly at tail" means "our extension". */
	if (!r && end > fsize && tail > end && fstat(pc->fd, &st) == 0 &&
	    (uint64_t)st.st_size == tail)
		if (ftruncate(pc->fd, (off_t)end) < 0)
			r = -errno;
	if (tail > end)
		pthread_mutex_unlock(&pc->size_lock);
	free(b);
	return r;
}

int pcache_file_reserve(struct pcache *pc, uint64_t off, uint64_t len)
{
	int e = pcache_injected(pc, &pc->inj.fallocate_errno, &pc->inj.fallocate_count);
	if (e)
		return -e;
	while (fallocate(pc->fd, FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) < 0) {
		if (errno == EINTR)
			continue;
		if (errno == EOPNOTSUPP) /* nothing to reserve with: like a fs without page_mkwrite */
			return 0;
		return -errno;
	}
	return 0;
}

int pcache_file_zero_range(struct pcache *pc, uint64_t off, uint64_t len, bool zero)
{
	int mode = FALLOC_FL_KEEP_SIZE | (zero ? FALLOC_FL_ZERO_RANGE : FALLOC_FL_PUNCH_HOLE);
	if (pcache_is_cut(pc))
		return -EIO;
	while (fallocate(pc->fd, mode, (off_t)off, (off_t)len) < 0) {
		if (errno == EINTR)
			continue;
		if (errno != EOPNOTSUPP)
			return -errno;
		/* no punch/zero support: write zeros */
		uint8_t *z;
		if (posix_memalign((void **)&z, 4096, BOUNCE))
			return -ENOMEM;
		memset(z, 0, BOUNCE);
		int r = 0;
		for (uint64_t c = off; c < off + len && !r; c += BOUNCE) {
			uint64_t k = off + len - c < BOUNCE ? off + len - c : BOUNCE;
			struct iovec v = { z, k };
			r = pcache_file_writev_any(pc, c, &v, 1, k);
		}
		free(z);
		return r;
	}
	__atomic_store_n(&pc->meta_dirty, 1, __ATOMIC_RELEASE);
	return 0;
}

uint64_t pcache_file_size(struct pcache *pc)
{
	struct stat st;
	return fstat(pc->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
}
