/* Time from the TSC, readable at full speed in ring 3 (CR4.TSD is 0). The TSC rate comes from,
 * in order: the `tsc_khz=` argument, the hypervisor timing leaf 0x40000010, KVM's pvclock
 * (kvmclock), CPUID 0x15, CPUID 0x16, else a 2 GHz guess: good enough for timeouts. */
#ifndef GUEST_TIME_H
#define GUEST_TIME_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/cpu.h"

void time_init(void);
uint64_t tsc_khz(void);
const char *tsc_source(void); /* "cmdline", "cpuid-0x40000010", "kvmclock", ..., "guess" */

uint64_t ns_to_tsc(uint64_t ns);
uint64_t tsc_to_ns(uint64_t ticks);

static inline uint64_t deadline_after_ns(uint64_t ns)
{
	return rdtsc() + ns_to_tsc(ns);
}

static inline bool deadline_passed(uint64_t deadline)
{
	return (int64_t)(rdtsc() - deadline) >= 0;
}

#endif
