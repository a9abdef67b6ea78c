/* The host-side page cache behind a virtio-pmem window (DESIGN.md "Page cache state" and
 * "The protocol, operation by operation"; the seed threads in ../shared/seeds/).
 *
 * struct pcache       one per backing file (shared by every device that opens the same file,
 *                     compared by dev+inode; refcounted): the file (O_DIRECT), a memfd of the
 *                     cache size as the cache memory, per-4-KiB-page state (mm/page.h), dirty
 *                     hints, the writeback error sequence, statistics.
 * struct pcache_map   one per guest-physical window onto a pcache (a virtio-pmem device): the
 *                     granules (ABSENT / READONLY / WRITABLE) and the shadow table
 *                     (mm/shadow.h) that makes them real.
 *
 * Lock order (outermost first): pins (pcache_pin) -> the writeback lock (shared: writeback,
 * launders; exclusive only as the empty "and wait" barrier, holding nothing else) -> page
 * locks, in ascending page order -> a map's slot lock -> pcache internal mutexes (size_lock
 * is held only around a file-size change) -> obs_lock (shared around an observer callback,
 * the innermost; the callback's own locks come after it: see "observer"). A direct write beyond the cache
 * takes rmw_lock first (outermost after pins). A pin is taken inside its own page's lock
 * section with a CAS that never blocks, so page-lock holders see pin counts that only fall.
 * Nothing sleeps on a pin drain or on BREAKING while holding a page lock. The VMM touches cache
 * memory directly (never through the guest's mappings), so no path faults while it holds a
 * page lock (seed 003, the page lock vs mmap_sem deadlock).
 *
 * Offsets (off) are byte offsets in the file; the cache covers [0, pcache_size()).
 * All functions are thread-safe unless noted. */
#ifndef CVMM_MM_PCACHE_H
#define CVMM_MM_PCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "mm/shadow.h"

struct pcache;
struct pcache_map;

/* ---- the cache (per file) ---------------------------------------------------------------- */

/* Open (or find, by dev+inode, and take a reference on) the cache of `path`.
 * size > 0: the cache covers [0, size); a file shorter than that is extended with ftruncate
 *           (sparse: no blocks are allocated), a missing file is created (unless readonly).
 *           An existing cache must cover at least `size`.
 * size = 0: use the file's size, which must be a nonzero multiple of 2 MiB (the window rule).
 * readonly: open the file read-only; such a cache refuses writable maps and direct writes.
 * The file is opened O_DIRECT; a filesystem that refuses it (tmpfs) gets a buffered fd and a
 * warning on stderr. Returns 0, or -1 with a one-line message naming the path in err. */
int pcache_open(const char *path, uint64_t size, bool readonly, struct pcache **out, char *err,
		size_t errlen);
/* Drop a reference; the last one writes back dirty pages, syncs and frees everything. Every
 * map must have been destroyed. */
void pcache_put(struct pcache *pc);

/* Another reference on an open cache (each is dropped with pcache_put). */
void pcache_get(struct pcache *pc);
/* Is `path` the file this cache holds (same device and inode, as pcache_open compares)? */
bool pcache_same_file(const struct pcache *pc, const char *path);
/* The backing file's inode number (a disk serial number). */
uint64_t pcache_file_ino(const struct pcache *pc);
bool pcache_is_readonly(const struct pcache *pc);

uint64_t pcache_size(const struct pcache *pc);
/* Host address of the cache memory for file offset 0 (page aligned, size pcache_size()). The
 * VMM may touch a page there only while it holds a pin on it (pcache_pin). */
uint8_t *pcache_mem(const struct pcache *pc);
bool pcache_is_direct(const struct pcache *pc);
/* NULL, or the protocol invariant found broken (a failing ioctl or a bug): the VM must stop
 * with this message; nothing more is trusted to reach the file. */
const char *pcache_broken(const struct pcache *pc);

/* ---- maps (per window) ------------------------------------------------------------------- */

/* Put a window of the whole cache at guest-physical gpa_base, cut into granules of `granule`
 * bytes (a power of two 4 KiB..2 MiB dividing the cache size; 0 = pcache_auto_granule()).
 * The map owns `shadow` from now on (destroyed with the map, or here on failure).
 * writable = guest stores are allowed (else stores are discarded and counted, like ROM).
 * Returns 0 or -1 with err set. */
int pcache_map_create(struct pcache *pc, struct shadow *shadow, uint64_t gpa_base,
		      uint64_t granule, bool writable, struct pcache_map **out, char *err,
		      size_t errlen);
