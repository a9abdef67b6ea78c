/* Guest-physical memory as the VMM sees it: a few regions, each a host mapping.
 *
 * Every device and loader reaches guest memory only through guest_mem_ptr(), which
 * refuses any range that is not wholly inside one region (overflow-safe). The guest
 * is the adversary: an address it wrote is never dereferenced without this check.
 * Kept free of KVM so unit tests and fuzz targets can build one over malloc'd memory. */
#ifndef CVMM_GUEST_MEM_H
#define CVMM_GUEST_MEM_H

#include <stddef.h>
#include <stdint.h>

#define GUEST_MEM_MAX_REGIONS 8

struct guest_region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *host;
};

struct guest_mem {
	struct guest_region r[GUEST_MEM_MAX_REGIONS];
	int n;
};

/* Add a region; returns 0, or -1 if full or it overlaps an existing one. */
int guest_mem_add(struct guest_mem *m, uint64_t gpa, uint64_t size, void *host);

/* Host pointer for [gpa, gpa+len), or NULL unless the whole range lies in one region.
 * len 0 is treated as 1 (the address itself must be valid). */
void *guest_mem_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len);

/* Total bytes of RAM described. */
uint64_t guest_mem_total(const struct guest_mem *m);

#endif
