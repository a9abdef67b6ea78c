/* Fake shadow table for unit tests: see shadow_fake.h. */
#include "mm/shadow_fake.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mm/page.h"

static int take_fail(int *f)
{
	int r = *f;
	*f = 0;
	return r;
}

static int fake_map(struct shadow *s, uint32_t g, uint64_t gpa, void *host, uint64_t len,
		    bool writable)
{
	struct shadow_fake *f = (struct shadow_fake *)s;
	int r = 0;
	pthread_mutex_lock(&f->lock);
	if ((r = take_fail(&f->fail_map)))
		goto out;
	if (g >= f->ngranules || f->state[g] != FAKE_ABSENT || len != f->granule ||
	    gpa != f->gpa_base + (uint64_t)g * f->granule) {
		r = -EINVAL;
		goto out;
	}
	f->state[g] = writable ? FAKE_WRITABLE : FAKE_READONLY;
	f->host[g] = host;
	/* like KVM without INITIALLY_SET: a new logged slot starts clean and write-protected */
	memset(f->dirty + (size_t)g * f->gpages, 0, f->gpages);
	memset(f->wprot + (size_t)g * f->gpages, 1, f->gpages);
	f->maps++;
out:
	pthread_mutex_unlock(&f->lock);
	return r;
}

static void collect(struct shadow_fake *f, uint32_t g, uint64_t *bits, bool reprotect)
{
	for (uint32_t i = 0; i < f->gpages; i++) {
		size_t p = (size_t)g * f->gpages + i;
		if (f->dirty[p]) {
			bits[i / 64] |= 1ULL << (i % 64);
			f->dirty[p] = 0;
			if (reprotect)
				f->wprot[p] = 1;
		}
	}
}

static int fake_unmap(struct shadow *s, uint32_t g, bool was_writable, uint64_t *dirty)
{
	struct shadow_fake *f = (struct shadow_fake *)s;
	int r = 0;
	pthread_mutex_lock(&f->lock);
	if ((r = take_fail(&f->fail_unmap)))
		goto out;
	if (g >= f->ngranules || f->state[g] == FAKE_ABSENT ||
	    was_writable != (f->state[g] == FAKE_WRITABLE)) {
		r = -EINVAL;
		goto out;
	}
	if (was_writable)
		collect(f, g, dirty, false);
	f->state[g] = FAKE_ABSENT;
	f->host[g] = NULL;
	f->unmaps++;
out:
	pthread_mutex_unlock(&f->lock);
	return r;
}

static int fake_harvest(struct shadow *s, uint32_t g, uint64_t *dirty)
{
	struct shadow_fake *f = (struct shadow_fake *)s;
	int r = 0;
	pthread_mutex_lock(&f->lock);
	if ((r = take_fail(&f->fail_harvest))) {
		pthread_mutex_unlock(&f->lock);
		return r;
	}
	if (g >= f->ngranules || f->state[g] != FAKE_WRITABLE) {
		pthread_mutex_unlock(&f->lock);
		return -EINVAL;
	}
	collect(f, g, dirty, true);
	f->harvests++;
	void (*hook)(struct shadow_fake *, uint32_t, void *) = f->after_harvest;
	pthread_mutex_unlock(&f->lock);
	if (hook)
		hook(f, g, f->hook_arg);
	return 0;
}

static void fake_destroy(struct shadow *s)
{
	struct shadow_fake *f = (struct shadow_fake *)s;
	pthread_mutex_destroy(&f->lock);
	free(f->state);
	free(f->host);
	free(f->dirty);
	free(f->wprot);
	free(f);
}

static const struct shadow_ops fake_ops = {
	.map = fake_map, .unmap = fake_unmap, .harvest = fake_harvest, .destroy = fake_destroy,
};

struct shadow_fake *shadow_fake_create(uint64_t gpa_base, uint64_t granule, uint32_t ngranules)
{
	struct shadow_fake *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->base.ops = &fake_ops;
	pthread_mutex_init(&f->lock, NULL);
	f->gpa_base = gpa_base;
	f->granule = granule;
	f->ngranules = ngranules;
	f->gpages = (uint32_t)(granule >> PAGE_SHIFT);
	size_t npages = (size_t)ngranules * f->gpages;
	f->state = calloc(ngranules, 1);
	f->host = calloc(ngranules, sizeof(*f->host));
	f->dirty = calloc(npages, 1);
	f->wprot = calloc(npages, 1);
	if (!f->state || !f->host || !f->dirty || !f->wprot) {
		fake_destroy(&f->base);
		return NULL;
	}
	return f;
}

int shadow_fake_state(struct shadow_fake *f, uint64_t gpa)
{
	if (gpa < f->gpa_base || gpa - f->gpa_base >= (uint64_t)f->ngranules * f->granule)
		return -1;
	pthread_mutex_lock(&f->lock);
	int st = f->state[(gpa - f->gpa_base) / f->granule];
	pthread_mutex_unlock(&f->lock);
	return st;
}

int shadow_fake_access(struct shadow_fake *f, uint64_t gpa, bool write, void *data, unsigned len)
{
	if (gpa < f->gpa_base || gpa - f->gpa_base >= (uint64_t)f->ngranules * f->granule)
		return -1;
	uint64_t off = gpa - f->gpa_base;
	uint32_t g = (uint32_t)(off / f->granule);
	uint64_t in = off % f->granule;
	size_t p = (size_t)(off >> PAGE_SHIFT);
	int r = 1;
	/* The lock stands in for the atomicity KVM gives a single access against a slot change. */
	pthread_mutex_lock(&f->lock);
	if (f->state[g] == FAKE_WRITABLE || (!write && f->state[g] == FAKE_READONLY)) {
		if (write) {
			if (f->wprot[p]) {
				f->wprot[p] = 0;
				f->dirty[p] = 1;
			}
			memcpy(f->host[g] + in, data, len);
		} else {
			memcpy(data, f->host[g] + in, len);
		}
		r = 0;
	}
	pthread_mutex_unlock(&f->lock);
	return r;
}