/* Unmap every granule (harvesting logged stores into DIRTY) and free the map. */
void pcache_map_destroy(struct pcache_map *m);
/* Granule size for a window of `size` bytes when none is configured: about 1024 granules,
 * clamped to 64 KiB..2 MiB (see map.c for why). */
uint64_t pcache_auto_granule(uint64_t size);
uint64_t pcache_map_granule(const struct pcache_map *m);
uint32_t pcache_map_ngranules(const struct pcache_map *m);

/* populate = on (the mlock / MAP_POPULATE analogue, seed 002): read the whole window in, run
 * mkwrite (reserve blocks) for a writable map, install every granule (WRITABLE where reserved),
 * and mark nothing DIRTY: a FLUSH right after writes 0 pages. A granule whose reservation fails
 * (ENOSPC) is installed READONLY with one warning: a later store to it gets the fault path's
 * answer (a machine check) rather than silent loss. Returns 0, or -1 with err set (I/O error). */
int pcache_populate(struct pcache_map *m, char *err, size_t errlen);

/* PCACHE_STORE_UNBACKED: a store that must be accepted even if no backing blocks can be
 * reserved for it: one from guest KERNEL mode, where a machine check is fatal to Linux (a DAX
 * block zeroing panicked a 6.1 guest). The page is kept DIRTY (and not RESERVED, so its
 * granule stays READONLY); its writeback fails with ENOSPC until space is found, and each
 * FLUSH reports that (the guest's fsync fails: the kernel's errseq form of the same news),
 * the page staying DIRTY for the next FLUSH to retry (DESIGN.md "fault", mkwrite). The glue
 * asks for it only after a PCACHE_STORE was refused, once it knows the vCPU was at CPL 0. */
enum pcache_access { PCACHE_LOAD, PCACHE_STORE, PCACHE_FETCH, PCACHE_STORE_UNBACKED };

enum pcache_fault_result {
	PCACHE_FAULT_DONE,      /* access completed (load data filled in), granule installed */
	PCACHE_FAULT_MCE,       /* not completed: tell the guest with a machine check at gpa
				   (mkwrite ENOSPC/EDQUOT: store refused; read I/O error) */
	PCACHE_FAULT_DISCARDED, /* store to a read-only window: dropped (ROM semantics) */
	PCACHE_FAULT_OUTSIDE,   /* gpa not in this window */
	PCACHE_FAULT_POISON,    /* not completed: a load or fetch of a poisoned page (media error,
				   pcache_poison): an SRAR machine check at exactly gpa. Also a
				   fetch from a clean page of a granule holding a poisoned page
				   (see pcache_poison) */
};

/* The filemap_fault + page_mkwrite analogue, for an exit on an access of len (1..8) bytes at
 * gpa: an MMIO exit (absent granule, or a store to a READONLY one; `data` is run->mmio.data: a
 * load's result is written there, a store's bytes are read from it) or a fetch (len 0, data
 * NULL: an emulation-failure exit whose RIP translates into the window). Locks the granule's
 * pages in ascending order, reads the ones not UPTODATE, runs mkwrite for a store, completes
 * the access on the cache page (a store marks the page DIRTY: KVM did not log it), installs the
 * granule, unlocks. Waits while a page it needs is BREAKING. An access crossing a page is
 * split. */
enum pcache_fault_result pcache_fault(struct pcache_map *m, uint64_t gpa,
				      enum pcache_access kind, void *data, unsigned len);

/* ---- writeback and flush ----------------------------------------------------------------- */

/* The filemap_write_and_wait_range analogue: harvest the maps' dirty logs for the range (and
 * write-protect the harvested pages in the same step), OR them into DIRTY, then write every
 * DIRTY page to the file (lock, clear DIRTY, O_DIRECT write, unlock). Cost grows with the
 * writable granules and dirty pages in the range, not with its size. Returns 0, or -errno of
 * the first failed write (also recorded for FLUSH; the page stays DIRTY for a retry). */
int pcache_writeback_range(struct pcache *pc, uint64_t off, uint64_t len);

/* A device's position in the cache's writeback-error sequence (errseq_t-like): sample it when
 * the device opens, pass it to every pcache_flush. */
uint64_t pcache_errseq_sample(struct pcache *pc);
/* FLUSH: writeback of everything + fdatasync. Returns 0, or -errno if a writeback or sync error
 * was recorded (by anyone) since this cursor last saw one: each error is reported once per
 * device, then the cursor moves past it. */
