#include "lib/report.h"

#include <stdarg.h>

#include "lib/console.h"
#include "lib/rt.h"

static unsigned passed, failed;

bool t_check(bool cond, const char *name, const char *why, ...)
{
	unsigned n = passed + failed + 1;
	va_list ap;

	if (cond) {
		passed++;
		printf("ok %u - %s\n", n, name);
		return true;
	}
	failed++;
	printf("# ");
	va_start(ap, why);
	vprintf(why, ap);
	va_end(ap);
	printf("\nnot ok %u - %s\n", n, name);
	return false;
}

void t_diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

unsigned t_failed(void)
{
	return failed;
}

void t_done(void)
{
	printf("%u passed, %u failed\n", passed, failed);
	guest_exit(failed ? 1 : 0);
}
