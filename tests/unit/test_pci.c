/* PCI: host bridge, config space through 0xCF8/0xCFC and ECAM, BAR sizing and moving (with
 * the bus registration following, also under concurrent dispatch), memory-enable, the
 * capability list and MSI-X. No KVM needed (vm_fd -1). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "devices/pci.h"
#include "vmm/vm.h"

/* The machine's PCI layout (vmm/machine.c passes the same). */
static const struct pci_layout test_pci_layout = {
	.ecam = GPA_ECAM, .mmio = GPA_PCI_MMIO, .mmio_end = GPA_PCI_MMIO_END,
};

struct fake;
struct fake_bar {
	struct fake *f;
	uint8_t fill;
};

struct fake {
	struct pci_dev d;
	struct fake_bar bars[PCI_NUM_BARS];
	struct pci_msix msix;
	int reads, writes, remaps;
	uint64_t last_off;
	bool last_mapped;
	uint64_t last_old, last_new;
};

struct fx {
	struct bus pio, mmio;
	struct pci_host h;
	struct fake a, b;
};

static int fake_read(void *opaque, uint64_t off, void *data, unsigned size)
{
	struct fake_bar *b = opaque;
	struct fake *f = b->f;
	__atomic_add_fetch(&f->reads, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&f->last_off, off, __ATOMIC_RELAXED);
	memset(data, b->fill, size);
	return 0;
}

static int fake_write(void *opaque, uint64_t off, const void *data, unsigned size)
{
	struct fake *f = ((struct fake_bar *)opaque)->f;
	(void)data;
	(void)size;
	f->writes++;
	f->last_off = off;
	return 0;
}

static void fake_remap(struct pci_dev *d, int bar, bool was, uint64_t old, bool mapped,
		       uint64_t now)
{
	struct fake *f = d->owner;
	(void)bar;
	(void)was;
	f->remaps++;
	f->last_mapped = mapped;
	f->last_old = old;
	f->last_new = now;
}

static void fake_init(struct fake *f, const char *name, uint16_t devid)
{
	memset(f, 0, sizeof(*f));
	pci_dev_init(&f->d, name, 0x1234, devid, 3, 0x018000, 0x1234, 0x0042);
	f->d.owner = f;
	f->d.bar_remap = fake_remap;
	for (int i = 0; i < PCI_NUM_BARS; i++)
		f->bars[i] = (struct fake_bar){ f, i == 4 ? 0x77 : 0x5a };
}

static int setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	char err[128];
	bus_init(&x->pio, "pio");
	bus_init(&x->mmio, "mmio");
	assert_int_equal(pci_host_init(&x->h, &x->pio, &x->mmio, -1, &test_pci_layout, err, sizeof(err)), 0);
	/* a: 64-bit BAR0 16 KiB, 32-bit BAR2 4 KiB (BAR3 unimplemented), 64-bit prefetchable
	 * BAR4 1 MiB; MSI-X with 3 vectors in BAR0 */
	fake_init(&x->a, "a", 0xa);
	assert_int_equal(pci_dev_set_bar(&x->a.d, 0, 0x4000, true, false, fake_read, fake_write, &x->a.bars[0], "a0"), 0);
	assert_int_equal(pci_dev_set_bar(&x->a.d, 2, 0x1000, false, false, fake_read, fake_write,
					 &x->a.bars[2], "a2"), 0);
	assert_int_equal(pci_dev_set_bar(&x->a.d, 4, 0x100000, true, true, fake_read, fake_write,
					 &x->a.bars[4], "a4"), 0);
	assert_int_equal(pci_msix_init(&x->a.msix, &x->a.d, 3, 0, 0x2000, 0x3000, err, sizeof(err)), 0);
	assert_int_equal(pci_host_add(&x->h, &x->a.d, err, sizeof(err)), 0);
	fake_init(&x->b, "b", 0xb);
	assert_int_equal(pci_dev_set_bar(&x->b.d, 0, 0x1000, false, false, fake_read, fake_write, &x->b.bars[0], "b0"), 0);
	assert_int_equal(pci_host_add(&x->h, &x->b.d, err, sizeof(err)), 0);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;
	pci_msix_destroy(&x->a.msix);
	pci_dev_destroy(&x->a.d);
	pci_dev_destroy(&x->b.d);
	pci_host_destroy(&x->h);
	free(x);
	return 0;
}

