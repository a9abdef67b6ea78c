/* virtio modern PCI transport, driver side, ring 3. See virtio_pci.h. Section numbers are
 * virtio 1.2's. Every access to the common configuration is an MMIO exit (~25 us here): the
 * data path touches it only to notify (an ioeventfd under cvmm and QEMU: cheaper). */
#include "drivers/virtio_pci.h"

#include "lib/rt.h"

#define RESET_TIMEOUT_NS 1000000000ull

static inline uint8_t rd8(volatile uint8_t *b, unsigned off) { return b[off]; }
static inline uint16_t rd16(volatile uint8_t *b, unsigned off) { return *(volatile uint16_t *)(b + off); }
static inline uint32_t rd32(volatile uint8_t *b, unsigned off) { return *(volatile uint32_t *)(b + off); }
static inline void wr8(volatile uint8_t *b, unsigned off, uint8_t v) { b[off] = v; }
static inline void wr16(volatile uint8_t *b, unsigned off, uint16_t v) { *(volatile uint16_t *)(b + off) = v; }
static inline void wr32(volatile uint8_t *b, unsigned off, uint32_t v) { *(volatile uint32_t *)(b + off) = v; }

/* 64-bit fields of the common configuration as two 32-bit writes, low half first (4.1.3.1). */
static void wr64(volatile uint8_t *b, unsigned off, uint64_t v)
{
	wr32(b, off, (uint32_t)v);
	wr32(b, off + 4, v >> 32);
}

static int virtio_type_of(const struct pci_dev *d)
{
	if (d->vendor != VIRTIO_PCI_VENDOR)
		return -1;
	if (d->device >= 0x1040 && d->device <= 0x107f)
		return d->device - 0x1040;
	if (d->device >= 0x1000 && d->device <= 0x103f) /* transitional: type in subsystem ID */
		return d->subsys_id;
	return -1;
}

static int walk_caps(struct virtio_dev *v)
{
	struct pci_dev *d = v->pci;
	unsigned ptr, guard = 0;

	if (!(pci_read16(d, PCI_STATUS) & PCI_STATUS_CAP_LIST)) {
		printf("# %s: no capability list\n", v->name);
		return -1;
	}
	for (ptr = pci_read8(d, PCI_CAP_PTR) & ~3u; ptr >= 0x40 && guard < 48;
	     ptr = pci_read8(d, ptr + 1) & ~3u, guard++) {
		unsigned type, bar;
		uint32_t off, len;
		volatile uint8_t *p;

		if (pci_read8(d, ptr) != PCI_CAP_ID_VNDR)
			continue;
		type = pci_read8(d, ptr + 3);
		bar = pci_read8(d, ptr + 4);
		off = pci_read32(d, ptr + 8);
		len = pci_read32(d, ptr + 12);
		if (type < VIRTIO_PCI_CAP_COMMON_CFG || type > VIRTIO_PCI_CAP_DEVICE_CFG)
			continue; /* PCI_CFG access, shared memory, vendor: not used */
		p = (volatile uint8_t *)pci_bar_ptr(d, bar, off, len);
		if (!p)
			continue; /* 4.1.4.1: ignore a capability we cannot use; the first usable wins */
		switch (type) {
		case VIRTIO_PCI_CAP_COMMON_CFG:
			if (!v->common && len >= VCC_MIN_LEN)
				v->common = p;
			break;
		case VIRTIO_PCI_CAP_NOTIFY_CFG:
			if (!v->notify) {
				v->notify = p;
				v->notify_len = len;
				v->notify_mult = pci_read32(d, ptr + 16);
			}
			break;
		case VIRTIO_PCI_CAP_ISR_CFG:
			if (!v->isr)
				v->isr = p;
			break;
		case VIRTIO_PCI_CAP_DEVICE_CFG:
			if (!v->devcfg) {
				v->devcfg = p;
				v->devcfg_len = len;
			}
			break;
		}
	}
	if (!v->common || !v->notify) {
		printf("# %s: missing %s configuration capability\n", v->name,
		       !v->common ? "common" : "notify");
		return -1;
	}
	return 0;
}

int virtio_pci_type(const struct pci_dev *d)
{
	return virtio_type_of(d);
}

int virtio_pci_attach(struct virtio_dev *v, struct pci_dev *d, unsigned type, bool quiet)
{
	memset(v, 0, sizeof(*v));
	v->pci = d;
	v->type = type;
	snprintf(v->name, sizeof(v->name), "virtio-%s %02x:%02x.%x",
		 type == VIRTIO_ID_BLOCK ? "blk" : type == VIRTIO_ID_PMEM ? "pmem" : "dev", d->bus,
		 d->dev, d->fn);
	if (pci_enable(d) < 0 || walk_caps(v) < 0)
		return -1;
	if (!quiet)
		t_diag("%s: common cfg at 0x%lx, notify at 0x%lx (x %u), device cfg at 0x%lx; ECAM 0x%lx (%s)",
		       v->name, (uint64_t)v->common, (uint64_t)v->notify, v->notify_mult,
		       (uint64_t)v->devcfg, pci_ecam_base(), pci_ecam_source());
	return 0;
}