int pcache_flush(struct pcache *pc, uint64_t *errseq_cursor);

/* ---- coherency with direct I/O and the host ---------------------------------------------- */

/* invalidate_inode_pages2_range analogue (seed 004: LockPage; gather_all_mmap_users;
 * writeback; ClearPageUptodate; UnlockPage): the range is broken first like a DISCARD's
 * (BREAKING: new pins and faults wait; the DMAs in flight on it drain), then the pages are
 * locked, every granule over them unmapped (KVM zaps), a DIRTY page written back, UPTODATE
 * and RESERVED cleared, the pages unlocked. -EIO if an unmap or laundering a dirty page failed
 * (pages kept; seed 000: a failure to invalidate is an error to the caller, never silent). */
int pcache_invalidate_range(struct pcache *pc, uint64_t off, uint64_t len);

/* virtio-blk IN: read the file, coherent with the window: write back the range first (seed
 * 000, Arcangeli: "msync all the mappings ... before the O_DIRECT read hits the disk").
 * Any alignment (bounces through an aligned buffer when needed). Ranges beyond the cache are
 * plain file I/O; past the end of the file reads zeros. The destination may be pinned cache
 * memory, even of the range being read (seed 003: nothing here takes a page lock while the
 * data moves). Returns the byte count or -errno. */
ssize_t pcache_direct_read(struct pcache *pc, uint64_t off, void *buf, size_t len);
ssize_t pcache_direct_readv(struct pcache *pc, uint64_t off, const struct iovec *iov,
			    unsigned n);
/* virtio-blk OUT (and the control socket's host-write): write the file, coherent with the
 * window. Lock the pages of the range (ascending), unmap their granules (the shootdown,
 * collecting the guest's logged stores), forget the dirt of pages wholly overwritten, launder
 * the other dirty pages (a partly overwritten page's other bytes reach the file before the
 * read-modify-write of its edge), write the file (O_DIRECT), then drop the pages (not
 * UPTODATE) and unlock: the next guest access reads the new data. The page locks are held
 * across the file write, so no fault can re-read the range half-written and the kernel's
 * second ("post-") invalidation has nothing to do. A page pinned for DMA cannot be dropped:
 * it takes the fallback and is refreshed from the file under its lock after the write (the
 * kernel falls back to buffered I/O; the outcome, cache page == file, is the same and it also
 * covers a source that is the very page being written, seed 003). Sub-block edges are
 * read-modify-written in an aligned bounce buffer under the covering page locks. The source
 * may be pinned cache memory of any range, this one included. Returns the byte count or
 * -errno (after a failed file write the range's contents are undefined but the two views
 * agree: unpinned pages are dropped either way). */
ssize_t pcache_direct_write(struct pcache *pc, uint64_t off, const void *buf, size_t len);
ssize_t pcache_direct_writev(struct pcache *pc, uint64_t off, const struct iovec *iov,
			     unsigned n);

/* pin_user_pages analogue, for a device DMA whose buffer lies in the window: fault the pages
 * of [off, off+len) in (with write intent: mkwrite runs, -ENOSPC if blocks cannot be
 * reserved), then take a pin on each with a CAS that refuses while BREAKING is set (seed 001).
 * All or nothing: meeting a BREAKING page drops every pin this call took, waits (holding no
 * pin and no page lock) and starts over; a pinner that kept its earlier pins while waiting
 * would deadlock with a breaker draining them (Kara in seed 001: "bail"). Must not be called
 * with a page lock held. Returns 0 or -errno (nothing left pinned). */
int pcache_pin(struct pcache *pc, uint64_t off, uint64_t len, bool write);
/* Drop the pins; `dirtied`: the device wrote the pages, so they are marked DIRTY first (KVM
 * does not log VMM stores). */
void pcache_unpin(struct pcache *pc, uint64_t off, uint64_t len, bool dirtied);

/* Several ranges pinned as one (a request's buffers): same rules as pcache_pin, all or
 * nothing across the ranges. Ranges may overlap (a page is then pinned twice). */
struct pcache_range {
	uint64_t off, len;
	bool write;   /* the device will write it: fault in with write intent; dirtied at unpin */
};
int pcache_pin_ranges(struct pcache *pc, const struct pcache_range *r, unsigned n);
/* Unpin what pcache_pin_ranges pinned; ranges with `write` are marked DIRTY if dirtied. */
void pcache_unpin_ranges(struct pcache *pc, const struct pcache_range *r, unsigned n,
			 bool dirtied);

