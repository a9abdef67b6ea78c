/* The observer of file changes (pcache.h "observer"): the hook the write log of a pmem window
 * (devices/pmem_log.c) hangs on. Every change of the backing file is reported from the one
 * place it happens (write_run, pcache_direct_writev, break_file, pcache_flush), after it
 * succeeded and inside the lock section that orders it against other changes of the same
 * bytes. Nothing here knows about the log's format. */
#include "mm/pcache_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SECTOR 512ULL

int pcache_set_observer(struct pcache *pc, const struct pcache_observer_ops *ops, void *ctx)
{
	int r = 0;
	pthread_rwlock_wrlock(&pc->obs_lock);
	if (ops && __atomic_load_n(&pc->obs_ops, __ATOMIC_RELAXED)) {
		r = -EBUSY;
	} else {
		pc->obs_ctx = ops ? ctx : NULL;
		__atomic_store_n(&pc->obs_ops, ops, __ATOMIC_RELEASE);
	}
	pthread_rwlock_unlock(&pc->obs_lock);
	return r;
}

/* The observer, with obs_lock held shared, or NULL (nothing held). The unlocked load keeps the
 * cost of "no observer" to one atomic load per change. */
static const struct pcache_observer_ops *obs_get(struct pcache *pc)
{
	/* After a power cut nothing reaches the file (pcache_power_cut): nothing is reported
	 * either, not even a FLUSH that found nothing to write and "succeeded". */
	if (!__atomic_load_n(&pc->obs_ops, __ATOMIC_ACQUIRE) || pcache_is_cut(pc))
		return NULL;
	pthread_rwlock_rdlock(&pc->obs_lock);
	const struct pcache_observer_ops *ops = __atomic_load_n(&pc->obs_ops, __ATOMIC_ACQUIRE);
	if (!ops)
		pthread_rwlock_unlock(&pc->obs_lock);
	return ops;
}

static void obs_put(struct pcache *pc)
{
	pthread_rwlock_unlock(&pc->obs_lock);
}

void pcache_observe_writeback(struct pcache *pc, uint64_t off, const void *data, size_t len)
{
	const struct pcache_observer_ops *o = obs_get(pc);
	if (!o)
		return;
	if (o->writeback)
		o->writeback(pc->obs_ctx, off, data, len);
	obs_put(pc);
}

/* Report the sectors [s0, s1) (byte offsets, 512-aligned) as they are in the file now. */
static void report_sectors_from_file(struct pcache *pc, const struct pcache_observer_ops *o,
				     uint64_t s0, uint64_t s1)
{
	if (s0 >= s1 || !o->write)
		return;
	uint8_t *b;
	if (posix_memalign((void **)&b, 4096, s1 - s0)) {
		pcache_set_error(pc, ENOMEM);
		return;
	}
	struct iovec v = { b, s1 - s0 };
	if (pcache_file_readv_any(pc, s0, &v, 1, s1 - s0) == 0)
		o->write(pc->obs_ctx, s0, &v, 1, s1 - s0);
	else
		/* cannot happen short of a media error right after the write: the log would
		 * miss this change, so FLUSH reports an error */
		pcache_set_error(pc, EIO);
	free(b);
}

void pcache_observe_write(struct pcache *pc, uint64_t off, const struct iovec *iov, unsigned n,
			  uint64_t len)
{
	const struct pcache_observer_ops *o = obs_get(pc);
	if (!o)
		return;
	if (off % SECTOR == 0 && len % SECTOR == 0) {
		if (o->write)
			o->write(pc->obs_ctx, off, iov, n, len);
	} else {
		/* Unaligned (the control socket's host-write): the log speaks in sectors; the
		 * covering sectors are read back under the caller's locks, so they hold exactly
		 * this write plus the bytes around it. */
		report_sectors_from_file(pc, o, off & ~(SECTOR - 1),
					 (off + len + SECTOR - 1) & ~(SECTOR - 1));
	}
	obs_put(pc);
}

void pcache_observe_zero(struct pcache *pc, uint64_t off, uint64_t len, bool punch)
{
	const struct pcache_observer_ops *o = obs_get(pc);
	if (!o)
		return;
	uint64_t end = off + len;
	uint64_t a0 = (off + SECTOR - 1) & ~(SECTOR - 1), a1 = end & ~(SECTOR - 1);
	if (a0 < a1) {
		if (o->zero)
			o->zero(pc->obs_ctx, a0, a1 - a0, punch);
		if (off < a0)
			report_sectors_from_file(pc, o, a0 - SECTOR, a0);
		if (a1 < end)
			report_sectors_from_file(pc, o, a1, a1 + SECTOR);
	} else {
		/* within one or two sectors */
		report_sectors_from_file(pc, o, off & ~(SECTOR - 1), (end + SECTOR - 1) & ~(SECTOR - 1));
	}
	obs_put(pc);
}

void pcache_observe_truncate(struct pcache *pc, uint64_t size)
{
	const struct pcache_observer_ops *o = obs_get(pc);
	if (!o)
		return;
	if (o->truncate)
		o->truncate(pc->obs_ctx, size);
	obs_put(pc);
}

void pcache_observe_flush(struct pcache *pc)
{
	const struct pcache_observer_ops *o = obs_get(pc);
	if (!o)
		return;
	if (o->flush)
		o->flush(pc->obs_ctx);
	obs_put(pc);
}

bool pcache_observer_refuses_truncate(struct pcache *pc)
{
	const struct pcache_observer_ops *o = obs_get(pc);
	if (!o)
		return false;
	bool refuse = !o->truncate;
	obs_put(pc);
	return refuse;
}
