/* Per-CPU data for ring 3, found through the GS base that cpu_setup() loads (ring 3 cannot
 * write it itself without FSGSBASE). %gs:0 holds the struct's own address. */
#ifndef GUEST_PERCPU_H
#define GUEST_PERCPU_H

#include <stdint.h>

#include "arch/arch.h"

#define LINE_MAX 256

struct percpu {
	struct percpu *self;
	uint64_t cpu;
	uint32_t line_len;
	/* the console line being built; aligned so the string outs never straddles a page */
	char line[LINE_MAX] __attribute__((aligned(LINE_MAX)));
};

extern struct percpu percpu[MAX_CPUS];

static inline struct percpu *this_cpu(void)
{
	struct percpu *p;

	__asm__("mov %%gs:0, %0" : "=r"(p));
	return p;
}

static inline unsigned cpu_index(void)
{
	return this_cpu()->cpu;
}

#endif