/* break layouts + punch (virtio-blk DISCARD / WRITE_ZEROES, truncate from the host): set
 * BREAKING on the range (new pins and faults wait), unmap its granules, wait for the pins to
 * drain, drop dirty state, punch (or zero: zero=true keeps the blocks) the file and the cache
 * pages, clear BREAKING, wake waiters. No DMA that started before writes after it; no data of
 * such a DMA reappears in the range. Afterwards the range reads as zeros through both views.
 * Returns 0 or -errno. */
int pcache_break_punch(struct pcache *pc, uint64_t off, uint64_t len, bool zero);

/* Truncate (or extend) the backing file to `size` bytes, a multiple of 4096, coherently: the
 * cached range beyond `size` is broken like a punch (BREAKING, unmap, drain pins, drop dirt
 * and data) and the file is ftruncated inside the break. The window keeps its size: pages
 * beyond the new end of file read as zeros; a store there is accepted (mkwrite reserves with
 * KEEP_SIZE) and its writeback extends the file again, as a write to a sparse file would
 * (a Linux mmap would raise SIGBUS instead; a guest has no such signal for a DAX window).
 * Returns 0 or -errno (-EINVAL: size not a multiple of 4096). */
int pcache_truncate(struct pcache *pc, uint64_t size);
/* Current size of the backing file (fstat), or 0 on error. */
uint64_t pcache_file_size(struct pcache *pc);

/* External change (a host tool changed [off, off+len) of the file): the same as
 * pcache_invalidate_range; a guest store made before the call is written back first, one made
 * after lands in a freshly read page. */
int pcache_external_change(struct pcache *pc, uint64_t off, uint64_t len);

/* ---- media errors (poison) --------------------------------------------------------------- */

/* A media error on [off, off+len) of the window, as a real persistent-memory device reports a
 * bad range (issue 15 item 2; mm/memory_failure.c has the reasoning). 4 KiB page granular:
 * the range is rounded outward, and clamped to the cache. What the pages do while poisoned:
 *  - never mapped into any window. Poisoning breaks the range like an invalidation (BREAKING,
 *    every granule holding a poisoned page unmapped in every map, the guest's logged stores
 *    harvested, in-flight DMA pins drained), writes the dirty pages back (nothing the guest
 *    stored is lost: it is in the file) and drops them from the cache;
 *  - a guest load or fetch: PCACHE_FAULT_POISON (the glue injects an SRAR machine check at the
 *    exact address); counted in poison_faults;
 *  - a guest store to a writable window CLEARS the poison of its page: the page is read again
 *    from the file and the store applied (ndctl clear-error, or a full-line write, on real
 *    pmem); counted in poison_cleared. A store to a read-only window is discarded as usual;
 *  - the OTHER pages of a granule holding a poisoned page are served without a mapping, one
 *    exit per access (loads and stores are completed by the fault path on the cache page, as
 *    while a break is in progress). A fetch cannot be completed that way (KVM cannot run code
 *    from an unmapped page), so it also gets PCACHE_FAULT_POISON at its own address: with
 *    granules larger than 4 KiB, code in the neighbours of a bad page is lost with it (use a
 *    4 KiB granule to poison without collateral);
 *  - a direct read (virtio-blk IN, host read) overlapping it fails -EIO, as a read of bad pmem
 *    sectors through the block device; a direct write covering it wholly clears its poison
 *    (pmem_clear_poison on a write), one covering it partly fails -EIO with nothing written;
 *    DISCARD / WRITE_ZEROES / truncate of a whole page clear it (its content is defined again);
 *  - a DMA pin (pcache_pin) fails -EIO (the blk request completes IOERR);
 *  - writeback is unchanged: a poisoned page is not DIRTY (written at poison time) unless that
 *    write failed, and then later writebacks retry it like any other.
 * off is a byte offset in the file, which is also the offset in every window onto it.
 * Waits for the DMAs in flight on the range (like pcache_invalidate_range): must not be
 * called holding pins or page locks (a blk worker drops its request's pins first).
 * Returns 0, -EINVAL (empty range or beyond the cache), -EIO (a granule could not be
 * unmapped: nothing poisoned). Idempotent. */
