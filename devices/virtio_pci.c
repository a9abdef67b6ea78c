/* Virtio modern PCI transport. Layout, threads and locks: see virtio_pci.h. */
#include "devices/virtio_pci.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "lib/kvm_compat.h"

#define TRANSPORT_FEATURES ((1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_F_EVENT_IDX) | \
			    (1ULL << VIRTIO_F_INDIRECT_DESC))

static inline void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void wr32(uint8_t *p, uint32_t v) { wr16(p, (uint16_t)v); wr16(p + 2, (uint16_t)(v >> 16)); }
static inline void wr64(uint8_t *p, uint64_t v) { wr32(p, (uint32_t)v); wr32(p + 4, (uint32_t)(v >> 32)); }
static inline uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

static uint64_t device_features(struct virtio_pci *vp)
{
	/* ACCESS_PLATFORM and RING_PACKED are never offered: we have no IOMMU, split rings only. */
	return (vp->ops->features(vp->dev) | TRANSPORT_FEATURES) &
	       ~((1ULL << VIRTIO_F_ACCESS_PLATFORM) | (1ULL << VIRTIO_F_RING_PACKED));
}

uint8_t virtio_pci_status(struct virtio_pci *vp)
{
	uint8_t s = __atomic_load_n(&vp->status, __ATOMIC_ACQUIRE);
	if (__atomic_load_n(&vp->needs_reset, __ATOMIC_ACQUIRE))
		s |= VIRTIO_STATUS_DEVICE_NEEDS_RESET;
	return s;
}

/* ---- interrupts -------------------------------------------------------------------------- */

static void raise_vector(struct virtio_pci *vp, uint16_t vec, uint32_t isr_bit)
{
	if (pci_msix_enabled(&vp->msix)) {
		if (vec != VIRTIO_MSI_NO_VECTOR)
			pci_msix_signal(&vp->msix, vec);
	} else {
		/* INTx is not wired (interrupt pin 0); the ISR bit still tells a polling driver. */
		__atomic_or_fetch(&vp->isr, isr_bit, __ATOMIC_ACQ_REL);
	}
}

static void notify_queue(void *ctx)
{
	struct virtio_pci_queue *q = ctx;
	raise_vector(q->vp, __atomic_load_n(&q->msix_vector, __ATOMIC_ACQUIRE), 1);
}

static void config_interrupt(struct virtio_pci *vp)
{
	if (pci_msix_enabled(&vp->msix)) {
		__atomic_or_fetch(&vp->isr, 2, __ATOMIC_ACQ_REL);
		uint16_t v = __atomic_load_n(&vp->config_msix_vector, __ATOMIC_ACQUIRE);
		if (v != VIRTIO_MSI_NO_VECTOR)
			pci_msix_signal(&vp->msix, v);
	} else {
		raise_vector(vp, VIRTIO_MSI_NO_VECTOR, 2);
	}
}

void virtio_pci_config_changed(struct virtio_pci *vp)
{
	pthread_mutex_lock(&vp->lock);
	vp->config_generation++;
	pthread_mutex_unlock(&vp->lock);
	config_interrupt(vp);
}

/* 2.1.1: "The device SHOULD set DEVICE_NEEDS_RESET when it enters an error state that a reset
 * is needed. If DRIVER_OK is set, after it sets DEVICE_NEEDS_RESET, the device MUST send a
 * device configuration change notification to the driver." Called from any thread. */
static void set_needs_reset(struct virtio_pci *vp)
{
	if (__atomic_exchange_n(&vp->needs_reset, 1, __ATOMIC_ACQ_REL))
		return;
	config_interrupt(vp);
}

/* ---- I/O threads ------------------------------------------------------------------------- */

