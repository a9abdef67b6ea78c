/* The write log of a pmem window's backing FILE, in the dm-log-writes format of the blk log
 * (devices/blk_log.h), so one log covers both views when a [blk] disk and a [pmem] window
 * share the file (the blk disk then goes through the same page cache, and every change of the
 * file, whoever made it, passes the cache's observer, mm/pcache.h "observer").
 *
 * Entries are in FILE coordinates (sector = file offset / 512; a blk disk with an offset into
 * the file appears shifted by it), appended in the order the changes reached the file:
 *   page written back (a FLUSH's writeback, a launder before a direct I/O, an invalidation,
 *     the exit-time writeback)          one entry per 4 KiB page: flags PMEM_WB, 8 sectors,
 *                                       the page's data;
 *   direct write (virtio-blk OUT through the cache, the control socket's host-write)
 *                                       a write entry (flags 0) of the covering sectors with
 *                                       their data (an unaligned write's edges read back);
 *   punch (virtio-blk DISCARD, WRITE_ZEROES with unmap)
 *                                       a DISCARD entry (replay zeroes the range);
 *   zero range (WRITE_ZEROES keeping blocks)
 *                                       a write of zeroes (data included), as blk_log does;
 *   truncate (pcache_truncate from the control socket) to SIZE
 *                                       a DISCARD of [SIZE, base size) if SIZE is smaller:
 *                                       the bytes read as zeros from then on through both
 *                                       views (the window keeps its size). The file's length
 *                                       itself is not in the format: a replayed image keeps
 *                                       the base's length. Growing logs nothing (the new
 *                                       bytes are zeros, as a discard already left them);
 *   successful pcache_flush (virtio-pmem FLUSH, virtio-blk FLUSH through the cache, the
 *     control socket's flush, the exit-time flush)
 *                                       a FLUSH entry, after its writeback waited for every
 *                                       write in flight and the sync succeeded;
 *   pmem_log_mark                       a MARK entry.
 * Ordering (mm/pcache.h "observer"): a write a FLUSH covers (a store to the window made
 * before the flush was called, a direct write completed before it) is logged before its
 * FLUSH entry; an entry between the previous FLUSH and this one may also be a write that
 * completed while the flush ran (a superset of what the FLUSH covered: still a valid crash
 * state). Changes of the same bytes appear in the order they reached the file. A page's data
 * is read when it is logged, after its file write: a guest store made after the harvest may
 * already be in it (the page stays DIRTY and is logged again at its next writeback); on pmem
 * such a store could have become durable early anyway, so every prefix ending at a FLUSH is
 * still a state the file could be in after a crash at that point.
 *
 * The base is PATH.base, a copy (reflink where possible) of the whole file at attach. The
 * log is closed (nr_entries final) by pmem_log_detach. */
#ifndef CVMM_PMEM_LOG_H
#define CVMM_PMEM_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "mm/pcache.h"

struct pmem_log;

/* Write back the cache (so the file holds what the window shows), capture the whole file
 * (file_path, the cache's file) to log_path + ".base" (blk_log_capture_base), create the log
 * at log_path (0600, truncated, no symlink) and install the observer on pc. Call it before
 * the VM runs (nothing may change the file meanwhile). The log takes a reference on pc
 * (pcache_get), dropped by pmem_log_detach. Returns 0, or -1 with err naming the path (-1
 * also if pc already has an observer: one log per file). */
int pmem_log_attach(struct pcache *pc, const char *file_path, const char *log_path,
		    struct pmem_log **out, char *err, size_t errlen);

/* Append a MARK (text: 1..BLK_LOG_MARK_MAX bytes, no NUL inside) after every change already
 * logged. Stores in the window that were not written back yet are not in the marked state:
 * flush (or pcache_writeback_range) first to include them. 0 or -errno (-EINVAL: bad text). */
int pmem_log_mark(struct pmem_log *pl, const char *text);

/* Entries written so far. */
uint64_t pmem_log_entries(struct pmem_log *pl);
/* "reflink", "copy_file_range" or "copy": how the base was captured. */
const char *pmem_log_base_how(const struct pmem_log *pl);

/* Remove the observer (waits for callbacks in flight), rewrite nr_entries, close the log and
 * drop the reference (the last one writes back: see below). NULL is ignored.
 * Normal exit: pcache_flush first (its writeback and FLUSH are logged), then detach; the
 * exit-time writeback of pcache_put then has nothing left to write.
 * Power cut (devices/log_cut.h): stop the vCPUs, pcache_power_cut(pc), detach,
 * put every reference (nothing more reaches the file), then blk_log_power_cut. */
void pmem_log_detach(struct pmem_log *pl);

#endif
