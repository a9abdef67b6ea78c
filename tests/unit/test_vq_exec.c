/* The queue executor (devices/vq_exec.h): requests of one queue run at the same time on worker
 * threads, each completes exactly once with its own length, a stop waits for the ones in
 * flight, and a driver that keeps the ring full while the device works loses nothing.
 * Built twice: under ASan+UBSan with the other unit tests, and under ThreadSanitizer
 * (tests/unit/tsan/tsan.mk). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "devices/virtio.h"
#include "devices/virtqueue.h"
#include "devices/vq_exec.h"

#define RAM_SIZE  (1u << 20)
#define QSZ       64
#define DESC_GPA  0x1000
#define AVAIL_GPA 0x2000
#define USED_GPA  0x3000
#define BUF_GPA   0x10000   /* head h's buffer: 64 bytes at BUF_GPA + 64 * h */

struct fx {
	uint8_t *ram;
	struct guest_mem mem;
	struct virtq q;
	struct vq_exec ex;
	uint16_t avail_idx, used_seen;
	int notified;           /* atomic */
	/* the fake device */
	pthread_mutex_t lock;
	pthread_cond_t cv;
	unsigned running, peak, want_together;
	int gate_timeouts;
	unsigned max_sleep_us;
	unsigned handled;       /* atomic */
};

static struct virtq_desc *D(struct fx *f, unsigned i)
{
	return (struct virtq_desc *)(f->ram + DESC_GPA) + i;
}
static struct virtq_avail *A(struct fx *f)
{
	return (struct virtq_avail *)(f->ram + AVAIL_GPA);
}
static struct virtq_used *U(struct fx *f)
{
	return (struct virtq_used *)(f->ram + USED_GPA);
}

/* The driver offers head h: one device-writable buffer of 8 + (h % 8) bytes. */
static void offer(struct fx *f, uint16_t h)
{
	struct virtq_desc *d = D(f, h);
	d->addr = BUF_GPA + 64u * h;
	d->len = 8 + h % 8;
	d->flags = VIRTQ_DESC_F_WRITE;
	d->next = 0;
	A(f)->ring[f->avail_idx % QSZ] = h;
	f->avail_idx++;
	__atomic_store_n(&A(f)->idx, f->avail_idx, __ATOMIC_RELEASE);
}

/* The device: writes the head into its buffer (proof the right request ran), and optionally
 * waits at a gate until want_together requests are inside at once. */
static uint32_t handle(void *dev, unsigned q, struct vq_req *r)
{
	struct fx *f = dev;
	(void)q;
	pthread_mutex_lock(&f->lock);
	if (++f->running > f->peak)
		f->peak = f->running;
	if (f->want_together) {
		struct timespec dl;
		clock_gettime(CLOCK_REALTIME, &dl);
		dl.tv_sec += 10;
		pthread_cond_broadcast(&f->cv);
		while (f->running < f->want_together && f->peak < f->want_together &&
		       !f->gate_timeouts)
			if (pthread_cond_timedwait(&f->cv, &f->lock, &dl) == ETIMEDOUT) {
				f->gate_timeouts++;
				break;
			}
	}
	unsigned sl = f->max_sleep_us;
	pthread_mutex_unlock(&f->lock);
	if (sl)
		usleep((useconds_t)(rand() % (int)sl));
	uint64_t tag = 0xc0de000000000000ull | r->head;
	if (!r->error)
		iov_from_buf(r->iov, r->nseg, 0, &tag, sizeof(tag));
	pthread_mutex_lock(&f->lock);
	f->running--;
	pthread_mutex_unlock(&f->lock);
	__atomic_add_fetch(&f->handled, 1, __ATOMIC_RELAXED);
	return r->error ? 0 : (uint32_t)r->in_len;
}

static void notify(void *ctx)
{
	struct fx *f = ctx;
	__atomic_add_fetch(&f->notified, 1, __ATOMIC_RELAXED);
}

static const struct virtio_dev_ops ops = { .handle = handle };

static int setup_n(void **state, unsigned workers)
{
	struct fx *f = calloc(1, sizeof(*f));
	f->ram = calloc(1, RAM_SIZE);
	assert_int_equal(guest_mem_add(&f->mem, 0, RAM_SIZE, f->ram), 0);
	char err[128];
	assert_int_equal(virtq_setup(&f->q, &(struct virtq_dma){ .mem = &f->mem }, QSZ, DESC_GPA, AVAIL_GPA, USED_GPA, true,
				     true, QSZ, err, sizeof(err)), 0);
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cv, NULL);
	assert_int_equal(vq_exec_init(&f->ex, workers, QSZ, &f->q, &ops, f, 0, notify, f), 0);
	*state = f;
	return 0;
}
static int setup16(void **state) { return setup_n(state, 16); }
static int setup4(void **state) { return setup_n(state, 4); }

