/* A scenario: what the guest does, chosen with `scenario=NAME`. Add one as
 * guest/scenarios/NAME.c defining `const struct scenario scenario_NAME` and list it in table.c. */
#ifndef GUEST_SCENARIO_H
#define GUEST_SCENARIO_H

#include <stddef.h>

struct scenario {
	const char *name;
	/* BSP, ring 3: runs the checks with the reporter (lib/report.h); the runtime prints the
	 * closing line and exits afterwards. */
	void (*run)(void);
	/* APs, ring 3, or NULL to park them. Called once per AP with its vCPU index. */
	void (*ap)(unsigned cpu);
};

const struct scenario *scenario_find(const char *name);
/* "hello, smp" */
void scenario_names(char *buf, size_t size);

#endif
