/* PCI host bridge, configuration space, BARs and MSI-X. See pci.h. */
#include "devices/pci.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "devices/irq.h"
#include "lib/kvm_compat.h"

#define CF8_PORT 0xcf8
#define CFC_PORT 0xcfc
#define ECAM_SIZE (256ULL << 20)

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void wr32(uint8_t *p, uint32_t v) { wr16(p, (uint16_t)v); wr16(p + 2, (uint16_t)(v >> 16)); }
/* What an access of `size` bytes to nothing reads: all ones. */
static inline uint32_t ones(unsigned size) { return size >= 4 ? 0xffffffffu : (1u << (8 * size)) - 1; }

/* ---- GSI routing ------------------------------------------------------------------------ */

/* KVM_SET_GSI_ROUTING replaces the whole table, so every commit re-states the PC pin routes
 * (devices/irq.h: irq_default_routes, the wiring the MADT describes) and appends our MSI
 * routes. route_lock held. */
static int commit_routes(struct pci_host *h)
{
	if (h->vm_fd < 0)
		return 0;
	unsigned n = IRQ_DEFAULT_ROUTES + h->nroutes;
	struct kvm_irq_routing *r = calloc(1, sizeof(*r) + n * sizeof(r->entries[0]));
	if (!r)
		return -1;
	unsigned k = irq_default_routes(r->entries, IRQ_DEFAULT_ROUTES);
	for (unsigned i = 0; i < h->nroutes; i++) {
		if (!h->route[i].set)
			continue;
		struct kvm_irq_routing_entry *e = &r->entries[k++];
		e->gsi = h->route[i].gsi;
		e->type = KVM_IRQ_ROUTING_MSI;
		e->u.msi.address_lo = h->route[i].addr_lo;
		e->u.msi.address_hi = h->route[i].addr_hi;
		e->u.msi.data = h->route[i].data;
	}
	r->nr = k;
	int rc = ioctl(h->vm_fd, KVM_SET_GSI_ROUTING, r);
	int saved = errno;
	free(r);
	errno = saved;
	return rc;
}

static int route_alloc(struct pci_host *h, uint32_t *gsi)
{
	pthread_mutex_lock(&h->route_lock);
	int rc = -1;
	if (h->nroutes < sizeof(h->route) / sizeof(h->route[0])) {
		h->route[h->nroutes].gsi = *gsi = h->next_gsi++;
		h->route[h->nroutes].set = false;
		h->nroutes++;
		rc = 0;
	}
	pthread_mutex_unlock(&h->route_lock);
	return rc;
}

static int route_set(struct pci_host *h, uint32_t gsi, uint32_t lo, uint32_t hi, uint32_t data)
{
	pthread_mutex_lock(&h->route_lock);
	int rc = -1;
	for (unsigned i = 0; i < h->nroutes; i++) {
		if (h->route[i].gsi != gsi)
			continue;
		h->route[i].addr_lo = lo;
		h->route[i].addr_hi = hi;
		h->route[i].data = data;
		h->route[i].set = true;
		rc = commit_routes(h);
		break;
	}
	pthread_mutex_unlock(&h->route_lock);
	return rc;
}

/* ---- configuration space of one function ------------------------------------------------ */

