/* PCI: a host bridge at 00:00.0 and up to 31 devices on bus 0, conventional (type 0) config
 * headers, reached through configuration mechanism #1 (ports 0xCF8/0xCFC, PIO bus) and an
 * ECAM window at GPA_ECAM (MMIO bus; bus 0 only, other buses read all ones).
 *
 * The VMM plays firmware: at start it places every memory BAR in [GPA_PCI_MMIO,
 * GPA_PCI_MMIO_END) and enables memory decoding. A guest may then size and move BARs and turn
 * decoding off and on; the BAR's bus registration follows (devices/bus.h explains why that is
 * safe while other vCPUs dispatch), and devices hear about it (bar_remap) to move what else
 * they have at the old address (virtio: KVM ioeventfds).
 *
 * MSI-X (PCI Local Bus 3.0, 6.8.2): capability in config space, table and PBA in a memory BAR
 * of the device; each vector is one KVM irqfd bound to one GSI (from IRQ_FIRST_MSI_GSI up)
 * whose route (KVM_SET_GSI_ROUTING, type MSI) carries the guest-programmed address/data. The
 * routing table is always committed whole: devices/irq.h's pin routes plus every MSI route.
 * A route is (re)committed lazily, at the first delivery after the guest changed the entry.
 * Legacy INTx is not wired (interrupt pin 0): our devices are MSI-X or polled.
 *
 * Without KVM (vm_fd < 0: unit tests) everything works except that nothing reaches KVM: no GSI
 * routes, no irqfd binding (vectors still signal their eventfds, which tests can read). */
#ifndef CVMM_PCI_H
#define CVMM_PCI_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/bus.h"
#include "devices/virtio.h"

#define PCI_CFG_SIZE     256   /* conventional header + capabilities */
#define PCI_ECAM_FN_SIZE 4096  /* ECAM stride; bytes 256..4095 read as 0 */
#define PCI_MAX_SLOTS    32
#define PCI_NUM_BARS     6

#define PCI_VENDOR_ID      0x00
#define PCI_DEVICE_ID      0x02
#define PCI_COMMAND        0x04
#define PCI_STATUS         0x06
#define PCI_REVISION_ID    0x08
#define PCI_CLASS_PROG     0x09
#define PCI_CACHE_LINE     0x0c
#define PCI_LATENCY        0x0d
#define PCI_HEADER_TYPE    0x0e
#define PCI_BAR0           0x10
#define PCI_SUBSYS_VENDOR  0x2c
#define PCI_SUBSYS_ID      0x2e
#define PCI_ROM_ADDRESS    0x30
#define PCI_CAP_PTR        0x34
#define PCI_INT_LINE       0x3c
#define PCI_INT_PIN        0x3d

#define PCI_CMD_IO         0x0001
#define PCI_CMD_MEM        0x0002
#define PCI_CMD_MASTER     0x0004
#define PCI_CMD_INTX_DIS   0x0400
#define PCI_STATUS_CAP_LIST 0x0010

#define PCI_BAR_MEM_64     0x4
#define PCI_BAR_PREFETCH   0x8

#define PCI_CAP_ID_VNDR    0x09
#define PCI_CAP_ID_MSIX    0x11

#define PCI_MSIX_MAX       64
#define PCI_MSIX_CTRL_ENABLE 0x8000
#define PCI_MSIX_CTRL_FMASK  0x4000
#define PCI_MSIX_ENTRY_MASKED 1
enum { MSIX_ADDR_LO, MSIX_ADDR_HI, MSIX_DATA, MSIX_CTRL }; /* the dwords of a table entry */

struct pci_host;
struct pci_dev;

struct pci_bar {
	uint64_t size;          /* power of two >= 16; 0: not implemented */
	bool is64, prefetch;
	uint64_t addr;          /* as programmed (sizing bits masked) */
	bool mapped;            /* registered on the MMIO bus at mapped_at */
	uint64_t mapped_at;
	bus_read_fn read;
	bus_write_fn write;
	void *opaque;
	const char *name;
};

struct pci_msix {
	struct pci_dev *dev;
	unsigned nvec;
	uint8_t cap;            /* config-space offset of the capability */
	pthread_mutex_t lock;   /* table, PBA, enable/mask state */
	bool enabled, fmask;
	uint32_t table[PCI_MSIX_MAX][4]; /* per vector: MSIX_ADDR_LO, _ADDR_HI, _DATA, _CTRL */
	uint64_t pba;
	int irqfd[PCI_MSIX_MAX];
	uint32_t gsi[PCI_MSIX_MAX];
	bool route_stale[PCI_MSIX_MAX];
	uint64_t fired, deferred; /* statistics */
};

struct pci_dev {
	struct pci_host *host;
	const char *name;
	int slot;               /* -1 until added */
	pthread_mutex_t lock;   /* config space; taken before bus and MSI-X locks */
	uint8_t cfg[PCI_CFG_SIZE];   /* register image */
	uint8_t wmask[PCI_CFG_SIZE]; /* guest-writable bits of plain registers */
	uint8_t cap_end;             /* next free config offset for a capability */
	struct pci_bar bar[PCI_NUM_BARS];
	struct pci_msix *msix;
	/* Optional device hooks, called with d->lock held. before_read may refresh cfg[] bytes
	 * of the access (register windows); after_write sees the bytes already merged. */
	void (*cfg_before_read)(struct pci_dev *d, uint32_t off, unsigned size);
	void (*cfg_after_write)(struct pci_dev *d, uint32_t off, unsigned size);
	/* A BAR's decoding changed: unmapped, mapped, or moved. */
	void (*bar_remap)(struct pci_dev *d, int bar, bool was_mapped, uint64_t old_addr,
			  bool mapped, uint64_t new_addr);
	void *owner;
	uint64_t bar_moves;     /* statistics */
};

