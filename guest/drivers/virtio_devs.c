/* The table of virtio-blk and virtio-pmem devices. See virtio_devs.h. */
#include "drivers/virtio_devs.h"

#include "drivers/virtio_blk.h"
#include "drivers/virtio_pci.h"
#include "drivers/virtio_pmem.h"
#include "lib/rt.h"

#define MIN(a, b) ((a) < (b) ? (a) : (b))

static struct vdev_info blk[VDEV_MAX_BLK], pmem[VDEV_MAX_PMEM];
static unsigned nblk, npmem; /* found, may exceed the table */
static int scanned;          /* 0 not yet, 1 done, -1 failed */

int vdev_scan(void)
{
	if (scanned)
		return scanned < 0 ? -1 : (int)(MIN(nblk, VDEV_MAX_BLK) + MIN(npmem, VDEV_MAX_PMEM));
	scanned = -1;
	if (pci_init() < 0)
		return -1;
	for (int i = 0; i < pci_count(); i++) {
		struct pci_dev *d = pci_get(i);
		int type = virtio_pci_type(d);
		struct vdev_info *e;
		struct virtio_dev v;

		if (type == VIRTIO_ID_BLOCK) {
			e = nblk < VDEV_MAX_BLK ? &blk[nblk] : 0;
			if (e)
				*e = (struct vdev_info){ .pci = d, .type = type, .index = nblk };
			nblk++;
		} else if (type == VIRTIO_ID_PMEM) {
			e = npmem < VDEV_MAX_PMEM ? &pmem[npmem] : 0;
			if (e)
				*e = (struct vdev_info){ .pci = d, .type = type, .index = npmem };
			npmem++;
		} else {
			continue;
		}
		if (!e) {
			t_diag("dev: %s%u %02x:%02x.%x beyond the table (%u blk, %u pmem)",
			       type == VIRTIO_ID_BLOCK ? "blk" : "pmem",
			       (type == VIRTIO_ID_BLOCK ? nblk : npmem) - 1, d->bus, d->dev, d->fn,
			       VDEV_MAX_BLK, VDEV_MAX_PMEM);
			continue;
		}
		if (virtio_pci_attach(&v, d, type, true) < 0) {
			t_diag("dev: %s%u %02x:%02x.%x cannot be enabled", type == VIRTIO_ID_BLOCK ? "blk" : "pmem",
			       e->index, d->bus, d->dev, d->fn);
			continue;
		}
		if (type == VIRTIO_ID_BLOCK) {
			e->capacity = virtio_cfg64(&v, VBLK_CFG_CAPACITY);
			t_diag("dev: blk%u %02x:%02x.%x capacity %lu sectors (%lu MiB)", e->index, d->bus,
			       d->dev, d->fn, e->capacity, e->capacity >> 11);
		} else {
			e->start = virtio_cfg64(&v, VPMEM_CFG_START);
			e->size = virtio_cfg64(&v, VPMEM_CFG_SIZE);
			t_diag("dev: pmem%u %02x:%02x.%x window 0x%lx+0x%lx (%lu MiB)", e->index, d->bus,
			       d->dev, d->fn, e->start, e->size, e->size >> 20);
		}
	}
	scanned = 1;
	if (!nblk && !npmem)
		t_diag("dev: no virtio-blk or virtio-pmem device (%d PCI functions)", pci_count());
	return (int)(MIN(nblk, VDEV_MAX_BLK) + MIN(npmem, VDEV_MAX_PMEM));
}

unsigned vdev_count(unsigned type)
{
	return type == VIRTIO_ID_BLOCK ? nblk : type == VIRTIO_ID_PMEM ? npmem : 0;
}

const struct vdev_info *vdev_get(unsigned type, unsigned nth)
{
	if (type == VIRTIO_ID_BLOCK)
		return nth < MIN(nblk, VDEV_MAX_BLK) ? &blk[nth] : 0;
	if (type == VIRTIO_ID_PMEM)
		return nth < MIN(npmem, VDEV_MAX_PMEM) ? &pmem[nth] : 0;
	return 0;
}

int vdev_blk_arg(void)
{
	return (int)arg_u64("blk_dev", arg_u64("dev", 0));
}

int vdev_pmem_arg(int dev_alias)
{
	return (int)arg_u64("pmem_dev", dev_alias ? arg_u64("dev", 0) : 0);
}