void pci_dev_init(struct pci_dev *d, const char *name, uint16_t vendor, uint16_t device,
		  uint8_t revision, uint32_t class, uint16_t subsys_vendor, uint16_t subsys_id)
{
	memset(d, 0, sizeof(*d));
	pthread_mutex_init(&d->lock, NULL);
	d->name = name;
	d->slot = -1;
	wr16(d->cfg + PCI_VENDOR_ID, vendor);
	wr16(d->cfg + PCI_DEVICE_ID, device);
	d->cfg[PCI_REVISION_ID] = revision;
	d->cfg[PCI_CLASS_PROG] = (uint8_t)class;
	d->cfg[PCI_CLASS_PROG + 1] = (uint8_t)(class >> 8);
	d->cfg[PCI_CLASS_PROG + 2] = (uint8_t)(class >> 16);
	d->cfg[PCI_HEADER_TYPE] = 0; /* type 0, single function */
	wr16(d->cfg + PCI_SUBSYS_VENDOR, subsys_vendor);
	wr16(d->cfg + PCI_SUBSYS_ID, subsys_id);
	/* Writable: memory decode, bus master, parity/SERR response, INTx disable. No I/O BARs,
	 * so the I/O enable bit is hardwired 0. Status is read-only (we never log errors). */
	wr16(d->wmask + PCI_COMMAND, PCI_CMD_MEM | PCI_CMD_MASTER | 0x0040 | 0x0100 |
				     PCI_CMD_INTX_DIS);
	d->wmask[PCI_CACHE_LINE] = 0xff;
	d->wmask[PCI_LATENCY] = 0xff;
	d->wmask[PCI_INT_LINE] = 0xff;
	d->cap_end = 0x40;
}

void pci_dev_destroy(struct pci_dev *d)
{
	pthread_mutex_destroy(&d->lock);
}

int pci_dev_set_bar(struct pci_dev *d, int bar, uint64_t size, bool is64, bool prefetch,
		    bus_read_fn rd, bus_write_fn wr, void *opaque, const char *name)
{
	/* Sizes up to 1 GiB keep every sizing bit in the low dword (the high dword of a 64-bit
	 * BAR is then fully writable), and fit the 1 GiB BAR window anyway. */
	if (bar < 0 || bar >= PCI_NUM_BARS || (is64 && bar == PCI_NUM_BARS - 1) || size < 16 ||
	    size > (1ULL << 30) || (size & (size - 1)))
		return -1;
	struct pci_bar *b = &d->bar[bar];
	*b = (struct pci_bar){ .size = size, .is64 = is64, .prefetch = prefetch, .read = rd,
			       .write = wr, .opaque = opaque, .name = name };
	return 0;
}

uint8_t pci_dev_add_cap(struct pci_dev *d, const void *cap, uint8_t len)
{
	unsigned off = (d->cap_end + 3u) & ~3u;
	if (len < 2 || off + len > PCI_CFG_SIZE)
		return 0;
	memcpy(d->cfg + off, cap, len);
	d->cfg[off + 1] = 0;
	/* Link: the header's pointer if this is the first, else the previous cap's next. */
	if (!d->cfg[PCI_CAP_PTR]) {
		d->cfg[PCI_CAP_PTR] = (uint8_t)off;
	} else {
		unsigned p = d->cfg[PCI_CAP_PTR];
		while (d->cfg[p + 1])
			p = d->cfg[p + 1];
		d->cfg[p + 1] = (uint8_t)off;
	}
	wr16(d->cfg + PCI_STATUS, rd16(d->cfg + PCI_STATUS) | PCI_STATUS_CAP_LIST);
	d->cap_end = (uint8_t)(off + len);
	return (uint8_t)off;
}

/* Which BAR a BAR-area dword belongs to: *half 0 = low (or 32-bit), 1 = high of 64-bit. */
static struct pci_bar *bar_of_reg(struct pci_dev *d, unsigned reg, int *idx, int *half)
{
	if (d->bar[reg].size) {
		*idx = (int)reg;
		*half = 0;
		return &d->bar[reg];
	}
	if (reg > 0 && d->bar[reg - 1].size && d->bar[reg - 1].is64) {
		*idx = (int)reg - 1;
		*half = 1;
		return &d->bar[reg - 1];
	}
	return NULL;
}

static uint32_t bar_reg_value(struct pci_dev *d, unsigned reg)
{
	int idx, half;
	struct pci_bar *b = bar_of_reg(d, reg, &idx, &half);
	if (!b)
		return 0; /* unimplemented BAR: hardwired 0, sizing finds nothing */
	if (half)
		return (uint32_t)(b->addr >> 32);
	return ((uint32_t)b->addr & ~0xfu) | (b->is64 ? PCI_BAR_MEM_64 : 0) |
	       (b->prefetch ? PCI_BAR_PREFETCH : 0);
}

