/* The one table of scenarios. */
#include "lib/rt.h"
#include "scenarios/scenario.h"

extern const struct scenario scenario_hello, scenario_smp, scenario_hang, scenario_fault,
	scenario_blk, scenario_blk_bad, scenario_pmem, scenario_pmem_populate, scenario_pmem_enospc,
	scenario_mce;
extern const struct scenario scenario_bench, scenario_bench_blk, scenario_bench_pmem_touch, scenario_bench_pmem_flush, scenario_bench_coherent_read, scenario_bench_idle;
extern const struct scenario scenario_coherency, scenario_coherency_populate, scenario_fsx, scenario_fsx_smp;
extern const struct scenario scenario_crash, scenario_multi, scenario_faults;

static const struct scenario *const table[] = {
	&scenario_hello,
	&scenario_smp,
	&scenario_hang,
	&scenario_fault,
	&scenario_blk,
	&scenario_blk_bad,
	&scenario_pmem,
	&scenario_pmem_populate,
	&scenario_pmem_enospc,
	&scenario_mce,
	&scenario_bench, &scenario_bench_blk, &scenario_bench_pmem_touch, &scenario_bench_pmem_flush, &scenario_bench_coherent_read, &scenario_bench_idle,
	&scenario_coherency, &scenario_coherency_populate, &scenario_fsx, &scenario_fsx_smp,
	&scenario_crash,
	&scenario_multi,
	&scenario_faults,
};

#define N (sizeof(table) / sizeof(table[0]))

const struct scenario *scenario_find(const char *name)
{
	for (size_t i = 0; i < N; i++)
		if (!strcmp(table[i]->name, name))
			return table[i];
	return NULL;
}

void scenario_names(char *buf, size_t size)
{
	size_t len = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < N && len < size; i++)
		len += snprintf(buf + len, size - len, "%s%s", i ? ", " : "", table[i]->name);
}
