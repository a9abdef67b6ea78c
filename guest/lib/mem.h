/* Guest RAM: the RAM ranges of the PVH memory map, and a bump allocator over the RAM above the
 * image (virtqueues, buffers). Nothing is ever freed. All addresses are identity mapped, so a
 * pointer is also the guest-physical address a device wants. */
#ifndef GUEST_MEM_H
#define GUEST_MEM_H

#include <stdint.h>

#include "lib/pvh.h"

#define MEM_MAX_RANGES 32
/* Without a memory map (PVH version 0), assume this much RAM from 0: cvmm's minimum. */
#define MEM_DEFAULT_SIZE (16ull << 20)

struct mem_range {
	uint64_t base, size;
};

void mem_init(const struct hvm_start_info *si);
/* RAM ranges, sorted by base; returns their count. */
int mem_ranges(const struct mem_range **out);
/* size bytes aligned to align (a power of two, 0 = 16), or 0 when RAM runs out. Not zeroed. */
void *mem_alloc(uint64_t size, uint64_t align);
void *mem_zalloc(uint64_t size, uint64_t align);
uint64_t mem_free_bytes(void);

/* Make [phys, phys + size) reachable from ring 3 at the same virtual address (SYS_MAP) with a
 * cache attribute (arch.h MAP_*): MMIO MAP_UC, RAM and pmem windows MAP_WB. [0, 4 GiB) is mapped
 * at boot ([0xB0000000, 4 GiB) uncached). Returns the pointer, or NULL if the range is beyond the
 * CPU's physical address width (CPUID 0x80000008) or the page-table pool is exhausted. */
void *map_phys(uint64_t phys, uint64_t size, unsigned attr);
unsigned phys_addr_bits(void);

#endif