/* The guest wrote a whole BAR dword: keep only the address bits the size allows. Writing
 * all ones thus reads back ~(size - 1) | flags: the size probe (PCI 3.0, 6.2.5.1). */
static void bar_reg_write(struct pci_dev *d, unsigned reg, uint32_t v)
{
	int idx, half;
	struct pci_bar *b = bar_of_reg(d, reg, &idx, &half);
	if (!b)
		return;
	if (half)
		b->addr = (b->addr & 0xffffffffULL) | (uint64_t)v << 32;
	else
		b->addr = (b->addr & ~0xffffffffULL) | (v & ~(uint32_t)(b->size - 1) & ~0xfu);
}

static bool bar_addr_ok(const struct pci_bar *b)
{
	/* 0 is "unassigned" by convention; a range that wraps (an all-ones sizing value) can
	 * never be decoded. */
	return b->addr != 0 && b->addr + b->size > b->addr;
}

/* Make bus registrations match command.MEM and the BAR registers. Called with d->lock held. */
static void update_mappings(struct pci_dev *d)
{
	if (!d->host)
		return;
	bool mem = rd16(d->cfg + PCI_COMMAND) & PCI_CMD_MEM;
	struct bus *bus = d->host->mmio;
	for (int i = 0; i < PCI_NUM_BARS; i++) {
		struct pci_bar *b = &d->bar[i];
		if (!b->size)
			continue;
		bool want = mem && bar_addr_ok(b);
		if (want == b->mapped && (!want || b->mapped_at == b->addr))
			continue;
		bool was = b->mapped;
		uint64_t old = b->mapped_at;
		if (was && want) {
			if (bus_move(bus, b->opaque, old, b->addr) == 0) {
				b->mapped_at = b->addr;
			} else {
				bus_unregister(bus, b->opaque, old);
				b->mapped = false;
			}
		} else if (want) {
			if (bus_register(bus, b->name, b->addr, b->size, b->read, b->write,
					 b->opaque) == 0) {
				b->mapped = true;
				b->mapped_at = b->addr;
			}
		} else {
			bus_unregister(bus, b->opaque, old);
			b->mapped = false;
		}
		if (want && !b->mapped)
			rl_log(&d->host->rl, "%s BAR%d at 0x%llx+0x%llx overlaps another device: "
			       "not decoded until moved", d->name, i, (unsigned long long)b->addr,
			       (unsigned long long)b->size);
		if (was != b->mapped || (was && old != b->mapped_at)) {
			d->bar_moves++;
			if (d->bar_remap)
				d->bar_remap(d, i, was, old, b->mapped, b->mapped_at);
		}
	}
}

static void msix_control_changed(struct pci_msix *m);
static int msix_bind(struct pci_msix *m, char *err, size_t errlen);

static uint32_t cfg_read_locked(struct pci_dev *d, uint32_t off, unsigned size)
{
	if (d->cfg_before_read)
		d->cfg_before_read(d, off, size);
	uint32_t v = 0;
	for (unsigned i = 0; i < size; i++) {
		uint32_t o = off + i;
		uint8_t byte;
		if (o >= PCI_BAR0 && o < PCI_BAR0 + 4 * PCI_NUM_BARS)
			byte = (uint8_t)(bar_reg_value(d, (o - PCI_BAR0) / 4) >> (8 * (o % 4)));
		else
			byte = d->cfg[o];
		v |= (uint32_t)byte << (8 * i);
	}
	return v;
}

