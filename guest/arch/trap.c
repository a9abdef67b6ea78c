/* Exceptions in ring 0: give a hook the first say (vector 18, machine check, is what a later
 * scenario will take over), otherwise print one diagnostic line and end the VM with status 2.
 * The report writes the serial port itself: it must work even if ring 3 died holding the
 * console lock. */
#include <stdint.h>

#include "arch/arch.h"
#include "lib/fmt.h"

trap_hook_fn trap_hooks[NR_EXCEPTIONS];

void trap_dispatch(struct trap_frame *f);
void exit_failed(void) __attribute__((noreturn));

static const char *const names[NR_EXCEPTIONS] = {
	"#DE divide error", "#DB debug", "NMI", "#BP breakpoint", "#OF overflow",
	"#BR bound range", "#UD invalid opcode", "#NM device not available", "#DF double fault",
	"coprocessor overrun", "#TS invalid TSS", "#NP segment not present", "#SS stack fault",
	"#GP general protection", "#PF page fault", "reserved 15", "#MF x87 error",
	"#AC alignment check", "#MC machine check", "#XM SIMD error", "#VE virtualization",
	"#CP control protection", "reserved 22", "reserved 23", "reserved 24", "reserved 25",
	"reserved 26", "reserved 27", "#HV hypervisor injection", "#VC VMM communication",
	"#SX security", "reserved 31",
};

static unsigned this_cpu_index(void)
{
	uint16_t tr;

	__asm__ volatile("str %0" : "=r"(tr));
	return tr >= SEL_TSS0 ? (tr - SEL_TSS0) / 16 : 0;
}

static void serial_write(const char *s, unsigned long n)
{
	__asm__ volatile("rep outsb" : "+S"(s), "+c"(n) : "d"(COM1_PORT) : "memory");
}

static __attribute__((noreturn)) void die(uint32_t status)
{
	__asm__ volatile("outl %0, %w1" ::"a"(status), "Nd"(DEBUG_EXIT_PORT));
	exit_failed();
}

void trap_dispatch(struct trap_frame *f)
{
	static volatile int reporting;
	char line[256];
	uint64_t cr2;
	int n;

	if (f->vector < NR_EXCEPTIONS && trap_hooks[f->vector] && trap_hooks[f->vector](f))
		return;
	if (__atomic_exchange_n(&reporting, 1, __ATOMIC_ACQ_REL))
		die(2); /* a fault while reporting, or two CPUs crashing at once: just stop */
	__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	n = snprintf(line, sizeof(line),
		     "guest: trap %lu %s err=0x%lx rip=0x%lx cr2=0x%lx rsp=0x%lx cpu=%u ring=%lu\n",
		     f->vector, f->vector < NR_EXCEPTIONS ? names[f->vector] : "?", f->error,
		     f->rip, cr2, f->rsp, this_cpu_index(), f->cs & 3);
	if (n > (int)sizeof(line) - 1)
		n = sizeof(line) - 1;
	serial_write(line, n);
	die(2);
}
