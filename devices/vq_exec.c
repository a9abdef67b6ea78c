/* A queue's request executor: see vq_exec.h. */
#include "devices/vq_exec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int vq_exec_init(struct vq_exec *ex, unsigned max, unsigned req_cap, struct virtq *vq,
		 const struct virtio_dev_ops *ops, void *dev, unsigned qidx,
		 void (*notify)(void *ctx), void *ctx)
{
	memset(ex, 0, sizeof(*ex));
	if (max < 1 || max > VQ_EXEC_MAX)
		return -1;
	ex->jobs = calloc(max, sizeof(*ex->jobs));
	if (!ex->jobs)
		return -1;
	for (unsigned i = 0; i < max; i++) {
		if (vq_req_init(&ex->jobs[i].req, req_cap)) {
			while (i--)
				vq_req_free(&ex->jobs[i].req);
			free(ex->jobs);
			ex->jobs = NULL;
			return -1;
		}
		ex->jobs[i].next = i + 1 < max ? &ex->jobs[i + 1] : NULL;
	}
	ex->free = &ex->jobs[0];
	ex->tail = &ex->head;
	ex->max = max;
	pthread_mutex_init(&ex->lock, NULL);
	pthread_cond_init(&ex->work, NULL);
	pthread_cond_init(&ex->done, NULL);
	ex->vq = vq;
	ex->ops = ops;
	ex->dev = dev;
	ex->qidx = qidx;
	ex->notify = notify;
	ex->ctx = ctx;
	return 0;
}

/* ex->lock held (dropped while the device handles the request): run job j, push it, notify
 * if the driver asked (before the job counts as finished: see vq_exec.h), give the job back.
 * The worker's loop and the no-thread fallback both end here. */
static void run_job(struct vq_exec *ex, struct vq_job *j)
{
	pthread_mutex_unlock(&ex->lock);
	uint32_t len = ex->ops->handle(ex->dev, ex->qidx, &j->req);
	pthread_mutex_lock(&ex->lock);
	virtq_push(ex->vq, j->req.head, len);
	if (virtq_should_notify(ex->vq))
		ex->notify(ex->ctx);
	j->next = ex->free;
	ex->free = j;
	ex->inflight--;
	pthread_cond_broadcast(&ex->done);
}

static void *worker(void *arg)
{
	struct vq_exec *ex = arg;
	pthread_mutex_lock(&ex->lock);
	for (;;) {
		while (!ex->head && !ex->quit) {
			ex->idle++;
			pthread_cond_wait(&ex->work, &ex->lock);
			ex->idle--;
			if (ex->wakeups)
				ex->wakeups--;
		}
		struct vq_job *j = ex->head;
		if (!j)
			break; /* quit, and nothing left to run */
		ex->head = j->next;
		if (!ex->head)
			ex->tail = &ex->head;
		run_job(ex, j);
	}
	pthread_mutex_unlock(&ex->lock);
	return NULL;
}

/* ex->lock held: a job was queued; make sure a thread will take it. A sleeping worker that
 * was signalled but has not woken yet still counts as idle: `wakeups` says how many of the
 * idle are already spoken for, so a burst of jobs larger than the idle workers starts new
 * threads instead of signalling the same sleepers again (and waiting for them). */
static void wake_worker(struct vq_exec *ex)
{
	if (ex->idle > ex->wakeups) {
		ex->wakeups++;
		pthread_cond_signal(&ex->work);
		return;
	}
	if (ex->nthreads < ex->max) {
		if (pthread_create(&ex->threads[ex->nthreads], NULL, worker, ex) == 0) {
			ex->nthreads++;
			return;
		}
		/* Not fatal while one thread runs: the job waits for it. Say so once. */
		if (!ex->why[0]) {
			snprintf(ex->why, sizeof(ex->why), "queue %u: cannot start worker %u of %u",
				 ex->qidx, ex->nthreads + 1, ex->max);
			fprintf(stderr, "cvmm: virtio: %s: requests wait for the running ones\n",
				ex->why);
		}
	}
	/* every thread is busy or spoken for: the next one to finish takes it */
}

/* One drain step: take a free job (waiting while all are in flight), pop into it, queue it. */
struct exec_drain {
	struct vq_exec *ex;
	const int *stop;
};

static int exec_drain_step(void *arg)
{
	struct vq_exec *ex = ((struct exec_drain *)arg)->ex;
	const int *stop = ((struct exec_drain *)arg)->stop;
	pthread_mutex_lock(&ex->lock);
	/* All jobs in flight: wait for one. A reset that sets *stop meanwhile is seen after that
	 * (bounded: the in-flight requests finish). */
	while (!ex->free && !__atomic_load_n(stop, __ATOMIC_ACQUIRE))
		pthread_cond_wait(&ex->done, &ex->lock);
	struct vq_job *j = ex->free;
	if (!j || __atomic_load_n(stop, __ATOMIC_ACQUIRE)) {
		pthread_mutex_unlock(&ex->lock);
		return VQ_DRAIN_STOP;
	}
	ex->free = j->next;
	pthread_mutex_unlock(&ex->lock);

	/* The pop side of the ring is ours alone: no lock needed. */
	int r = virtq_pop(ex->vq, &j->req);

	pthread_mutex_lock(&ex->lock);
	if (r != VQ_POP_OK) {
		j->next = ex->free;
		ex->free = j;
		pthread_mutex_unlock(&ex->lock);
		return r;
	}
	j->next = NULL;
	*ex->tail = j;
	ex->tail = &j->next;
	if (++ex->inflight > ex->peak)
		ex->peak = ex->inflight;
	wake_worker(ex);
	if (!ex->nthreads) {
		/* No thread at all (thread creation failed): run it here. */
		ex->head = NULL;
		ex->tail = &ex->head;
		run_job(ex, j);
	}
	pthread_mutex_unlock(&ex->lock);
	return VQ_POP_OK;
}

unsigned vq_exec_drain(struct vq_exec *ex, const int *stop, bool *broken)
{
	struct exec_drain d = { ex, stop };
	return virtq_drain(ex->vq, stop, broken, exec_drain_step, &d);
}

void vq_exec_quiesce(struct vq_exec *ex)
{
	pthread_mutex_lock(&ex->lock);
	while (ex->inflight)
		pthread_cond_wait(&ex->done, &ex->lock);
	pthread_mutex_unlock(&ex->lock);
}

void vq_exec_destroy(struct vq_exec *ex)
{
	if (!ex->jobs)
		return;
	pthread_mutex_lock(&ex->lock);
	ex->quit = true;
	pthread_cond_broadcast(&ex->work);
	pthread_mutex_unlock(&ex->lock);
	for (unsigned i = 0; i < ex->nthreads; i++)
		pthread_join(ex->threads[i], NULL);
	for (unsigned i = 0; i < ex->max; i++)
		vq_req_free(&ex->jobs[i].req);
	free(ex->jobs);
	ex->jobs = NULL;
	pthread_cond_destroy(&ex->work);
	pthread_cond_destroy(&ex->done);
	pthread_mutex_destroy(&ex->lock);
}
