#include "lib/console.h"

#include "lib/fmt.h"
#include "lib/percpu.h"
#include "lib/sync.h"
#include "lib/sys.h"

static spinlock_t lock;

void console_flush(void)
{
	struct percpu *p = this_cpu();

	if (!p->line_len)
		return;
	spin_lock(&lock);
	sys_write(p->line, p->line_len);
	spin_unlock(&lock);
	p->line_len = 0;
}

void console_putc(char c)
{
	struct percpu *p = this_cpu();

	p->line[p->line_len++] = c;
	if (c == '\n' || p->line_len == LINE_MAX)
		console_flush();
}

static void put(void *ctx, char c)
{
	(void)ctx;
	console_putc(c);
}

int vprintf(const char *fmt, va_list ap)
{
	return vformat(put, 0, fmt, ap);
}

int printf(const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vprintf(fmt, ap);
	va_end(ap);
	return n;
}