uint32_t pci_cfg_read(struct pci_dev *d, uint32_t off, unsigned size)
{
	if ((size != 1 && size != 2 && size != 4) || off % size || off + size > PCI_ECAM_FN_SIZE)
		return ones(size);
	if (off >= PCI_CFG_SIZE)
		return 0; /* no extended capabilities */
	pthread_mutex_lock(&d->lock);
	uint32_t v = cfg_read_locked(d, off, size);
	pthread_mutex_unlock(&d->lock);
	return v;
}

void pci_cfg_write(struct pci_dev *d, uint32_t off, unsigned size, uint32_t val)
{
	if ((size != 1 && size != 2 && size != 4) || off % size || off >= PCI_CFG_SIZE)
		return;
	pthread_mutex_lock(&d->lock);
	bool remap = false;
	for (unsigned i = 0; i < size; i++) {
		uint32_t o = off + i;
		uint8_t byte = (uint8_t)(val >> (8 * i));
		if (o >= PCI_BAR0 && o < PCI_BAR0 + 4 * PCI_NUM_BARS) {
			/* Merge the byte into the BAR dword as the guest sees it, then apply the
			 * dword (sub-dword BAR writes are legal if unusual). */
			unsigned reg = (o - PCI_BAR0) / 4;
			uint32_t cur = bar_reg_value(d, reg);
			unsigned sh = 8 * (o % 4);
			cur = (cur & ~(0xffu << sh)) | (uint32_t)byte << sh;
			bar_reg_write(d, reg, cur);
			remap = true;
			continue;
		}
		d->cfg[o] = (uint8_t)((d->cfg[o] & ~d->wmask[o]) | (byte & d->wmask[o]));
		if (o == PCI_COMMAND)
			remap = true;
	}
	if (d->msix && off < d->msix->cap + 4u && off + size > d->msix->cap + 2u)
		msix_control_changed(d->msix);
	if (d->cfg_after_write)
		d->cfg_after_write(d, off, size);
	if (remap)
		update_mappings(d);
	pthread_mutex_unlock(&d->lock);
}

/* ---- the host bridge and the two access mechanisms --------------------------------------- */

static struct pci_dev *lookup(struct pci_host *h, unsigned bus, unsigned dev, unsigned fn)
{
	if (bus != 0 || fn != 0 || dev >= PCI_MAX_SLOTS)
		return NULL;
	return dev == 0 ? &h->bridge : h->dev[dev];
}

uint32_t pci_host_cfg_read(struct pci_host *h, unsigned bus, unsigned dev, unsigned fn,
			   uint32_t off, unsigned size)
{
	struct pci_dev *d = lookup(h, bus, dev, fn);
	if (!d)
		return ones(size);
	return pci_cfg_read(d, off, size);
}

void pci_host_cfg_write(struct pci_host *h, unsigned bus, unsigned dev, unsigned fn,
			uint32_t off, unsigned size, uint32_t val)
{
	struct pci_dev *d = lookup(h, bus, dev, fn);
	if (d)
		pci_cfg_write(d, off, size, val);
}

/* Mechanism #1: 0xCF8 is a 32-bit address latch (enable bit 31, bus 23:16, device 15:11,
 * function 10:8, register 7:2); 0xCFC..0xCFF is the data window into that dword. */
int pci_cf8_read(void *opaque, uint64_t off, void *data, unsigned size)
{
	struct pci_host *h = opaque;
	if (off != 0 || size != 4)
		return -1; /* byte/word accesses to 0xCF8..0xCFB are not mechanism #1 */
	uint32_t v = __atomic_load_n(&h->cf8, __ATOMIC_ACQUIRE);
	memcpy(data, &v, 4);
	return 0;
}

int pci_cf8_write(void *opaque, uint64_t off, const void *data, unsigned size)
{
	struct pci_host *h = opaque;
	if (off != 0 || size != 4)
		return -1;
	uint32_t v;
	memcpy(&v, data, 4);
	__atomic_store_n(&h->cf8, v & 0x80fffffcu, __ATOMIC_RELEASE);
	return 0;
}

