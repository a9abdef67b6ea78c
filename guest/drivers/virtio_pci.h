/* virtio over PCI, modern interface (virtio 1.2, 4.1), from ring 3 with polling.
 *
 * virtio_pci_find() locates the nth function of a virtio device type (vendor 0x1af4; device
 * ID 0x1040 + type, or a transitional 0x1000-0x103f whose subsystem ID gives the type), enables
 * it and walks its vendor capabilities to the common, notify, ISR and device configuration
 * structures (4.1.4). virtio_init() then runs the initialisation sequence of 3.1.1: reset (and
 * wait for device_status to read 0), ACKNOWLEDGE, DRIVER, feature negotiation (VERSION_1 is
 * required), FEATURES_OK and its re-read. The device driver sets queues up with
 * virtio_setup_queue() and finishes with virtio_driver_ok().
 *
 * Knobs on the command line (they only take features away): `event_idx=0`, `indirect=0`,
 * `qsize=N` (cap the queue size; not below 4), `timeout_ms=N` (per-request deadline, default 2000). */
#ifndef GUEST_VIRTIO_PCI_H
#define GUEST_VIRTIO_PCI_H

#include <stdbool.h>
#include <stdint.h>

#include "drivers/pci.h"
#include "drivers/virtq.h"

#define VIRTIO_PCI_VENDOR 0x1af4

#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_PMEM 27

/* device status (2.1) */
#define VIRTIO_S_ACKNOWLEDGE 1
#define VIRTIO_S_DRIVER 2
#define VIRTIO_S_DRIVER_OK 4
#define VIRTIO_S_FEATURES_OK 8
#define VIRTIO_S_NEEDS_RESET 0x40
#define VIRTIO_S_FAILED 0x80

/* reserved feature bits (6) */
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32
#define VIRTIO_F_ACCESS_PLATFORM 33
#define VIRTIO_F_RING_PACKED 34

/* capability cfg_type (4.1.4) */
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG 3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4

/* struct virtio_pci_common_cfg (4.1.4.3) */
#define VCC_DEVICE_FEATURE_SELECT 0x00
#define VCC_DEVICE_FEATURE 0x04
#define VCC_DRIVER_FEATURE_SELECT 0x08
#define VCC_DRIVER_FEATURE 0x0c
#define VCC_MSIX_CONFIG 0x10
#define VCC_NUM_QUEUES 0x12
#define VCC_DEVICE_STATUS 0x14
#define VCC_CONFIG_GENERATION 0x15
#define VCC_QUEUE_SELECT 0x16
#define VCC_QUEUE_SIZE 0x18
#define VCC_QUEUE_MSIX_VECTOR 0x1a
#define VCC_QUEUE_ENABLE 0x1c
#define VCC_QUEUE_NOTIFY_OFF 0x1e
#define VCC_QUEUE_DESC 0x20
#define VCC_QUEUE_DRIVER 0x28
#define VCC_QUEUE_DEVICE 0x30
#define VCC_MIN_LEN 0x38
#define VIRTIO_MSI_NO_VECTOR 0xffff

#define VIRTIO_MAX_QUEUES 4

struct virtio_dev {
	struct pci_dev *pci;
	unsigned type;
	volatile uint8_t *common, *isr, *devcfg, *notify;
	uint32_t devcfg_len, notify_len, notify_mult;
	uint64_t offered, wanted, features;
	struct virtq *queues[VIRTIO_MAX_QUEUES];
	unsigned nqueues;
	uint64_t timeout_ns;
	char name[48]; /* "virtio-blk 00:03.0" */
};

/* Find, enable and map the nth (0-based, PCI bus/slot order) device of `type`. Returns 0, or
 * -1 (diagnostic printed). */
int virtio_pci_find(struct virtio_dev *v, unsigned type, int nth);
/* Enable and map the given function as a device of `type` (quiet: no diagnostic line on
 * success). 0 or -1. */
int virtio_pci_attach(struct virtio_dev *v, struct pci_dev *d, unsigned type, bool quiet);
/* The virtio device type of a PCI function (VIRTIO_ID_*), or -1 if it is no virtio device. */
int virtio_pci_type(const struct pci_dev *d);
/* Reset, ACKNOWLEDGE, DRIVER, negotiate: accept the offered features among `wanted`
 * (VERSION_1 is always wanted and must be offered; EVENT_IDX and INDIRECT_DESC are added
 * unless turned off on the command line), FEATURES_OK and check it stuck. 0 or -1. */
int virtio_init(struct virtio_dev *v, uint64_t wanted);
/* Set queue `index` up with q (allocated on first use, at most `max_size` entries, also capped
 * by the device's maximum and `qsize=`), enable it. 0 or -1. */
int virtio_setup_queue(struct virtio_dev *v, unsigned index, struct virtq *q, unsigned max_size);
void virtio_driver_ok(struct virtio_dev *v);
/* Write 0 to device_status and wait until it reads 0 (4.1.4.3.2). 0 or -1 on timeout. */
int virtio_reset(struct virtio_dev *v);
/* Reset, renegotiate the same features, set the same queues up again (rings zeroed), DRIVER_OK:
 * the recovery from DEVICE_NEEDS_RESET or a lost request. 0 or -1. */
int virtio_reinit(struct virtio_dev *v);
uint8_t virtio_status(struct virtio_dev *v);
static inline bool virtio_has(const struct virtio_dev *v, unsigned bit)
{
	return v->features >> bit & 1;
}

/* Device configuration reads, consistent across config_generation (4.1.4.3.1). */
uint8_t virtio_cfg8(struct virtio_dev *v, unsigned off);
uint16_t virtio_cfg16(struct virtio_dev *v, unsigned off);
uint32_t virtio_cfg32(struct virtio_dev *v, unsigned off);
uint64_t virtio_cfg64(struct virtio_dev *v, unsigned off);

/* A feature list like "VERSION_1 EVENT_IDX INDIRECT_DESC +0x3e40" for diagnostics. */
void virtio_features_str(uint64_t f, char *buf, unsigned size);

#endif
