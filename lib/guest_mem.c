#include "lib/guest_mem.h"

int guest_mem_add(struct guest_mem *m, uint64_t gpa, uint64_t size, void *host)
{
	if (m->n >= GUEST_MEM_MAX_REGIONS || size == 0 || gpa + size < gpa)
		return -1;
	for (int i = 0; i < m->n; i++) {
		const struct guest_region *r = &m->r[i];
		if (gpa < r->gpa + r->size && r->gpa < gpa + size)
			return -1;
	}
	m->r[m->n++] = (struct guest_region){ .gpa = gpa, .size = size, .host = host };
	return 0;
}

void *guest_mem_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	if (len == 0)
		len = 1;
	for (int i = 0; i < m->n; i++) {
		const struct guest_region *r = &m->r[i];
		if (gpa < r->gpa)
			continue;
		uint64_t off = gpa - r->gpa;
		/* off < size and len <= size - off: no overflow possible */
		if (off < r->size && len <= r->size - off)
			return r->host + off;
	}
	return NULL;
}

uint64_t guest_mem_total(const struct guest_mem *m)
{
	uint64_t t = 0;
	for (int i = 0; i < m->n; i++)
		t += m->r[i].size;
	return t;
}
