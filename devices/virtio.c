#include "devices/virtio.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void ratelimit_init(struct ratelimit *rl, const char *who, unsigned burst)
{
	memset(rl, 0, sizeof(*rl));
	pthread_mutex_init(&rl->lock, NULL);
	rl->who = who;
	rl->burst = burst ? burst : 10;
}

void ratelimit_destroy(struct ratelimit *rl)
{
	pthread_mutex_destroy(&rl->lock);
}

void rl_log(struct ratelimit *rl, const char *fmt, ...)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	pthread_mutex_lock(&rl->lock);
	rl->total++;
	if (now.tv_sec != rl->sec) {
		if (rl->suppressed)
			fprintf(stderr, "cvmm: %s: suppressed %llu similar messages\n", rl->who,
				(unsigned long long)rl->suppressed);
		rl->sec = now.tv_sec;
		rl->count = 0;
		rl->suppressed = 0;
	}
	if (rl->count < rl->burst) {
		rl->count++;
		fprintf(stderr, "cvmm: %s: %s\n", rl->who, msg);
	} else {
		rl->suppressed++;
	}
	pthread_mutex_unlock(&rl->lock);
}

unsigned virtq_drain(struct virtq *vq, const int *stop, bool *broken, int (*step)(void *ctx),
		     void *ctx)
{
	unsigned done = 0;
	*broken = false;
	do {
		virtq_disable_notify(vq);
		for (;;) {
			if (__atomic_load_n(stop, __ATOMIC_ACQUIRE))
				return done;
			int r = step(ctx);
			if (r == VQ_POP_OK) {
				done++;
				continue;
			}
			if (r == VQ_POP_BROKEN)
				*broken = true; /* the driver must reset; what is in flight completes */
			if (r != VQ_POP_EMPTY)
				return done;
			break;
		}
	} while (!__atomic_load_n(stop, __ATOMIC_ACQUIRE) && virtq_enable_notify(vq));
	return done;
}

/* One at a time on the calling thread: pop, handle, push; notify in batches of 32. */
struct drain_inline {
	struct virtq *vq;
	struct vq_req *req;
	const struct virtio_dev_ops *ops;
	void *dev;
	unsigned qidx, unsignalled;
	void (*notify)(void *ctx);
	void *ctx;
};

static int drain_inline_step(void *arg)
{
	struct drain_inline *d = arg;
	int r = virtq_pop(d->vq, d->req);
	if (r != VQ_POP_OK)
		return r;
	uint32_t len = d->ops->handle(d->dev, d->qidx, d->req);
	virtq_push(d->vq, d->req->head, len);
	/* Tell the driver about progress in batches, not only at the end, so a long stream of
	 * requests does not starve it of completions. */
	if (++d->unsignalled == 32) {
		d->unsignalled = 0;
		if (virtq_should_notify(d->vq))
			d->notify(d->ctx);
	}
	return VQ_POP_OK;
}

unsigned virtio_queue_drain(struct virtq *vq, struct vq_req *req, const struct virtio_dev_ops *ops,
			    void *dev, unsigned qidx, const int *stop, bool *broken,
			    void (*notify)(void *ctx), void *ctx)
{
	struct drain_inline d = { .vq = vq, .req = req, .ops = ops, .dev = dev, .qidx = qidx,
				  .notify = notify, .ctx = ctx };
	unsigned done = virtq_drain(vq, stop, broken, drain_inline_step, &d);
	if (d.unsignalled && virtq_should_notify(vq))
		notify(ctx);
	return done;
}
