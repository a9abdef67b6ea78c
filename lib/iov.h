/* iovec streams: the cursor of the resumable file I/O loop (lib/file_io.c), and the copy /
 * set / slice helpers devices and the page cache use on request segments. */
#ifndef CVMM_LIB_IOV_H
#define CVMM_LIB_IOV_H

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

/* Copy up to len bytes starting at byte `skip` of the stream into dst; returns bytes copied. */
size_t iov_to_buf(const struct iovec *iov, unsigned n, uint64_t skip, void *dst, size_t len);
/* Copy len bytes from src into the stream at byte `skip`; returns bytes copied. */
size_t iov_from_buf(const struct iovec *iov, unsigned n, uint64_t skip, const void *src,
		    size_t len);
/* Set len bytes of the stream from byte `skip` to c; returns bytes set. */
size_t iov_memset(const struct iovec *iov, unsigned n, uint64_t skip, int c, size_t len);
/* Describe bytes [skip, skip+len) of the stream as new iovecs in out[] (and their guest
 * addresses in out_gpa[] if both gpa and out_gpa are given). Returns the count, or -1 if the
 * range is not inside the stream or more than max are needed. */
int iov_slice(const struct iovec *iov, const uint64_t *gpa, unsigned n, uint64_t skip,
	      uint64_t len, struct iovec *out, uint64_t *out_gpa, unsigned max);

#endif