int pci_cfc_read(void *opaque, uint64_t off, void *data, unsigned size)
{
	struct pci_host *h = opaque;
	uint32_t a = __atomic_load_n(&h->cf8, __ATOMIC_ACQUIRE);
	uint32_t v = 0xffffffffu;
	memset(data, 0xff, size);
	if ((a & 0x80000000u) && size <= 4 && off + size <= 4)
		v = pci_host_cfg_read(h, (a >> 16) & 0xff, (a >> 11) & 0x1f, (a >> 8) & 7,
				      (a & 0xfc) + (uint32_t)off, size);
	memcpy(data, &v, size > 4 ? 4 : size);
	return 0;
}

int pci_cfc_write(void *opaque, uint64_t off, const void *data, unsigned size)
{
	struct pci_host *h = opaque;
	uint32_t a = __atomic_load_n(&h->cf8, __ATOMIC_ACQUIRE);
	if (!(a & 0x80000000u) || size > 4 || off + size > 4)
		return 0;
	uint32_t v = 0;
	memcpy(&v, data, size);
	pci_host_cfg_write(h, (a >> 16) & 0xff, (a >> 11) & 0x1f, (a >> 8) & 7,
			   (a & 0xfc) + (uint32_t)off, size, v);
	return 0;
}

/* ECAM (PCIe 4.0, 7.2.2): offset = bus << 20 | device << 15 | function << 12 | register. */
int pci_ecam_read(void *opaque, uint64_t off, void *data, unsigned size)
{
	struct pci_host *h = opaque;
	unsigned bus = (unsigned)(off >> 20), dev = (unsigned)(off >> 15) & 31,
		 fn = (unsigned)(off >> 12) & 7;
	uint32_t reg = (uint32_t)(off & 0xfff);
	if (size == 8) { /* split a qword into two dwords (some guests use movq) */
		uint32_t lo = 0xffffffffu, hi = 0xffffffffu;
		if (reg % 8 == 0) {
			lo = pci_host_cfg_read(h, bus, dev, fn, reg, 4);
			hi = pci_host_cfg_read(h, bus, dev, fn, reg + 4, 4);
		}
		memcpy(data, &lo, 4);
		memcpy((uint8_t *)data + 4, &hi, 4);
		return 0;
	}
	uint32_t v = size <= 4 ? pci_host_cfg_read(h, bus, dev, fn, reg, size) : 0xffffffffu;
	memset(data, 0xff, size);
	memcpy(data, &v, size > 4 ? 4 : size);
	return 0;
}

int pci_ecam_write(void *opaque, uint64_t off, const void *data, unsigned size)
{
	struct pci_host *h = opaque;
	unsigned bus = (unsigned)(off >> 20), dev = (unsigned)(off >> 15) & 31,
		 fn = (unsigned)(off >> 12) & 7;
	uint32_t reg = (uint32_t)(off & 0xfff);
	if (size == 8) {
		if (reg % 8)
			return 0;
		uint32_t lo, hi;
		memcpy(&lo, data, 4);
		memcpy(&hi, (const uint8_t *)data + 4, 4);
		pci_host_cfg_write(h, bus, dev, fn, reg, 4, lo);
		pci_host_cfg_write(h, bus, dev, fn, reg + 4, 4, hi);
		return 0;
	}
	if (size > 4)
		return 0;
	uint32_t v = 0;
	memcpy(&v, data, size);
	pci_host_cfg_write(h, bus, dev, fn, reg, size, v);
	return 0;
}

