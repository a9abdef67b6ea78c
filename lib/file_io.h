/* The one resumable file I/O loop, used by the page cache (mm/pcache_file.c) and the plain-file
 * disk (devices/blk_file.c). */
#ifndef CVMM_LIB_FILE_IO_H
#define CVMM_LIB_FILE_IO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

/* preadv (wr false) or pwritev the whole iovec stream at `off` of `fd`, in batches of 64
 * segments, resuming after short transfers and EINTR. A read that meets the end of the file
 * fills the rest of the stream with zeros. `dio_align` is the O_DIRECT alignment of fd (1 if
 * it is not O_DIRECT). Returns 0 or -errno (-EIO for a write that wrote nothing).
 *
 * A short read of a regular file is the end of the file AT THE TIME OF THAT READ, even if
 * fstat says otherwise a moment later: the file may have been truncated into the range and
 * regrown meanwhile (the control socket's truncate, an external tool), and the regrown part
 * reads as zeros anyway. With O_DIRECT an unaligned stop can be nothing else, and resuming at
 * the unaligned offset would fail with EINVAL (test_blk_pcache_threads: a guest fault became
 * a machine check, a pin failed). A short read of anything else (a block device) is resumed. */
int file_rwv(int fd, bool wr, const struct iovec *iov, unsigned n, uint64_t off,
	     uint32_t dio_align);

#endif
