/* smp: every vCPU runs ring-3 code concurrently. Each one checks its CPL, records its APIC ID,
 * meets the others at a barrier, then all hammer one counter with lock xadd and meet again.
 * The BSP checks the results. A vCPU that never arrives is a failure after a timeout. */
#include "lib/rt.h"
#include "scenarios/scenario.h"

#define INCREMENTS 1000000
#define CPUID1_EDX_HTT (1u << 28)

static struct {
	unsigned n;
	uint64_t timeout_ns;
	struct barrier bar;
	uint32_t ready;
	uint32_t cpl[MAX_CPUS];
	uint32_t self[MAX_CPUS]; /* cpu_index() as the per-CPU area (GS base) says */
	uint32_t apic[MAX_CPUS];
	uint32_t arrived[2][MAX_CPUS];
	uint64_t counter;
} s;

static void hammer(void)
{
	for (int i = 0; i < INCREMENTS; i++) {
		uint64_t one = 1;

		__asm__ volatile("lock xaddq %0, %1" : "+r"(one), "+m"(s.counter));
	}
}

/* The part every CPU runs. Returns the phase reached: 0 = first barrier timed out,
 * 1 = second barrier timed out, 2 = done. */
static int body(unsigned cpu)
{
	uint32_t sense = 0;

	s.cpl[cpu] = current_cpl();
	s.self[cpu] = cpu_index();
	s.apic[cpu] = cpuid(1, 0).ebx >> 24;
	__atomic_store_n(&s.arrived[0][cpu], 1, __ATOMIC_RELEASE);
	if (barrier_wait(&s.bar, &sense, s.timeout_ns))
		return 0;
	hammer();
	__atomic_store_n(&s.arrived[1][cpu], 1, __ATOMIC_RELEASE);
	if (barrier_wait(&s.bar, &sense, s.timeout_ns))
		return 1;
	return 2;
}

static void smp_ap(unsigned cpu)
{
	while (!__atomic_load_n(&s.ready, __ATOMIC_ACQUIRE))
		cpu_relax();
	if (cpu < s.n)
		body(cpu);
}

static unsigned count_cpus(void)
{
	struct cpuid_regs r = cpuid(1, 0);
	unsigned n = r.edx & CPUID1_EDX_HTT ? (r.ebx >> 16) & 0xff : 1;

	t_diag("smp: CPUID.1 HTT=%u EBX[23:16]=%u", !!(r.edx & CPUID1_EDX_HTT), (r.ebx >> 16) & 0xff);
	return arg_u64("cpus", n ? n : 1);
}

/* "1 3" for the CPUs below n that did not set arrived[phase]. */
static const char *missing(int phase, char *buf, size_t size)
{
	size_t len = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < s.n && len < size; i++)
		if (!__atomic_load_n(&s.arrived[phase][i], __ATOMIC_ACQUIRE))
			len += snprintf(buf + len, size - len, "%s%u", len ? " " : "", i);
	return buf;
}

static void smp(void)
{
	char buf[256];
	unsigned n = count_cpus(), bad = 0;
	uint64_t t0;
	int reached;

	if (!t_check(n >= 2, "smp needs at least 2 vCPUs", "only %u vCPU (CPUID.1 HTT/EBX, or cpus=)", n) ||
	    !t_check(n <= MAX_CPUS, "smp vCPU count within the guest's limit", "%u > %u", n, MAX_CPUS))
		return;
	s.n = n;
	s.timeout_ns = arg_u64("timeout_ms", 5000) * 1000000;
	barrier_init(&s.bar, n);
	__atomic_store_n(&s.ready, 1, __ATOMIC_RELEASE);

	t0 = rdtsc();
	reached = body(0);
	t0 = rdtsc() - t0;
	if (!t_check(reached >= 1, "all vCPUs reached the first barrier", "missing vCPUs: %s",
		     missing(0, buf, sizeof(buf))))
		return;
	for (unsigned i = 0; i < n; i++)
		if (s.cpl[i] != 3 && !bad++)
			snprintf(buf, sizeof(buf), "vCPU %u at CPL %u", i, s.cpl[i]);
	t_check(!bad, "every vCPU runs at CPL 3", "%s", buf);
	bad = 0;
	for (unsigned i = 0; i < n; i++)
		if (s.self[i] != i && !bad++)
			snprintf(buf, sizeof(buf), "vCPU %u finds per-CPU data of %u", i, s.self[i]);
	t_check(!bad, "every vCPU has its own per-CPU data", "%s", buf);
	bad = 0;
	for (unsigned i = 0; i < n; i++)
		for (unsigned j = i + 1; j < n; j++)
			if (s.apic[i] == s.apic[j] && !bad++)
				snprintf(buf, sizeof(buf), "vCPUs %u and %u both have APIC ID %u", i, j,
					 s.apic[i]);
	t_check(!bad, "APIC IDs are distinct", "%s", buf);
	bad = 0;
	for (unsigned i = 0; i < n; i++)
		if (s.apic[i] != i && !bad++)
			snprintf(buf, sizeof(buf), "vCPU %u has APIC ID %u", i, s.apic[i]);
	t_check(!bad, "vCPU i has APIC ID i", "%s", buf);
	if (!t_check(reached >= 2, "all vCPUs finished the increments", "missing vCPUs: %s",
		     missing(1, buf, sizeof(buf))))
		return;
	t_check(s.counter == (uint64_t)n * INCREMENTS, "shared counter == vCPUs x 1000000",
		"counter %lu, expected %lu", s.counter, (uint64_t)n * INCREMENTS);
	t_diag("smp: %u vCPUs met twice and did %u lock xadd each in %lu ms", n, INCREMENTS,
	       tsc_to_ns(t0) / 1000000);
}

const struct scenario scenario_smp = { .name = "smp", .run = smp, .ap = smp_ap };
