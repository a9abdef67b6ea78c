/* Virtio core: what a device model implements, independent of the transport (kvmtool style:
 * virtio-blk and, later, virtio-pmem implement struct virtio_dev_ops; devices/virtio_pci.c is
 * the transport that turns PCI accesses into calls on them). Also the rate-limited log every
 * device uses for guest mistakes, and the queue-draining loop shared by transports. */
#ifndef CVMM_VIRTIO_H
#define CVMM_VIRTIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "devices/virtqueue.h"

/* Device status bits (2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE        1
#define VIRTIO_STATUS_DRIVER             2
#define VIRTIO_STATUS_DRIVER_OK          4
#define VIRTIO_STATUS_FEATURES_OK        8
#define VIRTIO_STATUS_DEVICE_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED             0x80

/* Reserved feature bits (6). */
#define VIRTIO_F_INDIRECT_DESC  28
#define VIRTIO_F_EVENT_IDX      29
#define VIRTIO_F_VERSION_1      32
#define VIRTIO_F_ACCESS_PLATFORM 33
#define VIRTIO_F_RING_PACKED    34

#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_PMEM  27

/* At most `burst` lines per second per limiter; then one "suppressed N" line when the next
 * second starts. For guest-triggered complaints: a hostile guest cannot flood stderr. */
struct ratelimit {
	pthread_mutex_t lock;
	const char *who;        /* "virtio-blk" */
	unsigned burst;
	time_t sec;
	unsigned count;
	uint64_t suppressed;
	uint64_t total;         /* every complaint, logged or not (tests, stats) */
};

void ratelimit_init(struct ratelimit *rl, const char *who, unsigned burst);
void ratelimit_destroy(struct ratelimit *rl);
void rl_log(struct ratelimit *rl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

struct virtio_dev_ops {
	uint16_t device_id;      /* virtio device id: PCI device 0x1040 + id */
	uint32_t pci_class;      /* base << 16 | sub << 8 | prog-if */
	unsigned num_queues;
	uint16_t queue_size_max; /* power of two */
	/* Longest chain (descriptors, indirect entries included) a request may have. */
	unsigned max_chain;
	uint32_t config_size;
	/* Device feature bits (the transport adds VERSION_1, EVENT_IDX, INDIRECT_DESC). */
	uint64_t (*features)(void *dev);
	/* The driver set FEATURES_OK with these features: return 0, or -1 to refuse. */
	int (*set_features)(void *dev, uint64_t features);
	/* Device-specific configuration (little-endian bytes); off + size <= config_size. */
	void (*config_read)(void *dev, uint32_t off, void *data, unsigned size);
	void (*config_write)(void *dev, uint32_t off, const void *data, unsigned size);
	/* Execute one request popped from queue `q`; runs on that queue's I/O thread, one
	 * request at a time per queue, unless workers() says more may run at once (then on
	 * worker threads). Returns the used length (bytes written into the chain).
	 * req->error may be set: the device completes the bad chain as best it can. */
	uint32_t (*handle)(void *dev, unsigned q, struct vq_req *req);
	/* Driver reset: every queue is already stopped and idle. */
	void (*reset)(void *dev);
	/* How many requests of one queue may be handled at the same time (devices/vq_exec.h).
	 * NULL or 1: one at a time, on the queue's I/O thread. More requires handle() to be
	 * safe on several threads at once. */
	unsigned (*workers)(void *dev);
};

/* The drain skeleton every executor shares (virtio 1.2 2.7.10): with available-buffer
 * notifications off, call step(ctx) until it says the ring is empty (VQ_POP_EMPTY), broken
 * (VQ_POP_BROKEN: *broken is set) or stopped (VQ_DRAIN_STOP), or *stop becomes nonzero; then
 * re-enable notifications and go round again if buffers arrived in between, so none is left
 * behind without a kick. step returns VQ_POP_OK after dispatching one request. Returns the
 * number of VQ_POP_OK steps. */
enum { VQ_DRAIN_STOP = 2 };
unsigned virtq_drain(struct virtq *vq, const int *stop, bool *broken, int (*step)(void *ctx),
		     void *ctx);

/* Drain a queue: pop, handle, push, until it is empty (with notification suppression
 * re-armed and re-checked) or *stop becomes nonzero. Sets *broken if the ring is broken.
 * Calls notify(ctx) whenever the driver asked for a used-buffer notification (at least
 * every 32 requests, and at the end). Returns the number of requests completed. */
unsigned virtio_queue_drain(struct virtq *vq, struct vq_req *req, const struct virtio_dev_ops *ops,
			    void *dev, unsigned qidx, const int *stop, bool *broken,
			    void (*notify)(void *ctx), void *ctx);

#endif