int pci_host_init(struct pci_host *h, struct bus *pio, struct bus *mmio, int vm_fd,
		  const struct pci_layout *lay, char *err, size_t errlen)
{
	memset(h, 0, sizeof(*h));
	h->pio = pio;
	h->mmio = mmio;
	h->vm_fd = vm_fd;
	h->mmio_next = lay->mmio;
	h->mmio_end = lay->mmio_end;
	h->next_gsi = IRQ_FIRST_MSI_GSI;
	pthread_mutex_init(&h->route_lock, NULL);
	ratelimit_init(&h->rl, "pci", 10);
	if (vm_fd >= 0)
		h->ioeventfd_any_len = ioctl(vm_fd, KVM_CHECK_EXTENSION,
					     KVM_CAP_IOEVENTFD_ANY_LENGTH) > 0;
	/* Red Hat's generic PCIe host bridge id (QEMU gpex): no quirks attached in guests. */
	pci_dev_init(&h->bridge, "host-bridge", 0x1b36, 0x0008, 0, 0x060000, 0x1af4, 0x1100);
	h->bridge.host = h;
	h->bridge.slot = 0;
	wr16(h->bridge.cfg + PCI_COMMAND, PCI_CMD_MEM);
	if (bus_register(pio, "pci-cf8", CF8_PORT, 4, pci_cf8_read, pci_cf8_write, h) ||
	    bus_register(pio, "pci-cfc", CFC_PORT, 4, pci_cfc_read, pci_cfc_write, h) ||
	    bus_register(mmio, "pci-ecam", lay->ecam, ECAM_SIZE, pci_ecam_read, pci_ecam_write, h)) {
		snprintf(err, errlen, "pci: config space ports or ECAM window already in use");
		return -1;
	}
	return 0;
}

void pci_host_destroy(struct pci_host *h)
{
	pci_dev_destroy(&h->bridge);
	pthread_mutex_destroy(&h->route_lock);
	ratelimit_destroy(&h->rl);
}

int pci_host_add(struct pci_host *h, struct pci_dev *d, char *err, size_t errlen)
{
	int slot = -1;
	for (int i = 1; i < PCI_MAX_SLOTS; i++)
		if (!h->dev[i]) {
			slot = i;
			break;
		}
	if (slot < 0) {
		snprintf(err, errlen, "pci: no free slot for %s", d->name);
		return -1;
	}
	/* Firmware role: place each BAR naturally aligned in the BAR window, largest first is
	 * not needed for a handful of small BARs. */
	uint64_t next = h->mmio_next;
	for (int i = 0; i < PCI_NUM_BARS; i++) {
		struct pci_bar *b = &d->bar[i];
		if (!b->size)
			continue;
		uint64_t a = (next + b->size - 1) & ~(b->size - 1);
		if (a + b->size > h->mmio_end) {
			snprintf(err, errlen, "pci: BAR window full placing %s BAR%d", d->name, i);
			return -1;
		}
		b->addr = a;
		next = a + b->size;
	}
	h->mmio_next = next;
	d->host = h;
	d->slot = slot;
	if (d->msix && msix_bind(d->msix, err, errlen))
		return -1;
	pthread_mutex_lock(&d->lock);
	wr16(d->cfg + PCI_COMMAND, PCI_CMD_MEM | PCI_CMD_MASTER);
	update_mappings(d);
	bool ok = true;
	for (int i = 0; i < PCI_NUM_BARS; i++)
		if (d->bar[i].size && !d->bar[i].mapped)
			ok = false;
	pthread_mutex_unlock(&d->lock);
	if (!ok) {
		snprintf(err, errlen, "pci: cannot map %s BARs (MMIO range in use)", d->name);
		return -1;
	}
	h->dev[slot] = d;
	return 0;
}

/* ---- MSI-X ------------------------------------------------------------------------------- */

