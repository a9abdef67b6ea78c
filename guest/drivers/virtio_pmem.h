/* virtio-pmem driver (virtio 1.2, 5.19; device ID 27), ring 3, polled.
 *
 * The device's configuration gives a guest-physical window (le64 start, le64 size) that the
 * guest loads from and stores to directly (DAX); stores are made durable by a FLUSH request on
 * the one request queue: le32 type (0 = FLUSH) device-readable, le32 ret device-writable, 0 for
 * success and -1 for failure. vpmem_open() maps the window write-back (SYS_MAP: it is above
 * 4 GiB under both cvmm and QEMU q35) and touches none of it. */
#ifndef GUEST_VIRTIO_PMEM_H
#define GUEST_VIRTIO_PMEM_H

#include <stdint.h>

#include "drivers/virtio_pci.h"

#define VIRTIO_PMEM_REQ_TYPE_FLUSH 0
#define VPMEM_CFG_START 0
#define VPMEM_CFG_SIZE 8
#define VPMEM_RET_NONE 0x7fffffffu /* preset: the device did not write ret */

struct vpmem {
	struct virtio_dev dev;
	struct virtq q;
	uint64_t start, size;
	volatile uint8_t *base; /* == (void *)start: identity mapped */
	uint32_t *req, *resp;
	uint64_t flushes;
};

/* Find and initialise the nth virtio-pmem device, map its window. 0 or -1. */
int vpmem_open(struct vpmem *p, int nth);
/* FLUSH; returns the VQ_* result, *ret the device's answer (VPMEM_RET_NONE if unwritten). */
int vpmem_flush(struct vpmem *p, uint32_t *ret);

#endif