static int teardown(void **state)
{
	struct fx *f = *state;
	vq_exec_destroy(&f->ex);
	pthread_cond_destroy(&f->cv);
	pthread_mutex_destroy(&f->lock);
	free(f->ram);
	free(f);
	return 0;
}

/* Collect new used entries: each id must be a head in flight (exactly once), its length the
 * buffer's, its buffer tagged with its own head. Returns how many. */
static unsigned reap(struct fx *f, uint8_t *inflight)
{
	unsigned n = 0;
	uint16_t idx = __atomic_load_n(&U(f)->idx, __ATOMIC_ACQUIRE);
	while (f->used_seen != idx) {
		struct virtq_used_elem e = U(f)->ring[f->used_seen % QSZ];
		f->used_seen++;
		if (e.id >= QSZ || !inflight[e.id])
			fail_msg("used entry for head %u, which is not in flight", e.id);
		inflight[e.id] = 0;
		if (e.len != 8u + e.id % 8)
			fail_msg("head %u: used len %u, want %u", e.id, e.len, 8u + e.id % 8);
		uint64_t tag;
		memcpy(&tag, f->ram + BUF_GPA + 64u * e.id, sizeof(tag));
		if (tag != (0xc0de000000000000ull | e.id))
			fail_msg("head %u: buffer holds 0x%llx", e.id, (unsigned long long)tag);
		memset(f->ram + BUF_GPA + 64u * e.id, 0, 16);
		n++;
	}
	return n;
}

/* The driver offers heads [0, n) at once. */
static void offer_first(struct fx *f, uint8_t *inflight, uint16_t n)
{
	for (uint16_t h = 0; h < n; h++) {
		offer(f, h);
		inflight[h] = 1;
	}
}

/* 16 requests offered together run together: the gate opens only when 16 handlers are
 * inside at once (times out, and fails, if the executor ran them one by one). */
static void test_parallel(void **state)
{
	struct fx *f = *state;
	uint8_t inflight[QSZ] = { 0 };
	f->want_together = 16;
	offer_first(f, inflight, 16);
	int stop = 0;
	bool broken = true;
	assert_int_equal(vq_exec_drain(&f->ex, &stop, &broken), 16);
	assert_false(broken);
	vq_exec_quiesce(&f->ex);
	assert_int_equal(f->gate_timeouts, 0);
	assert_int_equal(f->peak, 16);
	assert_int_equal(f->ex.peak, 16);
	assert_int_equal(reap(f, inflight), 16);
	assert_int_equal(f->ex.inflight, 0);
	assert_true(__atomic_load_n(&f->notified, __ATOMIC_RELAXED) >= 1);
}

/* A burst larger than the idle workers: new threads start for the rest, instead of the jobs
 * waiting for the sleepers that were already signalled (the gate needs all 8 inside). */
static void test_burst_beyond_idle(void **state)
{
	struct fx *f = *state;
	uint8_t inflight[QSZ] = { 0 };
	int stop = 0;
	bool broken;
	f->want_together = 4;
	offer_first(f, inflight, 4);
	assert_int_equal(vq_exec_drain(&f->ex, &stop, &broken), 4);
	vq_exec_quiesce(&f->ex);
	assert_int_equal(reap(f, inflight), 4);
	assert_int_equal(f->ex.nthreads, 4);
	usleep(20000); /* let the four go back to sleep */
	f->want_together = 8;
	f->peak = 0;
	for (uint16_t h = 10; h < 18; h++) {
		offer(f, h);
		inflight[h] = 1;
	}
	assert_int_equal(vq_exec_drain(&f->ex, &stop, &broken), 8);
	vq_exec_quiesce(&f->ex);
	assert_int_equal(f->gate_timeouts, 0);
	assert_int_equal(f->peak, 8);
	assert_int_equal(reap(f, inflight), 8);
}

/* More requests than workers: the drain waits for a free job, never runs more than 4 at a
 * time, and every one completes. A stop set before the drain pops nothing; quiesce after a
 * drain returns only when all are back. */
