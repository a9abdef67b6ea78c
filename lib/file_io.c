#include "lib/file_io.h"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/iov.h"

#define BATCH 64

/* Did a short read that stopped at `end` meet the end of the file? */
static bool short_read_is_eof(int fd, uint64_t end, uint32_t dio_align)
{
	if (dio_align > 1 && (end & (dio_align - 1)))
		return true;
	struct stat st;
	return fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && end >= (uint64_t)st.st_size;
}

int file_rwv(int fd, bool wr, const struct iovec *iov, unsigned n, uint64_t off,
	     uint32_t dio_align)
{
	unsigned i = 0;
	size_t skip = 0;
	for (;;) {
		while (i < n && iov[i].iov_len == skip) {
			i++;
			skip = 0;
		}
		if (i >= n)
			return 0;
		struct iovec cur[BATCH];
		unsigned k = 0;
		size_t want = 0;
		for (unsigned j = i; j < n && k < BATCH; j++) {
			size_t s = j == i ? skip : 0;
			if (iov[j].iov_len == s)
				continue;
			cur[k].iov_base = (uint8_t *)iov[j].iov_base + s;
			cur[k].iov_len = iov[j].iov_len - s;
			want += cur[k].iov_len;
			k++;
		}
		ssize_t r = wr ? pwritev(fd, cur, (int)k, (off_t)off) : preadv(fd, cur, (int)k, (off_t)off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0 && wr)
			return -EIO;
		bool eof = r == 0 || (!wr && (size_t)r < want &&
				      short_read_is_eof(fd, off + (uint64_t)r, dio_align));
		off += (uint64_t)r;
		iov_advance(iov, n, &i, &skip, (size_t)r);
		if (eof) {
			iov_zero_rest(iov, n, i, skip);
			return 0;
		}
	}
}
