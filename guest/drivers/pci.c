/* PCI enumeration through ECAM, from ring 3. See pci.h. Every configuration access is an MMIO
 * exit to the VMM (~25 us here), so the scan reads only what it needs. */
#include "drivers/pci.h"

#include "lib/rt.h"

#define ECAM_DEFAULT 0xB0000000ull
#define ECAM_FN_SIZE 4096
#define ECAM_BUS_SIZE (256ull * ECAM_FN_SIZE)
#define LOW_UC_START 0xB0000000ull /* [0xB0000000, 4 GiB) is mapped uncached at boot */
#define FOUR_GIB 0x100000000ull

static uint64_t ecam_base;
static unsigned ecam_bus_lo, ecam_bus_hi;
static const char *ecam_src = "default";
static struct pci_dev devs[PCI_MAX_DEVS];
static int ndevs;
/* free windows for unassigned BARs: [next, end) below 4 GiB, and one for 64-bit BARs (if given) */
static uint64_t mmio_next, mmio_end, mmio64_next, mmio64_end;

/* ---- ACPI: the MCFG table --------------------------------------------------------------- */

struct acpi_sdt {
	char sig[4];
	uint32_t length;
	uint8_t revision, checksum;
	char oem[6], oem_table[8];
	uint32_t oem_rev, creator, creator_rev;
} __attribute__((packed));

static bool acpi_ok(uint64_t addr, uint64_t len)
{
	/* tables live in RAM below 4 GiB (identity mapped at boot); refuse anything else */
	return addr && addr < FOUR_GIB && len <= FOUR_GIB - addr;
}

static bool checksum_ok(const void *p, uint32_t len)
{
	const uint8_t *b = p;
	uint8_t sum = 0;

	while (len--)
		sum += *b++;
	return sum == 0;
}

static const struct acpi_sdt *sdt_at(uint64_t addr)
{
	const struct acpi_sdt *t = (const void *)addr;

	if (!acpi_ok(addr, sizeof(*t)) || !acpi_ok(addr, t->length) || t->length < sizeof(*t) ||
	    t->length > (1u << 20) || !checksum_ok(t, t->length))
		return 0;
	return t;
}

/* ECAM base of segment 0 from MCFG, or 0. */
static uint64_t mcfg_lookup(uint64_t rsdp_addr)
{
	const uint8_t *rsdp = (const void *)rsdp_addr;
	const struct acpi_sdt *root;
	unsigned esize, n;

	if (!acpi_ok(rsdp_addr, 36) || memcmp(rsdp, "RSD PTR ", 8) || !checksum_ok(rsdp, 20))
		return 0;
	if (rsdp[15] >= 2 && checksum_ok(rsdp, 36) && *(const uint64_t *)(rsdp + 24)) {
		root = sdt_at(*(const uint64_t *)(rsdp + 24)); /* XSDT: 64-bit entries */
		esize = 8;
	} else {
		root = sdt_at(*(const uint32_t *)(rsdp + 16)); /* RSDT: 32-bit entries */
		esize = 4;
	}
	if (!root)
		return 0;
	n = (root->length - sizeof(*root)) / esize;
	for (unsigned i = 0; i < n; i++) {
		const uint8_t *e = (const uint8_t *)(root + 1) + i * esize;
		uint64_t a = esize == 8 ? *(const uint64_t *)e : *(const uint32_t *)e;
		const struct acpi_sdt *t = sdt_at(a);

		if (!t || memcmp(t->sig, "MCFG", 4))
			continue;
		/* 8 reserved bytes, then {u64 base; u16 segment; u8 start_bus, end_bus; u32 rsvd} */
		for (uint32_t off = sizeof(*t) + 8; off + 16 <= t->length; off += 16) {
			const uint8_t *m = (const uint8_t *)t + off;

			if (*(const uint16_t *)(m + 8) == 0) {
				ecam_bus_lo = m[10];
				ecam_bus_hi = m[11];
				return *(const uint64_t *)m;
			}
		}
	}
	return 0;
}

/* ---- configuration space ----------------------------------------------------------------- */

