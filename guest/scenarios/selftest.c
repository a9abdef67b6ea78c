/* Scenarios that misbehave on purpose, so the VMM's handling of a stuck or crashing guest is
 * tested: `hang` spins in ring 3 forever (cvmm --timeout must end it), `fault` executes an
 * invalid instruction in ring 3 (the trap handler must report it and end the run with 2). */
#include "lib/rt.h"
#include "scenarios/scenario.h"

static void hang(void)
{
	printf("# hang: spinning in ring 3 until the VMM stops the VM\n");
	for (;;)
		__asm__ volatile("pause");
}

static void fault(void)
{
	printf("# fault: executing ud2 in ring 3\n");
	__asm__ volatile("ud2");
	t_check(false, "ud2 in ring 3 traps", "execution continued after ud2");
}

const struct scenario scenario_hang = { .name = "hang", .run = hang };
const struct scenario scenario_fault = { .name = "fault", .run = fault };
