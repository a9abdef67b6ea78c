/* Ring-3 synchronisation between vCPUs. Waits that depend on another vCPU take a timeout: a
 * vCPU that never shows up must turn into a failed test, not a hung VM. */
#ifndef GUEST_SYNC_H
#define GUEST_SYNC_H

#include <stdint.h>

#include "lib/cpu.h"

typedef struct {
	uint32_t v;
} spinlock_t;

static inline void spin_lock(spinlock_t *l)
{
	while (__atomic_exchange_n(&l->v, 1, __ATOMIC_ACQUIRE))
		while (__atomic_load_n(&l->v, __ATOMIC_RELAXED))
			cpu_relax();
}

static inline void spin_unlock(spinlock_t *l)
{
	__atomic_store_n(&l->v, 0, __ATOMIC_RELEASE);
}

/* Sense-reversing barrier for n CPUs. Each CPU keeps its own sense word, initially 0. */
struct barrier {
	uint32_t n;
	uint32_t count;
	uint32_t sense;
};

void barrier_init(struct barrier *b, uint32_t n);
/* Returns 0 when all n arrived, -1 after timeout_ns. A barrier that timed out is broken:
 * do not use it again. */
int barrier_wait(struct barrier *b, uint32_t *local_sense, uint64_t timeout_ns);

#endif
