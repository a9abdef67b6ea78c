/* Power cut (issue 16 item 3): the VM stops at once and its files are left as a crash state,
 * without cvmm's exit-time writeback.
 *
 * Triggers: the control socket ({"cmd":"power-cut"}), or [vm] power_cut =
 *   after-flushes:N   right after the N-th guest FLUSH (blk or pmem, any device) completes
 *   after:DURATION    DURATION after the VM starts (e.g. 500ms, 3s, 2m)
 *   at-mark:NAME      when a mark with text NAME is added (control socket "mark")
 * What the files hold afterwards ([vm] power_cut_state, or "state" in the request):
 *   last-flush (default)  a device with a write log ([blk] or [pmem] write_log): exactly its
 *                         state at the log's last FLUSH (rebuilt from the log and its base,
 *                         devices/log_cut.h, after every file is closed); a device without one: what
 *                         reached the file before the cut (every completed blk write, and the
 *                         pmem pages written back by FLUSHes or host reads: a superset of the
 *                         last FLUSH, itself a possible crash state)
 *   sample:SEED           with a write log: the last FLUSH plus a random subset of the writes
 *                         after it (sectors of blk writes, pages of pmem writebacks), drawn
 *                         from SEED >= 1 (the same seed gives the same state)
 * From the cut on nothing reaches the files: the page caches refuse writes
 * (pcache_power_cut), the disks answer IOERR, no dirty page is written back at exit.
 * cvmm then exits with CVMM_EXIT_POWER_CUT. */
#ifndef CVMM_POWER_CUT_H
#define CVMM_POWER_CUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CVMM_EXIT_POWER_CUT 123
#define POWER_CUT_MARK_MAX 128

enum power_cut_when { POWER_CUT_NONE, POWER_CUT_AFTER_FLUSHES, POWER_CUT_AFTER_MS,
		      POWER_CUT_AT_MARK };

struct power_cut_plan {
	enum power_cut_when when;
	uint64_t n;             /* after-flushes:N */
	uint64_t ms;            /* after:DURATION */
	char mark[POWER_CUT_MARK_MAX]; /* at-mark:NAME */
	bool sample;            /* state sample:SEED (else last-flush) */
	uint64_t seed;
};

/* Parse the trigger ("" or NULL: none) and the state ("" or NULL: last-flush). 0, or -1
 * with a message naming the bad word. */
int power_cut_parse(const char *trigger, const char *state, struct power_cut_plan *p,
		    char *err, size_t errlen);
/* Only the state part (the control request's "state"). */
int power_cut_parse_state(const char *state, struct power_cut_plan *p, char *err,
			  size_t errlen);

struct vm;
struct blk_backend;
/* vm_power_cut, vm_note_flush and vm_note_mark are declared in vm.h (they are the VM's). */
/* The outermost backend of every disk: after the cut every request fails (IOERR), nothing
 * more reaches the file or its log; a completed FLUSH counts for after-flushes:N. *be is
 * wrapped, or destroyed on failure. */
int power_cut_wrap_blk(struct vm *vm, struct blk_backend **be, char *err, size_t errlen);
/* At setup: open the files the rewind needs (the seccomp filter refuses open later). */
int vm_power_cut_prepare(struct vm *vm, char *err, size_t errlen);
/* At the end, after a cut, every log closed: each logged file rebuilt (the plan's state). */
void vm_power_cut_rewind(struct vm *vm);

#endif