/* config access through ECAM (the MMIO bus) */
static uint32_t ecam_rd(struct fx *x, unsigned bus, unsigned dev, unsigned fn, unsigned off,
			unsigned size)
{
	uint64_t v = 0;
	bus_read(&x->mmio, GPA_ECAM + ((uint64_t)bus << 20) + (dev << 15) + (fn << 12) + off, &v, size);
	return (uint32_t)v;
}

static void ecam_wr(struct fx *x, unsigned dev, unsigned off, unsigned size, uint32_t v)
{
	bus_write(&x->mmio, GPA_ECAM + (dev << 15) + off, &v, size);
}

/* config access through 0xCF8/0xCFC (the PIO bus) */
static uint32_t cf8_rd(struct fx *x, unsigned bus, unsigned dev, unsigned fn, unsigned off,
		       unsigned size)
{
	uint32_t a = 0x80000000u | bus << 16 | dev << 11 | fn << 8 | (off & 0xfc), v = 0;
	assert_true(bus_write(&x->pio, 0xcf8, &a, 4));
	bus_read(&x->pio, 0xcfc + (off & 3), &v, size);
	return v;
}

static void cf8_wr(struct fx *x, unsigned dev, unsigned off, unsigned size, uint32_t v)
{
	uint32_t a = 0x80000000u | dev << 11 | (off & 0xfc);
	bus_write(&x->pio, 0xcf8, &a, 4);
	bus_write(&x->pio, 0xcfc + (off & 3), &v, size);
}

static void test_host_bridge(void **state)
{
	struct fx *x = *state;
	assert_int_equal(ecam_rd(x, 0, 0, 0, 0, 4), 0x00081b36);
	assert_int_equal(cf8_rd(x, 0, 0, 0, 0, 4), 0x00081b36);
	assert_int_equal(ecam_rd(x, 0, 0, 0, 0x0a, 2), 0x0600); /* host bridge class */
	assert_int_equal(ecam_rd(x, 0, 0, 0, PCI_HEADER_TYPE, 1), 0);
	assert_int_equal(ecam_rd(x, 0, 0, 0, PCI_BAR0, 4), 0);
	/* devices in slots 1 and 2, in the order added */
	assert_int_equal(ecam_rd(x, 0, 1, 0, 0, 4), 0x000a1234);
	assert_int_equal(ecam_rd(x, 0, 2, 0, 0, 4), 0x000b1234);
	assert_int_equal(ecam_rd(x, 0, 1, 0, PCI_REVISION_ID, 4), 0x01800003);
	assert_int_equal(ecam_rd(x, 0, 1, 0, PCI_SUBSYS_VENDOR, 4), 0x00421234);
}