static volatile uint8_t *fn_cfg(unsigned bus, unsigned dev, unsigned fn)
{
	return (volatile uint8_t *)(ecam_base + (uint64_t)bus * ECAM_BUS_SIZE +
				    ((dev << 3 | fn) * ECAM_FN_SIZE));
}

/* MMIO from ring 3: plain volatile accesses of the exact width (one instruction each). */
static inline uint16_t mmio_read16(volatile uint8_t *p) { return *(volatile uint16_t *)p; }
static inline uint32_t mmio_read32(volatile uint8_t *p) { return *(volatile uint32_t *)p; }

uint8_t pci_read8(const struct pci_dev *d, unsigned off) { return d->cfg[off]; }
uint16_t pci_read16(const struct pci_dev *d, unsigned off) { return mmio_read16(d->cfg + off); }
uint32_t pci_read32(const struct pci_dev *d, unsigned off) { return mmio_read32(d->cfg + off); }

void pci_write16(const struct pci_dev *d, unsigned off, uint16_t v)
{
	*(volatile uint16_t *)(d->cfg + off) = v;
}

void pci_write32(const struct pci_dev *d, unsigned off, uint32_t v)
{
	*(volatile uint32_t *)(d->cfg + off) = v;
}

/* ---- BARs ------------------------------------------------------------------------------- */

static void size_bars(struct pci_dev *d)
{
	unsigned nbars = (d->header & 0x7f) == 0 ? 6 : (d->header & 0x7f) == 1 ? 2 : 0;
	uint16_t cmd = pci_read16(d, PCI_COMMAND);

	if (!nbars)
		return;
	/* decoding off while the BARs hold all-ones (PCI 3.0, 6.2.5.1) */
	pci_write16(d, PCI_COMMAND, cmd & ~(PCI_CMD_IO | PCI_CMD_MEM));
	for (unsigned i = 0; i < nbars; i++) {
		unsigned off = PCI_BAR0 + 4 * i;
		uint32_t lo = pci_read32(d, off), mlo, hi = 0, mhi = 0xffffffff;
		struct pci_bar *b = &d->bar[i];

		if (lo & 1) { /* I/O BAR: recorded, never used (port I/O faults in ring 3) */
			b->kind = BAR_IO;
			b->addr = lo & ~3u;
			continue;
		}
		pci_write32(d, off, 0xffffffff);
		mlo = pci_read32(d, off);
		pci_write32(d, off, lo);
		if (!(mlo & ~0xfu))
			continue; /* not implemented */
		b->prefetch = lo & 8;
		if (((lo >> 1) & 3) == 2 && i + 1 < nbars) {
			b->kind = BAR_MEM64;
			hi = pci_read32(d, off + 4);
			pci_write32(d, off + 4, 0xffffffff);
			mhi = pci_read32(d, off + 4);
			pci_write32(d, off + 4, hi);
			i++;
		} else {
			b->kind = BAR_MEM32;
		}
		b->addr = ((uint64_t)hi << 32 | lo) & ~0xfull;
		b->size = ~(((uint64_t)mhi << 32 | mlo) & ~0xfull) + 1;
		if (b->kind == BAR_MEM32)
			b->size &= 0xffffffffull;
	}
	pci_write16(d, PCI_COMMAND, cmd);
}

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

/* A free, naturally aligned range of `size` bytes in a window, or 0. */
static uint64_t alloc_mmio(uint64_t size, bool is64)
{
	bool w64 = is64 && mmio64_next; /* without a 64-bit window, 64-bit BARs go low too */
	uint64_t *next = w64 ? &mmio64_next : &mmio_next, end = w64 ? mmio64_end : mmio_end;
	uint64_t cand = (*next + size - 1) & ~(size - 1);
	bool moved;

	do {
		moved = false;
		if (overlaps(cand, size, ecam_base, (uint64_t)(ecam_bus_hi + 1) * ECAM_BUS_SIZE)) {
			cand = (ecam_base + (uint64_t)(ecam_bus_hi + 1) * ECAM_BUS_SIZE + size - 1) & ~(size - 1);
			moved = true;
		}
		for (int i = 0; i < ndevs && !moved; i++)
			for (int j = 0; j < PCI_NUM_BARS && !moved; j++) {
				const struct pci_bar *b = &devs[i].bar[j];

				if ((b->kind == BAR_MEM32 || b->kind == BAR_MEM64) && b->addr &&
				    overlaps(cand, size, b->addr, b->size)) {
					cand = (b->addr + b->size + size - 1) & ~(size - 1);
					moved = true;
				}
			}
		if (cand + size > end || cand + size < cand)
			return 0;
	} while (moved);
	*next = cand + size;
	return cand;
}