int pci_msix_init(struct pci_msix *m, struct pci_dev *d, unsigned nvec, int bar,
		  uint32_t table_off, uint32_t pba_off, char *err, size_t errlen)
{
	memset(m, 0, sizeof(*m));
	pthread_mutex_init(&m->lock, NULL);
	m->dev = d; /* from here on pci_msix_destroy is safe */
	for (unsigned v = 0; v < PCI_MSIX_MAX; v++)
		m->irqfd[v] = -1;
	if (nvec == 0 || nvec > PCI_MSIX_MAX || table_off % 8 || pba_off % 8) {
		snprintf(err, errlen, "msix: bad layout for %s", d->name);
		return -1;
	}
	m->nvec = nvec;
	uint8_t cap[12] = { PCI_CAP_ID_MSIX, 0 };
	wr16(cap + 2, (uint16_t)(nvec - 1));       /* table size - 1; enable, mask clear */
	wr32(cap + 4, table_off | (uint32_t)bar);  /* BIR in bits 2:0 */
	wr32(cap + 8, pba_off | (uint32_t)bar);
	m->cap = pci_dev_add_cap(d, cap, sizeof(cap));
	if (!m->cap) {
		snprintf(err, errlen, "msix: no room in %s config space", d->name);
		return -1;
	}
	wr16(d->wmask + m->cap + 2, PCI_MSIX_CTRL_ENABLE | PCI_MSIX_CTRL_FMASK);
	for (unsigned v = 0; v < nvec; v++) {
		m->table[v][MSIX_CTRL] = PCI_MSIX_ENTRY_MASKED; /* reset state: masked (6.8.2.9) */
		m->irqfd[v] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (m->irqfd[v] < 0) {
			snprintf(err, errlen, "msix: eventfd: %s", strerror(errno));
			return -1;
		}
	}
	d->msix = m;
	return 0;
}

/* Bind each vector's eventfd to a GSI of its own (needs d->host). Done when the device is
 * added to the host; a no-op without KVM. */
static int msix_bind(struct pci_msix *m, char *err, size_t errlen)
{
	struct pci_host *h = m->dev->host;
	for (unsigned v = 0; v < m->nvec; v++) {
		if (route_alloc(h, &m->gsi[v])) {
			snprintf(err, errlen, "msix: out of GSIs");
			return -1;
		}
		m->route_stale[v] = true;
		if (h->vm_fd < 0)
			continue;
		struct kvm_irqfd irqfd = { .fd = (uint32_t)m->irqfd[v], .gsi = m->gsi[v] };
		if (ioctl(h->vm_fd, KVM_IRQFD, &irqfd) < 0) {
			snprintf(err, errlen, "msix: KVM_IRQFD for %s vector %u: %s", m->dev->name, v,
				 strerror(errno));
			return -1;
		}
	}
	return 0;
}

void pci_msix_destroy(struct pci_msix *m)
{
	if (!m->dev)
		return; /* never initialised */
	struct pci_host *h = m->dev->host;
	for (unsigned v = 0; v < PCI_MSIX_MAX; v++) {
		if (m->irqfd[v] < 0)
			continue;
		if (h && h->vm_fd >= 0 && m->gsi[v]) {
			struct kvm_irqfd irqfd = { .fd = (uint32_t)m->irqfd[v], .gsi = m->gsi[v],
						   .flags = KVM_IRQFD_FLAG_DEASSIGN };
			ioctl(h->vm_fd, KVM_IRQFD, &irqfd);
		}
		close(m->irqfd[v]);
		m->irqfd[v] = -1;
	}
	pthread_mutex_destroy(&m->lock);
	m->dev = NULL;
}

static bool deliverable(const struct pci_msix *m, unsigned v)
{
	return m->enabled && !m->fmask && !(m->table[v][MSIX_CTRL] & PCI_MSIX_ENTRY_MASKED);
}

/* Deliver vector v now. m->lock held. */
static void fire(struct pci_msix *m, unsigned v)
{
	struct pci_host *h = m->dev->host;
	if (m->route_stale[v] && h) {
		/* The guest changed address/data since the last delivery: one routing update,
		 * then the irqfd injects with the new message. */
		if (route_set(h, m->gsi[v], m->table[v][MSIX_ADDR_LO], m->table[v][MSIX_ADDR_HI],
			      m->table[v][MSIX_DATA]) < 0)
			rl_log(&h->rl, "%s: MSI route for vector %u: %s", m->dev->name, v,
			       strerror(errno));
		m->route_stale[v] = false;
	}
	uint64_t one = 1;
	if (write(m->irqfd[v], &one, sizeof(one)) < 0 && errno != EAGAIN && h)
		rl_log(&h->rl, "%s: irqfd write: %s", m->dev->name, strerror(errno));
	m->fired++;
}