static void *queue_thread(void *arg)
{
	struct virtio_pci_queue *q = arg;
	struct virtio_pci *vp = q->vp;
	struct pollfd p[2] = { { .fd = q->kick_fd, .events = POLLIN },
			       { .fd = q->stop_fd, .events = POLLIN } };
	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		uint64_t n;
		if (read(q->kick_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
			break;
		pthread_mutex_lock(&q->lock);
		/* 3.1.1 / 2.1.2: no buffers are consumed before DRIVER_OK, nor once the device
		 * asked to be reset. */
		if (q->live && !q->vq.broken && !__atomic_load_n(&q->stop, __ATOMIC_ACQUIRE) &&
		    (virtio_pci_status(vp) & (VIRTIO_STATUS_DRIVER_OK |
					      VIRTIO_STATUS_DEVICE_NEEDS_RESET)) ==
			    VIRTIO_STATUS_DRIVER_OK) {
			bool broken = false;
			if (q->exec_on)
				q->completed += vq_exec_drain(&q->exec, &q->stop, &broken);
			else
				q->completed += virtio_queue_drain(&q->vq, &q->req, vp->ops, vp->dev,
								   q->index, &q->stop, &broken,
								   notify_queue, q);
			if (broken) {
				rl_log(vp->rl, "queue %u: %s: device needs reset", q->index, q->vq.why);
				set_needs_reset(vp);
			}
		}
		pthread_mutex_unlock(&q->lock);
	}
	return NULL;
}

static void kick(struct virtio_pci_queue *q)
{
	uint64_t one = 1;
	if (write(q->kick_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		rl_log(q->vp->rl, "queue %u: kick: %s", q->index, strerror(errno));
}

/* Take the queue away from its I/O thread and its workers (waits for the requests in flight)
 * and forget it. */
static void queue_stop(struct virtio_pci_queue *q)
{
	__atomic_store_n(&q->stop, 1, __ATOMIC_RELEASE);
	pthread_mutex_lock(&q->lock);
	if (q->exec_on)
		vq_exec_quiesce(&q->exec);
	q->live = false;
	memset(&q->vq, 0, sizeof(q->vq));
	__atomic_store_n(&q->stop, 0, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&q->lock);
}

/* ---- ioeventfds -------------------------------------------------------------------------- */

static void ioeventfd_set(struct virtio_pci *vp, struct virtio_pci_queue *q, uint64_t addr,
			  bool assign)
{
	if (vp->vm_fd < 0)
		return;
	struct kvm_ioeventfd io = {
		.addr = addr,
		/* len 0 = any access width (KVM_CAP_IOEVENTFD_ANY_LENGTH); else the 16-bit write
		 * 4.1.4.4 prescribes, and other widths exit to notify_write below. */
		.len = vp->pdev.host->ioeventfd_any_len ? 0 : 2,
		.fd = q->kick_fd,
		.flags = assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN,
	};
	if (ioctl(vp->vm_fd, KVM_IOEVENTFD, &io) < 0) {
		rl_log(vp->rl, "queue %u: KVM_IOEVENTFD %s at 0x%llx: %s (notifies will exit)",
		       q->index, assign ? "assign" : "deassign", (unsigned long long)addr,
		       strerror(errno));
		if (assign)
			return;
	}
	q->ioeventfd = assign;
	q->ioeventfd_addr = addr;
}

/* pci_dev hook: the BAR moved, appeared or vanished; the notify ioeventfds follow it. */
static void bar_remap(struct pci_dev *d, int bar, bool was_mapped, uint64_t old_addr,
		      bool mapped, uint64_t new_addr)
{
	struct virtio_pci *vp = d->owner;
	if (bar != VPCI_BAR)
		return;
	for (unsigned i = 0; i < vp->nq; i++) {
		struct virtio_pci_queue *q = &vp->queues[i];
		if (q->ioeventfd)
			ioeventfd_set(vp, q, q->ioeventfd_addr, false);
		if (mapped)
			ioeventfd_set(vp, q, new_addr + VPCI_NOTIFY_OFF + VPCI_NOTIFY_MULT * i, true);
	}
	(void)was_mapped;
	(void)old_addr;
}

/* ---- common configuration ---------------------------------------------------------------- */

static void device_reset(struct virtio_pci *vp)
{
	/* 2.4.1: the device MUST reset when 0 is written to device_status and present 0 once
	 * that is done. Stopping each queue waits for its request in flight: after this write
	 * returns, the device touches no guest memory until the driver sets it up again. */
	for (unsigned i = 0; i < vp->nq; i++) {
		struct virtio_pci_queue *q = &vp->queues[i];
		queue_stop(q);
		q->size = vp->ops->queue_size_max;
		__atomic_store_n(&q->msix_vector, VIRTIO_MSI_NO_VECTOR, __ATOMIC_RELEASE);
		q->enabled = false;
		q->desc = q->driver = q->device = 0;
	}
	vp->ops->reset(vp->dev);
	vp->dfselect = vp->gfselect = 0;
	vp->driver_features = 0;
	vp->queue_select = 0;
	__atomic_store_n(&vp->config_msix_vector, VIRTIO_MSI_NO_VECTOR, __ATOMIC_RELEASE);
	__atomic_store_n(&vp->isr, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&vp->needs_reset, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&vp->status, 0, __ATOMIC_RELEASE);
	vp->resets++;
}

static bool features_acceptable(struct virtio_pci *vp, uint64_t f)
{
	uint64_t offered = device_features(vp);
	if (f & ~offered) {
		rl_log(vp->rl, "driver accepted features 0x%llx that were not offered: FEATURES_OK "
		       "refused", (unsigned long long)(f & ~offered));
		return false;
	}
	/* 6.1: VIRTIO_F_VERSION_1 is the modern interface; without it the driver expects the
	 * legacy one, which this device does not have (no legacy I/O BAR). */
	if (!(f & (1ULL << VIRTIO_F_VERSION_1))) {
		rl_log(vp->rl, "driver did not accept VIRTIO_F_VERSION_1: FEATURES_OK refused");
		return false;
	}
	if (vp->ops->set_features && vp->ops->set_features(vp->dev, f) < 0) {
		rl_log(vp->rl, "device refused features 0x%llx: FEATURES_OK refused",
		       (unsigned long long)f);
		return false;
	}
	return true;
}

/* The device-status state machine (2.1, 3.1.1). vp->lock held. */
static void status_write(struct virtio_pci *vp, uint8_t val)
{
	if (val == 0) {
		device_reset(vp);
		return;
	}
	uint8_t old = vp->status;
	val &= (uint8_t)~VIRTIO_STATUS_DEVICE_NEEDS_RESET; /* the device's bit, not the driver's */
	/* 2.1.2: "The driver MUST NOT clear a device status bit." Refuse such writes whole. */
	if (old & ~val) {
		rl_log(vp->rl, "driver cleared status bits (0x%02x -> 0x%02x): ignored", old, val);
		return;
	}
	uint8_t added = val & (uint8_t)~old;
	if (added & VIRTIO_STATUS_FEATURES_OK) {
		/* 3.1.1 steps 1-5: ACKNOWLEDGE and DRIVER come first, then features. A refusal
		 * leaves FEATURES_OK clear, which the driver checks (3.1.1 step 6). */
		if (!(val & VIRTIO_STATUS_ACKNOWLEDGE) || !(val & VIRTIO_STATUS_DRIVER)) {
			rl_log(vp->rl, "FEATURES_OK without ACKNOWLEDGE and DRIVER: refused");
			val &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
		} else if (!features_acceptable(vp, vp->driver_features)) {
			val &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
		}
	}
	if ((added & VIRTIO_STATUS_DRIVER_OK) && !(val & VIRTIO_STATUS_FEATURES_OK)) {
		rl_log(vp->rl, "DRIVER_OK without FEATURES_OK: refused");
		val &= (uint8_t)~VIRTIO_STATUS_DRIVER_OK;
	}
	__atomic_store_n(&vp->status, val, __ATOMIC_RELEASE);
	if ((val & ~old) & VIRTIO_STATUS_DRIVER_OK)
		for (unsigned i = 0; i < vp->nq; i++)
			if (vp->queues[i].enabled)
				kick(&vp->queues[i]); /* buffers made available before DRIVER_OK */
}

/* queue_enable = 1 (4.1.4.3.2). vp->lock held. */
static void queue_enable(struct virtio_pci *vp, struct virtio_pci_queue *q)
{
	if (q->enabled)
		return;
	if (!(vp->status & VIRTIO_STATUS_FEATURES_OK)) {
		/* 3.1.1: queues are set up after feature negotiation (step 7), and the ring
		 * format depends on the features (EVENT_IDX). */
		rl_log(vp->rl, "queue %u enabled before FEATURES_OK: refused", q->index);
		return;
	}
	struct virtq vq;
	char why[160];
	uint64_t f = vp->driver_features;
	if (q->size > vp->ops->queue_size_max) {
		/* 4.1.4.3.2: the driver may only shrink queue_size from what the device offers. */
		rl_log(vp->rl, "queue %u not enabled: size %u above the maximum %u", q->index,
		       q->size, vp->ops->queue_size_max);
		set_needs_reset(vp);
		return;
	}
	unsigned max_chain = vp->ops->max_chain ? vp->ops->max_chain : q->size;
	if (virtq_setup(&vq, &vp->dma, q->size, q->desc, q->driver, q->device,
			f & (1ULL << VIRTIO_F_EVENT_IDX), f & (1ULL << VIRTIO_F_INDIRECT_DESC),
			max_chain, why, sizeof(why))) {
		/* The driver gave us a queue we cannot use: it stays disabled (queue_enable reads
		 * 0) and the device asks for a reset. */
		rl_log(vp->rl, "queue %u not enabled: %s", q->index, why);
		set_needs_reset(vp);
		return;
	}
	pthread_mutex_lock(&q->lock);
	q->vq = vq;
	q->live = true;
	pthread_mutex_unlock(&q->lock);
	q->enabled = true;
	if (vp->status & VIRTIO_STATUS_DRIVER_OK)
		kick(q);
}

static struct virtio_pci_queue *selected(struct virtio_pci *vp)
{
	return vp->queue_select < vp->nq ? &vp->queues[vp->queue_select] : NULL;
}

static void common_snapshot(struct virtio_pci *vp, uint8_t *c)
{
	memset(c, 0, VPCI_COMMON_LEN);
	uint64_t df = device_features(vp);
	wr32(c + VPCI_DFSELECT, vp->dfselect);
	wr32(c + VPCI_DF, vp->dfselect == 0 ? (uint32_t)df : vp->dfselect == 1 ? (uint32_t)(df >> 32) : 0);
	wr32(c + VPCI_GFSELECT, vp->gfselect);
	wr32(c + VPCI_GF, vp->gfselect == 0 ? (uint32_t)vp->driver_features :
			  vp->gfselect == 1 ? (uint32_t)(vp->driver_features >> 32) : 0);
	wr16(c + VPCI_MSIX_CONFIG, vp->config_msix_vector);
	wr16(c + VPCI_NUM_QUEUES, (uint16_t)vp->nq);
	c[VPCI_STATUS] = virtio_pci_status(vp);
	c[VPCI_CFG_GEN] = vp->config_generation;
	wr16(c + VPCI_Q_SELECT, vp->queue_select);
	struct virtio_pci_queue *q = selected(vp);
	if (!q)
		return; /* 4.1.4.3: queue_size 0 = no such queue */
	wr16(c + VPCI_Q_SIZE, q->size);
	wr16(c + VPCI_Q_MSIX, q->msix_vector);
	wr16(c + VPCI_Q_ENABLE, q->enabled);
	wr16(c + VPCI_Q_NOFF, (uint16_t)q->index);
	wr64(c + VPCI_Q_DESC, q->desc);
	wr64(c + VPCI_Q_DRIVER, q->driver);
	wr64(c + VPCI_Q_DEVICE, q->device);
}

static uint16_t vector_or_none(struct virtio_pci *vp, uint16_t v)
{
	/* 4.1.5.1.2: a vector the device cannot use reads back as NO_VECTOR. */
	return v < vp->msix.nvec ? v : VIRTIO_MSI_NO_VECTOR;
}

static void set_addr_half(uint64_t *a, uint64_t off_in_field, unsigned size, uint64_t v)
{
	if (size == 8)
		*a = v;
	else if (off_in_field == 0)
		*a = (*a & ~0xffffffffULL) | (uint32_t)v;
	else
		*a = (*a & 0xffffffffULL) | (uint64_t)(uint32_t)v << 32;
}

static void common_write(struct virtio_pci *vp, uint64_t off, unsigned size, uint64_t v)
{
	struct virtio_pci_queue *q = selected(vp);
	/* 4.1.3.1: each field is accessed with its own width (64-bit ones also as two dwords). */
	unsigned want;
	switch (off) {
	case VPCI_DFSELECT: case VPCI_DF: case VPCI_GFSELECT: case VPCI_GF: want = 4; break;
	case VPCI_STATUS: case VPCI_CFG_GEN: want = 1; break;
	case VPCI_Q_DESC: case VPCI_Q_DRIVER: case VPCI_Q_DEVICE: want = size == 8 ? 8 : 4; break;
	case VPCI_Q_DESC + 4: case VPCI_Q_DRIVER + 4: case VPCI_Q_DEVICE + 4: want = 4; break;
	default: want = 2; break;
	}
	if (size != want || off % want) {
		rl_log(vp->rl, "common config write of %u bytes at 0x%llx: wrong width, ignored",
		       size, (unsigned long long)off);
		return;
	}
	switch (off) {
	case VPCI_DFSELECT:
		vp->dfselect = (uint32_t)v;
		break;
	case VPCI_GFSELECT:
		vp->gfselect = (uint32_t)v;
		break;
	case VPCI_GF:
		/* 3.1.1: features are fixed once FEATURES_OK is set. */
		if (vp->status & VIRTIO_STATUS_FEATURES_OK) {
			rl_log(vp->rl, "driver_feature written after FEATURES_OK: ignored");
			break;
		}
		if (vp->gfselect == 0)
			vp->driver_features = (vp->driver_features & ~0xffffffffULL) | (uint32_t)v;
		else if (vp->gfselect == 1)
			vp->driver_features = (vp->driver_features & 0xffffffffULL) | v << 32;
		break;
	case VPCI_MSIX_CONFIG:
		__atomic_store_n(&vp->config_msix_vector, vector_or_none(vp, (uint16_t)v),
				 __ATOMIC_RELEASE);
		break;
	case VPCI_STATUS:
		status_write(vp, (uint8_t)v);
		break;
	case VPCI_Q_SELECT:
		vp->queue_select = (uint16_t)v;
		break;
	case VPCI_Q_SIZE:
		/* Checked (a power of two, at most the maximum) when the queue is enabled. */
		if (q && !q->enabled)
			q->size = (uint16_t)v;
		break;
	case VPCI_Q_MSIX:
		if (q)
			__atomic_store_n(&q->msix_vector, vector_or_none(vp, (uint16_t)v),
					 __ATOMIC_RELEASE);
		break;
	case VPCI_Q_ENABLE:
		if (!q)
			break;
		if (v == 1)
			queue_enable(vp, q);
		else /* 4.1.4.3.2: "The driver MUST NOT write a 0 to queue_enable." */
			rl_log(vp->rl, "queue %u: queue_enable written with %llu: ignored", q->index,
			       (unsigned long long)v);
		break;
	case VPCI_Q_DESC: case VPCI_Q_DESC + 4:
	case VPCI_Q_DRIVER: case VPCI_Q_DRIVER + 4:
	case VPCI_Q_DEVICE: case VPCI_Q_DEVICE + 4: {
		if (!q || q->enabled) {
			if (q)
				rl_log(vp->rl, "queue %u: ring address written while enabled: ignored",
				       q->index);
			break;
		}
		uint64_t base = off >= VPCI_Q_DEVICE ? VPCI_Q_DEVICE :
				off >= VPCI_Q_DRIVER ? VPCI_Q_DRIVER : VPCI_Q_DESC;
		uint64_t *a = base == VPCI_Q_DESC ? &q->desc : base == VPCI_Q_DRIVER ? &q->driver
										  : &q->device;
		set_addr_half(a, off - base, size, v);
		break;
	}
	default:
		/* device_feature, num_queues, config_generation, queue_notify_off and
		 * queue_notif_config_data are read-only; queue_reset needs VIRTIO_F_RING_RESET,
		 * which is not offered. */
		break;
	}
}

/* ---- the BAR ----------------------------------------------------------------------------- */

int virtio_pci_bar_read(void *opaque, uint64_t off, void *data, unsigned size)
{
	struct virtio_pci *vp = opaque;
	memset(data, 0, size);
	if (off < VPCI_COMMON_OFF + VPCI_COMMON_LEN) {
		if (off + size > VPCI_COMMON_LEN)
			return 0;
		uint8_t c[VPCI_COMMON_LEN];
		pthread_mutex_lock(&vp->lock);
		common_snapshot(vp, c);
		pthread_mutex_unlock(&vp->lock);
		memcpy(data, c + off, size);
	} else if (off >= VPCI_ISR_OFF && off < VPCI_ISR_OFF + 4) {
		/* 4.1.4.5.1: reading the ISR status resets it to 0. */
		if (off == VPCI_ISR_OFF)
			*(uint8_t *)data = (uint8_t)__atomic_exchange_n(&vp->isr, 0, __ATOMIC_ACQ_REL);
	} else if (off >= VPCI_DEVICE_OFF && off < VPCI_DEVICE_OFF + VPCI_DEVICE_MAX) {
		uint64_t o = off - VPCI_DEVICE_OFF;
		if (o + size <= vp->ops->config_size)
			vp->ops->config_read(vp->dev, (uint32_t)o, data, size);
	} else if (off >= VPCI_MSIX_TABLE && off < VPCI_MSIX_TABLE + 0x1000) {
		pci_msix_table_read(&vp->msix, off - VPCI_MSIX_TABLE, data, size);
	} else if (off >= VPCI_MSIX_PBA && off < VPCI_MSIX_PBA + 0x1000) {
		pci_msix_pba_read(&vp->msix, off - VPCI_MSIX_PBA, data, size);
	}
	/* Everything else (notify region included) reads as 0. */
	return 0;
}

int virtio_pci_bar_write(void *opaque, uint64_t off, const void *data, unsigned size)
{
	struct virtio_pci *vp = opaque;
	uint64_t v = 0;
	memcpy(&v, data, size > 8 ? 8 : size);
	if (off < VPCI_COMMON_OFF + VPCI_COMMON_LEN) {
		pthread_mutex_lock(&vp->lock);
		common_write(vp, off, size, v);
		pthread_mutex_unlock(&vp->lock);
	} else if (off >= VPCI_DEVICE_OFF && off < VPCI_DEVICE_OFF + VPCI_DEVICE_MAX) {
		uint64_t o = off - VPCI_DEVICE_OFF;
		if (o + size <= vp->ops->config_size && vp->ops->config_write)
			vp->ops->config_write(vp->dev, (uint32_t)o, data, size);
	} else if (off >= VPCI_NOTIFY_OFF && off < VPCI_NOTIFY_OFF + VPCI_NOTIFY_MULT * vp->nq) {
		/* Reached only when no ioeventfd caught the write (see virtio_pci.h). */
		uint64_t o = off - VPCI_NOTIFY_OFF;
		if (o % VPCI_NOTIFY_MULT == 0) {
			struct virtio_pci_queue *q = &vp->queues[o / VPCI_NOTIFY_MULT];
			__atomic_add_fetch(&q->kicks_by_exit, 1, __ATOMIC_RELAXED);
			kick(q);
		}
	} else if (off >= VPCI_MSIX_TABLE && off < VPCI_MSIX_TABLE + 0x1000) {
		pci_msix_table_write(&vp->msix, off - VPCI_MSIX_TABLE, data, size);
	}
	return 0;
}

/* ---- VIRTIO_PCI_CAP_PCI_CFG: a window into the BAR through config space (4.1.4.9) -------- */

#define PCICFG_BAR  4
#define PCICFG_OFF  8
#define PCICFG_LEN  12
#define PCICFG_DATA 16

static bool pcicfg_target(struct virtio_pci *vp, uint32_t *boff, uint32_t *len)
{
	const uint8_t *c = vp->pdev.cfg + vp->pci_cfg_cap;
	*boff = rd32(c + PCICFG_OFF);
	*len = rd32(c + PCICFG_LEN);
	/* 4.1.4.9.1: cap.length 1, 2 or 4, cap.offset aligned to it, inside the BAR. */
	return c[PCICFG_BAR] == VPCI_BAR && (*len == 1 || *len == 2 || *len == 4) &&
	       *boff % *len == 0 && *boff <= VPCI_BAR_SIZE - *len;
}

static bool touches_data(struct virtio_pci *vp, uint32_t off, unsigned size)
{
	uint32_t d = vp->pci_cfg_cap + PCICFG_DATA;
	return off < d + 4 && off + size > d;
}

static void pcicfg_before_read(struct pci_dev *d, uint32_t off, unsigned size)
{
	struct virtio_pci *vp = d->owner;
	uint32_t boff, len;
	if (!touches_data(vp, off, size) || !pcicfg_target(vp, &boff, &len))
		return;
	uint8_t buf[4] = { 0 };
	virtio_pci_bar_read(vp, boff, buf, len);
	memcpy(d->cfg + vp->pci_cfg_cap + PCICFG_DATA, buf, 4);
}

static void pcicfg_after_write(struct pci_dev *d, uint32_t off, unsigned size)
{
	struct virtio_pci *vp = d->owner;
	uint32_t boff, len;
	if (!touches_data(vp, off, size) || !pcicfg_target(vp, &boff, &len))
		return;
	virtio_pci_bar_write(vp, boff, d->cfg + vp->pci_cfg_cap + PCICFG_DATA, len);
}

/* ---- setup and teardown ------------------------------------------------------------------ */

static uint8_t add_vcap(struct pci_dev *d, uint8_t type, uint32_t off, uint32_t len,
			const uint8_t *extra, uint8_t extra_len)
{
	/* struct virtio_pci_cap (4.1.4): vndr, next, len, cfg_type, bar, id, pad[2], offset,
	 * length; then type-specific fields. */
	uint8_t cap[24] = { PCI_CAP_ID_VNDR, 0, (uint8_t)(16 + extra_len), type, VPCI_BAR, 0 };
	wr32(cap + 8, off);
	wr32(cap + 12, len);
	if (extra_len)
		memcpy(cap + 16, extra, extra_len);
	return pci_dev_add_cap(d, cap, (uint8_t)(16 + extra_len));
}

int virtio_pci_init(struct virtio_pci *vp, struct pci_host *host, const struct virtq_dma *dma,
		    const struct virtio_dev_ops *ops, void *dev, const char *name,
		    struct ratelimit *rl, char *err, size_t errlen)
{
	memset(vp, 0, sizeof(*vp));
	pthread_mutex_init(&vp->lock, NULL);
	vp->ops = ops;
	vp->dev = dev;
	vp->name = name;
	vp->dma = *dma;
	vp->rl = rl;
	vp->vm_fd = host->vm_fd;
	vp->config_msix_vector = VIRTIO_MSI_NO_VECTOR;
	if (ops->num_queues == 0 || ops->num_queues > VPCI_MAX_QUEUES ||
	    ops->config_size > VPCI_DEVICE_MAX || ops->queue_size_max == 0 ||
	    (ops->queue_size_max & (ops->queue_size_max - 1)) || ops->queue_size_max > VIRTQ_MAX_SIZE) {
		snprintf(err, errlen, "%s: bad device description", name);
		return -1;
	}

	/* 4.1.2.1: vendor 0x1af4, device 0x1040 + virtio id, revision >= 1 for non-transitional
	 * devices, subsystem device id >= 0x40. */
	struct pci_dev *d = &vp->pdev;
	pci_dev_init(d, name, 0x1af4, (uint16_t)(0x1040 + ops->device_id), 1, ops->pci_class,
		     0x1af4, 0x1100);
	d->owner = vp;
	d->bar_remap = bar_remap;
	d->cfg_before_read = pcicfg_before_read;
	d->cfg_after_write = pcicfg_after_write;
	if (pci_dev_set_bar(d, VPCI_BAR, VPCI_BAR_SIZE, true, false, virtio_pci_bar_read,
			    virtio_pci_bar_write, vp, name) ||
	    pci_msix_init(&vp->msix, d, ops->num_queues + 1, VPCI_BAR, VPCI_MSIX_TABLE,
			  VPCI_MSIX_PBA, err, errlen))
		return -1;
	uint8_t mult[4];
	wr32(mult, VPCI_NOTIFY_MULT);
	uint8_t zero[4] = { 0 };
	if (!add_vcap(d, VIRTIO_PCI_CAP_COMMON_CFG, VPCI_COMMON_OFF, VPCI_COMMON_LEN, NULL, 0) ||
	    !add_vcap(d, VIRTIO_PCI_CAP_NOTIFY_CFG, VPCI_NOTIFY_OFF,
		      VPCI_NOTIFY_MULT * ops->num_queues, mult, 4) ||
	    !add_vcap(d, VIRTIO_PCI_CAP_ISR_CFG, VPCI_ISR_OFF, 4, NULL, 0) ||
	    (ops->config_size &&
	     !add_vcap(d, VIRTIO_PCI_CAP_DEVICE_CFG, VPCI_DEVICE_OFF, ops->config_size, NULL, 0)) ||
	    !(vp->pci_cfg_cap = add_vcap(d, VIRTIO_PCI_CAP_PCI_CFG, 0, 0, zero, 4))) {
		snprintf(err, errlen, "%s: capabilities do not fit config space", name);
		return -1;
	}
	/* The PCI_CFG window's bar, offset, length and data are the driver's to write. */
	d->wmask[vp->pci_cfg_cap + PCICFG_BAR] = 0xff;
	memset(d->wmask + vp->pci_cfg_cap + PCICFG_OFF, 0xff, 12);

	vp->nq = ops->num_queues;
	vp->queues = calloc(vp->nq, sizeof(*vp->queues));
	if (!vp->queues) {
		snprintf(err, errlen, "%s: out of memory", name);
		return -1;
	}
	for (unsigned i = 0; i < vp->nq; i++) {
		struct virtio_pci_queue *q = &vp->queues[i];
		q->vp = vp;
		q->index = i;
		q->size = ops->queue_size_max;
		q->msix_vector = VIRTIO_MSI_NO_VECTOR;
		q->kick_fd = q->stop_fd = -1;
		pthread_mutex_init(&q->lock, NULL);
		unsigned cap = ops->max_chain ? ops->max_chain : ops->queue_size_max;
		if (vq_req_init(&q->req, cap)) {
			snprintf(err, errlen, "%s: out of memory", name);
			return -1;
		}
		unsigned w = ops->workers ? ops->workers(dev) : 1;
		if (w > 1) {
			if (vq_exec_init(&q->exec, w, cap, &q->vq, ops, dev, i, notify_queue, q)) {
				snprintf(err, errlen, "%s: %u workers: out of memory", name, w);
				return -1;
			}
			q->exec_on = true;
		}
		q->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		q->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (q->kick_fd < 0 || q->stop_fd < 0) {
			snprintf(err, errlen, "%s: eventfd: %s", name, strerror(errno));
			return -1;
		}
		if (pthread_create(&q->thread, NULL, queue_thread, q)) {
			snprintf(err, errlen, "%s: cannot start the I/O thread", name);
			return -1;
		}
		q->thread_started = true;
	}
	/* Last: placing the BAR maps it and (bar_remap) assigns the notify ioeventfds. */
	return pci_host_add(host, d, err, errlen);
}

void virtio_pci_destroy(struct virtio_pci *vp)
{
	for (unsigned i = 0; vp->queues && i < vp->nq; i++) {
		struct virtio_pci_queue *q = &vp->queues[i];
		if (q->thread_started) {
			uint64_t one = 1;
			if (write(q->stop_fd, &one, sizeof(one)) < 0)
				perror("cvmm: virtio stop");
			pthread_join(q->thread, NULL);
		}
		if (q->exec_on)
			vq_exec_destroy(&q->exec); /* after the I/O thread: nothing pops any more */
		if (q->ioeventfd)
			ioeventfd_set(vp, q, q->ioeventfd_addr, false);
		if (q->kick_fd >= 0)
			close(q->kick_fd);
		if (q->stop_fd >= 0)
			close(q->stop_fd);
		vq_req_free(&q->req);
		pthread_mutex_destroy(&q->lock);
	}
	free(vp->queues);
	vp->queues = NULL;
	pci_msix_destroy(&vp->msix);
	pci_dev_destroy(&vp->pdev);
	pthread_mutex_destroy(&vp->lock);
}
