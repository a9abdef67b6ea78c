#include "lib/sync.h"

#include "lib/time.h"

void barrier_init(struct barrier *b, uint32_t n)
{
	b->n = n;
	b->count = 0;
	b->sense = 0;
}

int barrier_wait(struct barrier *b, uint32_t *local_sense, uint64_t timeout_ns)
{
	uint32_t sense = *local_sense = !*local_sense;
	uint64_t deadline;

	if (__atomic_add_fetch(&b->count, 1, __ATOMIC_ACQ_REL) == b->n) {
		__atomic_store_n(&b->count, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&b->sense, sense, __ATOMIC_RELEASE);
		return 0;
	}
	deadline = deadline_after_ns(timeout_ns);
	while (__atomic_load_n(&b->sense, __ATOMIC_ACQUIRE) != sense) {
		if (deadline_passed(deadline))
			return -1;
		cpu_relax();
	}
	return 0;
}
