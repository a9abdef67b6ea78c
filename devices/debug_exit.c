#include "devices/debug_exit.h"

#include <string.h>

static int debug_exit_write(void *opaque, uint64_t off, const void *data, unsigned size)
{
	struct debug_exit *d = opaque;
	uint32_t v = 0;
	if (off != 0)
		return 0;
	memcpy(&v, data, size > 4 ? 4 : size);
	d->on_exit(d->ctx, v);
	return 0;
}

static int debug_exit_read(void *opaque, uint64_t off, void *data, unsigned size)
{
	memset(data, 0, size);
	return 0;
}

int debug_exit_register(struct debug_exit *d, struct bus *pio)
{
	return bus_register(pio, "debug-exit", DEBUG_EXIT_PORT, 4, debug_exit_read,
			    debug_exit_write, d);
}
