/* PCI from ring 3, through ECAM (memory-mapped configuration; port I/O faults at CPL3 here).
 *
 * The ECAM base comes from `ecam=ADDR` on the command line, else the ACPI MCFG table (found
 * through hvm_start_info.rsdp_paddr: QEMU q35 provides one), else 0xB0000000, where both QEMU
 * q35 and cvmm put it. It is validated by reading 00:00.0's vendor ID (!= 0xffff).
 *
 * pci_init() scans bus 0 and, behind PCI-PCI bridges that firmware already numbered, their
 * secondary buses; it records every function with its memory BARs (sized with decoding off).
 * pci_enable() assigns BARs that firmware left at 0 from a free window avoiding every BAR seen
 * (`pci_mmio=` / `pci_mmio_end=`, default [0xC0000000, 0xFEC00000); 64-bit BARs from
 * `pci_mmio64=` / `pci_mmio64_end=` if given), then turns on memory decoding and bus mastering. BARs above 4 GiB are mapped uncached (SYS_MAP) so ring 3 can reach them.
 * `pci_reassign=1` (a test knob) clears the device's memory BARs first, so that path runs even
 * under firmware that assigned everything. */
#ifndef GUEST_PCI_H
#define GUEST_PCI_H

#include <stdbool.h>
#include <stdint.h>

#define PCI_MAX_DEVS 64
#define PCI_NUM_BARS 6

#define PCI_VENDOR_ID 0x00
#define PCI_DEVICE_ID 0x02
#define PCI_COMMAND 0x04
#define PCI_STATUS 0x06
#define PCI_CLASS_REV 0x08
#define PCI_HEADER_TYPE 0x0e
#define PCI_BAR0 0x10
#define PCI_SECONDARY_BUS 0x19
#define PCI_SUBSYS_VENDOR 0x2c
#define PCI_SUBSYS_ID 0x2e
#define PCI_CAP_PTR 0x34

#define PCI_CMD_IO 0x1
#define PCI_CMD_MEM 0x2
#define PCI_CMD_MASTER 0x4
#define PCI_STATUS_CAP_LIST 0x10

#define PCI_CAP_ID_VNDR 0x09

enum { BAR_NONE, BAR_IO, BAR_MEM32, BAR_MEM64 };

struct pci_bar {
	uint8_t kind;      /* BAR_* (the upper half of a 64-bit BAR is BAR_NONE) */
	bool prefetch;
	uint64_t addr;     /* as programmed (0: unassigned) */
	uint64_t size;     /* from sizing; 0 if not implemented */
};

struct pci_dev {
	uint8_t bus, dev, fn, header;
	uint16_t vendor, device, subsys_vendor, subsys_id;
	uint8_t class, subclass, progif, rev;
	volatile uint8_t *cfg; /* its 4 KiB of ECAM */
	struct pci_bar bar[PCI_NUM_BARS];
};

/* Find ECAM and scan. Returns the number of functions found, or -1 (diagnostic printed). */
int pci_init(void);
uint64_t pci_ecam_base(void);
const char *pci_ecam_source(void); /* "cmdline", "acpi-mcfg", "default" */
int pci_count(void);
struct pci_dev *pci_get(int i);
/* The nth (0-based) function with this vendor and a device ID in [dev_lo, dev_hi], or NULL. */
struct pci_dev *pci_find(uint16_t vendor, uint16_t dev_lo, uint16_t dev_hi, int nth);

uint8_t pci_read8(const struct pci_dev *d, unsigned off);
uint16_t pci_read16(const struct pci_dev *d, unsigned off);
uint32_t pci_read32(const struct pci_dev *d, unsigned off);
void pci_write16(const struct pci_dev *d, unsigned off, uint16_t v);
void pci_write32(const struct pci_dev *d, unsigned off, uint32_t v);

/* Assign unassigned memory BARs, map BARs above 4 GiB, enable memory space + bus master.
 * Returns 0 or -1 (diagnostic printed). */
int pci_enable(struct pci_dev *d);
/* A pointer to [bar + off, bar + off + len) of an enabled device, or NULL if out of range. */
volatile void *pci_bar_ptr(const struct pci_dev *d, unsigned bar, uint64_t off, uint64_t len);

#endif
