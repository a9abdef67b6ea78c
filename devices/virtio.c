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

unsigned virtio_queue_drain(struct virtq *vq, struct vq_req *req, const struct virtio_dev_ops *ops,
			    void *dev, unsigned qidx, const int *stop, bool *broken,
			    void (*notify)(void *ctx), void *ctx)
{
	unsigned done = 0, unsignalled = 0;
	*broken = false;
	do {
		virtq_disable_notify(vq);
		while (!__atomic_load_n(stop, __ATOMIC_ACQUIRE)) {
			int r = virtq_pop(vq, req);
			if (r == VQ_POP_EMPTY)
				break;
			if (r == VQ_POP_BROKEN) {
				*broken = true;
				goto out; /* hand back what completed; the driver must reset anyway */
			}
			uint32_t len = ops->handle(dev, qidx, req);
			virtq_push(vq, req->head, len);
			done++;
			/* Tell the driver about progress in batches, not only at the end, so a long
			 * stream of requests does not starve it of completions. */
			if (++unsignalled == 32) {
				unsignalled = 0;
				if (virtq_should_notify(vq))
					notify(ctx);
			}
		}
		if (__atomic_load_n(stop, __ATOMIC_ACQUIRE))
			break;
	} while (virtq_enable_notify(vq));
out:
	if (unsignalled && virtq_should_notify(vq))
		notify(ctx);
	return done;
}
