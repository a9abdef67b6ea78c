/* hello: the smallest end-to-end check that boot, ring 3, the console, the command line, the
 * memory map and the allocator work. */
#include "lib/rt.h"
#include "scenarios/scenario.h"

static bool ram_above_1m(void)
{
	const struct mem_range *r;
	int n = mem_ranges(&r);
	bool found = false;

	for (int i = 0; i < n; i++) {
		t_diag("ram [0x%lx, 0x%lx) %lu KiB", r[i].base, r[i].base + r[i].size,
		       r[i].size >> 10);
		if (r[i].base + r[i].size > (1 << 20) && r[i].size > (1 << 20))
			found = true;
	}
	return found;
}

/* Write a pattern to the first and last word of every page of a fresh allocation, read it back. */
static void store_load(void)
{
	const uint64_t size = 64 << 10;
	volatile uint64_t *p = mem_alloc(size, 4096);
	uint64_t words = size / 8, bad = words;

	if (!t_check(p != NULL, "allocate 64 KiB above the image", "out of RAM (%lu bytes free)",
		     mem_free_bytes()))
		return;
	for (uint64_t i = 0; i < words; i += 511)
		p[i] = 0x5a5a000000000000ull ^ (uint64_t)&p[i];
	for (uint64_t i = 0; i < words; i += 511) {
		uint64_t want = 0x5a5a000000000000ull ^ (uint64_t)&p[i];

		if (p[i] != want) {
			bad = i;
			break;
		}
	}
	t_check(bad == words, "store/load to free RAM above the image",
		"at %p wrote 0x%lx read 0x%lx", &p[bad], (uint64_t)(0x5a5a000000000000ull ^ (uint64_t)&p[bad]),
		p[bad]);
}

static void hello(void)
{
	const char *sc = arg_str("scenario", "");
	uint64_t t0, t1;

	printf("cvmm guest: hello from ring 3 (cpu %u)\n", cpu_index());
	t_check(current_cpl() == 3, "runs at CPL 3", "CPL is %u", current_cpl());
	if (!cmdline_raw()[0]) /* no command line: hello is the default, nothing to parse */
		t_check(true, "empty command line selects the default scenario", "-");
	else
		t_check(!strcmp(sc, "hello"), "command line parsed (scenario=hello)", "cmdline '%s'",
			cmdline_raw());
	t_check(ram_above_1m(), "memory map has a RAM range above 1 MiB", "no such range");
	store_load();
	t0 = rdtsc();
	for (volatile int i = 0; i < 1000; i++)
		;
	t1 = rdtsc();
	t_check(t1 > t0, "rdtsc works in ring 3 and advances", "t0=%lu t1=%lu", t0, t1);
}

const struct scenario scenario_hello = { .name = "hello", .run = hello };
