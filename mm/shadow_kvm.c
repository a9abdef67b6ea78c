/* The shadow table on KVM: each present granule is one memslot over its part of the cache memfd.
 *
 * READONLY granule  = KVM_MEM_READONLY slot: loads run at full speed, a store exits as
 *                     KVM_EXIT_MMIO with its address and data (HOST.md).
 * WRITABLE granule  = slot with KVM_MEM_LOG_DIRTY_PAGES: stores run at full speed and KVM logs
 *                     the first store to each page after it was (re-)write-protected.
 * ABSENT granule    = no slot: every access exits (MMIO, or an emulation failure for a fetch).
 *
 * Harvest = KVM_GET_DIRTY_LOG then KVM_CLEAR_DIRTY_LOG of exactly the bits returned
 * (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2): the clear write-protects those pages again before we
 * return, so a store the guest makes while the page cache copies the page faults in KVM, sets
 * the bit again and is caught by the next harvest. Without manual protect the legacy
 * KVM_GET_DIRTY_LOG does the same in one call (it swaps the bitmap out and write-protects).
 *
 * Removing a WRITABLE slot must not lose stores (seed 000: the pte dirty bit must reach the page
 * when the pte is zapped). Deleting a slot frees its dirty bitmap, and a store that lands between
 * a final GET_DIRTY_LOG and the delete would be lost. So the slot is first MOVEd (same slot,
 * same memory, flags unchanged) to a parking guest-physical range: KVM zaps the slot's
 * translations and keeps its dirty bitmap across a move (kvm_prepare_memory_region reuses
 * old->dirty_bitmap), after which no guest store can reach it through the window. Then the
 * final bitmap is read, and the slot deleted.
 *
 * Dirty-ring mode (shadow_kvm_create_ring): KVM appends each page's first logged store to the
 * storing vCPU's ring. harvest_all walks every ring from its fetch index, reports the entries
 * to the sink, marks them collected (KVM_DIRTY_GFN_F_RESET, a release store) and calls
 * KVM_RESET_DIRTY_RINGS, which write-protects those pages again before returning: a store
 * after that is a new entry. Entries survive the deletion of their slot (KVM pushes them in
 * the fault path under SRCU, and the delete waits for SRCU), so unmap just deletes the slot
 * and then harvests. One mutex covers all rings: the flush thread and a vCPU whose ring is
 * full may harvest at the same time. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>
#include <string.h>
#include <sys/ioctl.h>

#include "mm/page.h"
#include "mm/shadow.h"
#include "lib/kvm_compat.h"

struct shadow_kvm {
	struct shadow base;
	int vm_fd;
	uint32_t slot_base;
	uint64_t park_gpa;      /* where a WRITABLE slot is moved before its last log read */
	uint64_t park_fallback; /* used if KVM refuses park_gpa (see shadow_kvm_create) */
	uint64_t granule;
	uint32_t gpages;
	bool manual;
	/* per granule: where it is mapped (needed to recreate the region struct for MOVE) */
	struct slot_info { uint64_t gpa; void *host; uint32_t flags; } *slots;
	uint32_t nslots;
	/* ring mode */
	bool ring;
	uint32_t ring_entries;
	pthread_mutex_t ring_lock;
	struct dring { struct kvm_dirty_gfn *gfns; uint32_t fetch; } *rings;
	int nrings;
	bool overflowed;
	unsigned empty_full;
};

static int set_region(struct shadow_kvm *k, uint32_t slot, uint32_t flags, uint64_t gpa,
		      uint64_t size, void *host)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot, .flags = flags, .guest_phys_addr = gpa, .memory_size = size,
		.userspace_addr = (uint64_t)(uintptr_t)host,
	};
	while (ioctl(k->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) {
		if (errno != EINTR && errno != EAGAIN)
			return -errno;
	}
	return 0;
}

static struct slot_info *info(struct shadow_kvm *k, uint32_t g)
{
	if (g >= k->nslots) {
		uint32_t n = k->nslots ? k->nslots : 64;
		while (n <= g)
			n *= 2;
		struct slot_info *s = realloc(k->slots, n * sizeof(*s));
		if (!s)
			return NULL;
		memset(s + k->nslots, 0, (n - k->nslots) * sizeof(*s));
		k->slots = s;
		k->nslots = n;
	}
	return &k->slots[g];
}

static int kvm_map(struct shadow *s, uint32_t g, uint64_t gpa, void *host, uint64_t len,
		   bool writable)
{
	struct shadow_kvm *k = (struct shadow_kvm *)s;
	struct slot_info *si = info(k, g);
	if (!si)
		return -ENOMEM;
	uint32_t flags = writable ? KVM_MEM_LOG_DIRTY_PAGES : KVM_MEM_READONLY;
	int r = set_region(k, k->slot_base + g, flags, gpa, len, host);
	if (r == 0) {
		si->gpa = gpa;
		si->host = host;
		si->flags = flags;
	}
	return r;
}

