/* Constants shared by the boot assembly and C: segment selectors, stack sizes, ports, and the
 * syscall numbers of the ring-0 gate (a ud2 at sys_trap). See guest/README.md for the boot contract. */
#ifndef GUEST_ARCH_H
#define GUEST_ARCH_H

#define MAX_CPUS 64

/* GDT layout: null, kernel code/data, user data/code, then one 16-byte TSS descriptor per CPU. CS=0x8 and DS=0x10 match what cvmm loads at entry. */
#define SEL_KCODE 0x08
#define SEL_KDATA 0x10
#define SEL_UDATA 0x1b /* index 3, RPL 3 */
#define SEL_UCODE 0x23 /* index 4, RPL 3 */
#define SEL_TSS0 0x28  /* CPU i: SEL_TSS0 + 16 * i */
#define GDT_ENTRIES (5 + 2 * MAX_CPUS)

#define KSTACK_SIZE 8192  /* ring-0 stack per CPU (TSS.RSP0): traps and syscalls */
#define ISTACK_SIZE 4096  /* IST1 per CPU: double fault only */
#define USTACK_SIZE 32768 /* ring-3 stack per CPU: big buffers come from mem_alloc() */

#define COM1_PORT 0x3f8
#define DEBUG_EXIT_PORT 0xf4

/* Syscall gate. On this host's KVM (PVM-style: ring 0 emulated), `int n` from ring 3 raises
 * #UD whatever the gate's DPL, and `syscall` lands in the handler still at CPL 3, where port
 * I/O faults. Exceptions from ring 3 do reach the IDT in ring 0. So the gate is one `ud2` at a
 * known address (sys_trap in traps.S, reached with `call`): the #UD stub recognises that RIP,
 * steps over it and dispatches. rax = number, rdi/rsi/rdx = arguments, result in rax; clobbers
 * the SysV caller-saved registers (rax rcx rdx rsi rdi r8-r11); unknown numbers return -1.
 * Each call costs one exception into (emulated) ring 0 plus any VM exit it makes. */
#define SYS_WRITE 1   /* (buf, len): rep outsb to COM1, a whole line per call */
#define SYS_EXIT 2    /* (status): outl to DEBUG_EXIT_PORT; never returns */
#define SYS_PIO_IN 3  /* (port, size 1/2/4) -> value */
#define SYS_PIO_OUT 4 /* (port, size 1/2/4, value) */
#define SYS_RDMSR 5   /* (msr) -> value (a bad MSR is a #GP: crash report) */
#define SYS_WRMSR 6   /* (msr, value) */
#define SYS_CPUID 7   /* (leaf, subleaf) -> rax = ebx:eax, rdx = edx:ecx (see lib/cpu.h) */
#define SYS_MAP 8     /* (phys, size, attr) -> 0 or -1: identity-map [phys, phys+size) (arch/map.c) */
#define NR_SYSCALLS 9

/* SYS_MAP attributes: the PAT index of the 2 MiB pages (PWT = bit 0, PCD = bit 1), with the
 * power-on PAT: 0 write-back (RAM, a pmem window), 1 write-through, 2 UC-, 3 uncached (MMIO). */
#define MAP_WB 0
#define MAP_WT 1
#define MAP_UC_MINUS 2
#define MAP_UC 3
#define MAP_LIMIT (1ull << 47) /* identity mapping stays in the canonical lower half */

#define VEC_DF 8
#define VEC_MC 18
#define NR_EXCEPTIONS 32

#ifndef __ASSEMBLER__
#include <stdint.h>

/* Operand of lgdt/lidt. */
struct dtr {
	uint16_t limit;
	uint64_t base;
} __attribute__((packed));

/* What trap_common (traps.S) pushes, lowest address first. */
struct trap_frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
	uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vector, error;
	uint64_t rip, cs, rflags, rsp, ss; /* pushed by the CPU */
};

/* A hook for an exception vector, called in ring 0 (slow: emulated) with the frame. Return
 * nonzero if handled: the frame (possibly changed, e.g. rip) is resumed. Return 0 to fall
 * back to the crash report. Ring 3 may set these directly: all memory is user-writable. */
typedef int (*trap_hook_fn)(struct trap_frame *f);
extern trap_hook_fn trap_hooks[NR_EXCEPTIONS];

void idt_init(void);
void cpu_setup(uint64_t cpu);
int64_t sys_map_range(uint64_t phys, uint64_t size, uint64_t attr); /* ring 0, arch/map.c */
#endif

#endif
