/* Power cut (issue 16 item 3): leave a file as a crash state of a run recorded in a write log
 * (devices/blk_log.h format: a [blk] log or a pmem log, devices/pmem_log.h).
 *
 * The state is the log's base plus its entries up to and including the last FLUSH entry
 * ("exactly the last FLUSH"), or, with a nonzero seed, that plus a pseudo-random subset of
 * the units logged after it: a unit is one 512-byte sector of a write or DISCARD entry, or
 * one 4 KiB page of a PMEM_WB entry; each is kept with probability 1/2, decided by a hash of
 * (seed, entry index, unit index), so the same seed and log give the same state. Kept units
 * are applied in log order over the FLUSH state. A FUA write after the last FLUSH is durable
 * when it completed and is always kept (cvmm does not write FUA). MARK entries change nothing.
 *
 * Incremental (default): the target must hold the state at the END of the log, i.e. the
 * base plus every entry: true for the backing file right after the VM stopped without its
 * exit-time writeback (pcache_power_cut before the last pcache_put; the order for
 * a pmem log is in devices/pmem_log.h pmem_log_detach), with the log closed (blk backend destroyed / pmem_log_detach: its
 * nr_entries final; a log with bytes past its last counted entry is refused). Only the
 * sectors some entry after the last FLUSH touched are rewritten (computed from the base,
 * the entries up to the FLUSH and the kept units), so the cost grows with what the guest
 * wrote since its last FLUSH, not with the file's size. BLK_LOG_CUT_FULL: rewrite the whole
 * region [target_offset, + base size) from the base and the log, whatever the target holds
 * (the target is created if missing; bytes past its nr_entries are ignored, as replay does).
 * Both cost O(entries x 1-MiB chunks rewritten) of header comparisons; the data read is
 * only what overlaps the rewritten chunks.
 *
 * The target region is [target_offset, target_offset + base size): target_offset is the
 * blk disk's offset in its file (0 for a pmem log, which is in file coordinates). The target
 * is fdatasynced before returning. */
#ifndef CVMM_LOG_CUT_H
#define CVMM_LOG_CUT_H

#include <stddef.h>
#include <stdint.h>

#define BLK_LOG_CUT_FULL 1u

/* Returns 0 and a one-line summary in report ("cut at entry 41 (FLUSH 3 of 3); 12 entries
 * after it, 96 units, 47 kept (seed 7); rewrote 393216 bytes in 2 ranges"), or -1 with err
 * set (bad log, base or target; the target is untouched unless the error came from writing
 * it). */
int blk_log_power_cut(const char *log_path, const char *base_path, const char *target_path,
		      uint64_t target_offset, uint64_t seed, unsigned flags, char *report,
		      size_t report_len, char *err, size_t errlen);

/* The same in two steps, for a process that cannot open files when the cut comes (cvmm's
 * seccomp filter refuses open once the VM runs): open the three files at setup, run the cut
 * on them later (the log is read from its start whatever was written to it since; the names
 * are for messages), close them. */
struct blk_log_cut_files {
	int logfd, basefd, tfd;
	const char *log_path, *base_path, *target_path; /* kept as pointers: must outlive f */
};
int blk_log_cut_open(struct blk_log_cut_files *f, const char *log_path, const char *base_path,
		     const char *target_path, unsigned flags, char *err, size_t errlen);
int blk_log_power_cut_files(const struct blk_log_cut_files *f, uint64_t target_offset,
			    uint64_t seed, unsigned flags, char *report, size_t report_len,
			    char *err, size_t errlen);
void blk_log_cut_close(struct blk_log_cut_files *f);

#endif