int pcache_poison(struct pcache *pc, uint64_t off, uint64_t len);
/* Clear the poison of [off, off+len) (rounded outward): the next access reads the file's
 * content (or the cache's, if the page was DIRTY when poisoned and its write failed).
 * Returns 0 or -EINVAL. */
int pcache_unpoison(struct pcache *pc, uint64_t off, uint64_t len);
/* The poisoned ranges, ascending and merged (adjacent pages form one range): up to `max` into
 * out[]; returns how many there are in all (may exceed max). */
struct pcache_extent { uint64_t off, len; };
size_t pcache_poison_list(struct pcache *pc, struct pcache_extent *out, size_t max);
/* The same as a JSON array, [{"off": 8192, "len": 4096}, ...] (no newline). */
void pcache_poison_json(struct pcache *pc, FILE *f);

/* Race widening for tests (DESIGN: "Delay knob"): CVMM_RACE_DELAY_US=N in the environment
 * when the cache is opened makes the direct-I/O paths sleep N microseconds between their
 * writeback/invalidation and the file I/O, writeback sleep between taking a run of dirty pages
 * (hint taken, DIRTY cleared, page locked) and writing it, a break sleep before draining the
 * pins, and pcache_pin sleep after taking its pins. 0 (default) = off; at most 10 s.
 * pcache_set_race_delay overrides it (unit tests). */
void pcache_set_race_delay(struct pcache *pc, unsigned us);

/* ---- observer (the write log of devices/pmem_log.h) ------------------------------------------
 *
 * One observer per cache sees every change that reaches the backing file, from the single place
 * each kind happens, only after it succeeded, in file coordinates:
 *   writeback    a run of whole DIRTY pages written to the file (write_run: writeback, FLUSH,
 *                and the launders of direct writes and invalidations). data is the cache memory
 *                of the run (page aligned, len a multiple of 4096). Runs with the pages' locks
 *                and wb_lock (shared) held. The bytes are read at callback time: a guest store
 *                through a WRITABLE granule made after the harvest may already be in them (KVM
 *                re-dirties the page without an exit; it is written and reported again later).
 *   write        a direct write (pcache_direct_writev: virtio-blk OUT through the cache, the
 *                control socket's host-write) of [off, off+len), widened to 512-byte sectors:
 *                off and len are multiples of 512 and iov holds the bytes now in the file there
 *                (the edges of an unaligned write are read back from the file). Also used for
 *                the unaligned edge sectors of a punch/zero. Runs with the write's page locks
 *                (and rmw_lock beyond the cached range) held.
 *   zero         [off, off+len) (512-aligned) now reads as zeros: punch = true for a hole punch
 *                (virtio-blk DISCARD), false for FALLOC_FL_ZERO_RANGE (WRITE_ZEROES keeping
 *                blocks). Runs inside the break (break_lock, page locks / rmw_lock).
 *   truncate     the file was ftruncated to `size` (pcache_truncate). Inside the break. If ops
 *                has no truncate, pcache_truncate refuses with -EOPNOTSUPP while it is set.
 *   flush        a pcache_flush returned 0: its writeback, its "and wait" and its fdatasync or
 *                fsync all succeeded. Called with no cache lock held.
 * After pcache_power_cut nothing is reported (a FLUSH with nothing to write still returns 0
 * then, but the machine it models has no power: the log must not say it was durable).
 * The ordering this gives (the dm-log-writes rule): a callback for a file write runs after
 * that write and before the lock section around it ends, so (1) changes of the same bytes are
 * reported in the order they reached the file (they are serialized by the page locks, or by
 * rmw_lock beyond the cache); (2) every store a FLUSH covers (made before pcache_flush was
 * called) was written back and reported before its flush callback: either the flush wrote the
 * page itself, or another writeback/launder holding wb_lock had taken it, and the flush's
 * "and wait" (wb_lock exclusive) waited for that section, callback included; (3) a direct
 * write is reported before it returns, so before any FLUSH issued after it completed. A write
 * reported between a flush's "and wait" and its flush callback ran concurrently with that
 * flush (it may or may not be durable): it lands before the FLUSH in the log, a superset of
 * what the FLUSH covered and still a valid crash state. Callbacks must not call back into the
 * cache (they hold its locks) and must not block for long (they stall the guest's faults on
 * those pages). All callbacks of one cache run under obs_lock (shared), innermost. */
