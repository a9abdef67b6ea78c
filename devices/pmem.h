/* virtio-pmem device model (virtio 1.2, 5.19), transport-independent (devices/virtio.h).
 *
 * The device itself is small: its config tells the driver where the window is (start, size)
 * and its one queue takes FLUSH requests. The window's memory, faults and writeback are the
 * page cache's (vmm/pmem_window.h); a FLUSH is pmem_window_flush: writeback of every dirty
 * page + fdatasync, with a writeback error since this device's last FLUSH reported once.
 *
 * Fault injection (devices/fault.h, issue 15): `faults` holds rules on FLUSH (op=flush or
 * op=any; no range: a FLUSH covers the whole window):
 *   ioerr   the FLUSH answers EIO at once, nothing is written back: the dirty pages stay
 *           dirty, and a later FLUSH (the rule gone, or not firing) writes them
 *   delay   the FLUSH waits, then runs normally
 *   enospc  the FLUSH runs, but every file write of the page cache fails with ENOSPC while
 *           it does (pcache_set_inject, the cache's test knob): the file is full. The
 *           writeback keeps the pages DIRTY and records the error, the FLUSH answers EIO,
 *           a later FLUSH without the rule writes them and succeeds. Needs the window's
 *           cache (pmem_dev_set_pcache). With nothing dirty there is nothing to fail: the
 *           FLUSH succeeds, as fdatasync on a full disk does. The cache is the file's, shared
 *           by every device on it: while the FLUSH runs their writes fail too (a full disk
 *           is full for everyone), and each of them reports the error once at its next
 *           FLUSH (errseq). */
#ifndef CVMM_PMEM_H
#define CVMM_PMEM_H

#include <stdint.h>
#include <stdio.h>

#include "devices/fault.h"
#include "devices/virtio.h"
#include "devices/virtqueue.h"

#define VIRTIO_PMEM_REQ_TYPE_FLUSH 0
#define VIRTIO_PMEM_RESP_TYPE_OK   0
#define VIRTIO_PMEM_RESP_TYPE_EIO  1
#define PMEM_QUEUE_SIZE            64

struct virtio_pmem_config {
	uint64_t start;
	uint64_t size;
};

struct pmem_window;
struct pcache;

struct pmem_dev {
	/* The flush operation (pmem_window_flush on a real window; tests substitute their own).
	 * Returns 0 or -errno. */
	int (*flush)(void *ctx);
	void *ctx;
	uint64_t start, size;
	struct ratelimit rl;
	uint64_t flushes, flush_errors, bad_requests;
	struct fault_set faults;   /* fault_add_text(&p->faults, ...): thread-safe, any time */
	struct pcache *pc;         /* the window's cache, for effect=enospc (not a reference) */
};

void pmem_dev_init(struct pmem_dev *p, uint64_t start, uint64_t size, int (*flush)(void *),
		   void *ctx);
void pmem_dev_destroy(struct pmem_dev *p);
/* The page cache the flush writes back (the window's): allows effect=enospc rules. */
void pmem_dev_set_pcache(struct pmem_dev *p, struct pcache *pc);
/* {"flushes": N, "flush_errors": N, "bad_requests": N, "faults_injected": N, "faults": [...]}
 * (no newline). */
void pmem_dev_stats_json(struct pmem_dev *p, FILE *f);
/* Exposed for unit tests. */
uint32_t pmem_handle(void *dev, unsigned q, struct vq_req *r);

extern const struct virtio_dev_ops pmem_virtio_ops;

#endif
