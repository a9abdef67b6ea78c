/* virtio-blk driver. See virtio_blk.h. */
#include "drivers/virtio_blk.h"

#include "drivers/virtio_devs.h"
#include "lib/rt.h"

#define BLK_WANTED                                                                                \
	((1ull << VIRTIO_BLK_F_SIZE_MAX) | (1ull << VIRTIO_BLK_F_SEG_MAX) |                       \
	 (1ull << VIRTIO_BLK_F_GEOMETRY) | (1ull << VIRTIO_BLK_F_RO) |                            \
	 (1ull << VIRTIO_BLK_F_BLK_SIZE) | (1ull << VIRTIO_BLK_F_FLUSH) |                         \
	 (1ull << VIRTIO_BLK_F_TOPOLOGY) | (1ull << VIRTIO_BLK_F_DISCARD) |                       \
	 (1ull << VIRTIO_BLK_F_WRITE_ZEROES))

#define BLK_MAX_QUEUE 256

static void read_config(struct vblk *b)
{
	struct virtio_dev *v = &b->dev;

	b->capacity = virtio_cfg64(v, VBLK_CFG_CAPACITY);
	b->size_max = vblk_has(b, VIRTIO_BLK_F_SIZE_MAX) ? virtio_cfg32(v, VBLK_CFG_SIZE_MAX) : 0;
	b->seg_max = vblk_has(b, VIRTIO_BLK_F_SEG_MAX) ? virtio_cfg32(v, VBLK_CFG_SEG_MAX) : 0;
	b->blk_size = vblk_has(b, VIRTIO_BLK_F_BLK_SIZE) ? virtio_cfg32(v, VBLK_CFG_BLK_SIZE) : SECTOR;
	b->phys_block = b->blk_size;
	if (vblk_has(b, VIRTIO_BLK_F_TOPOLOGY)) {
		unsigned e = virtio_cfg8(v, VBLK_CFG_PHYS_EXP);

		if (e < 16)
			b->phys_block = b->blk_size << e;
	}
	if (vblk_has(b, VIRTIO_BLK_F_DISCARD)) {
		b->max_discard_sectors = virtio_cfg32(v, VBLK_CFG_MAX_DISCARD_SECTORS);
		b->max_discard_seg = virtio_cfg32(v, VBLK_CFG_MAX_DISCARD_SEG);
		b->discard_align = virtio_cfg32(v, VBLK_CFG_DISCARD_ALIGN);
	}
	if (vblk_has(b, VIRTIO_BLK_F_WRITE_ZEROES)) {
		b->max_wz_sectors = virtio_cfg32(v, VBLK_CFG_MAX_WZ_SECTORS);
		b->max_wz_seg = virtio_cfg32(v, VBLK_CFG_MAX_WZ_SEG);
		b->wz_may_unmap = virtio_cfg8(v, VBLK_CFG_WZ_MAY_UNMAP);
	}
}

int vblk_open(struct vblk *b, int nth)
{
	memset(b, 0, sizeof(*b));
	vdev_scan(); /* the device list, printed once */
	if (virtio_pci_find(&b->dev, VIRTIO_ID_BLOCK, nth) < 0 || virtio_init(&b->dev, BLK_WANTED) < 0)
		return -1;
	read_config(b);
	if (virtio_setup_queue(&b->dev, 0, &b->q, BLK_MAX_QUEUE) < 0)
		return -1;
	virtio_driver_ok(&b->dev);
	b->scratch = mem_zalloc(sizeof(*b->scratch), 64);
	return b->scratch ? 0 : -1;
}

int vblk_reinit(struct vblk *b)
{
	if (virtio_reinit(&b->dev) < 0)
		return -1;
	read_config(b);
	return 0;
}

