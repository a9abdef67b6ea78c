/* Virtio 1.x modern PCI transport (virtio 1.2, 4.1), device-independent.
 *
 * One 64-bit memory BAR (BAR0/1, 32 KiB, placed by pci_host_add) holds everything:
 *   0x0000 common configuration (struct virtio_pci_common_cfg, 0x3c bytes, 4.1.4.3)
 *   0x1000 ISR status (4.1.4.5)
 *   0x2000 device-specific configuration (4.1.4.6)
 *   0x3000 notifications: queue i at 0x3000 + 4 * i (notify_off_multiplier 4, 4.1.4.4)
 *   0x4000 MSI-X table, 0x5000 MSI-X PBA
 * Each notification address is a KVM ioeventfd (no datamatch, any access length where KVM
 * allows it) bound to the queue's eventfd: a guest notify costs ~2.6 us and never reaches
 * this process's vCPU thread. A multiplier of 0 would put every queue on one address and
 * need datamatch to tell them apart. If the ioeventfd is missing (no KVM, or the guest moved
 * the BAR and a notify races the move) the write exits to us and we kick the queue by hand.
 *
 * Threads: vCPUs access registers under vp->lock. Every queue has one I/O thread that sleeps
 * in poll() on the queue's kick eventfd and a stop eventfd, and drains the ring holding
 * q->lock. A device whose requests may run concurrently (ops->workers > 1, e.g. virtio-blk)
 * has them run by the queue's executor (vq_exec.h): the I/O thread pops, workers handle and
 * push. A driver reset (status 0) sets q->stop, takes q->lock (so it waits for the request
 * the I/O thread is on), waits for the executor's requests in flight, never more, and tears
 * the queue down before answering the write.
 * Lock order: pci_dev.lock -> vp->lock -> q->lock -> vq_exec lock -> msix lock -> route lock. */
#ifndef CVMM_VIRTIO_PCI_H
#define CVMM_VIRTIO_PCI_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/pci.h"
#include "devices/virtio.h"
#include "devices/virtqueue.h"
#include "devices/vq_exec.h"
#include "lib/guest_mem.h"

#define VPCI_BAR          0
#define VPCI_BAR_SIZE     0x8000
#define VPCI_COMMON_OFF   0x0000
#define VPCI_COMMON_LEN   0x3c
#define VPCI_ISR_OFF      0x1000
#define VPCI_DEVICE_OFF   0x2000
#define VPCI_DEVICE_MAX   0x1000
#define VPCI_NOTIFY_OFF   0x3000
#define VPCI_NOTIFY_MULT  4
#define VPCI_MSIX_TABLE   0x4000
#define VPCI_MSIX_PBA     0x5000
#define VPCI_MAX_QUEUES   (PCI_MSIX_MAX - 1)

/* struct virtio_pci_common_cfg field offsets (4.1.4.3) */
#define VPCI_DFSELECT     0x00
#define VPCI_DF           0x04
#define VPCI_GFSELECT     0x08
#define VPCI_GF           0x0c
#define VPCI_MSIX_CONFIG  0x10
#define VPCI_NUM_QUEUES   0x12
#define VPCI_STATUS       0x14
#define VPCI_CFG_GEN      0x15
#define VPCI_Q_SELECT     0x16
#define VPCI_Q_SIZE       0x18
#define VPCI_Q_MSIX       0x1a
#define VPCI_Q_ENABLE     0x1c
#define VPCI_Q_NOFF       0x1e
#define VPCI_Q_DESC       0x20
#define VPCI_Q_DRIVER     0x28
#define VPCI_Q_DEVICE     0x30
#define VPCI_Q_NOTIF_DATA 0x38
#define VPCI_Q_RESET      0x3a

#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG    3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4
#define VIRTIO_PCI_CAP_PCI_CFG    5
#define VIRTIO_MSI_NO_VECTOR      0xffff

struct virtio_pci;

struct virtio_pci_queue {
	struct virtio_pci *vp;
	unsigned index;
	/* Driver-programmed registers (vp->lock). msix_vector is also read by the I/O thread. */
	uint16_t size;
	uint16_t msix_vector;
	bool enabled;
	uint64_t desc, driver, device;
	/* Run state (q->lock, held by the I/O thread while it works). */
	pthread_mutex_t lock;
	bool live;              /* rings validated and mapped into vq */
	struct virtq vq;
	struct vq_req req;      /* the request being handled when exec_on is false */
	/* ops->workers > 1: the I/O thread pops, the executor's workers run and push; a stop
	 * also waits for them (vq_exec_quiesce) */
	struct vq_exec exec;
	bool exec_on;
	int stop;               /* atomic: a reset wants the queue; finish the current request */
	int kick_fd, stop_fd;
	pthread_t thread;
	bool thread_started;
	bool ioeventfd;         /* assigned at ioeventfd_addr */
	uint64_t ioeventfd_addr;
	uint64_t kicks_by_exit; /* notifies that came through an MMIO exit (no ioeventfd) */
	uint64_t completed;
};

struct virtio_pci {
	struct pci_dev pdev;
	struct pci_msix msix;
	const struct virtio_dev_ops *ops;
	void *dev;
	const char *name;
	struct virtq_dma dma;    /* what the queues' buffers may address */
	int vm_fd;
	pthread_mutex_t lock;   /* the registers below */
	uint32_t dfselect, gfselect;
	uint64_t driver_features;
	uint8_t status;         /* without NEEDS_RESET; written under lock, read atomically */
	int needs_reset;        /* atomic: DEVICE_NEEDS_RESET (set by I/O threads) */
	uint8_t config_generation;
	uint16_t queue_select;
	uint16_t config_msix_vector; /* read atomically by I/O threads */
	uint32_t isr;           /* atomic; read-to-clear */
	uint8_t pci_cfg_cap;    /* offset of the VIRTIO_PCI_CAP_PCI_CFG capability */
	unsigned nq;
	struct virtio_pci_queue *queues;
	struct ratelimit *rl;   /* the device's limiter (guest mistakes) */
	uint64_t resets;
};

/* Create the transport for one device model and add it to the PCI host (next free slot).
 * dma: guest RAM for the rings and buffers, and the window the device's queues may also DMA
 * into (copied); rl: the device's log limiter. Returns 0, or -1 with err. */
int virtio_pci_init(struct virtio_pci *vp, struct pci_host *host, const struct virtq_dma *dma,
		    const struct virtio_dev_ops *ops, void *dev, const char *name,
		    struct ratelimit *rl, char *err, size_t errlen);
/* Stop the I/O threads and release everything (after the vCPUs stopped). */
void virtio_pci_destroy(struct virtio_pci *vp);

/* The BAR's bus callbacks (exposed for tests). */
int virtio_pci_bar_read(void *opaque, uint64_t off, void *data, unsigned size);
int virtio_pci_bar_write(void *opaque, uint64_t off, const void *data, unsigned size);

/* The device's configuration changed: bump config_generation, raise a config interrupt. */
void virtio_pci_config_changed(struct virtio_pci *vp);
/* Current device_status as the driver reads it (NEEDS_RESET included). */
uint8_t virtio_pci_status(struct virtio_pci *vp);

#endif
