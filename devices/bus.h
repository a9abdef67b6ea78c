/* An address bus (one for port I/O, one for MMIO) that dispatches guest accesses to devices.
 *
 * Devices register a range and two callbacks; the vCPU exit handler calls bus_read/bus_write.
 * Registration happens before vCPUs run (devices/ registry, vmm/vm.c), so dispatch takes no lock.
 * An access that no device claims reads as all ones and drops writes, like an empty ISA/PCI
 * slot, and is counted so the exit summary can show it. */
#ifndef CVMM_BUS_H
#define CVMM_BUS_H

#include <stdbool.h>
#include <stdint.h>

/* off is relative to the device's base; data holds size bytes (1, 2, 4 or 8; PIO strings are
 * split by the caller). Return 0 when handled. */
typedef int (*bus_read_fn)(void *opaque, uint64_t off, void *data, unsigned size);
typedef int (*bus_write_fn)(void *opaque, uint64_t off, const void *data, unsigned size);

struct bus_dev {
	const char *name;
	uint64_t base, len;
	bus_read_fn read;
	bus_write_fn write;
	void *opaque;
};

#define BUS_MAX_DEVS 64

struct bus {
	const char *name;
	struct bus_dev devs[BUS_MAX_DEVS];
	int n;
	/* statistics, updated atomically */
	uint64_t unclaimed;
};

void bus_init(struct bus *b, const char *name);
/* Returns 0, or -1 if the range overlaps another device, wraps, or the bus is full. */
int bus_register(struct bus *b, const char *name, uint64_t base, uint64_t len,
		 bus_read_fn rd, bus_write_fn wr, void *opaque);
/* Move a registered device (PCI BAR reprogramming). Returns 0 or -1 on overlap/unknown. */
int bus_move(struct bus *b, void *opaque, uint64_t old_base, uint64_t new_base);
const struct bus_dev *bus_find(const struct bus *b, uint64_t addr, unsigned size);
/* Returns true if a device claimed the access. Unclaimed reads fill data with 0xff. */
bool bus_read(struct bus *b, uint64_t addr, void *data, unsigned size);
bool bus_write(struct bus *b, uint64_t addr, const void *data, unsigned size);

#endif
