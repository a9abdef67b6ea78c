/* The virtio-pmem window of a VM: the guest-physical range, its page cache and map, the KVM
 * shadow table, and the vCPU exit handling that routes faults in the window to mm/.
 *
 * vm.c creates it (pmem_window_create) from [pmem] config after RAM and before devices and
 * vCPUs; vcpu.c calls pmem_window_vcpu_init for each vCPU, and pmem_window_mmio /
 * pmem_window_internal on exits; the virtio-pmem device reports w->base / w->size to the guest
 * and calls pmem_window_flush for a FLUSH request. */
#ifndef CVMM_PMEM_WINDOW_H
#define CVMM_PMEM_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mm/pcache.h"
#include "vmm/config.h"

struct kvm_run;

#define PMEM_WINDOW_ALIGN     (128ULL << 20)
#define PMEM_WINDOW_SLOT_BASE 16        /* memslots 0 and 1 are RAM */
#define PMEM_WINDOW_PARK      (2ULL << 20) /* guest-physical space reserved after the window */

struct pmem_window {
	const char *name;       /* the device's ([pmem "NAME"]; config lives as long as the VM) */
	unsigned index;         /* 0, 1, ...: order of the [pmem] devices */
	uint32_t slot_base;     /* its memslots: slot_base .. slot_base + size / granule - 1 */
	uint64_t base;          /* guest-physical start (128 MiB aligned, at or above 4 GiB) */
	uint64_t size;          /* bytes, a multiple of 2 MiB */
	uint64_t granule;
	bool readonly;
	bool manual_protect;    /* KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 in use */
	uint32_t ring_entries;  /* dirty-ring mode (per vCPU ring size), 0 = dirty bitmap */
	struct shadow *shadow;  /* owned by the map */
	bool mce;               /* machine checks set up on every vCPU */
	struct pcache *pc;
	struct pcache_map *map;
	uint64_t errseq;        /* this device's FLUSH cursor (pcache_flush) */
	/* Per vCPU: the RIP of the last fetch fault handled (pmem_window_internal), so a genuine
	 * emulation failure in a present granule is not retried forever. Written only by the
	 * vCPU's own thread. */
	uint64_t fetch_rip[CONFIG_MAX_CPUS];
	uint64_t discarded_warned;
	uint64_t mce_logged;    /* atomic: machine checks injected (the first ten are logged) */
	bool flush_ignore;      /* [pmem] flush = ignore: FLUSH writes back, never syncs */
	uint64_t flushes_ignored; /* atomic */
};

/* Where the window goes: at or above 4 GiB, after high RAM, 128 MiB aligned.
 * ram_top = the end of guest RAM's highest region (GPA_HIGH_RAM + high RAM, or below 4 GiB). */
uint64_t pmem_window_place(uint64_t ram_top);

/* Where a window goes among the VM's others (vm.c makes them one after the other). */
struct pmem_window_slot {
	unsigned index;         /* its order among the [pmem] devices: its park address */
	uint64_t above;         /* place it at pmem_window_place(above): RAM's top, or the end of
				 * the previous window + PMEM_WINDOW_PARK */
	uint32_t slot_base;     /* first memslot (PMEM_WINDOW_SLOT_BASE, then after the previous
				 * window's) */
	bool only;              /* the VM's only window: the dirty ring is allowed (one ring per
				 * vCPU cannot be harvested by two windows' shadows) */
};

/* Open the cache (creating/extending the file per pcache_open), enable dirty logging, map the
 * window at pmem_window_place(at->above), populate if asked. Returns 0 or -1 with a one-line
 * message naming the [pmem] key or path at fault. */
int pmem_window_create(struct pmem_window **out, const struct pmem_config *cfg, int kvm_fd,
		       int vm_fd, const struct pmem_window_slot *at, char *err, size_t errlen);
/* Memslots the window uses (the next window's slot_base starts after them). */
uint32_t pmem_window_nslots(const struct pmem_window *w);
/* Per vCPU at creation: in dirty-ring mode the vCPU's ring; mce_ok says whether the vCPU's
 * machine-check banks are set up (vmm/mce.h; once per vCPU, by vcpu.c): without them a later
 * refused store stops the VM with a message instead of a machine check. Returns 0 or -1 with
 * err set. */
int pmem_window_vcpu_init(struct pmem_window *w, int vcpu_fd, int index, bool mce_ok,
			  char *err, size_t errlen);
/* KVM_EXIT_DIRTY_RING_FULL: harvest the rings so the vCPU can run. 0 or -errno. */
int pmem_window_ring_full(struct pmem_window *w);

enum pmem_exit { PMEM_EXIT_NOT_MINE, PMEM_EXIT_HANDLED, PMEM_EXIT_FATAL };
/* KVM_EXIT_MMIO: an access in the window is a page-cache fault. FATAL fills msg. */
enum pmem_exit pmem_window_mmio(struct pmem_window *w, int vcpu_fd, struct kvm_run *run,
				char *msg, size_t msglen);
/* KVM_EXIT_INTERNAL_ERROR: an emulation failure whose RIP translates into an absent granule of
 * the window is an instruction fetch from it (HOST.md): fault the granule in and resume.
 * The last such RIP of each vCPU (`index`) stops a loop when the granule is present and the
 * failure is a genuine one. */
enum pmem_exit pmem_window_internal(struct pmem_window *w, int index, int vcpu_fd,
				    struct kvm_run *run, char *msg, size_t msglen);
/* virtio-pmem FLUSH: 0, or -errno reported once per error (errseq). */
int pmem_window_flush(struct pmem_window *w);
/* "pmem: 64 MiB at 0x100000000, granule 64 KiB: faults 3 (...)" (no newline) */
void pmem_window_summary(struct pmem_window *w, char *buf, size_t len);
void pmem_window_stats_json(struct pmem_window *w, FILE *f);
/* Unmap every granule (harvesting the guest's stores into DIRTY pages), so that a write log
 * can see the exit-time writeback (vm_destroy). vCPUs stopped. Idempotent. */
void pmem_window_unmap(struct pmem_window *w);
/* Unmap everything, write back dirty data, close. vCPUs must be stopped; before the VM fd
 * is closed. */
void pmem_window_destroy(struct pmem_window *w);

#endif