static void test_absent_functions(void **state)
{
	struct fx *x = *state;
	assert_int_equal(ecam_rd(x, 0, 5, 0, 0, 4), 0xffffffff);
	assert_int_equal(ecam_rd(x, 0, 1, 1, 0, 4), 0xffffffff);   /* function 1 */
	assert_int_equal(ecam_rd(x, 1, 0, 0, 0, 4), 0xffffffff);   /* bus 1 */
	assert_int_equal(ecam_rd(x, 255, 31, 7, 0xffc, 4), 0xffffffff);
	assert_int_equal(ecam_rd(x, 0, 31, 0, 0, 2), 0xffff);
	assert_int_equal(ecam_rd(x, 0, 31, 0, 3, 1), 0xff);
	assert_int_equal(cf8_rd(x, 0, 5, 0, 0, 4), 0xffffffff);
	assert_int_equal(cf8_rd(x, 1, 0, 0, 0, 4), 0xffffffff);
	/* enable bit clear: no config cycle */
	uint32_t a = 0x00000800, v;
	bus_write(&x->pio, 0xcf8, &a, 4);
	bus_read(&x->pio, 0xcfc, &v, 4);
	assert_int_equal(v, 0xffffffff);
	/* the address latch reads back; byte accesses to it are not mechanism #1 */
	bus_read(&x->pio, 0xcf8, &v, 4);
	assert_int_equal(v, 0x800);
	uint8_t b = 1;
	assert_false(bus_write(&x->pio, 0xcf9, &b, 1));
	/* extended config space of a present function reads 0; misaligned reads all ones */
	assert_int_equal(ecam_rd(x, 0, 1, 0, 0x100, 4), 0);
	assert_int_equal(ecam_rd(x, 0, 1, 0, 0x2, 4), 0xffffffff);
}

static void test_ecam_cf8_equivalence(void **state)
{
	struct fx *x = *state;
	for (unsigned dev = 0; dev < 4; dev++)
		for (unsigned off = 0; off < 256; off++)
			for (unsigned size = 1; size <= 4; size *= 2) {
				if (off % size)
					continue;
				assert_int_equal(ecam_rd(x, 0, dev, 0, off, size),
						 cf8_rd(x, 0, dev, 0, off, size));
			}
	/* a write through one is seen through the other */
	cf8_wr(x, 1, PCI_INT_LINE, 1, 0x0b);
	assert_int_equal(ecam_rd(x, 0, 1, 0, PCI_INT_LINE, 1), 0x0b);
	ecam_wr(x, 2, PCI_LATENCY, 1, 0x40);
	assert_int_equal(cf8_rd(x, 0, 2, 0, PCI_LATENCY, 1), 0x40);
	/* an ECAM qword read is two dwords */
	uint64_t q = 0;
	bus_read(&x->mmio, GPA_ECAM + (1 << 15), &q, 8);
	assert_int_equal(q & 0xffffffff, 0x000a1234);
	assert_int_equal(q >> 32, ecam_rd(x, 0, 1, 0, 4, 4));
}

static void test_readonly_registers(void **state)
{
	struct fx *x = *state;
	uint32_t before[16];
	for (int i = 0; i < 16; i++)
		before[i] = ecam_rd(x, 0, 1, 0, (unsigned)i * 4, 4);
	ecam_wr(x, 1, PCI_VENDOR_ID, 4, 0xdeadbeef);
	ecam_wr(x, 1, PCI_REVISION_ID, 4, 0xdeadbeef);
	ecam_wr(x, 1, PCI_HEADER_TYPE, 1, 0x80);
	ecam_wr(x, 1, PCI_SUBSYS_VENDOR, 4, 0xdeadbeef);
	ecam_wr(x, 1, PCI_CAP_PTR, 1, 0x80);
	ecam_wr(x, 1, PCI_STATUS, 2, 0xffff);
	assert_int_equal(ecam_rd(x, 0, 1, 0, 0, 4), before[0]);
	assert_int_equal(ecam_rd(x, 0, 1, 0, 8, 4), before[2]);
	assert_int_equal(ecam_rd(x, 0, 1, 0, 0x2c, 4), before[11]);
	assert_int_equal(ecam_rd(x, 0, 1, 0, PCI_HEADER_TYPE, 1), 0);
	assert_int_equal(ecam_rd(x, 0, 1, 0, PCI_CAP_PTR, 1), before[13] & 0xff);
	assert_int_equal(ecam_rd(x, 0, 1, 0, PCI_STATUS, 2), before[1] >> 16);
	/* command: I/O enable is hardwired 0 (no I/O BARs); memory and bus master writable */
	ecam_wr(x, 1, PCI_COMMAND, 2, 0xffff);
	uint32_t cmd = ecam_rd(x, 0, 1, 0, PCI_COMMAND, 2);
	assert_int_equal(cmd & PCI_CMD_IO, 0);
	assert_true(cmd & PCI_CMD_MEM);
	assert_true(cmd & PCI_CMD_MASTER);
	/* expansion ROM not implemented: sizing finds nothing */
	ecam_wr(x, 1, PCI_ROM_ADDRESS, 4, 0xffffffff);
	assert_int_equal(ecam_rd(x, 0, 1, 0, PCI_ROM_ADDRESS, 4), 0);
}

