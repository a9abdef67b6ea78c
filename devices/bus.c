#include "devices/bus.h"

#include <string.h>

void bus_init(struct bus *b, const char *name)
{
	memset(b, 0, sizeof(*b));
	b->name = name;
}

static bool overlaps(const struct bus *b, uint64_t base, uint64_t len, const void *skip)
{
	for (int i = 0; i < b->n; i++) {
		const struct bus_dev *d = &b->devs[i];
		if (d->opaque == skip && skip)
			continue;
		if (base < d->base + d->len && d->base < base + len)
			return true;
	}
	return false;
}

int bus_register(struct bus *b, const char *name, uint64_t base, uint64_t len,
		 bus_read_fn rd, bus_write_fn wr, void *opaque)
{
	if (b->n >= BUS_MAX_DEVS || len == 0 || base + len < base || overlaps(b, base, len, NULL))
		return -1;
	b->devs[b->n++] = (struct bus_dev){ name, base, len, rd, wr, opaque };
	return 0;
}

int bus_move(struct bus *b, void *opaque, uint64_t old_base, uint64_t new_base)
{
	for (int i = 0; i < b->n; i++) {
		struct bus_dev *d = &b->devs[i];
		if (d->opaque != opaque || d->base != old_base)
			continue;
		if (new_base + d->len < new_base || overlaps(b, new_base, d->len, opaque))
			return -1;
		d->base = new_base;
		return 0;
	}
	return -1;
}

const struct bus_dev *bus_find(const struct bus *b, uint64_t addr, unsigned size)
{
	for (int i = 0; i < b->n; i++) {
		const struct bus_dev *d = &b->devs[i];
		if (addr >= d->base && addr - d->base < d->len && size <= d->len - (addr - d->base))
			return d;
	}
	return NULL;
}

bool bus_read(struct bus *b, uint64_t addr, void *data, unsigned size)
{
	const struct bus_dev *d = bus_find(b, addr, size);
	if (!d || !d->read || d->read(d->opaque, addr - d->base, data, size) != 0) {
		memset(data, 0xff, size);
		__atomic_add_fetch(&b->unclaimed, 1, __ATOMIC_RELAXED);
		return false;
	}
	return true;
}

bool bus_write(struct bus *b, uint64_t addr, const void *data, unsigned size)
{
	const struct bus_dev *d = bus_find(b, addr, size);
	if (!d || !d->write || d->write(d->opaque, addr - d->base, data, size) != 0) {
		__atomic_add_fetch(&b->unclaimed, 1, __ATOMIC_RELAXED);
		return false;
	}
	return true;
}
