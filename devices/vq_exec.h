/* A queue's request executor: the queue's I/O thread pops chains, up to `max` worker threads
 * run them (virtio_dev_ops.handle) at the same time and push them back in the order they
 * finish (2.7.8: the device may use buffers in any order).
 *
 * Why: one synchronous preadv per queue left a virtio-blk guest at QD16 with the IOPS of QD1
 * (`make bench`: 0.40x QEMU, which spreads requests over a thread pool). A device whose
 * requests may run concurrently (blk: the file backend and the page cache are thread-safe;
 * overlapping requests are the driver's business, 5.2.6.4) says so with
 * virtio_dev_ops.workers; the others keep the one-at-a-time virtio_queue_drain.
 *
 * Threads are started on demand (a guest that never has two requests in flight never gets a
 * second thread) and live until vq_exec_destroy.
 *
 * Locks: ex->lock covers the job lists, the counters and the push side of the virtq
 * (used_idx, signalled_*: virtq_push and virtq_should_notify); the pop side (last_avail,
 * the notification-suppression fields) belongs to the I/O thread alone. The transport's
 * q->lock is outside ex->lock; a worker never takes q->lock, so a reset that holds q->lock
 * can wait for the workers (vq_exec_quiesce). The used-buffer notification is sent under
 * ex->lock, before the job counts as finished, so a reset that waited for the workers sees no
 * interrupt from the old configuration afterwards. */
#ifndef CVMM_VQ_EXEC_H
#define CVMM_VQ_EXEC_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio.h"
#include "devices/virtqueue.h"

#define VQ_EXEC_MAX 64

struct vq_job {
	struct vq_req req;
	struct vq_job *next;
};

struct vq_exec {
	pthread_mutex_t lock;
	pthread_cond_t work;      /* a job was queued, or quit */
	pthread_cond_t done;      /* a job finished */
	struct vq_job *jobs;      /* [max] */
	struct vq_job *free;      /* jobs nobody uses */
	struct vq_job *head, **tail; /* popped, waiting for a worker (FIFO) */
	unsigned max;             /* jobs = the most requests in flight = the most threads */
	unsigned nthreads, idle;  /* started; waiting for work */
	unsigned wakeups;         /* idle ones signalled and not yet awake */
	unsigned inflight;        /* popped and not yet pushed */
	unsigned peak;            /* the most ever in flight (stats, tests) */
	bool quit;
	pthread_t threads[VQ_EXEC_MAX];

	struct virtq *vq;
	const struct virtio_dev_ops *ops;
	void *dev;
	unsigned qidx;
	void (*notify)(void *ctx);
	void *ctx;
	char why[96];             /* why a worker thread could not be started (once) */
};

/* Up to max (1..VQ_EXEC_MAX) requests of queue `qidx` in flight at once; each job holds a
 * chain of up to req_cap segments. vq is the queue's (stable) virtq; notify(ctx) sends the
 * used-buffer notification. No thread is started yet. Returns 0 or -1 (out of memory). */
int vq_exec_init(struct vq_exec *ex, unsigned max, unsigned req_cap, struct virtq *vq,
		 const struct virtio_dev_ops *ops, void *dev, unsigned qidx,
		 void (*notify)(void *ctx), void *ctx);

/* Finishes the requests in flight, stops the threads, frees everything. */
void vq_exec_destroy(struct vq_exec *ex);

/* virtio_queue_drain's contract, with the requests handed to the workers: pop until the ring
 * is empty (notification suppression re-armed and re-checked) or *stop becomes nonzero; when
 * every job is in flight, wait for one to finish. Returns without waiting for the requests
 * in flight. Sets *broken if the ring is broken. Returns the number of requests popped.
 * Called by the queue's I/O thread only. */
unsigned vq_exec_drain(struct vq_exec *ex, const int *stop, bool *broken);

/* Wait until no request is in flight (a driver reset, with the I/O thread kept out). */
void vq_exec_quiesce(struct vq_exec *ex);

#endif