/* Deliver what became deliverable and was pending. m->lock held. */
static void flush_pending(struct pci_msix *m)
{
	for (unsigned v = 0; v < m->nvec; v++)
		if ((m->pba & (1ULL << v)) && deliverable(m, v)) {
			m->pba &= ~(1ULL << v);
			fire(m, v);
		}
}

static void msix_control_changed(struct pci_msix *m)
{
	uint16_t ctrl = rd16(m->dev->cfg + m->cap + 2);
	pthread_mutex_lock(&m->lock);
	m->enabled = ctrl & PCI_MSIX_CTRL_ENABLE;
	m->fmask = ctrl & PCI_MSIX_CTRL_FMASK;
	flush_pending(m);
	pthread_mutex_unlock(&m->lock);
}

bool pci_msix_enabled(struct pci_msix *m)
{
	pthread_mutex_lock(&m->lock);
	bool e = m->enabled;
	pthread_mutex_unlock(&m->lock);
	return e;
}

void pci_msix_signal(struct pci_msix *m, unsigned vec)
{
	if (vec >= m->nvec)
		return;
	pthread_mutex_lock(&m->lock);
	if (deliverable(m, vec)) {
		fire(m, vec);
	} else {
		m->pba |= 1ULL << vec; /* pending until unmasked (6.8.2.10) */
		m->deferred++;
	}
	pthread_mutex_unlock(&m->lock);
}

/* Table entries are 16 bytes: address low, address high, data, vector control. Accesses are
 * dword or aligned qword (6.8.2); anything else is ignored / reads 0. */
int pci_msix_table_read(struct pci_msix *m, uint64_t off, void *data, unsigned size)
{
	uint64_t v = 0;
	if ((size == 4 || size == 8) && off % size == 0 && off + size <= 16ULL * m->nvec) {
		pthread_mutex_lock(&m->lock);
		const uint32_t *e = m->table[off / 16];
		unsigned f = (unsigned)(off % 16) / 4;
		v = e[f];
		if (size == 8) /* aligned: f is 0 or 2 */
			v |= (uint64_t)e[f + 1] << 32;
		pthread_mutex_unlock(&m->lock);
	}
	memcpy(data, &v, size > 8 ? 8 : size);
	return 0;
}

int pci_msix_table_write(struct pci_msix *m, uint64_t off, const void *data, unsigned size)
{
	if ((size != 4 && size != 8) || off % size || off + size > 16ULL * m->nvec)
		return 0;
	uint64_t val = 0;
	memcpy(&val, data, size);
	pthread_mutex_lock(&m->lock);
	unsigned v = (unsigned)(off / 16);
	uint32_t *e = m->table[v];
	for (unsigned f = (unsigned)(off % 16) / 4, k = 0; k < size / 4; k++, f++, val >>= 32) {
		if (f == MSIX_CTRL) {
			e[f] = (uint32_t)val & PCI_MSIX_ENTRY_MASKED; /* other bits reserved */
		} else if (e[f] != (uint32_t)val) {
			e[f] = (uint32_t)val;
			m->route_stale[v] = true;
		}
	}
	flush_pending(m);
	pthread_mutex_unlock(&m->lock);
	return 0;
}

int pci_msix_pba_read(struct pci_msix *m, uint64_t off, void *data, unsigned size)
{
	uint64_t v = 0;
	if ((size == 4 || size == 8) && off % size == 0 && off + size <= 8) {
		pthread_mutex_lock(&m->lock);
		v = m->pba >> (8 * off);
		pthread_mutex_unlock(&m->lock);
	}
	memcpy(data, &v, size > 8 ? 8 : size);
	return 0;
}
