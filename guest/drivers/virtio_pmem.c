/* virtio-pmem driver. See virtio_pmem.h. */
#include "drivers/virtio_pmem.h"

#include "drivers/virtio_devs.h"
#include "lib/rt.h"

int vpmem_open(struct vpmem *p, int nth)
{
	char f[64];

	memset(p, 0, sizeof(*p));
	vdev_scan(); /* the device list, printed once */
	/* no device features wanted: VIRTIO_PMEM_F_SHMEM_REGION (0) would move the window into a
	 * shared memory region; without it start/size are absolute (5.19.5) */
	if (virtio_pci_find(&p->dev, VIRTIO_ID_PMEM, nth) < 0 || virtio_init(&p->dev, 0) < 0)
		return -1;
	p->start = virtio_cfg64(&p->dev, VPMEM_CFG_START);
	p->size = virtio_cfg64(&p->dev, VPMEM_CFG_SIZE);
	virtio_features_str(p->dev.features, f, sizeof(f));
	t_diag("%s: features %s; window [0x%lx, 0x%lx) %lu MiB", p->dev.name, f, p->start,
	       p->start + p->size, p->size >> 20);
	if (!p->size || (p->start & 0xfff) || (p->size & 0xfff)) {
		printf("# %s: window not page aligned or empty\n", p->dev.name);
		return -1;
	}
	if (!(p->base = map_phys(p->start, p->size, MAP_WB))) {
		printf("# %s: cannot map the window (CPU has %u physical address bits)\n", p->dev.name,
		       phys_addr_bits());
		return -1;
	}
	if (virtio_setup_queue(&p->dev, 0, &p->q, 64) < 0)
		return -1;
	virtio_driver_ok(&p->dev);
	p->req = mem_zalloc(64, 64);
	p->resp = mem_zalloc(64, 64);
	return p->req && p->resp ? 0 : -1;
}

int vpmem_flush(struct vpmem *p, uint32_t *ret)
{
	struct vq_buf d[2] = {
		{ (uint64_t)p->req, 4, false },
		{ (uint64_t)p->resp, 4, true },
	};
	uint16_t head;
	uint32_t used;
	int r;

	/* stores to the window are ordinary write-back stores to host memory; make them globally
	 * visible before the request is (x86 keeps stores in order anyway) */
	__asm__ volatile("sfence" ::: "memory");
	*p->req = VIRTIO_PMEM_REQ_TYPE_FLUSH;
	*p->resp = VPMEM_RET_NONE;
	if (vq_add_chain(&p->q, d, 2, false, &head) < 0)
		return VQ_FULL;
	vq_kick(&p->q);
	r = vq_wait(&p->q, head, &used);
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	*ret = *p->resp;
	p->flushes++;
	if (r != VQ_DONE && virtio_reinit(&p->dev) < 0)
		t_diag("%s: re-initialisation after %s failed", p->dev.name, vq_result_str(r));
	return r;
}
