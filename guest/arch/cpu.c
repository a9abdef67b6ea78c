/* Per-CPU ring-0 setup: the shared GDT (with one TSS per CPU), CR3, IDT, CR4 and the GS base
 * that ring 3 uses to find its per-CPU data. Runs once per CPU on its own ring-0 stack. */
#include <stdint.h>

#include "arch/arch.h"
#include "lib/percpu.h"

#define CR4_PAE (1u << 5)
#define CR4_MCE (1u << 6)  /* machine checks are delivered on vector 18 (a later scenario) */
#define CR4_TSD (1u << 2)  /* must stay 0: ring 3 times itself with rdtsc */
#define CR4_UMIP (1u << 11)
#define MSR_GS_BASE 0xc0000101

struct tss {
	uint32_t reserved0;
	uint64_t rsp0, rsp1, rsp2;
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3;
	uint16_t iomap_base; /* = sizeof: no I/O bitmap, so ring-3 port I/O faults (it does here anyway) */
} __attribute__((packed));

extern char kstack[], istack[];
extern uint64_t pml4[];
extern struct dtr idt_ptr;

static uint64_t gdt[GDT_ENTRIES] __attribute__((aligned(16))) = {
	0,
	0x00af9a000000ffffull, /* 0x08 kernel code, 64-bit */
	0x00cf92000000ffffull, /* 0x10 kernel data */
	0x00cff2000000ffffull, /* 0x18 user data, DPL 3 */
	0x00affa000000ffffull, /* 0x20 user code, 64-bit, DPL 3 */
	/* TSS descriptors are filled by each CPU */
};
/* Also loaded by the 32-bit PVH stub, which reads the low 32 bits of the base. */
struct dtr gdt_ptr = { sizeof(gdt) - 1, (uint64_t)gdt };

static struct tss tss[MAX_CPUS] __attribute__((aligned(16)));
struct percpu percpu[MAX_CPUS];

static void tss_setup(uint64_t cpu)
{
	struct tss *t = &tss[cpu];
	uint64_t base = (uint64_t)t, limit = sizeof(*t) - 1;
	unsigned idx = (SEL_TSS0 >> 3) + 2 * cpu;

	t->rsp0 = (uint64_t)kstack + (cpu + 1) * KSTACK_SIZE;
	t->ist[0] = (uint64_t)istack + (cpu + 1) * ISTACK_SIZE;
	t->iomap_base = sizeof(*t);
	/* 64-bit available TSS (type 9), present */
	gdt[idx] = (limit & 0xffff) | (base & 0xffffff) << 16 | 0x89ull << 40 |
		   ((limit >> 16) & 0xf) << 48 | ((base >> 24) & 0xff) << 56;
	gdt[idx + 1] = base >> 32;
	__asm__ volatile("ltr %w0" ::"r"(SEL_TSS0 + 16 * cpu));
}

static void wrmsr0(uint32_t msr, uint64_t v)
{
	__asm__ volatile("wrmsr" ::"c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}

void cpu_setup(uint64_t cpu)
{
	uint64_t cr4, gs = (uint64_t)&percpu[cpu];

	__asm__ volatile("mov %0, %%cr3" ::"r"(pml4) : "memory");
	__asm__ volatile("lgdt %0\n\t"
			 "pushq %1\n\t"
			 "lea 1f(%%rip), %%rax\n\t"
			 "pushq %%rax\n\t"
			 "lretq\n"
			 "1:\tmov %2, %%ds\n\t"
			 "mov %2, %%es\n\t"
			 "mov %2, %%ss\n\t"
			 /* null FS/GS, before the GS base MSR (a selector load resets the base); a
			  * kernel selector left in GS would be nulled by the iretq to ring 3 */
			 "mov %3, %%fs\n\t"
			 "mov %3, %%gs"
			 ::"m"(gdt_ptr), "i"(SEL_KCODE), "r"(SEL_KDATA), "r"(0) : "rax", "memory");
	__asm__ volatile("lidt %0" ::"m"(idt_ptr));
	tss_setup(cpu);
	__asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
	cr4 = (cr4 | CR4_PAE | CR4_MCE) & ~(uint64_t)(CR4_TSD | CR4_UMIP);
	__asm__ volatile("mov %0, %%cr4" ::"r"(cr4));
	percpu[cpu].self = &percpu[cpu];
	percpu[cpu].cpu = cpu;
	wrmsr0(MSR_GS_BASE, gs);
}