void vblk_describe(struct vblk *b)
{
	char f[96];

	virtio_features_str(b->dev.features, f, sizeof(f));
	t_diag("%s: features %s; capacity %lu sectors (%lu MiB), blk_size %u, phys %u, seg_max %u, "
	       "size_max %u, queue %u",
	       b->dev.name, f, b->capacity, b->capacity >> 11, b->blk_size, b->phys_block,
	       b->seg_max, b->size_max, b->q.size);
	if (vblk_has(b, VIRTIO_BLK_F_DISCARD) || vblk_has(b, VIRTIO_BLK_F_WRITE_ZEROES))
		t_diag("%s: discard max %u sectors x %u seg align %u; write-zeroes max %u x %u, may_unmap %u",
		       b->dev.name, b->max_discard_sectors, b->max_discard_seg, b->discard_align,
		       b->max_wz_sectors, b->max_wz_seg, b->wz_may_unmap);
}

int vblk_submit(struct vblk *b, struct vblk_req *r, uint32_t type, uint64_t sector,
		const struct vq_buf *data, unsigned n, bool indirect)
{
	struct vq_buf bufs[2 + 64];

	if (n > 64)
		return -1;
	r->hdr.type = type;
	r->hdr.reserved = 0;
	r->hdr.sector = sector;
	r->status = VBLK_STATUS_NONE;
	r->used_len = 0;
	r->in_bytes = 1;
	bufs[0] = (struct vq_buf){ (uint64_t)&r->hdr, sizeof(r->hdr), false };
	for (unsigned i = 0; i < n; i++) {
		bufs[1 + i] = data[i];
		if (data[i].write)
			r->in_bytes += data[i].len;
	}
	bufs[1 + n] = (struct vq_buf){ (uint64_t)&r->status, 1, true };
	/* a chain that does not fit the free descriptors goes indirect, if negotiated */
	if (!indirect && n + 2u > b->q.nfree && b->q.indirect)
		indirect = true;
	return vq_add_chain(&b->q, bufs, n + 2, indirect, &r->head);
}

int vblk_wait(struct vblk *b, struct vblk_req *r)
{
	int res = vq_wait(&b->q, r->head, &r->used_len);

	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	return res;
}

int vblk_do(struct vblk *b, uint32_t type, uint64_t sector, const struct vq_buf *data,
	    unsigned n, bool indirect, uint8_t *status, uint32_t *used_len)
{
	struct vblk_req *r = b->scratch;
	int res;

	if (vblk_submit(b, r, type, sector, data, n, indirect) < 0) {
		*status = VBLK_STATUS_NONE;
		return VQ_FULL;
	}
	vq_kick(&b->q);
	res = vblk_wait(b, r);
	*status = r->status;
	if (used_len)
		*used_len = r->used_len;
	return res;
}

int vblk_simple(struct vblk *b, uint32_t type, uint64_t sector, void *buf, uint32_t len,
		bool device_writes)
{
	struct vq_buf d = { (uint64_t)buf, len, device_writes };
	uint8_t status;
	int res;

	if (vblk_submit(b, b->scratch, type, sector, &d, buf ? 1 : 0, false) < 0)
		return VBLK_R_QUEUE_FULL;
	vq_kick(&b->q);
	res = vblk_wait(b, b->scratch);
	status = b->scratch->status;
	if (res == VQ_TIMEOUT)
		return VBLK_R_TIMEOUT;
	if (res == VQ_NEEDS_RESET)
		return VBLK_R_NEEDS_RESET;
	return status;
}

int vblk_rw(struct vblk *b, bool write, uint64_t sector, void *buf, uint32_t len)
{
	return vblk_simple(b, write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN, sector, buf, len, !write);
}

const char *vblk_status_str(int s)
{
	switch (s) {
	case VIRTIO_BLK_S_OK: return "OK";
	case VIRTIO_BLK_S_IOERR: return "IOERR";
	case VIRTIO_BLK_S_UNSUPP: return "UNSUPP";
	case VBLK_STATUS_NONE: return "status not written";
	case VBLK_R_TIMEOUT: return "no completion (timeout)";
	case VBLK_R_NEEDS_RESET: return "DEVICE_NEEDS_RESET";
	case VBLK_R_QUEUE_FULL: return "queue full";
	}
	return "unknown status";
}