/* ---- enumeration ------------------------------------------------------------------------ */

static void scan_bus(unsigned bus, int depth);

static void add_fn(unsigned bus, unsigned dev, unsigned fn, int depth)
{
	volatile uint8_t *c = fn_cfg(bus, dev, fn);
	struct pci_dev *d;
	uint32_t cr;

	if (ndevs == PCI_MAX_DEVS)
		return;
	d = &devs[ndevs++];
	d->bus = bus;
	d->dev = dev;
	d->fn = fn;
	d->cfg = c;
	d->vendor = mmio_read16(c + PCI_VENDOR_ID);
	d->device = mmio_read16(c + PCI_DEVICE_ID);
	d->header = c[PCI_HEADER_TYPE];
	cr = mmio_read32(c + PCI_CLASS_REV);
	d->rev = cr;
	d->progif = cr >> 8;
	d->subclass = cr >> 16;
	d->class = cr >> 24;
	if ((d->header & 0x7f) == 0) {
		d->subsys_vendor = mmio_read16(c + PCI_SUBSYS_VENDOR);
		d->subsys_id = mmio_read16(c + PCI_SUBSYS_ID);
	}
	size_bars(d);
	if ((d->header & 0x7f) == 1 && depth < 4) { /* PCI-PCI bridge numbered by firmware */
		unsigned sec = c[PCI_SECONDARY_BUS];

		if (sec > bus && sec <= ecam_bus_hi)
			scan_bus(sec, depth + 1);
	}
}

static void scan_bus(unsigned bus, int depth)
{
	for (unsigned dev = 0; dev < 32; dev++) {
		volatile uint8_t *c = fn_cfg(bus, dev, 0);
		unsigned nfn;

		if (mmio_read16(c + PCI_VENDOR_ID) == 0xffff)
			continue;
		nfn = c[PCI_HEADER_TYPE] & 0x80 ? 8 : 1;
		add_fn(bus, dev, 0, depth);
		for (unsigned fn = 1; fn < nfn; fn++)
			if (mmio_read16(fn_cfg(bus, dev, fn) + PCI_VENDOR_ID) != 0xffff)
				add_fn(bus, dev, fn, depth);
	}
}

int pci_init(void)
{
	const struct hvm_start_info *si = boot_start_info();
	uint64_t a;

	if (ecam_base)
		return ndevs;
	ecam_bus_lo = 0;
	ecam_bus_hi = 255;
	if ((a = arg_u64("ecam", 0))) {
		ecam_src = "cmdline";
	} else if (si && si->rsdp_paddr && (a = mcfg_lookup(si->rsdp_paddr))) {
		ecam_src = "acpi-mcfg";
	} else {
		a = ECAM_DEFAULT;
		ecam_src = "default";
		ecam_bus_hi = 255;
	}
	if (ecam_bus_lo != 0 || ecam_bus_hi < ecam_bus_lo) {
		printf("# pci: MCFG segment 0 covers buses %u-%u, not bus 0\n", ecam_bus_lo, ecam_bus_hi);
		return -1;
	}
	if (!(a >= LOW_UC_START && a + (ecam_bus_hi + 1) * ECAM_BUS_SIZE <= FOUR_GIB) &&
	    !map_phys(a, (ecam_bus_hi + 1) * ECAM_BUS_SIZE, MAP_UC)) {
		printf("# pci: cannot map ECAM at 0x%lx\n", a);
		return -1;
	}
	ecam_base = a;
	if (mmio_read16(fn_cfg(0, 0, 0) + PCI_VENDOR_ID) == 0xffff) {
		printf("# pci: no device 00:00.0 at ECAM 0x%lx (%s): wrong ECAM base?\n", a, ecam_src);
		ecam_base = 0;
		return -1;
	}
	mmio_next = arg_u64("pci_mmio", 0xC0000000ull);
	mmio_end = arg_u64("pci_mmio_end", 0xFEC00000ull);
	if (mmio_end > FOUR_GIB)
		mmio_end = FOUR_GIB;
	mmio64_next = arg_u64("pci_mmio64", 0);
	mmio64_end = arg_u64("pci_mmio64_end", mmio64_next ? MAP_LIMIT : 0);

	scan_bus(0, 0);
	return ndevs;
}

