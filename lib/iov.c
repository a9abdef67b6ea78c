#include "lib/iov.h"

enum iov_op { IOV_TO_BUF, IOV_FROM_BUF, IOV_SET };

/* The one walk behind the three helpers: bytes [skip, skip+len) of the stream, segment by
 * segment, copied to or from buf (at the same offset from its start) or set to c. */
static size_t iov_do(const struct iovec *iov, unsigned n, uint64_t skip, size_t len,
		     enum iov_op op, void *buf, int c)
{
	size_t done = 0;
	for (unsigned i = 0; i < n && done < len; i++) {
		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		size_t k = iov[i].iov_len - skip;
		if (k > len - done)
			k = len - done;
		uint8_t *seg = (uint8_t *)iov[i].iov_base + skip;
		if (op == IOV_TO_BUF)
			memcpy((uint8_t *)buf + done, seg, k);
		else if (op == IOV_FROM_BUF)
			memcpy(seg, (const uint8_t *)buf + done, k);
		else
			memset(seg, c, k);
		done += k;
		skip = 0;
	}
	return done;
}

size_t iov_to_buf(const struct iovec *iov, unsigned n, uint64_t skip, void *dst, size_t len)
{
	return iov_do(iov, n, skip, len, IOV_TO_BUF, dst, 0);
}

size_t iov_from_buf(const struct iovec *iov, unsigned n, uint64_t skip, const void *src,
		    size_t len)
{
	return iov_do(iov, n, skip, len, IOV_FROM_BUF, (void *)src, 0);
}

size_t iov_memset(const struct iovec *iov, unsigned n, uint64_t skip, int c, size_t len)
{
	return iov_do(iov, n, skip, len, IOV_SET, NULL, c);
}

int iov_slice(const struct iovec *iov, const uint64_t *gpa, unsigned n, uint64_t skip,
	      uint64_t len, struct iovec *out, uint64_t *out_gpa, unsigned max)
{
	unsigned k = 0;
	for (unsigned i = 0; i < n && len; i++) {
		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		uint64_t c = iov[i].iov_len - skip;
		if (c > len)
			c = len;
		if (k >= max)
			return -1;
		out[k].iov_base = (uint8_t *)iov[i].iov_base + skip;
		out[k].iov_len = c;
		if (gpa && out_gpa)
			out_gpa[k] = gpa[i] + skip;
		k++;
		len -= c;
		skip = 0;
	}
	return len ? -1 : (int)k;
}
