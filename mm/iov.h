/* A cursor over an iovec stream (segment i, byte skip in it), for the loops that resume a
 * preadv/pwritev after a short transfer: mm/pcache_file.c (the page cache's file I/O) and
 * devices/blk_file.c (the plain-file disk). Header-only: mm/ depends on nothing outside it. */
#ifndef CVMM_MM_IOV_H
#define CVMM_MM_IOV_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>

/* Move the cursor forward by `by` bytes (not past the end of the n segments). */
static inline void iov_advance(const struct iovec *iov, unsigned n, unsigned *i, size_t *skip,
			       size_t by)
{
	while (by && *i < n) {
		size_t c = iov[*i].iov_len - *skip;
		if (by >= c) {
			by -= c;
			(*i)++;
			*skip = 0;
		} else {
			*skip += by;
			by = 0;
		}
	}
}

/* Zero the stream from the cursor to its end (a read that met the end of the file). */
static inline void iov_zero_rest(const struct iovec *iov, unsigned n, unsigned i, size_t skip)
{
	for (; i < n; i++, skip = 0)
		memset((uint8_t *)iov[i].iov_base + skip, 0, iov[i].iov_len - skip);
}

/* Bytes in the stream. */
static inline uint64_t iov_total(const struct iovec *iov, unsigned n)
{
	uint64_t t = 0;
	for (unsigned i = 0; i < n; i++)
		t += iov[i].iov_len;
	return t;
}

#endif
