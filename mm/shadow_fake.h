/* A fake shadow table for unit tests: models what KVM does with the page cache's memslots
 * closely enough to test the protocol without /dev/kvm (and under ThreadSanitizer).
 *
 * A "guest access" (shadow_fake_access) either completes against the mapped cache memory, as
 * the CPU would, or reports that it would exit to the VMM (absent granule, or a store to a
 * READONLY one): the test then calls pcache_fault, as vcpu.c does. Stores to a WRITABLE granule
 * are logged like KVM logs them: a page starts write-protected; its first store sets its dirty
 * bit and unprotects it; harvest returns the dirty bits and write-protects those pages again.
 * A hook runs right after a harvest returns (before the page cache copies), to inject a store
 * into the race window the protocol must close. */
#ifndef CVMM_MM_SHADOW_FAKE_H
#define CVMM_MM_SHADOW_FAKE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "mm/shadow.h"

enum { FAKE_ABSENT = 0, FAKE_READONLY = 1, FAKE_WRITABLE = 2 };

struct shadow_fake {
	struct shadow base;
	pthread_mutex_t lock;
	uint64_t gpa_base;
	uint64_t granule;
	uint32_t ngranules;
	uint32_t gpages;
	uint8_t *state;        /* per granule */
	uint8_t **host;        /* per granule: cache memory it maps */
	uint8_t *dirty;        /* per page: logged since last harvest */
	uint8_t *wprot;        /* per page: next store is logged */
	/* called (without the fake's lock) after harvest() computed its bits and re-protected */
	void (*after_harvest)(struct shadow_fake *f, uint32_t g, void *arg);
	void *hook_arg;
	/* injectable failures (-errno), consumed once */
	int fail_map, fail_unmap, fail_harvest;
	/* counters */
	uint64_t maps, unmaps, harvests;
};

struct shadow_fake *shadow_fake_create(uint64_t gpa_base, uint64_t granule, uint32_t ngranules);

/* A guest access of len bytes at gpa (within one page). Returns 0 if it completed without an
 * exit, 1 if it would exit to the VMM (the caller then runs pcache_fault), -1 if gpa is
 * outside the fake's window. */
int shadow_fake_access(struct shadow_fake *f, uint64_t gpa, bool write, void *data, unsigned len);
int shadow_fake_state(struct shadow_fake *f, uint64_t gpa);

#endif