uint64_t pci_ecam_base(void) { return ecam_base; }
const char *pci_ecam_source(void) { return ecam_src; }
int pci_count(void) { return ndevs; }
struct pci_dev *pci_get(int i) { return i >= 0 && i < ndevs ? &devs[i] : 0; }

struct pci_dev *pci_find(uint16_t vendor, uint16_t dev_lo, uint16_t dev_hi, int nth)
{
	for (int i = 0; i < ndevs; i++)
		if (devs[i].vendor == vendor && devs[i].device >= dev_lo && devs[i].device <= dev_hi &&
		    nth-- == 0)
			return &devs[i];
	return 0;
}

int pci_enable(struct pci_dev *d)
{
	uint16_t cmd;

	if (arg_u64("pci_reassign", 0)) { /* test knob: forget firmware's placement */
		cmd = pci_read16(d, PCI_COMMAND);
		pci_write16(d, PCI_COMMAND, cmd & ~PCI_CMD_MEM);
		for (int i = 0; i < PCI_NUM_BARS; i++) {
			struct pci_bar *b = &d->bar[i];

			if (b->kind != BAR_MEM32 && b->kind != BAR_MEM64)
				continue;
			pci_write32(d, PCI_BAR0 + 4 * i, pci_read32(d, PCI_BAR0 + 4 * i) & 0xf);
			if (b->kind == BAR_MEM64)
				pci_write32(d, PCI_BAR0 + 4 * i + 4, 0);
			b->addr = 0;
		}
	}

	for (int i = 0; i < PCI_NUM_BARS; i++) {
		struct pci_bar *b = &d->bar[i];
		unsigned off = PCI_BAR0 + 4 * i;

		if ((b->kind != BAR_MEM32 && b->kind != BAR_MEM64) || !b->size)
			continue;
		if (!b->addr) {
			uint64_t a = alloc_mmio(b->size, b->kind == BAR_MEM64);

			if (!a) {
				printf("# pci %02x:%02x.%x: no room for BAR%d (%lu bytes)\n", d->bus, d->dev,
				       d->fn, i, b->size);
				return -1;
			}
			pci_write32(d, off, (uint32_t)a | (pci_read32(d, off) & 0xf));
			if (b->kind == BAR_MEM64)
				pci_write32(d, off + 4, a >> 32);
			b->addr = a;
			t_diag("pci %02x:%02x.%x: assigned BAR%d = 0x%lx (%lu KiB)", d->bus, d->dev, d->fn,
			       i, a, b->size >> 10);
		}
		if (!(b->addr >= LOW_UC_START && b->addr + b->size <= FOUR_GIB) &&
		    !map_phys(b->addr, b->size, MAP_UC)) {
			printf("# pci %02x:%02x.%x: cannot map BAR%d at 0x%lx\n", d->bus, d->dev, d->fn, i,
			       b->addr);
			return -1;
		}
	}
	cmd = pci_read16(d, PCI_COMMAND);
	if ((cmd & (PCI_CMD_MEM | PCI_CMD_MASTER)) != (PCI_CMD_MEM | PCI_CMD_MASTER))
		pci_write16(d, PCI_COMMAND, cmd | PCI_CMD_MEM | PCI_CMD_MASTER);
	return 0;
}

volatile void *pci_bar_ptr(const struct pci_dev *d, unsigned bar, uint64_t off, uint64_t len)
{
	const struct pci_bar *b;

	if (bar >= PCI_NUM_BARS)
		return 0;
	b = &d->bar[bar];
	if ((b->kind != BAR_MEM32 && b->kind != BAR_MEM64) || !b->addr || off > b->size ||
	    len > b->size - off)
		return 0;
	return (volatile void *)(b->addr + off);
}