static uint64_t bar_addr(struct fx *x, unsigned dev, int bar, bool is64)
{
	uint64_t lo = ecam_rd(x, 0, dev, 0, PCI_BAR0 + 4 * (unsigned)bar, 4) & ~0xfu;
	uint64_t hi = is64 ? ecam_rd(x, 0, dev, 0, PCI_BAR0 + 4 * (unsigned)bar + 4, 4) : 0;
	return hi << 32 | lo;
}

static void test_firmware_placement(void **state)
{
	struct fx *x = *state;
	uint64_t a0 = bar_addr(x, 1, 0, true), a2 = bar_addr(x, 1, 2, false),
		 a4 = bar_addr(x, 1, 4, true), b0 = bar_addr(x, 2, 0, false);
	uint64_t addr[4] = { a0, a2, a4, b0 }, size[4] = { 0x4000, 0x1000, 0x100000, 0x1000 };
	for (int i = 0; i < 4; i++) {
		assert_true(addr[i] >= GPA_PCI_MMIO && addr[i] + size[i] <= GPA_PCI_MMIO_END);
		assert_int_equal(addr[i] % size[i], 0);
		for (int j = 0; j < i; j++) /* no overlaps */
			assert_true(addr[i] + size[i] <= addr[j] || addr[j] + size[j] <= addr[i]);
	}
	/* type bits: 64-bit, prefetchable */
	assert_int_equal(ecam_rd(x, 0, 1, 0, PCI_BAR0, 4) & 0xf, PCI_BAR_MEM_64);
	assert_int_equal(ecam_rd(x, 0, 1, 0, PCI_BAR0 + 8, 4) & 0xf, 0);
	assert_int_equal(ecam_rd(x, 0, 1, 0, PCI_BAR0 + 16, 4) & 0xf, PCI_BAR_MEM_64 | PCI_BAR_PREFETCH);
	/* decoding is on and the bus routes accesses to the device at BAR offsets */
	assert_true(ecam_rd(x, 0, 1, 0, PCI_COMMAND, 2) & PCI_CMD_MEM);
	uint32_t v;
	assert_true(bus_read(&x->mmio, a0 + 0x123, &v, 4));
	assert_int_equal(v, 0x5a5a5a5a);
	assert_int_equal(x->a.last_off, 0x123);
	assert_true(bus_read(&x->mmio, a4 + 0xffffc, &v, 4));
	assert_int_equal(v, 0x77777777);
}

