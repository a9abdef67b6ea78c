/* Ring-3 side of the syscall gate (numbers and register use in arch/arch.h). Only what ring 3
 * cannot do goes through it: port I/O (faults at CPL3 on this host), MSRs, CPUID and
 * page-table changes. */
#ifndef GUEST_SYS_H
#define GUEST_SYS_H

#include <stddef.h>
#include <stdint.h>

#include "arch/arch.h"

static inline uint64_t syscall3(uint64_t nr, uint64_t a, uint64_t b, uint64_t c)
{
	/* sys_trap is `ud2; ret` (arch.h); no red zone in this build, so a call is safe here */
	__asm__ volatile("call sys_trap"
			 : "+a"(nr), "+D"(a), "+S"(b), "+d"(c)
			 :
			 : "rcx", "r8", "r9", "r10", "r11", "memory");
	return nr;
}

static inline void sys_write(const void *buf, size_t len)
{
	syscall3(SYS_WRITE, (uint64_t)buf, len, 0);
}

static inline __attribute__((noreturn)) void sys_exit(uint32_t status)
{
	syscall3(SYS_EXIT, status, 0, 0);
	__builtin_unreachable();
}

static inline uint32_t pio_in(uint16_t port, unsigned size)
{
	return syscall3(SYS_PIO_IN, port, size, 0);
}

static inline void pio_out(uint16_t port, unsigned size, uint32_t value)
{
	syscall3(SYS_PIO_OUT, port, size, value);
}

static inline uint64_t rdmsr(uint32_t msr)
{
	return syscall3(SYS_RDMSR, msr, 0, 0);
}

static inline void wrmsr(uint32_t msr, uint64_t value)
{
	syscall3(SYS_WRMSR, msr, value, 0);
}

/* Identity-map [phys, phys + size) in 2 MiB pages (rounded outwards), user-accessible and
 * writable, with attr MAP_WB / MAP_WT / MAP_UC_MINUS / MAP_UC. 0 or -1. Prefer map_phys()
 * (lib/mem.h), which also checks the range against the CPU's physical address width. */
static inline int sys_map(uint64_t phys, uint64_t size, unsigned attr)
{
	return (int)syscall3(SYS_MAP, phys, size, attr);
}

#endif
