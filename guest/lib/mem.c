#include "lib/mem.h"

#include "lib/console.h"
#include "lib/cpu.h"
#include "lib/sys.h"
#include "lib/string.h"

extern char _end[]; /* linker script: end of the image including .bss */

static struct mem_range ranges[MEM_MAX_RANGES];
static int nranges;
static uint64_t next, limit; /* the allocator's window [next, limit) */

static void add_range(uint64_t base, uint64_t size)
{
	int i;

	if (nranges == MEM_MAX_RANGES || !size)
		return;
	for (i = nranges; i > 0 && ranges[i - 1].base > base; i--)
		ranges[i] = ranges[i - 1];
	ranges[i].base = base;
	ranges[i].size = size;
	nranges++;
}

/* Boot data the VMM left above the image must not be handed out. */
static void keep_below(uint64_t addr)
{
	if (addr >= next && addr < limit)
		limit = addr & ~0xfffull;
}

void mem_init(const struct hvm_start_info *si)
{
	const struct hvm_memmap_entry *e = (const void *)si->memmap_paddr;

	if (si->version >= 1 && si->memmap_paddr && si->memmap_entries) {
		for (uint32_t i = 0; i < si->memmap_entries; i++)
			if (e[i].type == E820_RAM)
				add_range(e[i].addr, e[i].size);
	} else {
		printf("# guest: no memory map from the VMM (start_info version %u); assuming %llu MiB\n",
		       si->version, MEM_DEFAULT_SIZE >> 20);
		add_range(0, MEM_DEFAULT_SIZE);
	}
	next = ((uint64_t)_end + 0xfff) & ~0xfffull;
	for (int i = 0; i < nranges; i++)
		if (next >= ranges[i].base && next < ranges[i].base + ranges[i].size)
			limit = ranges[i].base + ranges[i].size;
	keep_below((uint64_t)si);
	keep_below(si->cmdline_paddr);
	keep_below(si->memmap_paddr);
	keep_below(si->modlist_paddr);
	keep_below(si->rsdp_paddr);
}

int mem_ranges(const struct mem_range **out)
{
	*out = ranges;
	return nranges;
}

void *mem_alloc(uint64_t size, uint64_t align)
{
	uint64_t cur, start;

	if (!align)
		align = 16;
	cur = __atomic_load_n(&next, __ATOMIC_RELAXED);
	do {
		start = (cur + align - 1) & ~(align - 1);
		if (start < cur || start > limit || size > limit - start)
			return 0;
	} while (!__atomic_compare_exchange_n(&next, &cur, start + size, 0, __ATOMIC_RELAXED,
					      __ATOMIC_RELAXED));
	return (void *)start;
}

void *mem_zalloc(uint64_t size, uint64_t align)
{
	void *p = mem_alloc(size, align);

	return p ? memset(p, 0, size) : 0;
}

uint64_t mem_free_bytes(void)
{
	uint64_t n = __atomic_load_n(&next, __ATOMIC_RELAXED);

	return n < limit ? limit - n : 0;
}

unsigned phys_addr_bits(void)
{
	static unsigned bits;

	if (!bits) {
		bits = 36; /* architectural default without leaf 0x80000008 */
		if (cpuid(0x80000000, 0).eax >= 0x80000008)
			bits = cpuid(0x80000008, 0).eax & 0xff;
	}
	return bits;
}

void *map_phys(uint64_t phys, uint64_t size, unsigned attr)
{
	unsigned bits = phys_addr_bits();
	uint64_t limit = bits >= 64 ? ~0ull : 1ull << bits;

	if (!size || phys >= limit || size > limit - phys)
		return 0;
	if (sys_map(phys, size, attr) < 0)
		return 0;
	return (void *)phys;
}
