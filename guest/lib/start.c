/* Ring-3 entry for every CPU (arch/boot.S irets here). The BSP sets up the runtime, picks the
 * scenario from the command line and runs it; APs wait for that choice and run the scenario's
 * AP routine, if any, then park in ring 3 (the VMM stops them when the BSP ends the VM). */
#include "lib/rt.h"
#include "scenarios/scenario.h"
#include "lib/mark.h"

void rt_start(uint64_t cpu, uint64_t start_info) __attribute__((noreturn));

extern uint64_t boot_tsc; /* TSC at _start64 on the BSP (boot.S) */
static const struct scenario *current;
static const struct hvm_start_info *start_info;

const struct hvm_start_info *boot_start_info(void)
{
	return start_info;
}

void guest_exit(uint32_t status)
{
	console_flush();
	sys_exit(status);
}

static __attribute__((noreturn)) void park(void)
{
	for (;;)
		cpu_relax();
}

static __attribute__((noreturn)) void bsp_main(const struct hvm_start_info *si)
{
	const struct scenario *sc;
	const char *name;
	char known[256];
	uint64_t t0, t1;

	if (!si || si->magic != HVM_START_MAGIC) {
		printf("guest: no PVH start info (at %p, magic 0x%x)\n", si, si ? si->magic : 0);
		guest_exit(2);
	}
	start_info = si;
	cmdline_parse(si->cmdline_paddr ? (const char *)si->cmdline_paddr : "");
	mem_init(si);
	time_init();
	name = arg_str("scenario", "hello");
	sc = scenario_find(name);
	if (!sc) {
		scenario_names(known, sizeof(known));
		printf("guest: unknown scenario '%s' (known: %s)\n", name, known);
		guest_exit(2);
	}
	/* kept short: every console byte costs a VM exit (lib/console.h) */
	t_diag("guest: %s, tsc %lu kHz (%s), %lu MiB free", sc->name, tsc_khz(), tsc_source(),
	       mem_free_bytes() >> 20);
	__atomic_store_n(&current, sc, __ATOMIC_RELEASE);
	/* mark=TEXT / mark_end=TEXT: a write-log mark before / after the scenario (lib/mark.h) */
	const char *mark = arg_str("mark", NULL);
	if (mark)
		guest_mark(mark);
	t0 = rdtsc();
	sc->run();
	t1 = rdtsc();
	mark = arg_str("mark_end", NULL);
	if (mark)
		guest_mark(mark);
	t_diag("guest: boot %lu us, scenario %lu us", tsc_to_ns(t0 - boot_tsc) / 1000,
	       tsc_to_ns(t1 - t0) / 1000);
	t_done();
}

void rt_start(uint64_t cpu, uint64_t start_info)
{
	const struct scenario *sc;

	if (cpu == 0)
		bsp_main((const struct hvm_start_info *)start_info);
	while (!(sc = __atomic_load_n(&current, __ATOMIC_ACQUIRE)))
		cpu_relax();
	if (sc->ap)
		sc->ap(cpu);
	console_flush();
	park();
}