static int get_log(struct shadow_kvm *k, uint32_t g, uint64_t *bits)
{
	struct kvm_dirty_log log = { .slot = k->slot_base + g };
	log.dirty_bitmap = bits;
	if (ioctl(k->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0)
		return -errno;
	return 0;
}

static int kvm_harvest(struct shadow *s, uint32_t g, uint64_t *dirty)
{
	struct shadow_kvm *k = (struct shadow_kvm *)s;
	uint32_t words = (k->gpages + 63) / 64;
	int r = get_log(k, g, dirty);
	if (r || !k->manual)
		return r;
	bool any = false;
	for (uint32_t i = 0; i < words; i++)
		any |= dirty[i] != 0;
	if (!any)
		return 0;
	/* Clear (and write-protect) exactly what we are about to write back; bits set after the
	 * GET stay set for the next harvest. */
	struct kvm_clear_dirty_log c = {
		.slot = k->slot_base + g, .num_pages = k->gpages, .first_page = 0,
	};
	c.dirty_bitmap = dirty;
	if (ioctl(k->vm_fd, KVM_CLEAR_DIRTY_LOG, &c) < 0)
		return -errno;
	return 0;
}

static int kvm_unmap(struct shadow *s, uint32_t g, bool was_writable, uint64_t *dirty)
{
	struct shadow_kvm *k = (struct shadow_kvm *)s;
	struct slot_info *si = info(k, g);
	if (!si)
		return -ENOMEM;
	uint32_t slot = k->slot_base + g;
	if (was_writable) {
		uint64_t park = __atomic_load_n(&k->park_gpa, __ATOMIC_RELAXED);
		int r = set_region(k, slot, si->flags, park, k->granule, si->host);
		if (r == -EINVAL && park != k->park_fallback) {
			/* KVM's highest GFN (with TDP: the host's physical address width) is below
			 * the preferred park: use the fallback from now on, and say so once. */
			fprintf(stderr, "cvmm: pmem: KVM refused the parking address 0x%llx; using "
				"0x%llx, which a guest could reach\n", (unsigned long long)park,
				(unsigned long long)k->park_fallback);
			__atomic_store_n(&k->park_gpa, k->park_fallback, __ATOMIC_RELAXED);
			r = set_region(k, slot, si->flags, k->park_fallback, k->granule, si->host);
		}
		if (r)
			return r;
		r = get_log(k, g, dirty);
		if (r)
			return r;
	}
	int r = set_region(k, slot, 0, 0, 0, NULL);
	if (r == 0)
		si->flags = 0;
	return r;
}

/* ---- dirty ring ---- */

static int ring_collect(struct shadow *s, uint64_t *count)
{
	struct shadow_kvm *k = (struct shadow_kvm *)s;
	uint32_t mask = k->ring_entries - 1;
	uint64_t n = 0;
	bool overflow = false;
	pthread_mutex_lock(&k->ring_lock);
	for (int i = 0; i < k->nrings; i++) {
		struct dring *r = &k->rings[i];
		uint32_t start = r->fetch;
		for (;;) {
			struct kvm_dirty_gfn *e = &r->gfns[r->fetch & mask];
			if (!(__atomic_load_n(&e->flags, __ATOMIC_ACQUIRE) & KVM_DIRTY_GFN_F_DIRTY))
				break;
			uint32_t slot = e->slot & 0xffff, as = e->slot >> 16;
			if (as == 0 && slot >= k->slot_base && s->sink)
				s->sink(s->sink_arg, slot - k->slot_base, (uint32_t)e->offset);
			__atomic_store_n(&e->flags, KVM_DIRTY_GFN_F_RESET, __ATOMIC_RELEASE);
			r->fetch++;
			n++;
			if (r->fetch - start == k->ring_entries) {
				overflow = true;
				break;
			}
		}
	}
	int ret = 0;
	/* re-protect what we collected before anyone copies it */
	if (n && ioctl(k->vm_fd, KVM_RESET_DIRTY_RINGS, 0) < 0)
		ret = -errno;
	if (overflow && !k->overflowed) {
		/* A ring found completely full: KVM pushed past its soft limit (seen on this host
		 * when ring-0 guest code is batch-emulated), so an entry may have been overwritten
		 * and userspace and KVM disagree on the ring's position from now on. */
		k->overflowed = true;
		fprintf(stderr, "cvmm: pmem: KVM dirty ring overflowed: logged stores may be lost; "
			"use the dirty bitmap (unset CVMM_PMEM_DIRTY)\n");
	}
	if (k->overflowed)
		ret = -EOVERFLOW;
	*count = n;
	pthread_mutex_unlock(&k->ring_lock);
	return ret;
}

static int ring_harvest(struct shadow *s)
{
	uint64_t n;
	return ring_collect(s, &n);
}

static int ring_unmap(struct shadow *s, uint32_t g, bool was_writable, uint64_t *dirty)
{
	struct shadow_kvm *k = (struct shadow_kvm *)s;
	(void)dirty;
	int r = set_region(k, k->slot_base + g, 0, 0, 0, NULL);
	if (r)
		return r;
	struct slot_info *si = info(k, g);
	if (si)
		si->flags = 0;
	/* The slot is gone whatever the harvest says: report success so the caller's state
	 * matches KVM's; an overflow has been reported loudly and fails the next flush. */
	if (was_writable)
		ring_harvest(s);
	return 0;
}

static int ring_harvest_one(struct shadow *s, uint32_t g, uint64_t *dirty)
{
	(void)g;
	(void)dirty;
	return ring_harvest(s);
}

static void kvm_destroy(struct shadow *s)
{
	struct shadow_kvm *k = (struct shadow_kvm *)s;
	for (int i = 0; i < k->nrings; i++)
		munmap(k->rings[i].gfns, (size_t)k->ring_entries * sizeof(struct kvm_dirty_gfn));
	free(k->rings);
	if (k->ring)
		pthread_mutex_destroy(&k->ring_lock);
	free(k->slots);
	free(k);
}

static const struct shadow_ops kvm_ops = {
	.map = kvm_map, .unmap = kvm_unmap, .harvest = kvm_harvest, .destroy = kvm_destroy,
};

static const struct shadow_ops kvm_ring_ops = {
	.map = kvm_map, .unmap = ring_unmap, .harvest = ring_harvest_one,
	.harvest_all = ring_harvest, .destroy = kvm_destroy,
};

uint32_t shadow_kvm_enable_ring(int vm_fd, uint32_t want_entries)
{
	int max = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_DIRTY_LOG_RING_ACQ_REL);
	if (max <= 0)
		return 0;
	uint64_t bytes = (uint64_t)want_entries * sizeof(struct kvm_dirty_gfn);
	while (bytes > (uint64_t)max)
		bytes /= 2;
	struct kvm_enable_cap cap = { .cap = KVM_CAP_DIRTY_LOG_RING_ACQ_REL, .args = { bytes } };
	if (bytes < 4096 || ioctl(vm_fd, KVM_ENABLE_CAP, &cap) < 0)
		return 0;
	return (uint32_t)(bytes / sizeof(struct kvm_dirty_gfn));
}

