/* SYS_MAP, in ring 0: identity-map [phys, phys + size) with 2 MiB pages, present, writable,
 * user-accessible, with the cache attribute asked for (a PAT index 0..3: arch.h MAP_*).
 *
 * The static tables (pagetables.S) map [0, 4 GiB). Anything above (a pmem window, 64-bit BARs,
 * QEMU's memory-hotplug area) needs a page directory per GiB and, beyond 512 GiB, a PDPT per
 * 512 GiB: they come from a small pool in .bss (zero at load, as the whole .bss; never freed).
 *
 * Ring 0 is emulated here (~1.2 us an instruction), so this is one short loop over the 2 MiB
 * entries and nothing else: ~1 ms for a 64 MiB window. Entries that go from not-present to
 * present need no TLB flush; if an existing entry changes (another attribute for a range in
 * the PCI hole, say) this CPU reloads CR3. Other CPUs are not told (no IPIs in this guest):
 * change attributes before starting APs, or only add new ranges while they run. */
#include <stdint.h>

#include "arch/arch.h"

#define PTE_P 0x1ull
#define PTE_W 0x2ull
#define PTE_U 0x4ull
#define PTE_PWT 0x8ull
#define PTE_PCD 0x10ull
#define PTE_PS 0x80ull
#define PTE_ADDR 0x000ffffffffff000ull
#define TABLE (PTE_P | PTE_W | PTE_U)
#define BIG_PAGE (2ull << 20)

#define PT_POOL_PAGES 32 /* 31 GiB of new mappings below 512 GiB, fewer if spread wider */

extern uint64_t pml4[];
static uint64_t pt_pool[PT_POOL_PAGES][512] __attribute__((aligned(4096)));
static unsigned pt_used;
static uint32_t map_lock;

/* The entry at e, made to point to a table if it is not present. NULL: pool exhausted, or a
 * large page is already there (we never create 1 GiB pages; nobody else does either). */
static uint64_t *next_table(uint64_t *e)
{
	if (!(*e & PTE_P)) {
		if (pt_used == PT_POOL_PAGES)
			return 0;
		*e = (uint64_t)pt_pool[pt_used++] | TABLE;
	} else if (*e & PTE_PS) {
		return 0;
	}
	return (uint64_t *)(*e & PTE_ADDR);
}

int64_t sys_map_range(uint64_t phys, uint64_t size, uint64_t attr)
{
	uint64_t a, end, flags = PTE_P | PTE_W | PTE_U | PTE_PS;
	int64_t ret = 0;
	int changed = 0;

	if (!size || attr > MAP_UC || phys >= MAP_LIMIT || size > MAP_LIMIT - phys)
		return -1;
	if (attr & 1)
		flags |= PTE_PWT;
	if (attr & 2)
		flags |= PTE_PCD;
	end = (phys + size + BIG_PAGE - 1) & ~(BIG_PAGE - 1);
	while (__atomic_exchange_n(&map_lock, 1, __ATOMIC_ACQUIRE))
		__asm__ volatile("pause");
	for (a = phys & ~(BIG_PAGE - 1); a < end; a += BIG_PAGE) {
		uint64_t *pdpt = next_table(&pml4[(a >> 39) & 511]);
		uint64_t *pd = pdpt ? next_table(&pdpt[(a >> 30) & 511]) : 0;
		uint64_t *pde, want = a | flags;

		if (!pd) {
			ret = -1;
			break;
		}
		pde = &pd[(a >> 21) & 511];
		if (*pde != want) {
			changed |= (*pde & PTE_P) != 0;
			*pde = want;
		}
	}
	if (changed) {
		uint64_t cr3;

		__asm__ volatile("mov %%cr3, %0\n\tmov %0, %%cr3" : "=r"(cr3) : : "memory");
	}
	__atomic_store_n(&map_lock, 0, __ATOMIC_RELEASE);
	return ret;
}