static void test_bar_sizing(void **state)
{
	struct fx *x = *state;
	uint64_t a0 = bar_addr(x, 1, 0, true);
	uint32_t lo = ecam_rd(x, 0, 1, 0, PCI_BAR0, 4), hi = ecam_rd(x, 0, 1, 0, PCI_BAR0 + 4, 4);
	/* as Linux does: decode off, all ones, read, restore, decode on */
	ecam_wr(x, 1, PCI_COMMAND, 2, PCI_CMD_MASTER);
	ecam_wr(x, 1, PCI_BAR0, 4, 0xffffffff);
	assert_int_equal(ecam_rd(x, 0, 1, 0, PCI_BAR0, 4), 0xffffc004);
	ecam_wr(x, 1, PCI_BAR0 + 4, 4, 0xffffffff);
	assert_int_equal(ecam_rd(x, 0, 1, 0, PCI_BAR0 + 4, 4), 0xffffffff);
	ecam_wr(x, 1, PCI_BAR0 + 8, 4, 0xffffffff);
	assert_int_equal(ecam_rd(x, 0, 1, 0, PCI_BAR0 + 8, 4), 0xfffff000);
	ecam_wr(x, 1, PCI_BAR0 + 12, 4, 0xffffffff); /* BAR3: unimplemented */
	assert_int_equal(ecam_rd(x, 0, 1, 0, PCI_BAR0 + 12, 4), 0);
	ecam_wr(x, 1, PCI_BAR0 + 16, 4, 0xffffffff);
	assert_int_equal(ecam_rd(x, 0, 1, 0, PCI_BAR0 + 16, 4), 0xfff0000c);
	ecam_wr(x, 1, PCI_BAR0 + 20, 4, 0xffffffff);
	assert_int_equal(ecam_rd(x, 0, 1, 0, PCI_BAR0 + 20, 4), 0xffffffff);
	/* nothing decodes meanwhile */
	uint32_t v;
	assert_false(bus_read(&x->mmio, a0, &v, 4));
	/* restore BAR0 only, decode on: BAR0 comes back where it was; the others hold all-ones
	 * addresses that wrap, so they stay off the bus */
	ecam_wr(x, 1, PCI_BAR0, 4, lo);
	ecam_wr(x, 1, PCI_BAR0 + 4, 4, hi);
	ecam_wr(x, 1, PCI_COMMAND, 2, PCI_CMD_MEM | PCI_CMD_MASTER);
	assert_true(bus_read(&x->mmio, a0, &v, 4));
	assert_int_equal(bar_addr(x, 1, 0, true), a0);
	assert_true(x->a.d.bar[0].mapped);
	assert_false(x->a.d.bar[4].mapped);
	/* sizing with decoding left on works too (every write re-evaluates the mapping; BAR0
	 * at 0xffffc000 now overlaps BAR2, still at its sizing value 0xfffff000: refused) */
	ecam_wr(x, 1, PCI_BAR0, 4, 0xffffffff);
	assert_false(bus_read(&x->mmio, a0, &v, 4));
	ecam_wr(x, 1, PCI_BAR0, 4, lo);
	assert_true(bus_read(&x->mmio, a0, &v, 4));
}

static void test_bar_move(void **state)
{
	struct fx *x = *state;
	uint64_t a0 = bar_addr(x, 1, 0, true), to = 0xe0000000ULL;
	int remaps = x->a.remaps;
	ecam_wr(x, 1, PCI_COMMAND, 2, 0);
	assert_int_equal(x->a.remaps, remaps + 3); /* every mapped BAR went off the bus */
	assert_false(x->a.last_mapped);
	ecam_wr(x, 1, PCI_BAR0, 4, (uint32_t)to);
	ecam_wr(x, 1, PCI_BAR0 + 4, 4, 0);
	ecam_wr(x, 1, PCI_COMMAND, 2, PCI_CMD_MEM);
	assert_true(x->a.last_mapped);
	uint32_t v;
	assert_false(bus_read(&x->mmio, a0, &v, 4));
	assert_true(bus_read(&x->mmio, to + 8, &v, 4));
	assert_int_equal(x->a.last_off, 8);
	/* above 4 GiB, with decoding on: the high dword write moves it */
	int r = x->a.remaps;
	ecam_wr(x, 1, PCI_BAR0 + 4, 4, 0x10);
	assert_int_equal(x->a.remaps, r + 1);
	assert_int_equal(x->a.last_old, to);
	assert_int_equal(x->a.last_new, 0x10e0000000ULL);
	assert_true(bus_read(&x->mmio, 0x10e0000000ULL, &v, 4));
	assert_false(bus_read(&x->mmio, to, &v, 4));
	/* sub-dword BAR writes merge into the dword */
	ecam_wr(x, 1, PCI_BAR0 + 4, 4, 0);
	ecam_wr(x, 1, PCI_BAR0 + 2, 2, 0xd000);
	assert_int_equal(bar_addr(x, 1, 0, true), 0xd0000000ULL);
	assert_true(bus_read(&x->mmio, 0xd0000000ULL, &v, 4));
	/* through 0xCF8 as well */
	cf8_wr(x, 2, PCI_BAR0, 4, 0xd8000000);
	assert_true(bus_read(&x->mmio, 0xd8000000ULL, &v, 4));
	assert_int_equal(x->b.last_off, 0);
	/* to address 0 ("unassigned"): off the bus */
	ecam_wr(x, 1, PCI_BAR0, 4, 0);
	assert_false(x->a.d.bar[0].mapped);
}