struct pcache_observer_ops {
	void (*writeback)(void *ctx, uint64_t off, const void *data, size_t len);
	void (*write)(void *ctx, uint64_t off, const struct iovec *iov, unsigned n, uint64_t len);
	void (*zero)(void *ctx, uint64_t off, uint64_t len, bool punch);
	void (*truncate)(void *ctx, uint64_t size);
	void (*flush)(void *ctx);
};
/* Install (ops != NULL) or remove (ops == NULL) the observer. Removing waits for callbacks in
 * flight; after it returns none runs with the old ctx. Install it while the file is quiet
 * (before the VM runs): a change in flight may be missed. Returns 0, or -EBUSY if another
 * observer is installed. */
int pcache_set_observer(struct pcache *pc, const struct pcache_observer_ops *ops, void *ctx);

/* ---- statistics and checks --------------------------------------------------------------- */

struct pcache_stats {
	uint64_t fault_load_absent, fault_store_absent, fault_store_readonly, fault_fetch;
	uint64_t fault_wait_breaking;
	uint64_t pages_read, pages_zeroed, pages_written; /* zeroed: holes, not read */
	uint64_t wb_writes;             /* file writes that wrote those pages (runs) */
	uint64_t flushes, flush_ns;
	uint64_t mkwrite_runs, mkwrite_enospc, read_errors, write_errors;
	uint64_t stores_discarded;
	uint64_t slot_maps, slot_unmaps, harvests, pages_harvested;
	uint64_t invalidations, pins, breaks, direct_reads, direct_writes;
	uint64_t wb_pages_examined; /* hinted pages writeback looked at (not the window size) */
	uint64_t direct_read_bytes, direct_write_bytes;
	uint64_t direct_write_fallback; /* pinned pages refreshed from the file after a write */
	uint64_t pin_waits_breaking;    /* pin attempts that met BREAKING, dropped all, waited */
	uint64_t pages_pinned;          /* pages pinned (a range of 3 pages counts 3) */
	uint64_t truncates;
	uint64_t stores_unbacked;       /* kernel-mode stores accepted without backing blocks */
	uint64_t poison_pages;          /* pages poisoned now (a gauge, pcache_poison) */
	uint64_t poison_faults;         /* loads/fetches answered PCACHE_FAULT_POISON (MCEs asked) */
	uint64_t poison_eio;            /* direct reads/writes and pins failed -EIO on poison */
	uint64_t poison_cleared;        /* pages whose poison a store, write or punch cleared */
};
void pcache_stats_get(struct pcache *pc, struct pcache_stats *out);
/* One line, no newline: "faults 3 (load 1, store 1, store-ro 1, fetch 0), read 1024 pages, ..." */
void pcache_stats_line(struct pcache *pc, char *buf, size_t len);
/* A JSON object, e.g. {"faults": {...}, "pages_read": 1, ...} (no trailing newline). */
void pcache_stats_json(struct pcache *pc, FILE *f);

/* Debug: check the invariants over every granule of the map (WRITABLE => every page UPTODATE
 * and RESERVED and not BREAKING; READONLY => every page UPTODATE; present => no page POISON;
 * DIRTY => UPTODATE).
 * Only meaningful while nothing runs concurrently. Returns 0, or the first bad granule + 1. */
int pcache_map_check(struct pcache_map *m);
/* 0 ABSENT, 1 READONLY, 2 WRITABLE */
int pcache_map_granule_state(struct pcache_map *m, uint64_t gpa);
/* Page flags / pin word of the page holding file offset off (tests, debugging). */
uint32_t pcache_page_flags(struct pcache *pc, uint64_t off);
uint32_t pcache_page_pins(struct pcache *pc, uint64_t off);

/* Power cut (issue 16): from now on nothing reaches the file: writebacks, direct writes,
 * punches and truncates fail with -EIO, and the last pcache_put writes nothing back (it says
 * how many dirty pages were dropped). The file keeps what earlier writebacks and writes put
 * there. For the VM's power cut: vCPUs and devices stopping after it cannot change the file. */
void pcache_power_cut(struct pcache *pc);

/* ---- fault injection (tests) ------------------------------------------------------------- */
struct pcache_inject {
	int fallocate_errno;   /* mkwrite's fallocate fails with this errno ... */
	int fallocate_count;   /* ... this many times (-1: until cleared) */
	int pwrite_errno;      /* writeback's file write fails ... */
	int pwrite_count;
	int fdatasync_errno;
	int fdatasync_count;
	int pread_errno;
	int pread_count;
};
void pcache_set_inject(struct pcache *pc, const struct pcache_inject *inj);

#endif
