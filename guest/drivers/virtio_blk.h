/* virtio-blk driver (virtio 1.2, 5.2), ring 3, polled, one request queue.
 *
 * A request is header (16 bytes, device-readable), data, status (1 byte, device-writable).
 * vblk_submit() takes the data buffers as given (any split, either direction) so scenarios can
 * shape requests; the status byte is preset to VBLK_STATUS_NONE so an unwritten status shows. */
#ifndef GUEST_VIRTIO_BLK_H
#define GUEST_VIRTIO_BLK_H

#include <stdbool.h>
#include <stdint.h>

#include "drivers/virtio_pci.h"

#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_GEOMETRY 4
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_BLK_F_TOPOLOGY 10
#define VIRTIO_BLK_F_CONFIG_WCE 11
#define VIRTIO_BLK_F_MQ 12
#define VIRTIO_BLK_F_DISCARD 13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_T_DISCARD 11
#define VIRTIO_BLK_T_WRITE_ZEROES 13

#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2
#define VBLK_STATUS_NONE 0xff /* preset: the device did not write the status */

#define VIRTIO_BLK_WZ_FLAG_UNMAP 1
#define VIRTIO_BLK_ID_BYTES 20
#define SECTOR 512

/* struct virtio_blk_config offsets (5.2.4) */
#define VBLK_CFG_CAPACITY 0
#define VBLK_CFG_SIZE_MAX 8
#define VBLK_CFG_SEG_MAX 12
#define VBLK_CFG_BLK_SIZE 20
#define VBLK_CFG_PHYS_EXP 24
#define VBLK_CFG_WRITEBACK 32
#define VBLK_CFG_MAX_DISCARD_SECTORS 36
#define VBLK_CFG_MAX_DISCARD_SEG 40
#define VBLK_CFG_DISCARD_ALIGN 44
#define VBLK_CFG_MAX_WZ_SECTORS 48
#define VBLK_CFG_MAX_WZ_SEG 52
#define VBLK_CFG_WZ_MAY_UNMAP 56

struct vblk_hdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

struct vblk_dwz { /* struct virtio_blk_discard_write_zeroes */
	uint64_t sector;
	uint32_t num_sectors;
	uint32_t flags;
};

/* One request's driver-side memory (must live in guest RAM: the device reads/writes it). */
struct vblk_req {
	struct vblk_hdr hdr;
	uint8_t status;
	uint16_t head;
	uint32_t used_len;
	uint32_t in_bytes; /* device-writable bytes offered, status included */
};

struct vblk {
	struct virtio_dev dev;
	struct virtq q;
	uint64_t capacity; /* sectors */
	uint32_t size_max, seg_max, blk_size, phys_block;
	uint32_t max_discard_sectors, max_discard_seg, discard_align;
	uint32_t max_wz_sectors, max_wz_seg;
	uint8_t wz_may_unmap, writeback;
	struct vblk_req *scratch; /* for the synchronous helpers */
};

/* Find and initialise the nth virtio-blk device; reads its configuration. 0 or -1. */
int vblk_open(struct vblk *b, int nth);
/* Recover after DEVICE_NEEDS_RESET or a lost request (virtio_reinit). 0 or -1. */
int vblk_reinit(struct vblk *b);
static inline bool vblk_has(const struct vblk *b, unsigned bit)
{
	return virtio_has(&b->dev, bit);
}
void vblk_describe(struct vblk *b); /* one or two diagnostic lines */

/* Queue one request: header, `n` data buffers as given, status. Not yet published: call
 * vq_kick(&b->q) (vblk_do does). -1 if the queue is full. */
int vblk_submit(struct vblk *b, struct vblk_req *r, uint32_t type, uint64_t sector,
		const struct vq_buf *data, unsigned n, bool indirect);
/* Wait for r: VQ_DONE (r->status, r->used_len filled), VQ_TIMEOUT or VQ_NEEDS_RESET. */
int vblk_wait(struct vblk *b, struct vblk_req *r);
/* Submit, kick, wait. Returns the VQ_* result; *status gets the status byte (or
 * VBLK_STATUS_NONE), *used_len (if not NULL) the used length. */
int vblk_do(struct vblk *b, uint32_t type, uint64_t sector, const struct vq_buf *data,
	    unsigned n, bool indirect, uint8_t *status, uint32_t *used_len);
/* One contiguous buffer read (IN) or written (OUT). Returns the status byte, or 0x100 + a
 * negative VQ_* result folded to positive (see vblk_status_str) if it did not complete. */
int vblk_rw(struct vblk *b, bool write, uint64_t sector, void *buf, uint32_t len);
int vblk_simple(struct vblk *b, uint32_t type, uint64_t sector, void *buf, uint32_t len,
		bool device_writes);
const char *vblk_status_str(int s);

#define VBLK_R_TIMEOUT 0x101
#define VBLK_R_NEEDS_RESET 0x102
#define VBLK_R_QUEUE_FULL 0x103

#endif
