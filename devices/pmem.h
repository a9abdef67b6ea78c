/* virtio-pmem device model (virtio 1.2, 5.19), transport-independent (devices/virtio.h).
 *
 * The device itself is small: its config tells the driver where the window is (start, size)
 * and its one queue takes FLUSH requests. The window's memory, faults and writeback are the
 * page cache's (vmm/pmem_window.h); a FLUSH is pmem_window_flush: writeback of every dirty
 * page + fdatasync, with a writeback error since this device's last FLUSH reported once. */
#ifndef CVMM_PMEM_H
#define CVMM_PMEM_H

#include <stdint.h>

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

struct pmem_dev {
	/* The flush operation (pmem_window_flush on a real window; tests substitute their own).
	 * Returns 0 or -errno. */
	int (*flush)(void *ctx);
	void *ctx;
	uint64_t start, size;
	struct ratelimit rl;
	uint64_t flushes, flush_errors, bad_requests;
};

void pmem_dev_init(struct pmem_dev *p, uint64_t start, uint64_t size, int (*flush)(void *),
		   void *ctx);
void pmem_dev_destroy(struct pmem_dev *p);
/* Exposed for unit tests. */
uint32_t pmem_handle(void *dev, unsigned q, struct vq_req *r);

extern const struct virtio_dev_ops pmem_virtio_ops;

#endif
