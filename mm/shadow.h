/* The shadow table: how the page cache tells the hypervisor which granules of a window the
 * guest may load from (READONLY) or also store to (WRITABLE, with dirty logging), and how it
 * collects the stores the hypervisor logged.
 *
 * Every KVM call of the page cache goes through this interface, so the protocol in
 * mm/ runs unchanged against a fake (mm/shadow_fake.c) in unit tests, without
 * /dev/kvm and under ThreadSanitizer. The KVM implementation (mm/shadow_kvm.c) makes each
 * present granule one memslot over its part of the cache memfd.
 *
 * Calls for one shadow are serialized by the caller (pcache_map's slot lock); harvest and
 * unmap are the "gather_all_mmap_users (write-protect + TLB shootdown)" step of seed 004. */
#ifndef CVMM_MM_SHADOW_H
#define CVMM_MM_SHADOW_H

#include <stdbool.h>
#include <stdint.h>

struct shadow;

struct shadow_ops {
	/* Make granule g (guest-physical [gpa, gpa+len), backed by host memory `host`, which is
	 * page aligned cache memory) present: WRITABLE = guest stores go straight to memory and
	 * are logged; otherwise READONLY = loads go to memory, stores exit to the VMM. The granule
	 * is absent when this is called. A new WRITABLE granule logs every page's first store.
	 * Returns 0 or -errno. */
	int (*map)(struct shadow *s, uint32_t g, uint64_t gpa, void *host, uint64_t len,
		   bool writable);
	/* Make granule g absent: from return on, every guest access to it exits (the hypervisor
	 * has dropped its translations: the TLB shootdown). If it was WRITABLE, set in `dirty`
	 * (one bit per 4 KiB page of the granule, caller zeroed) every page the guest stored to
	 * since the last harvest, including stores that raced with this call: nothing the guest
	 * stored before the unmap took effect may be missing. Returns 0 or -errno. */
	int (*unmap)(struct shadow *s, uint32_t g, bool was_writable, uint64_t *dirty);
	/* Harvest-and-reprotect a WRITABLE granule: set in `dirty` every page stored to since the
	 * last harvest and write-protect exactly those pages again BEFORE returning, so a store
	 * made after this call is logged anew (and is seen by the next harvest) while the caller
	 * copies the page. Returns 0 or -errno. */
	int (*harvest)(struct shadow *s, uint32_t g, uint64_t *dirty);
	/* Optional (a dirty ring: logged stores are not per granule but a stream): report every
	 * page logged since the last call, in any granule, to s->sink, and write-protect them
	 * again before returning. When present, pcache calls this instead of harvest(), and
	 * unmap() of a WRITABLE granule reports its pages to the sink too. The sink runs under
	 * the shadow's own lock, so dirt collected by one thread is applied before another's
	 * unmap returns. */
	int (*harvest_all)(struct shadow *s);
	void (*destroy)(struct shadow *s);
};

struct shadow {
	const struct shadow_ops *ops;
	/* set by pcache_map_create: where harvest_all (and a ring-mode unmap) report pages */
	void (*sink)(void *arg, uint32_t g, uint32_t page_in_granule);
	void *sink_arg;
};

/* KVM: granule g is memslot slot_base + g. `park_gpa` is a guest-physical range of at least
 * one granule that nothing else uses and no guest access can reach (see shadow_kvm.c: how a
 * WRITABLE slot is removed without losing stores); if KVM refuses it (EINVAL: beyond its
 * highest GFN), `park_fallback` is used instead. `manual_protect`: use
 * KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 (enabled by shadow_kvm_enable_dirty_log on the VM) rather
 * than the legacy get-and-clear. */
struct shadow *shadow_kvm_create(int vm_fd, uint32_t slot_base, uint64_t park_gpa,
				 uint64_t park_fallback, uint64_t granule, bool manual_protect);
/* Enable manual dirty-log protection on the VM (before any logged slot exists).
 * Returns true if enabled, false if the kernel lacks it (then the legacy mode is used). */
bool shadow_kvm_enable_dirty_log(int vm_fd);

/* Dirty-ring mode (KVM_CAP_DIRTY_LOG_RING_ACQ_REL; must be enabled before any vCPU exists):
 * shadow_kvm_enable_ring returns the ring size in entries (0 = unavailable); create the shadow
 * with shadow_kvm_create_ring, then give it every vCPU's ring (shadow_kvm_add_ring maps it).
 * Harvest cost is then proportional to the pages logged, not to the WRITABLE granules. */
uint32_t shadow_kvm_enable_ring(int vm_fd, uint32_t want_entries);
struct shadow *shadow_kvm_create_ring(int vm_fd, uint32_t slot_base, uint64_t granule,
				      uint32_t entries);
int shadow_kvm_add_ring(struct shadow *s, int vcpu_fd);
/* A vCPU exited with KVM_EXIT_DIRTY_RING_FULL: harvest (to the sink) so it can run again. */
int shadow_kvm_ring_full(struct shadow *s);

#endif
