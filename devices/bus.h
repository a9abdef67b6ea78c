/* An address bus (one for port I/O, one for MMIO) that dispatches guest accesses to devices.
 *
 * Devices register a range and two callbacks; the vCPU exit handler calls bus_read/bus_write.
 * An access that no device claims reads as all ones and drops writes, like an empty ISA/PCI
 * slot, and is counted so the exit summary can show it.
 *
 * Concurrency: most devices register before vCPUs run, but PCI BARs move, appear and vanish
 * while they run (a guest reprograms a BAR or toggles memory decoding through ECAM or 0xCFC,
 * i.e. from inside a dispatch on this very bus, while other vCPUs dispatch too). The device
 * table is guarded by a rwlock that dispatch holds only while it looks the address up: it
 * copies the matching entry and calls the device with no bus lock held. So a callback may call
 * bus_register/bus_move/bus_unregister (they take the write lock) without deadlock, and a
 * concurrent access on another vCPU is routed either by the old table or by the new one, never
 * a torn one. An access routed just before a move reaches the device with the offset from the
 * old base, as if it had completed just before the move: the same ordering real hardware gives.
 * Devices are never freed while vCPUs run, so a callback's opaque stays valid. */
#ifndef CVMM_BUS_H
#define CVMM_BUS_H

#include <pthread.h>
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
	pthread_rwlock_t lock;   /* guards devs[] and n (see above) */
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
/* Remove the device registered at base with this opaque (PCI memory decoding turned off).
 * Returns 0 or -1 if there is none. */
int bus_unregister(struct bus *b, void *opaque, uint64_t base);
/* Unlocked lookup for single-threaded callers (setup, tests): the pointer is into the table
 * and is only stable while nothing registers, moves or unregisters. Dispatch does not use it. */
const struct bus_dev *bus_find(const struct bus *b, uint64_t addr, unsigned size);
/* Locked lookup: copies the entry into *out. Returns true if a device covers the access. */
bool bus_lookup(struct bus *b, uint64_t addr, unsigned size, struct bus_dev *out);
/* Returns true if a device claimed the access. Unclaimed reads fill data with 0xff. */
bool bus_read(struct bus *b, uint64_t addr, void *data, unsigned size);
bool bus_write(struct bus *b, uint64_t addr, const void *data, unsigned size);

#endif
