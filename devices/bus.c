#include "devices/bus.h"

#include <string.h>

void bus_init(struct bus *b, const char *name)
{
	memset(b, 0, sizeof(*b));
	b->name = name;
	pthread_rwlock_init(&b->lock, NULL);
}

static bool overlaps(const struct bus *b, uint64_t base, uint64_t len, const void *skip,
		     uint64_t skip_base)
{
	for (int i = 0; i < b->n; i++) {
		const struct bus_dev *d = &b->devs[i];
		if (skip && d->opaque == skip && d->base == skip_base)
			continue;
		if (base < d->base + d->len && d->base < base + len)
			return true;
	}
	return false;
}

int bus_register(struct bus *b, const char *name, uint64_t base, uint64_t len,
		 bus_read_fn rd, bus_write_fn wr, void *opaque)
{
	int rc = -1;
	pthread_rwlock_wrlock(&b->lock);
	if (b->n < BUS_MAX_DEVS && len != 0 && base + len > base &&
	    !overlaps(b, base, len, NULL, 0)) {
		b->devs[b->n++] = (struct bus_dev){ name, base, len, rd, wr, opaque };
		rc = 0;
	}
	pthread_rwlock_unlock(&b->lock);
	return rc;
}

int bus_move(struct bus *b, void *opaque, uint64_t old_base, uint64_t new_base)
{
	int rc = -1;
	pthread_rwlock_wrlock(&b->lock);
	for (int i = 0; i < b->n; i++) {
		struct bus_dev *d = &b->devs[i];
		if (d->opaque != opaque || d->base != old_base)
			continue;
		if (new_base + d->len < new_base || overlaps(b, new_base, d->len, opaque, old_base))
			break;
		d->base = new_base;
		rc = 0;
		break;
	}
	pthread_rwlock_unlock(&b->lock);
	return rc;
}

int bus_unregister(struct bus *b, void *opaque, uint64_t base)
{
	int rc = -1;
	pthread_rwlock_wrlock(&b->lock);
	for (int i = 0; i < b->n; i++) {
		if (b->devs[i].opaque != opaque || b->devs[i].base != base)
			continue;
		memmove(&b->devs[i], &b->devs[i + 1], (size_t)(b->n - i - 1) * sizeof(b->devs[0]));
		b->n--;
		rc = 0;
		break;
	}
	pthread_rwlock_unlock(&b->lock);
	return rc;
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

bool bus_lookup(struct bus *b, uint64_t addr, unsigned size, struct bus_dev *out)
{
	pthread_rwlock_rdlock(&b->lock);
	const struct bus_dev *d = bus_find(b, addr, size);
	if (d)
		*out = *d;
	pthread_rwlock_unlock(&b->lock);
	return d != NULL;
}

bool bus_read(struct bus *b, uint64_t addr, void *data, unsigned size)
{
	struct bus_dev d;
	if (!bus_lookup(b, addr, size, &d) || !d.read ||
	    d.read(d.opaque, addr - d.base, data, size) != 0) {
		memset(data, 0xff, size);
		__atomic_add_fetch(&b->unclaimed, 1, __ATOMIC_RELAXED);
		return false;
	}
	return true;
}

bool bus_write(struct bus *b, uint64_t addr, const void *data, unsigned size)
{
	struct bus_dev d;
	if (!bus_lookup(b, addr, size, &d) || !d.write ||
	    d.write(d.opaque, addr - d.base, data, size) != 0) {
		__atomic_add_fetch(&b->unclaimed, 1, __ATOMIC_RELAXED);
		return false;
	}
	return true;
}
