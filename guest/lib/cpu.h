/* CPU helpers for ring 3. */
#ifndef GUEST_CPU_H
#define GUEST_CPU_H

#include <stdint.h>

#include "arch/arch.h"

struct cpuid_regs {
	uint32_t eax, ebx, ecx, edx;
};

/* CPUID as the VMM configured it. Executed at CPL3 on this host the instruction is not
 * intercepted and reports the host CPU (its APIC ID, its features), so this goes through the
 * syscall gate: ~20 us plus an exit; call it once, not in loops. */
static inline struct cpuid_regs cpuid(uint32_t leaf, uint32_t sub)
{
	uint64_t ab = SYS_CPUID, dc = 0, l = leaf, s = sub;

	__asm__ volatile("call sys_trap"
			 : "+a"(ab), "+D"(l), "+S"(s), "+d"(dc)
			 :
			 : "rcx", "r8", "r9", "r10", "r11", "memory");
	return (struct cpuid_regs){ (uint32_t)ab, ab >> 32, (uint32_t)dc, dc >> 32 };
}

static inline unsigned current_cpl(void)
{
	uint16_t cs;

	__asm__ volatile("mov %%cs, %0" : "=r"(cs));
	return cs & 3;
}

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}

static inline void cpu_relax(void)
{
	__asm__ volatile("pause" ::: "memory");
}

#endif
