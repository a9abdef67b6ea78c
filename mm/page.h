/* Per-page state of the host page cache: one 32-bit flags word (which is also the page lock)
 * and one 32-bit pin word per 4 KiB page. Header-only so the hot paths inline.
 *
 * Why not a pthread_mutex per page: a 1 GiB window has 262144 pages; 40 bytes of mutex each
 * would be 10 MiB of locks, mostly never touched. Instead, like the kernel's PG_locked plus
 * PG_waiters (wait_on_page_bit in the hashed page_waitqueue), the lock is one bit in the flags
 * word and sleepers futex-wait on the word itself; the unlocker only makes the futex syscall
 * when a sleeper announced itself with PG_WAITERS.
 *
 * Flags word: UPTODATE (the cache page holds the file's data), DIRTY (the cache page is newer
 * than the file), RESERVED (backing blocks allocated: mkwrite ran, seed 002), LOCKED, WAITERS,
 * POISON (an injected media error).
 * DIRTY may be set without the lock (an atomic OR: KVM dirty-log harvest, DMA completion);
 * every other transition is made by the lock holder.
 *
 * Pin word (seed 001, Williams/Kara: "split a reference count into 2 fields ... take the
 * reference conditionally if the page is not subject to truncation"): bits 0..29 count DMA
 * pins, bit 31 is BREAKING (layout break / punch in progress). A pin is taken with one
 * compare-and-swap that refuses while BREAKING is set, so a pinner and a breaker can never
 * both win: both are read-modify-writes of the same word and are totally ordered by it, no
 * barrier pairing needed (the fragility Kara's smp_mb() proposal had in the thread). */
#ifndef CVMM_MM_PAGE_H
#define CVMM_MM_PAGE_H

#include <limits.h>
#include <linux/futex.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define PAGE_SHIFT 12
#define PAGE_SIZE  4096ULL

#define PG_UPTODATE (1u << 0)
#define PG_DIRTY    (1u << 1)
#define PG_RESERVED (1u << 2)
#define PG_LOCKED   (1u << 3)
#define PG_WAITERS  (1u << 4)
/* A media error injected on the page (mm/memory_failure.c, pcache_poison): never mapped into a
 * window, loads and fetches get PCACHE_FAULT_POISON, direct reads and pins -EIO. Set and
 * cleared by the lock holder. */
#define PG_POISON   (1u << 5)

#define PIN_BREAKING  (1u << 31)
#define PIN_COUNT     ((1u << 30) - 1)

static inline void mm_futex_wait(uint32_t *w, uint32_t val)
{
	/* EAGAIN (the word changed), EINTR and spurious wakeups all just make the caller recheck. */
	syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static inline void mm_futex_wake(uint32_t *w)
{
	syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

static inline uint32_t page_flags(const uint32_t *w)
{
	return __atomic_load_n(w, __ATOMIC_ACQUIRE);
}

static inline bool page_trylock(uint32_t *w)
{
	uint32_t old = __atomic_load_n(w, __ATOMIC_RELAXED);
	while (!(old & PG_LOCKED))
		if (__atomic_compare_exchange_n(w, &old, old | PG_LOCKED, true, __ATOMIC_ACQUIRE,
						__ATOMIC_RELAXED))
			return true;
	return false;
}

static inline void page_lock_slow(uint32_t *w)
{
	uint32_t old = __atomic_load_n(w, __ATOMIC_RELAXED);
	for (;;) {
		if (!(old & PG_LOCKED)) {
			if (__atomic_compare_exchange_n(w, &old, old | PG_LOCKED, true,
							__ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
				return;
			continue;
		}
		if (!(old & PG_WAITERS)) {
			if (!__atomic_compare_exchange_n(w, &old, old | PG_WAITERS, true,
							 __ATOMIC_RELAXED, __ATOMIC_RELAXED))
				continue;
			old |= PG_WAITERS;
		}
		/* Sleeps only while the word still reads LOCKED|WAITERS as seen: the unlocker clears
		 * both before waking, so no wakeup is lost. */
		mm_futex_wait(w, old);
		old = __atomic_load_n(w, __ATOMIC_RELAXED);
	}
}

static inline void page_lock(uint32_t *w)
{
	if (!page_trylock(w))
		page_lock_slow(w);
}

static inline void page_unlock(uint32_t *w)
{
	uint32_t old = __atomic_fetch_and(w, ~(PG_LOCKED | PG_WAITERS), __ATOMIC_RELEASE);
	if (old & PG_WAITERS)
		mm_futex_wake(w);
}

/* Lock holder only (except DIRTY, see mm/dirty.c pcache_mark_dirty). */
static inline void page_set(uint32_t *w, uint32_t bits)
{
	__atomic_fetch_or(w, bits, __ATOMIC_ACQ_REL);
}

static inline void page_clear(uint32_t *w, uint32_t bits)
{
	__atomic_fetch_and(w, ~bits, __ATOMIC_ACQ_REL);
}

/* Test-and-clear DIRTY (writeback, lock held): the clear happens before the copy, so a store
 * that sets DIRTY again after it is either in this copy or in the next writeback. */
static inline bool page_test_clear_dirty(uint32_t *w)
{
	return __atomic_fetch_and(w, ~PG_DIRTY, __ATOMIC_ACQ_REL) & PG_DIRTY;
}

/* --- pin word ----------------------------------------------------------------------------- */

/* One CAS: +1 unless BREAKING is set (then false: the caller waits with pin_wait_unbroken and
 * refaults). Also refuses on count overflow. */
static inline bool pin_try(uint32_t *p)
{
	uint32_t old = __atomic_load_n(p, __ATOMIC_RELAXED);
	for (;;) {
		if ((old & PIN_BREAKING) || (old & PIN_COUNT) == PIN_COUNT)
			return false;
		if (__atomic_compare_exchange_n(p, &old, old + 1, true, __ATOMIC_ACQ_REL,
						__ATOMIC_RELAXED))
			return true;
	}
}

static inline void pin_put(uint32_t *p)
{
	uint32_t now = __atomic_sub_fetch(p, 1, __ATOMIC_ACQ_REL);
	/* Only the last unpin under a break pays for a syscall: the breaker waits for the drain. */
	if ((now & PIN_BREAKING) && !(now & PIN_COUNT))
		mm_futex_wake(p);
}

static inline uint32_t pin_count(const uint32_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE) & PIN_COUNT;
}

static inline bool pin_breaking(const uint32_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE) & PIN_BREAKING;
}

/* Breaker: announce. Returns false if another break already holds this page (breaks of
 * overlapping ranges serialize in pcache_break_punch by waiting here). */
static inline bool pin_set_breaking(uint32_t *p)
{
	return !(__atomic_fetch_or(p, PIN_BREAKING, __ATOMIC_ACQ_REL) & PIN_BREAKING);
}

/* Breaker: wait until every pin taken before BREAKING was set is dropped. */
static inline void pin_wait_drained(uint32_t *p)
{
	uint32_t v;
	while ((v = __atomic_load_n(p, __ATOMIC_ACQUIRE)) & PIN_COUNT)
		mm_futex_wait(p, v);
}

static inline void pin_clear_breaking(uint32_t *p)
{
	__atomic_fetch_and(p, ~PIN_BREAKING, __ATOMIC_RELEASE);
	mm_futex_wake(p);
}

/* Pinner or faulter: sleep until the page is not BREAKING. */
static inline void pin_wait_unbroken(uint32_t *p)
{
	uint32_t v;
	while ((v = __atomic_load_n(p, __ATOMIC_ACQUIRE)) & PIN_BREAKING)
		mm_futex_wait(p, v);
}

#endif
