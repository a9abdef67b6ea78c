/* The guest's table of virtio-blk and virtio-pmem devices, in PCI bus/slot order (under cvmm:
 * config order, every [blk] before every [pmem]; under QEMU: the order of the -device options).
 *
 * vdev_scan() (called by vblk_open and vpmem_open, or by a scenario) enumerates them once,
 * reads each one's capacity or window from its device configuration (no reset, no feature
 * negotiation: both fields exist whatever the features) and prints one line per device:
 *
 *     # dev: blk0 00:01.0 capacity 32768 sectors (16 MiB)
 *     # dev: pmem0 00:03.0 window 0x140000000+0x4000000 (64 MiB)
 *
 * Device arguments on the command line: `blk_dev=N` (index among the virtio-blk devices,
 * default 0; `dev=N` is the older name) and `pmem_dev=N` (among the virtio-pmem devices,
 * default 0; `dev=N` too in the pmem scenarios). */
#ifndef GUEST_VIRTIO_DEVS_H
#define GUEST_VIRTIO_DEVS_H

#include <stdint.h>

#include "drivers/pci.h"

#define VDEV_MAX_BLK 8
#define VDEV_MAX_PMEM 4

struct vdev_info {
	struct pci_dev *pci;
	unsigned type;   /* VIRTIO_ID_BLOCK or VIRTIO_ID_PMEM */
	unsigned index;  /* among the devices of its type, 0-based */
	uint64_t capacity;       /* blk: sectors */
	uint64_t start, size;    /* pmem: the window */
};

/* Enumerate (once) and print the list. Returns the number of devices in the table, or -1
 * when PCI cannot be scanned (diagnostic printed). */
int vdev_scan(void);
/* How many of that type (VIRTIO_ID_BLOCK / VIRTIO_ID_PMEM) were found (after vdev_scan). Counts
 * devices beyond the table's size too. */
unsigned vdev_count(unsigned type);
/* The nth device of a type in the table, or NULL. */
const struct vdev_info *vdev_get(unsigned type, unsigned nth);
/* The device arguments: blk_dev= (else dev=) and pmem_dev= (else dev= if dev_alias). */
int vdev_blk_arg(void);
int vdev_pmem_arg(int dev_alias);

#endif
