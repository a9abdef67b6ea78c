#include "devices/pmem.h"

#include <endian.h>
#include <string.h>

void pmem_dev_init(struct pmem_dev *p, uint64_t start, uint64_t size, int (*flush)(void *),
		   void *ctx)
{
	memset(p, 0, sizeof(*p));
	p->start = start;
	p->size = size;
	p->flush = flush;
	p->ctx = ctx;
	ratelimit_init(&p->rl, "virtio-pmem", 10);
}

void pmem_dev_destroy(struct pmem_dev *p)
{
	ratelimit_destroy(&p->rl);
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
			int e = p->flush(p->ctx);
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
