#include "devices/pmem.h"

#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "mm/pcache.h"

void pmem_dev_init(struct pmem_dev *p, uint64_t start, uint64_t size, int (*flush)(void *),
		   void *ctx)
{
	memset(p, 0, sizeof(*p));
	p->start = start;
	p->size = size;
	p->flush = flush;
	p->ctx = ctx;
	ratelimit_init(&p->rl, "virtio-pmem", 10);
	fault_set_init(&p->faults, "virtio-pmem fault", FAULT_OPS_PMEM, FAULT_EFFECTS_PMEM);
}

void pmem_dev_destroy(struct pmem_dev *p)
{
	ratelimit_destroy(&p->rl);
	fault_set_destroy(&p->faults);
}

/* `op=load range=R effect=media-error`: R is bad media while the rule exists (the range is in
 * bytes of the window, which are bytes of the file: mm/memory_failure.c). */
static int media_error(void *ctx, const struct fault_rule *r, bool on)
{
	struct pmem_dev *p = ctx;
	uint64_t len = r->end - r->start;
	return on ? pcache_poison(p->pc, r->start, len) : pcache_unpoison(p->pc, r->start, len);
}

void pmem_dev_set_pcache(struct pmem_dev *p, struct pcache *pc)
{
	p->pc = pc;
	fault_set_allow(&p->faults, FAULT_ENOSPC, pc != NULL);
	fault_set_state_hook(&p->faults, pc ? media_error : NULL, p);
}

void pmem_dev_stats_json(struct pmem_dev *p, FILE *f)
{
#define L(x) (unsigned long long)__atomic_load_n(&p->x, __ATOMIC_RELAXED)
	fprintf(f, "{\"flushes\": %llu, \"flush_errors\": %llu, \"bad_requests\": %llu, "
		   "\"faults_injected\": %llu, \"faults\": ", L(flushes), L(flush_errors),
		L(bad_requests), (unsigned long long)fault_fired(&p->faults));
#undef L
	fault_list_json(&p->faults, f);
	fputc('}', f);
}

/* effect=enospc: the page cache's file writes fail with ENOSPC for the length of this FLUSH.
 * The knob is the cache's (one per file), and two windows may share a file: FLUSHes that
 * inject serialize here, so one of them cannot clear the knob under the other. */
static pthread_mutex_t enospc_lock = PTHREAD_MUTEX_INITIALIZER;

static int flush_enospc(struct pmem_dev *p)
{
	pthread_mutex_lock(&enospc_lock);
	pcache_set_inject(p->pc, &(struct pcache_inject){ .pwrite_errno = ENOSPC,
							  .pwrite_count = -1 });
	int e = p->flush(p->ctx);
	pcache_set_inject(p->pc, &(struct pcache_inject){ 0 });
	pthread_mutex_unlock(&enospc_lock);
	return e;
}

/* A FLUSH, through the fault rules: 0 or -errno. */
static int do_flush(struct pmem_dev *p)
{
	struct fault_action a;
	fault_check(&p->faults, FAULT_OP_FLUSH, NULL, 0, &a);
	switch (a.effect) {
	case FAULT_IOERR:
		return -EIO; /* nothing written back: the dirty pages stay dirty */
	case FAULT_ENOSPC:
		if (p->pc)
			return flush_enospc(p);
		return -EIO; /* cannot happen: the rule is refused without a cache */
	case FAULT_DELAY: {
		struct timespec t = { .tv_sec = (time_t)(a.delay_us / 1000000),
				      .tv_nsec = (long)(a.delay_us % 1000000) * 1000 };
		while (nanosleep(&t, &t) < 0 && errno == EINTR)
			;
		return p->flush(p->ctx);
	}
	default:
		return p->flush(p->ctx);
	}
}

static uint64_t pmem_features(void *dev)
{
	return 0; /* no VIRTIO_PMEM_F_SHMEM_REGION: the window is given in config (5.19.3) */
}

static int pmem_set_features(void *dev, uint64_t features)
{
	return 0;
}

static void pmem_config_read(void *dev, uint32_t off, void *data, unsigned size)
{
	struct pmem_dev *p = dev;
	struct virtio_pmem_config c = { .start = htole64(p->start), .size = htole64(p->size) };
	memcpy(data, (uint8_t *)&c + off, size); /* the transport checked off + size */
}

static void pmem_config_write(void *dev, uint32_t off, const void *data, unsigned size)
{
	/* read-only config (5.19.4): writes are ignored */
}

/* A request is a 4-byte type in the device-readable part and a 4-byte ret in the
 * device-writable part (5.19.6). Anything else gets EIO in ret if there is room for it. */
uint32_t pmem_handle(void *dev, unsigned q, struct vq_req *r)
{
	struct pmem_dev *p = dev;
	uint32_t ret = htole32(VIRTIO_PMEM_RESP_TYPE_EIO);
	(void)q;

	if (r->error) {
		p->bad_requests++;
		rl_log(&p->rl, "request %u: %s: returned with length 0", r->head, r->why);
		return 0;
	}
	if (r->in_len < sizeof(ret)) {
		p->bad_requests++;
		rl_log(&p->rl, "request %u: %llu writable bytes, the response needs 4: returned with "
			       "length 0", r->head, (unsigned long long)r->in_len);
		return 0;
	}
	uint32_t type;
	if (r->out_len < sizeof(type)) {
		p->bad_requests++;
		rl_log(&p->rl, "request %u: %llu readable bytes, the request needs 4: EIO", r->head,
		       (unsigned long long)r->out_len);
	} else {
		iov_to_buf(r->iov, r->nout, 0, &type, sizeof(type));
		type = le32toh(type);
		if (type != VIRTIO_PMEM_REQ_TYPE_FLUSH) {
			p->bad_requests++;
			rl_log(&p->rl, "request %u: unknown type %u: EIO", r->head, type);
		} else {
			int e = do_flush(p);
			__atomic_add_fetch(&p->flushes, 1, __ATOMIC_RELAXED);
			if (e == 0) {
				ret = htole32(VIRTIO_PMEM_RESP_TYPE_OK);
			} else {
				__atomic_add_fetch(&p->flush_errors, 1, __ATOMIC_RELAXED);
				rl_log(&p->rl, "flush failed: %s: EIO", strerror(-e));
			}
		}
	}
	iov_from_buf(r->iov + r->nout, r->nseg - r->nout, 0, &ret, sizeof(ret));
	return sizeof(ret);
}

static void pmem_reset(void *dev)
{
}

const struct virtio_dev_ops pmem_virtio_ops = {
	.device_id = VIRTIO_ID_PMEM,
	.pci_class = 0x058000, /* memory controller, other */
	.num_queues = 1,
	.queue_size_max = PMEM_QUEUE_SIZE,
	.max_chain = 8,
	.config_size = sizeof(struct virtio_pmem_config),
	.features = pmem_features,
	.set_features = pmem_set_features,
	.config_read = pmem_config_read,
	.config_write = pmem_config_write,
	.handle = pmem_handle,
	.reset = pmem_reset,
};