struct pci_host {
	struct bus *pio, *mmio;
	int vm_fd;
	bool ioeventfd_any_len;   /* KVM_CAP_IOEVENTFD_ANY_LENGTH */
	struct pci_dev bridge;
	struct pci_dev *dev[PCI_MAX_SLOTS];
	uint32_t cf8;             /* config address latch, accessed atomically */
	uint64_t mmio_next, mmio_end; /* firmware BAR allocator */
	pthread_mutex_t route_lock;
	struct { uint32_t gsi, addr_lo, addr_hi, data; bool set; } route[PCI_MAX_SLOTS * 4];
	unsigned nroutes;
	uint32_t next_gsi;
	struct ratelimit rl;
};

/* Where the machine puts PCI: the ECAM window (256 MiB, buses 0..255) and the range BARs are
 * allocated from, [mmio, mmio_end). The machine (vmm/) decides; the host bridge only uses it. */
struct pci_layout {
	uint64_t ecam;
	uint64_t mmio, mmio_end;
};

/* Set up the host bridge and register 0xCF8/0xCFC and the ECAM window. vm_fd may be -1. */
int pci_host_init(struct pci_host *h, struct bus *pio, struct bus *mmio, int vm_fd,
		  const struct pci_layout *lay, char *err, size_t errlen);
void pci_host_destroy(struct pci_host *h);

/* Fill a type-0 header. class = base << 16 | sub << 8 | prog-if. */
void pci_dev_init(struct pci_dev *d, const char *name, uint16_t vendor, uint16_t device,
		  uint8_t revision, uint32_t class, uint16_t subsys_vendor, uint16_t subsys_id);
void pci_dev_destroy(struct pci_dev *d);
/* Declare a memory BAR (size a power of two in 16 B..1 GiB; 64-bit BARs take two slots). */
int pci_dev_set_bar(struct pci_dev *d, int bar, uint64_t size, bool is64, bool prefetch,
		    bus_read_fn rd, bus_write_fn wr, void *opaque, const char *name);
/* Append a capability (cap[0] = id; cap[1] is filled with the next pointer). Returns its
 * config offset, or 0 if there is no room. */
uint8_t pci_dev_add_cap(struct pci_dev *d, const void *cap, uint8_t len);
/* Put the device in the first free slot, place its BARs, enable memory decoding. */
int pci_host_add(struct pci_host *h, struct pci_dev *d, char *err, size_t errlen);

/* Config space access to one function (size 1, 2 or 4, naturally aligned; else all ones /
 * ignored). Offsets 256..4095 read 0. */
uint32_t pci_cfg_read(struct pci_dev *d, uint32_t off, unsigned size);
void pci_cfg_write(struct pci_dev *d, uint32_t off, unsigned size, uint32_t val);
/* By bus/device/function, as the two access mechanisms see it: absent functions read all
 * ones, writes to them vanish. */
uint32_t pci_host_cfg_read(struct pci_host *h, unsigned bus, unsigned dev, unsigned fn,
			   uint32_t off, unsigned size);
void pci_host_cfg_write(struct pci_host *h, unsigned bus, unsigned dev, unsigned fn,
			uint32_t off, unsigned size, uint32_t val);
/* The two mechanisms' bus callbacks (exposed for tests). */
int pci_cf8_read(void *opaque, uint64_t off, void *data, unsigned size);
int pci_cf8_write(void *opaque, uint64_t off, const void *data, unsigned size);
int pci_cfc_read(void *opaque, uint64_t off, void *data, unsigned size);
int pci_cfc_write(void *opaque, uint64_t off, const void *data, unsigned size);
int pci_ecam_read(void *opaque, uint64_t off, void *data, unsigned size);
int pci_ecam_write(void *opaque, uint64_t off, const void *data, unsigned size);

/* MSI-X: adds the capability to d; table and PBA live at the given offsets of BAR `bar`
 * (the device forwards accesses there to pci_msix_table_* / pci_msix_pba_read). */
int pci_msix_init(struct pci_msix *m, struct pci_dev *d, unsigned nvec, int bar,
		  uint32_t table_off, uint32_t pba_off, char *err, size_t errlen);
void pci_msix_destroy(struct pci_msix *m);
int pci_msix_table_read(struct pci_msix *m, uint64_t off, void *data, unsigned size);
int pci_msix_table_write(struct pci_msix *m, uint64_t off, const void *data, unsigned size);
int pci_msix_pba_read(struct pci_msix *m, uint64_t off, void *data, unsigned size);
bool pci_msix_enabled(struct pci_msix *m);
/* Raise a vector: delivered now if enabled and unmasked, else left pending in the PBA.
 * Thread-safe (I/O threads call it). */
void pci_msix_signal(struct pci_msix *m, unsigned vec);

#endif