struct shadow *shadow_kvm_create_ring(int vm_fd, uint32_t slot_base, uint64_t granule,
				      uint32_t entries)
{
	struct shadow *s = shadow_kvm_create(vm_fd, slot_base, 0, 0, granule, false);
	if (!s)
		return NULL;
	struct shadow_kvm *k = (struct shadow_kvm *)s;
	k->base.ops = &kvm_ring_ops;
	k->ring = true;
	k->ring_entries = entries;
	pthread_mutex_init(&k->ring_lock, NULL);
	return s;
}

int shadow_kvm_add_ring(struct shadow *s, int vcpu_fd)
{
	struct shadow_kvm *k = (struct shadow_kvm *)s;
	if (!k->ring)
		return 0;
	size_t bytes = (size_t)k->ring_entries * sizeof(struct kvm_dirty_gfn);
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu_fd,
		       KVM_DIRTY_LOG_PAGE_OFFSET * sysconf(_SC_PAGESIZE));
	if (p == MAP_FAILED)
		return -errno;
	pthread_mutex_lock(&k->ring_lock);
	struct dring *r = realloc(k->rings, (size_t)(k->nrings + 1) * sizeof(*r));
	if (!r) {
		pthread_mutex_unlock(&k->ring_lock);
		munmap(p, bytes);
		return -ENOMEM;
	}
	k->rings = r;
	k->rings[k->nrings++] = (struct dring){ .gfns = p, .fetch = 0 };
	pthread_mutex_unlock(&k->ring_lock);
	return 0;
}

int shadow_kvm_ring_full(struct shadow *s)
{
	struct shadow_kvm *k = (struct shadow_kvm *)s;
	uint64_t n;
	int r = ring_collect(s, &n);
	/* An exit for a full ring that has nothing to collect happens once after a reset here;
	 * many in a row mean the ring positions have diverged: stop rather than spin. */
	k->empty_full = n ? 0 : k->empty_full + 1;
	if (!r && k->empty_full > 64)
		r = -EOVERFLOW;
	return r;
}

bool shadow_kvm_enable_dirty_log(int vm_fd)
{
	int caps = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2);
	if (caps <= 0 || !(caps & KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE))
		return false;
	/* Not KVM_DIRTY_LOG_INITIALLY_SET: a new WRITABLE slot starts clean and write-protected;
	 * the fault path marks the store that caused the mapping DIRTY itself. */
	struct kvm_enable_cap cap = { .cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
				      .args = { KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE } };
	return ioctl(vm_fd, KVM_ENABLE_CAP, &cap) == 0;
}

struct shadow *shadow_kvm_create(int vm_fd, uint32_t slot_base, uint64_t park_gpa,
				 uint64_t park_fallback, uint64_t granule, bool manual_protect)
{
	struct shadow_kvm *k = calloc(1, sizeof(*k));
	if (!k)
		return NULL;
	k->base.ops = &kvm_ops;
	k->vm_fd = vm_fd;
	k->slot_base = slot_base;
	k->park_gpa = park_gpa;
	k->park_fallback = park_fallback;
	k->granule = granule;
	k->gpages = (uint32_t)(granule >> PAGE_SHIFT);
	k->manual = manual_protect;
	return &k->base;
}
