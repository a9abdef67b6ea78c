/* A write log for a virtio-blk disk in the dm-log-writes on-disk format (Linux
 * Documentation/admin-guide/device-mapper/log-writes.rst; xfstests src/log-writes/), so that
 * xfstests' replay-log and cvmm-replay (tools/cvmm-replay.c) replay it.
 *
 * Format (all fields little-endian, log sector size 512 bytes):
 *   sector 0: superblock { u64 magic 0x6a736677736872, u64 version 1, u64 nr_entries,
 *             u32 sectorsize = 512 }, zero-padded to the sector.
 *   from sector 1, entries back to back, each:
 *     one sector: { u64 sector, u64 nr_sectors, u64 flags, u64 data_len } then (MARK only)
 *                 the mark text (data_len bytes, at most BLK_LOG_MARK_MAX), zero-padded;
 *     then, unless DISCARD, nr_sectors sectors of data (what the write put at `sector`).
 *   sector and nr_sectors count 512-byte sectors of the disk. data_len is 0 except for marks.
 *   flags: FLUSH 1, FUA 2, DISCARD 4, MARK 8, METADATA 16 (cvmm writes FLUSH, DISCARD, MARK),
 *          and one of cvmm's own: PMEM_WB 256 (1 << 8), a 4 KiB page the page cache wrote back
 *          from the pmem window (devices/pmem_log.h): sector = file offset / 512, nr_sectors
 *          8, the page's data follows like a write's. Only the pmem log writes it; replay it
 *          as a plain write. xfstests' replay-log (src/log-writes/log-writes.c) checks only
 *          that an entry is not all-zero and that a non-MARK header is zero-padded: unknown
 *          flag bits are shown as "UNKNOWN.0x100" with -v and the entry is replayed as a
 *          write of its data, so its prefixes (--limit, --end-mark, --next-flush) are right.
 *          Page granularity is what a crash-state sampler (devices/log_cut.h) uses for it.
 *
 * What is logged (only operations the inner backend completed with success):
 *   write          one entry with its data, when it completed;
 *   write_zeroes   a write of zeroes (data included): dm-log-writes only flags REQ_OP_DISCARD
 *                  and does not advertise write-zeroes, so the block layer sends it zero-filled
 *                  writes, which is what it logs; the result on replay is exact (zeroes);
 *   discard        a DISCARD entry (sector, nr_sectors, no data); replay zeroes the range,
 *                  which is what blk_file's punch leaves (on a host that cannot punch the
 *                  data stays, and a replayed image differs there: discard is advisory);
 *   flush          a zero-length FLUSH entry after every write it covers: a flush waits for
 *                  the writes in flight (a rwlock: requests share it, a flush takes it
 *                  alone) before it flushes the inner backend, so every entry before the
 *                  FLUSH entry was durable when the guest was told the flush completed, and
 *                  nothing after it was covered;
 *   read           nothing.
 * The superblock's nr_entries is rewritten at each FLUSH, each mark and at close; a log cut
 * short by a host crash replays up to the last such point. The log file is not fsynced. */
#ifndef CVMM_BLK_LOG_H
#define CVMM_BLK_LOG_H

#include <stddef.h>
#include <stdint.h>

#include <sys/uio.h>

#include "devices/blk.h"

#define BLK_LOG_MAGIC        0x6a736677736872ULL
#define BLK_LOG_VERSION      1ULL
#define BLK_LOG_SECTOR       512u
#define BLK_LOG_FLUSH        1ULL
#define BLK_LOG_FUA          2ULL
#define BLK_LOG_DISCARD      4ULL
#define BLK_LOG_MARK         8ULL
#define BLK_LOG_METADATA     16ULL
#define BLK_LOG_PMEM_WB      (1ULL << 8)
#define BLK_LOG_ENTRY_HDR    32u
/* Mark text bytes: the rest of the entry sector, keeping a terminating NUL. */
#define BLK_LOG_MARK_MAX     (BLK_LOG_SECTOR - BLK_LOG_ENTRY_HDR - 1)

/* Wrap `inner` (ownership passes to the wrapper, also on failure): create `log_path` (mode
 * 0600, truncated if it exists, never through a symbolic link) and return a backend that
 * forwards every operation to inner and logs it. Errors name the path. */
int blk_log_wrap(struct blk_backend *inner, const char *log_path, struct blk_backend **out,
		 char *err, size_t errlen);

/* Append a MARK entry (text: 1..BLK_LOG_MARK_MAX bytes, no NUL inside) to the log of a
 * backend made by blk_log_wrap. Ordered against writes like a flush (after every write
 * that completed before the call). 0 or -errno (-EINVAL: not a log backend, bad text). */
int blk_log_mark(struct blk_backend *be, const char *text);

/* Entries written so far (tests, stats). */
uint64_t blk_log_entries(struct blk_backend *be);

/* The base image: copy bytes [offset, offset + size) of `src` to a new file `dst` (mode
 * 0600, no symlink), by reflink (FICLONERANGE) when the file system allows, else
 * copy_file_range, else read/write. *how is set to "reflink", "copy_file_range" or "copy".
 * Take it before the disk is used (cvmm does it in blk_setup, before the VM runs). */
int blk_log_capture_base(const char *src, uint64_t offset, uint64_t size, const char *dst,
			 const char **how, char *err, size_t errlen);

/* What [blk] write_log does (vmm/machine.c blk_setup): capture the disk *be, bytes
 * [disk_offset, disk_offset + (*be)->size) of disk_path, to log_path + ".base", then replace
 * *be by blk_log_wrap(*be, log_path). On failure *be is destroyed and set to NULL, and err
 * says why. */
int blk_log_attach(const char *disk_path, uint64_t disk_offset, const char *log_path,
		   struct blk_backend **be, char *err, size_t errlen);

/* ---- the writer (one log file; used by the wrapper above and by devices/pmem_log.c) ----
 * Thread-safe: appends are serialised, each lands whole at the end of the log. A failed
 * append is reported once on stderr and ends the log there (later appends fail with the same
 * error). The log is never fsynced. */
struct blk_log_writer;
/* Create `path` (0600, truncated, no symlink) with a superblock of 0 entries. `what` names
 * the log in messages ("blk write_log", "pmem write_log"). 0, or -1 with err set. */
int blk_log_writer_open(const char *path, const char *what, struct blk_log_writer **out,
			char *err, size_t errlen);
/* One entry at `sector` of `nr` sectors with `flags`; data: n iovecs of exactly nr sectors
 * (NULL: zeroes; none for DISCARD, FLUSH, MARK); mark: the MARK's text. nr_entries in the
 * superblock is rewritten after a FLUSH or MARK. 0 or -errno. */
int blk_log_writer_append(struct blk_log_writer *w, uint64_t sector, uint64_t nr, uint64_t flags,
			  const char *mark, const struct iovec *data, unsigned n);
/* len / unit entries of unit bytes each (off, unit multiples of 512) from the flat buffer
 * data (NULL: zeroes), in one write: a run of pages written back becomes one entry per page. */
int blk_log_writer_append_units(struct blk_log_writer *w, uint64_t off, const void *data,
				uint64_t len, uint64_t unit, uint64_t flags);
int blk_log_writer_flush(struct blk_log_writer *w);
/* -EINVAL if the text is not a valid mark (blk_log_check_mark), else as append. */
int blk_log_writer_mark(struct blk_log_writer *w, const char *text);
int blk_log_check_mark(const char *text);
uint64_t blk_log_writer_entries(struct blk_log_writer *w);
/* Rewrite nr_entries, close, free. NULL is ignored. */
void blk_log_writer_close(struct blk_log_writer *w);

#endif