static void test_bar_overlap(void **state)
{
	struct fx *x = *state;
	uint64_t a0 = bar_addr(x, 1, 0, true), b0 = bar_addr(x, 2, 0, false);
	uint32_t v;
	/* b's BAR onto a's BAR0: refused (not decoded), a keeps working */
	ecam_wr(x, 2, PCI_BAR0, 4, (uint32_t)a0 + 0x1000);
	assert_false(x->b.d.bar[0].mapped);
	assert_false(x->b.last_mapped);
	assert_true(bus_read(&x->mmio, a0 + 0x1000, &v, 4));
	assert_int_equal(x->a.last_off, 0x1000);
	/* onto the ECAM window: refused too */
	ecam_wr(x, 2, PCI_BAR0, 4, (uint32_t)GPA_ECAM);
	assert_false(x->b.d.bar[0].mapped);
	assert_int_equal(ecam_rd(x, 0, 2, 0, 0, 4), 0x000b1234);
	/* moved to a free place: decoded again */
	ecam_wr(x, 2, PCI_BAR0, 4, (uint32_t)b0);
	assert_true(x->b.d.bar[0].mapped);
	assert_true(bus_read(&x->mmio, b0, &v, 4));
}

static void test_cap_list(void **state)
{
	struct fx *x = *state;
	uint8_t v1[8] = { PCI_CAP_ID_VNDR, 0, 8, 1, 2, 3, 4, 5 };
	uint8_t v2[5] = { PCI_CAP_ID_VNDR, 0, 5, 9, 9 };
	assert_int_not_equal(pci_dev_add_cap(&x->b.d, v1, sizeof(v1)), 0);
	assert_int_not_equal(pci_dev_add_cap(&x->b.d, v2, sizeof(v2)), 0);
	/* walk a's list (MSI-X) and b's (two vendor caps), as a guest does */
	assert_true(ecam_rd(x, 0, 1, 0, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	unsigned p = ecam_rd(x, 0, 1, 0, PCI_CAP_PTR, 1);
	assert_int_equal(p, 0x40);
	assert_int_equal(ecam_rd(x, 0, 1, 0, p, 1), PCI_CAP_ID_MSIX);
	assert_int_equal(ecam_rd(x, 0, 1, 0, p + 1, 1), 0);
	assert_int_equal(ecam_rd(x, 0, 1, 0, p + 2, 2), 2); /* 3 vectors: size - 1 */
	assert_int_equal(ecam_rd(x, 0, 1, 0, p + 4, 4), 0x2000); /* table in BAR0 at 0x2000 */
	assert_int_equal(ecam_rd(x, 0, 1, 0, p + 8, 4), 0x3000);
	unsigned ids[8], offs[8], n = 0;
	for (p = ecam_rd(x, 0, 2, 0, PCI_CAP_PTR, 1); p && n < 8; p = ecam_rd(x, 0, 2, 0, p + 1, 1)) {
		assert_int_equal(p % 4, 0);
		assert_true(p >= 0x40);
		ids[n] = ecam_rd(x, 0, 2, 0, p, 1);
		offs[n++] = p;
	}
	assert_int_equal(n, 2);
	assert_int_equal(ids[0], PCI_CAP_ID_VNDR);
	for (unsigned i = 0; i < 5; i++)
		assert_int_equal(ecam_rd(x, 0, 2, 0, offs[0] + 3 + i, 1), 1 + i);
	assert_int_equal(ecam_rd(x, 0, 2, 0, offs[1] + 4, 1), 9);
	/* a misaligned access is not a config cycle */
	assert_int_equal(ecam_rd(x, 0, 2, 0, offs[0] + 3, 4), 0xffffffff);
	assert_true(offs[1] >= offs[0] + 8);
	/* no room: the list stays intact */
	uint8_t huge[200] = { PCI_CAP_ID_VNDR };
	assert_int_equal(pci_dev_add_cap(&x->b.d, huge, sizeof(huge)), 0);
	/* caps are read-only to the guest */
	ecam_wr(x, 2, offs[0] + 4, 4, 0xffffffff);
	assert_int_equal(ecam_rd(x, 0, 2, 0, offs[0] + 4, 4), 0x05040302);
}

static bool fd_fired(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	if (poll(&p, 1, 0) != 1)
		return false;
	uint64_t n;
	return read(fd, &n, sizeof(n)) == sizeof(n) && n > 0;
}

static void test_msix(void **state)
{
	struct fx *x = *state;
	struct pci_msix *m = &x->a.msix;
	uint8_t cap = m->cap;
	/* program vector 1 as a driver does: masked, address/data, then unmask */
	uint32_t v = 0xfee00000;
	pci_msix_table_write(m, 16 + 0, &v, 4);
	v = 0;
	pci_msix_table_write(m, 16 + 4, &v, 4);
	v = 0x4041;
	pci_msix_table_write(m, 16 + 8, &v, 4);
	uint64_t q;
	pci_msix_table_read(m, 16, &q, 8);
	assert_int_equal(q, 0xfee00000);
	pci_msix_table_read(m, 16 + 8, &q, 8);
	assert_int_equal(q, 0x4041 | (uint64_t)PCI_MSIX_ENTRY_MASKED << 32); /* masked at reset */
	/* MSI-X disabled: signals stay pending */
	pci_msix_signal(m, 1);
	assert_false(fd_fired(m->irqfd[1]));
	pci_msix_pba_read(m, 0, &q, 8);
	assert_int_equal(q, 2);
	/* enable with the function mask set: still pending */
	ecam_wr(x, 1, cap + 2, 2, PCI_MSIX_CTRL_ENABLE | PCI_MSIX_CTRL_FMASK);
	assert_true(pci_msix_enabled(m));
	v = 0;
	pci_msix_table_write(m, 16 + 12, &v, 4);
	assert_false(fd_fired(m->irqfd[1]));
	/* clearing the function mask delivers the pending vector and clears its PBA bit */
	ecam_wr(x, 1, cap + 2, 2, PCI_MSIX_CTRL_ENABLE);
	assert_true(fd_fired(m->irqfd[1]));
	pci_msix_pba_read(m, 0, &q, 8);
	assert_int_equal(q, 0);
	/* now deliverable: fires at once */
	pci_msix_signal(m, 1);
	assert_true(fd_fired(m->irqfd[1]));
	/* vector 0 is still masked; masking vector 1 defers it; unmasking fires */
	pci_msix_signal(m, 0);
	assert_false(fd_fired(m->irqfd[0]));
	v = 0xffffffff; /* reserved bits of vector control are dropped */
	pci_msix_table_write(m, 16 + 12, &v, 4);
	pci_msix_table_read(m, 16 + 12, &v, 4);
	assert_int_equal(v, PCI_MSIX_ENTRY_MASKED);
	pci_msix_signal(m, 1);
	assert_false(fd_fired(m->irqfd[1]));
	v = 0;
	pci_msix_table_write(m, 16 + 12, &v, 4);
	assert_true(fd_fired(m->irqfd[1]));
	/* out-of-range vectors, odd widths, misaligned and past-the-table accesses are ignored */
	pci_msix_signal(m, 3);
	pci_msix_signal(m, 1000);
	uint16_t w = 0x1234;
	pci_msix_table_write(m, 0, &w, 2);
	pci_msix_table_write(m, 2, &v, 4);
	pci_msix_table_write(m, 48, &v, 4);
	pci_msix_table_read(m, 0, &q, 8);
	assert_int_equal(q, 0);
	pci_msix_table_read(m, 48, &v, 4);
	assert_int_equal(v, 0);
	/* disabling MSI-X: pending again */
	ecam_wr(x, 1, cap + 2, 2, 0);
	assert_false(pci_msix_enabled(m));
	pci_msix_signal(m, 1);
	assert_false(fd_fired(m->irqfd[1]));
	/* table size is read-only */
	ecam_wr(x, 1, cap + 2, 2, 0x07ff);
	assert_int_equal(ecam_rd(x, 0, 1, 0, cap + 2, 2), 2);
}

/* Other vCPUs dispatch on the bus while one moves a BAR through ECAM (itself a dispatch on
 * the same bus). Nothing may crash or deadlock; each access either reaches the device with
 * a sane offset or reads as unclaimed. */
struct race {
	struct fx *x;
	uint64_t a, b;
	int stop;
	uint64_t hits, misses;
	uint64_t live_hits;     /* hits so far, published as they happen */
};

static void *racer(void *arg)
{
	struct race *r = arg;
	uint64_t hits = 0, misses = 0;
	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		uint32_t v;
		uint64_t addr = (hits + misses) & 1 ? r->a : r->b;
		/* (no cmocka asserts off the main thread) */
		if (bus_read(&r->x->mmio, addr + 0x40, &v, 4)) {
			if (v != 0x5a5a5a5a || __atomic_load_n(&r->x->b.last_off, __ATOMIC_RELAXED) != 0x40)
				abort();
			hits++;
			__atomic_add_fetch(&r->live_hits, 1, __ATOMIC_RELAXED);
		} else {
			if (v != 0xffffffff)
				abort();
			misses++;
		}
	}
	__atomic_add_fetch(&r->hits, hits, __ATOMIC_RELAXED);
	__atomic_add_fetch(&r->misses, misses, __ATOMIC_RELAXED);
	return NULL;
}

static void test_bar_move_concurrent(void **state)
{
	struct fx *x = *state;
	struct race r = { .x = x, .a = 0xe0000000ULL, .b = 0xe8000000ULL };
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, racer, &r), 0);
	/* 20000 moves, and on until the racers have hit the BAR 100 times while it moves (on a
	 * loaded machine they may not have run at all during the first 20000: the test then
	 * proved nothing and failed), for 10 s at most. */
	time_t until = time(NULL) + 10;
	for (int i = 0; i < 20000 || (__atomic_load_n(&r.live_hits, __ATOMIC_RELAXED) < 100 &&
				       time(NULL) < until); i++) {
		ecam_wr(x, 2, PCI_BAR0, 4, (uint32_t)(i & 1 ? r.a : r.b));
		if (i % 1000 == 999) { /* and toggle decoding now and then */
			ecam_wr(x, 2, PCI_COMMAND, 2, 0);
			ecam_wr(x, 2, PCI_COMMAND, 2, PCI_CMD_MEM);
		}
	}
	ecam_wr(x, 2, PCI_BAR0, 4, (uint32_t)r.a);
	__atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	assert_true(r.hits > 0);
	assert_int_equal(x->b.last_off, 0x40);
	assert_true(x->b.d.bar[0].mapped);
	assert_int_equal(x->b.d.bar[0].mapped_at, r.a); /* the last write */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_host_bridge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_absent_functions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ecam_cf8_equivalence, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readonly_registers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_firmware_placement, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bar_sizing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bar_move, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bar_overlap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cap_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_msix, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bar_move_concurrent, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