int virtio_pci_find(struct virtio_dev *v, unsigned type, int nth)
{
	struct pci_dev *d = 0;
	int found = 0;

	memset(v, 0, sizeof(*v));
	if (pci_init() < 0)
		return -1;
	for (int i = 0; i < pci_count(); i++) {
		struct pci_dev *c = pci_get(i);

		if (virtio_type_of(c) == (int)type && found++ == nth) {
			d = c;
			break;
		}
	}
	if (!d) {
		printf("# no virtio device of type %u number %d on PCI (%d of that type; ECAM 0x%lx "
		       "from %s, %d functions)\n",
		       type, nth, found, pci_ecam_base(), pci_ecam_source(), pci_count());
		return -1;
	}
	return virtio_pci_attach(v, d, type, false);
}

uint8_t virtio_status(struct virtio_dev *v)
{
	return rd8(v->common, VCC_DEVICE_STATUS);
}

static void set_status(struct virtio_dev *v, uint8_t s)
{
	wr8(v->common, VCC_DEVICE_STATUS, s);
}

int virtio_reset(struct virtio_dev *v)
{
	uint64_t deadline = deadline_after_ns(RESET_TIMEOUT_NS);

	set_status(v, 0);
	/* 4.1.4.3.2: the driver waits for device_status to read 0 before reinitialising */
	while (virtio_status(v) != 0) {
		if (deadline_passed(deadline)) {
			printf("# %s: device_status still 0x%x 1 s after reset\n", v->name,
			       virtio_status(v));
			return -1;
		}
		cpu_relax();
	}
	return 0;
}

int virtio_init(struct virtio_dev *v, uint64_t wanted)
{
	uint8_t s;

	wanted |= 1ull << VIRTIO_F_VERSION_1;
	if (arg_u64("event_idx", 1))
		wanted |= 1ull << VIRTIO_F_EVENT_IDX;
	else
		wanted &= ~(1ull << VIRTIO_F_EVENT_IDX);
	if (arg_u64("indirect", 1))
		wanted |= 1ull << VIRTIO_F_INDIRECT_DESC;
	else
		wanted &= ~(1ull << VIRTIO_F_INDIRECT_DESC);
	v->wanted = wanted;
	v->timeout_ns = arg_u64("timeout_ms", 2000) * 1000000ull;
	if (virtio_reset(v) < 0)
		return -1;
	set_status(v, VIRTIO_S_ACKNOWLEDGE);
	set_status(v, VIRTIO_S_ACKNOWLEDGE | VIRTIO_S_DRIVER);
	wr32(v->common, VCC_DEVICE_FEATURE_SELECT, 0);
	v->offered = rd32(v->common, VCC_DEVICE_FEATURE);
	wr32(v->common, VCC_DEVICE_FEATURE_SELECT, 1);
	v->offered |= (uint64_t)rd32(v->common, VCC_DEVICE_FEATURE) << 32;
	if (!(v->offered >> VIRTIO_F_VERSION_1 & 1)) {
		printf("# %s: VIRTIO_F_VERSION_1 not offered (features 0x%lx): legacy only\n", v->name,
		       v->offered);
		set_status(v, VIRTIO_S_FAILED);
		return -1;
	}
	v->features = v->offered & wanted;
	wr32(v->common, VCC_DRIVER_FEATURE_SELECT, 0);
	wr32(v->common, VCC_DRIVER_FEATURE, (uint32_t)v->features);
	wr32(v->common, VCC_DRIVER_FEATURE_SELECT, 1);
	wr32(v->common, VCC_DRIVER_FEATURE, v->features >> 32);
	set_status(v, VIRTIO_S_ACKNOWLEDGE | VIRTIO_S_DRIVER | VIRTIO_S_FEATURES_OK);
	s = virtio_status(v);
	if (!(s & VIRTIO_S_FEATURES_OK)) { /* 3.1.1 step 6 */
		printf("# %s: FEATURES_OK did not stick (status 0x%x, features 0x%lx)\n", v->name, s,
		       v->features);
		set_status(v, s | VIRTIO_S_FAILED);
		return -1;
	}
	return 0;
}