static void test_bounded_and_stop(void **state)
{
	struct fx *f = *state;
	uint8_t inflight[QSZ] = { 0 };
	f->max_sleep_us = 2000;
	offer_first(f, inflight, 40);
	int stop = 0;
	bool broken;
	assert_int_equal(vq_exec_drain(&f->ex, &stop, &broken), 40);
	vq_exec_quiesce(&f->ex);
	assert_int_equal(__atomic_load_n(&U(f)->idx, __ATOMIC_ACQUIRE), 40);
	assert_true(f->peak <= 4);
	assert_int_equal(f->ex.peak, 4);
	assert_int_equal(reap(f, inflight), 40);

	offer(f, 50);
	stop = 1;
	assert_int_equal(vq_exec_drain(&f->ex, &stop, &broken), 0);
	assert_int_equal(__atomic_load_n(&U(f)->idx, __ATOMIC_ACQUIRE), 40);
	stop = 0;
	inflight[50] = 1;
	assert_int_equal(vq_exec_drain(&f->ex, &stop, &broken), 1);
	vq_exec_quiesce(&f->ex);
	assert_int_equal(reap(f, inflight), 1);

	/* a broken ring: reported, and what was popped before still completes */
	A(f)->idx = (uint16_t)(f->avail_idx + 1000);
	assert_int_equal(vq_exec_drain(&f->ex, &stop, &broken), 0);
	assert_true(broken);
}

/* A driver thread keeps the ring full for a while; the test thread plays the I/O thread,
 * draining whenever kicked. Every request completes exactly once (reap fails otherwise). */
struct drv {
	struct fx *f;
	pthread_mutex_t lock;
	pthread_cond_t kick;
	unsigned kicks, offered, completed, target;
	int done;
};

static void *driver(void *p)
{
	struct drv *d = p;
	struct fx *f = d->f;
	uint8_t inflight[QSZ] = { 0 };
	uint16_t next = 0;
	unsigned spins = 0;
	while (d->completed < d->target) {
		bool any = false;
		for (unsigned k = 0; k < QSZ && d->offered < d->target; k++) {
			uint16_t h = (uint16_t)((next + k) % QSZ);
			if (inflight[h])
				continue;
			inflight[h] = 1;
			offer(f, h);
			d->offered++;
			any = true;
			next = (uint16_t)(h + 1);
			if (rand() % 4 == 0)
				break; /* a partial batch now and then */
		}
		if (any) {
			pthread_mutex_lock(&d->lock);
			d->kicks++;
			pthread_cond_signal(&d->kick);
			pthread_mutex_unlock(&d->lock);
		}
		unsigned got = reap(f, inflight);
		d->completed += got;
		if (!got && !any && ++spins % 64 == 0)
			usleep(50);
	}
	pthread_mutex_lock(&d->lock);
	d->done = 1;
	pthread_cond_signal(&d->kick);
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

static void test_stream(void **state)
{
	struct fx *f = *state;
	f->max_sleep_us = 100;
	struct drv d = { .f = f, .target = 40000 };
	pthread_mutex_init(&d.lock, NULL);
	pthread_cond_init(&d.kick, NULL);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, driver, &d), 0);
	int stop = 0;
	bool broken;
	unsigned popped = 0;
	pthread_mutex_lock(&d.lock);
	for (;;) {
		while (!d.kicks && !d.done) {
			struct timespec dl;
			clock_gettime(CLOCK_REALTIME, &dl);
			dl.tv_sec += 20;
			if (pthread_cond_timedwait(&d.kick, &d.lock, &dl) == ETIMEDOUT)
				fail_msg("no progress in 20 s: offered %u, completed %u, popped %u",
					 d.offered, d.completed, popped);
		}
		if (d.done)
			break;
		d.kicks = 0;
		pthread_mutex_unlock(&d.lock);
		popped += vq_exec_drain(&f->ex, &stop, &broken);
		assert_false(broken);
		pthread_mutex_lock(&d.lock);
	}
	pthread_mutex_unlock(&d.lock);
	pthread_join(t, NULL);
	vq_exec_quiesce(&f->ex);
	assert_int_equal(popped, d.target);
	assert_int_equal(d.completed, d.target);
	assert_int_equal(__atomic_load_n(&f->handled, __ATOMIC_RELAXED), d.target);
	assert_true(f->ex.peak > 1);
	pthread_cond_destroy(&d.kick);
	pthread_mutex_destroy(&d.lock);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_parallel, setup16, teardown),
		cmocka_unit_test_setup_teardown(test_bounded_and_stop, setup4, teardown),
		cmocka_unit_test_setup_teardown(test_burst_beyond_idle, setup16, teardown),
		cmocka_unit_test_setup_teardown(test_stream, setup16, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