int virtio_setup_queue(struct virtio_dev *v, unsigned index, struct virtq *q, unsigned max_size)
{
	unsigned devmax, size, cap = arg_u64("qsize", 32768);
	uint16_t off;

	if (index >= VIRTIO_MAX_QUEUES)
		return -1;
	wr16(v->common, VCC_QUEUE_SELECT, index);
	devmax = rd16(v->common, VCC_QUEUE_SIZE);
	if (!devmax) {
		printf("# %s: queue %u not available\n", v->name, index);
		return -1;
	}
	size = devmax < max_size ? devmax : max_size;
	if (size > cap)
		size = cap < 4 ? 4 : cap; /* a request of header, data and status needs 3 */
	while (size & (size - 1)) /* split queues: a power of two (2.7) */
		size &= size - 1;
	if (!size)
		return -1;
	if (!q->size) {
		if (vq_alloc(q, size) < 0) {
			printf("# %s: out of memory for queue %u\n", v->name, index);
			return -1;
		}
	} else if (q->size > devmax) {
		return -1;
	}
	q->dev = v;
	q->index = index;
	q->dev_max = devmax;
	q->event_idx = virtio_has(v, VIRTIO_F_EVENT_IDX);
	q->indirect = virtio_has(v, VIRTIO_F_INDIRECT_DESC);
	q->timeout_ns = v->timeout_ns;
	vq_reinit(q);
	wr16(v->common, VCC_QUEUE_SIZE, q->size);
	wr16(v->common, VCC_QUEUE_MSIX_VECTOR, VIRTIO_MSI_NO_VECTOR);
	wr64(v->common, VCC_QUEUE_DESC, (uint64_t)q->desc);
	wr64(v->common, VCC_QUEUE_DRIVER, (uint64_t)q->avail);
	wr64(v->common, VCC_QUEUE_DEVICE, (uint64_t)q->used);
	off = rd16(v->common, VCC_QUEUE_NOTIFY_OFF);
	if ((uint64_t)off * v->notify_mult + 2 > v->notify_len) {
		printf("# %s: queue %u notify offset %u x %u outside the notify region (%u bytes)\n",
		       v->name, index, off, v->notify_mult, v->notify_len);
		return -1;
	}
	q->notify = (volatile uint16_t *)(v->notify + (uint64_t)off * v->notify_mult);
	wr16(v->common, VCC_QUEUE_ENABLE, 1);
	v->queues[index] = q;
	if (index + 1 > v->nqueues)
		v->nqueues = index + 1;
	return 0;
}

void virtio_driver_ok(struct virtio_dev *v)
{
	set_status(v, virtio_status(v) | VIRTIO_S_DRIVER_OK);
}

int virtio_reinit(struct virtio_dev *v)
{
	if (virtio_init(v, v->wanted) < 0)
		return -1;
	for (unsigned i = 0; i < v->nqueues; i++)
		if (v->queues[i] && virtio_setup_queue(v, i, v->queues[i], v->queues[i]->size) < 0)
			return -1;
	virtio_driver_ok(v);
	return 0;
}

/* 4.1.4.3.1 / 2.5.1: re-read until config_generation is the same before and after. */
#define CFG_READ(v, expr)                                                                         \
	({                                                                                        \
		__typeof__(expr) val_;                                                            \
		uint8_t g_;                                                                       \
		int tries_ = 0;                                                                   \
		do {                                                                              \
			g_ = rd8((v)->common, VCC_CONFIG_GENERATION);                             \
			val_ = (expr);                                                            \
		} while (g_ != rd8((v)->common, VCC_CONFIG_GENERATION) && ++tries_ < 100);        \
		val_;                                                                             \
	})

static bool cfg_in(struct virtio_dev *v, unsigned off, unsigned len)
{
	return v->devcfg && off + len <= v->devcfg_len;
}

uint8_t virtio_cfg8(struct virtio_dev *v, unsigned off)
{
	return cfg_in(v, off, 1) ? CFG_READ(v, rd8(v->devcfg, off)) : 0;
}

uint16_t virtio_cfg16(struct virtio_dev *v, unsigned off)
{
	return cfg_in(v, off, 2) ? CFG_READ(v, rd16(v->devcfg, off)) : 0;
}

uint32_t virtio_cfg32(struct virtio_dev *v, unsigned off)
{
	return cfg_in(v, off, 4) ? CFG_READ(v, rd32(v->devcfg, off)) : 0;
}

uint64_t virtio_cfg64(struct virtio_dev *v, unsigned off)
{
	/* 4.1.3.1: 64-bit fields are read as two 32-bit accesses */
	return cfg_in(v, off, 8) ? CFG_READ(v, rd32(v->devcfg, off) |
						  (uint64_t)rd32(v->devcfg, off + 4) << 32)
				 : 0;
}

void virtio_features_str(uint64_t f, char *buf, unsigned size)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = {
		{ VIRTIO_F_VERSION_1, "VERSION_1" },
		{ VIRTIO_F_EVENT_IDX, "EVENT_IDX" },
		{ VIRTIO_F_INDIRECT_DESC, "INDIRECT_DESC" },
		{ VIRTIO_F_ACCESS_PLATFORM, "ACCESS_PLATFORM" },
		{ VIRTIO_F_RING_PACKED, "RING_PACKED" },
	};
	unsigned len = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (f >> names[i].bit & 1) {
			len += snprintf(buf + len, len < size ? size - len : 0, "%s%s", len ? " " : "",
					names[i].name);
			f &= ~(1ull << names[i].bit);
		}
	if (f && len < size)
		snprintf(buf + len, size - len, "%s+0x%lx", len ? " " : "", f);
}
