/* The virtio-pmem window: glue between a VM's exits and the page cache (see pmem_window.h). */
#include "vmm/pmem_window.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vmm/mce.h"
#include "mm/shadow.h"
#include "lib/kvm_compat.h"

#define GIB (1ULL << 30)
#define MAX_GRANULES 16384  /* memslots the window may use (KVM allows 32764 here) */
#define PMEM_RING_ENTRIES 16384 /* per vCPU: 256 KiB of ring */
#ifndef PMEM_DIRTY_RING_DEFAULT
#define PMEM_DIRTY_RING_DEFAULT 0
#endif

uint64_t pmem_window_place(uint64_t ram_top)
{
	uint64_t b = ram_top > 4 * GIB ? ram_top : 4 * GIB;
	return (b + PMEM_WINDOW_ALIGN - 1) & ~(PMEM_WINDOW_ALIGN - 1);
}

static const char *human(uint64_t v, char *buf, size_t len)
{
	if (v >= GIB && v % GIB == 0)
		snprintf(buf, len, "%llu GiB", (unsigned long long)(v / GIB));
	else if (v >= (1ULL << 20) && v % (1ULL << 20) == 0)
		snprintf(buf, len, "%llu MiB", (unsigned long long)(v >> 20));
	else
		snprintf(buf, len, "%llu KiB", (unsigned long long)(v >> 10));
	return buf;
}

static int check_granules(uint64_t size, uint64_t granule, int kvm_fd, uint32_t slot_base,
			  char *err, size_t errlen)
{
	if (!granule)
		granule = pcache_auto_granule(size);
	if (size % granule) {
		snprintf(err, errlen, "pmem granule: %llu bytes does not divide the size %llu",
			 (unsigned long long)granule, (unsigned long long)size);
		return -1;
	}
	uint64_t ngr = size / granule;
	int nslots = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_MEMSLOTS);
	/* Windows before this one took slots PMEM_WINDOW_SLOT_BASE .. slot_base - 1. */
	uint64_t used = slot_base - PMEM_WINDOW_SLOT_BASE;
	uint64_t limit = MAX_GRANULES > used ? MAX_GRANULES - used : 0;
	if (nslots > 0 && (uint64_t)nslots < slot_base)
		limit = 0;
	else if (nslots > 0 && (uint64_t)nslots - slot_base < limit)
		limit = (uint64_t)nslots - slot_base;
	if (ngr > limit) {
		char a[32], b[32];
		snprintf(err, errlen, "pmem granule: %s over a %s window makes %llu granules (one "
			 "KVM memslot each); at most %llu%s: use a larger granule (up to 2M)%s",
			 human(granule, a, sizeof(a)), human(size, b, sizeof(b)),
			 (unsigned long long)ngr, (unsigned long long)limit,
			 used ? " (the windows before it took the others)" : "",
			 granule == 2 * 1024 * 1024 ? " or a smaller size" : "");
		return -1;
	}
	return 0;
}

/* Where a WRITABLE granule's slot is parked while it is removed (mm/shadow_kvm.c). It must be
 * out of the guest's reach: a store through the parked alias after the last dirty-log read
 * would be neither logged nor DIRTY (issue 12 finding 5). `base + size` was reachable (with a
 * 1 GiB window ending on a 1 GiB boundary it is where the DSDT's 64-bit MMIO window starts).
 * 1 << (the host's physical address width) is beyond every address a guest can form here
 * (its width, from KVM's CPUID, is at most the host's; with shadow paging, as on the project's
 * hosts, KVM checks guest page tables against it) and, under shadow paging, within KVM's
 * 52-bit GFN limit. With TDP KVM's limit is the host's width and it refuses the park: the
 * shadow then falls back to `base + size` and says so once. Each window parks in its own
 * PMEM_WINDOW_PARK-sized place (two windows may park a slot at the same moment). */
static uint64_t pmem_window_park(const struct pmem_window *w)
{
	unsigned eax, ebx, ecx, edx;
	__asm__ volatile("cpuid" : "=a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx) : "a"(0x80000000u), "c"(0));
	unsigned bits = 0;
	if (eax >= 0x80000008u) {
		__asm__ volatile("cpuid" : "=a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx)
				 : "a"(0x80000008u), "c"(0));
		bits = eax & 0xff;
	}
	if (bits < 36 || bits > 51)
		return w->base + w->size;
	uint64_t park = (1ULL << bits) + (uint64_t)w->index * PMEM_WINDOW_PARK;
	return park >= w->base + w->size + PMEM_WINDOW_PARK ? park : w->base + w->size;
}

int pmem_window_create(struct pmem_window **out, const struct pmem_config *cfg, int kvm_fd,
		       int vm_fd, const struct pmem_window_slot *at, char *err, size_t errlen)
{
	*out = NULL;
	struct pmem_window *w = calloc(1, sizeof(*w));
	if (!w) {
		snprintf(err, errlen, "pmem: out of memory");
		return -1;
	}
	w->name = cfg->name;
	w->index = at->index;
	w->slot_base = at->slot_base;
	w->readonly = cfg->readonly;
	w->flush_ignore = cfg->flush_ignore;
	if (w->flush_ignore && !w->readonly)
		fprintf(stderr, "cvmm: pmem %s: flush = ignore: FLUSH is acknowledged without syncing "
			"the file: the window is NOT crash-safe (for throwaway guests)\n", w->name);
	/* Check the granule count before the file is created or extended, when we can. */
	if (cfg->size && check_granules(cfg->size, cfg->granule, kvm_fd, w->slot_base, err,
					errlen))
		goto fail;
	if (pcache_open(cfg->path, cfg->size, cfg->readonly, &w->pc, err, errlen))
		goto fail;
	w->size = pcache_size(w->pc);
	w->base = pmem_window_place(at->above);
	w->granule = cfg->granule ? cfg->granule : pcache_auto_granule(w->size);
	if (check_granules(w->size, w->granule, kvm_fd, w->slot_base, err, errlen))
		goto fail;
	/* How logged guest stores are collected (shadow_kvm.c). CVMM_PMEM_DIRTY=bitmap|ring
	 * overrides the default for measurements (mm/README.md: numbers, and why the ring is
	 * not the default on PVM hosts). */
	const char *mode = getenv("CVMM_PMEM_DIRTY");
	bool want_ring = mode ? !strcmp(mode, "ring") : PMEM_DIRTY_RING_DEFAULT;
	if (want_ring && !at->only) {
		if (w->index == 0)
			fprintf(stderr, "cvmm: pmem: several windows: the dirty bitmap is used, not "
				"the ring (one ring per vCPU cannot serve two windows)\n");
		want_ring = false;
	}
	struct shadow *sh = NULL;
	if (want_ring && (w->ring_entries = shadow_kvm_enable_ring(vm_fd, PMEM_RING_ENTRIES)))
		sh = shadow_kvm_create_ring(vm_fd, w->slot_base, w->granule,
					    w->ring_entries);
	if (!w->ring_entries) {
		/* Manual-protect dirty log: harvest and re-protect in one step per granule.
		 * Must be enabled before the first logged memslot. */
		w->manual_protect = shadow_kvm_enable_dirty_log(vm_fd);
		sh = shadow_kvm_create(vm_fd, w->slot_base, pmem_window_park(w),
				       w->base + w->size, w->granule, w->manual_protect);
	}
	w->shadow = sh;
	if (!sh) {
		snprintf(err, errlen, "pmem: out of memory");
		goto fail;
	}
	if (pcache_map_create(w->pc, sh, w->base, w->granule, !w->readonly, &w->map, err, errlen))
		goto fail;
	w->errseq = pcache_errseq_sample(w->pc);
	if (cfg->populate && pcache_populate(w->map, err, errlen))
		goto fail;
	*out = w;
	return 0;
fail:
	pmem_window_destroy(w);
	return -1;
}

uint32_t pmem_window_nslots(const struct pmem_window *w)
{
	return (uint32_t)(w->size / w->granule);
}

int pmem_window_vcpu_init(struct pmem_window *w, int vcpu_fd, int index, bool mce_ok,
			  char *err, size_t errlen)
{
	if (w->ring_entries) {
		int r = shadow_kvm_add_ring(w->shadow, vcpu_fd);
		if (r) {
			snprintf(err, errlen, "pmem: vcpu %d: mapping its dirty ring: %s", index,
				 strerror(-r));
			return -1;
		}
	}
	/* w->mce: every vCPU has its banks (vCPU 0 sets it, any later failure clears it). */
	if (index == 0 || !mce_ok)
		w->mce = mce_ok;
	return 0;
}

int pmem_window_ring_full(struct pmem_window *w)
{
	return w->ring_entries ? shadow_kvm_ring_full(w->shadow) : -EINVAL;
}

/* The access could not be completed: raise a machine check, or say why we cannot. */
/* The privilege level the vCPU was at (CS.DPL), or -1 if KVM cannot say. */
static int vcpu_cpl(int vcpu_fd)
{
	struct kvm_sregs sr;
	if (ioctl(vcpu_fd, KVM_GET_SREGS, &sr) < 0)
		return -1;
	return sr.cs.selector & 3; /* CPL = the RPL of CS */
}

static enum pmem_exit refuse(struct pmem_window *w, int vcpu_fd, uint64_t gpa, bool fetch,
			     bool poison, const char *what, char *msg, size_t msglen)
{
	struct pcache_stats s;
	pcache_stats_get(w->pc, &s);
	const char *why = poison ? "a media error injected there (pcache_poison)"
			  : s.mkwrite_enospc ? "no space to reserve backing blocks, or a read error"
					     : "a read error on the backing file";
	enum mce_inject_result r = w->mce ? mce_inject(vcpu_fd, gpa, fetch) : MCE_FAILED;
	if (r == MCE_INJECTED) {
		/* Logged (the first few: a guest retrying a bad page must not flood stderr) and
		 * counted (poison_faults, mkwrite_enospc in the stats), so a test can see it. */
		uint64_t n = __atomic_add_fetch(&w->mce_logged, 1, __ATOMIC_RELAXED);
		if (n <= 10)
			fprintf(stderr, "cvmm: pmem %s: machine check injected for a guest %s at "
				"0x%llx (%s)%s\n", w->name ? w->name : "", what,
				(unsigned long long)gpa, why,
				n == 10 ? "; further ones are only counted" : "");
		return PMEM_EXIT_HANDLED;
	}
	snprintf(msg, msglen, "pmem: guest %s at 0x%llx refused (%s) and the machine check "
		 "cannot be delivered: %s", what, (unsigned long long)gpa, why,
		 r == MCE_NO_CR4_MCE ? "the guest has CR4.MCE clear"
		 : r == MCE_NESTED   ? "the guest is still handling a machine check (MCIP)"
				     : "KVM_X86_SET_MCE unavailable or failed");
	return PMEM_EXIT_FATAL;
}

enum pmem_exit pmem_window_mmio(struct pmem_window *w, int vcpu_fd, struct kvm_run *run,
				char *msg, size_t msglen)
{
	uint64_t gpa = run->mmio.phys_addr;
	if (!w || gpa < w->base || gpa - w->base >= w->size)
		return PMEM_EXIT_NOT_MINE;
	bool store = run->mmio.is_write;
	enum pcache_fault_result r = pcache_fault(w->map, gpa, store ? PCACHE_STORE : PCACHE_LOAD,
						  run->mmio.data, run->mmio.len);
	const char *why = pcache_broken(w->pc);
	if (why) {
		snprintf(msg, msglen, "pmem: %s", why);
		return PMEM_EXIT_FATAL;
	}
	switch (r) {
	case PCACHE_FAULT_DONE:
		return PMEM_EXIT_HANDLED;
	case PCACHE_FAULT_DISCARDED:
		if (!__atomic_exchange_n(&w->discarded_warned, 1, __ATOMIC_RELAXED))
			fprintf(stderr, "cvmm: pmem: guest store at 0x%llx to the read-only window "
				"ignored (further ones are counted in the summary)\n",
				(unsigned long long)gpa);
		return PMEM_EXIT_HANDLED;
	case PCACHE_FAULT_MCE:
		/* A store from guest kernel mode that found no backing blocks: a machine check in
		 * kernel context is fatal to Linux, so it is accepted into the cache instead and
		 * the next FLUSH reports ENOSPC (mm/pcache.h PCACHE_STORE_UNBACKED). */
		if (store && vcpu_cpl(vcpu_fd) == 0 &&
		    pcache_fault(w->map, gpa, PCACHE_STORE_UNBACKED, run->mmio.data,
				 run->mmio.len) == PCACHE_FAULT_DONE)
			return PMEM_EXIT_HANDLED;
		if (!store)
			memset(run->mmio.data, 0xff, sizeof(run->mmio.data));
		return refuse(w, vcpu_fd, gpa, false, false, store ? "store" : "load", msg, msglen);
	case PCACHE_FAULT_POISON:
		/* A load of a poisoned page (mm/memory_failure.c; a store never gets this, it
		 * clears the poison): the SRAR data-load machine check at the exact address, what
		 * Linux's memory_failure expects (MCi_ADDR = gpa, MCi_MISC: physical address mode,
		 * LSB 12, so the guest takes the page: vmm/mce.c). KVM still retires the load on
		 * the next KVM_RUN, with all ones (as for a read error above), and the machine check
		 * is delivered before the next instruction. */
		memset(run->mmio.data, 0xff, sizeof(run->mmio.data));
		return refuse(w, vcpu_fd, gpa, false, true, "load", msg, msglen);
	case PCACHE_FAULT_OUTSIDE:
	default:
		snprintf(msg, msglen, "pmem: bad access at 0x%llx, %u bytes",
			 (unsigned long long)gpa, run->mmio.len);
		return PMEM_EXIT_FATAL;
	}
}

static bool translate(int vcpu_fd, uint64_t la, uint64_t *gpa)
{
	struct kvm_translation t = { .linear_address = la };
	if (ioctl(vcpu_fd, KVM_TRANSLATE, &t) < 0 || !t.valid)
		return false;
	*gpa = t.physical_address;
	return true;
}

enum pmem_exit pmem_window_internal(struct pmem_window *w, int index, int vcpu_fd,
				    struct kvm_run *run, char *msg, size_t msglen)
{
	if (index < 0 || index >= CONFIG_MAX_CPUS)
		return PMEM_EXIT_NOT_MINE;
	uint64_t *last_rip = &w->fetch_rip[index];
	if (!w || run->internal.suberror != KVM_INTERNAL_ERROR_EMULATION)
		return PMEM_EXIT_NOT_MINE;
	struct kvm_regs regs;
	if (ioctl(vcpu_fd, KVM_GET_REGS, &regs) < 0)
		return PMEM_EXIT_NOT_MINE;
	uint64_t gpa[2];
	bool in[2] = { false, false };
	/* The instruction may straddle into the next page (x86 instructions are <= 15 bytes). */
	for (int i = 0; i < 2; i++)
		in[i] = translate(vcpu_fd, regs.rip + (i ? 14 : 0), &gpa[i]) && gpa[i] >= w->base &&
			gpa[i] - w->base < w->size;
	if (in[0] && in[1] && (gpa[0] - w->base) / w->granule == (gpa[1] - w->base) / w->granule)
		in[1] = false; /* one granule */
	if (!in[0] && !in[1])
		return PMEM_EXIT_NOT_MINE;
	bool absent = false;
	for (int i = 0; i < 2; i++)
		if (in[i] && pcache_map_granule_state(w->map, gpa[i]) == 0)
			absent = true;
	if (!absent) {
		/* Present already: another vCPU installed it (retry once), or this is a genuine
		 * emulation failure at an address in the window (not ours to hide). */
		if (*last_rip == regs.rip)
			return PMEM_EXIT_NOT_MINE;
		*last_rip = regs.rip;
		return PMEM_EXIT_HANDLED;
	}
	*last_rip = regs.rip;
	for (int i = 0; i < 2; i++) {
		if (!in[i])
			continue;
		enum pcache_fault_result r = pcache_fault(w->map, gpa[i], PCACHE_FETCH, NULL, 0);
		/* POISON: a fetch from a poisoned granule (mm/pcache.h pcache_poison): the SRAR
		 * instruction-fetch machine check at the fetched address. */
		if (r == PCACHE_FAULT_MCE || r == PCACHE_FAULT_POISON)
			return refuse(w, vcpu_fd, gpa[i], true, r == PCACHE_FAULT_POISON,
				      "instruction fetch", msg, msglen);
		if (r != PCACHE_FAULT_DONE) {
			snprintf(msg, msglen, "pmem: fetch fault at 0x%llx failed",
				 (unsigned long long)gpa[i]);
			return PMEM_EXIT_FATAL;
		}
	}
	return PMEM_EXIT_HANDLED;
}

int pmem_window_flush(struct pmem_window *w)
{
	int r;
	if (w->flush_ignore) {
		/* The guest's stores still reach the file (the blk view and host tools read it
		 * through the cache anyway); only the fdatasync, most of a FLUSH's cost, is
		 * skipped. A writeback error is still an error. */
		__atomic_add_fetch(&w->flushes_ignored, 1, __ATOMIC_RELAXED);
		r = pcache_writeback_range(w->pc, 0, w->size);
	} else {
		r = pcache_flush(w->pc, &w->errseq);
	}
	return pcache_broken(w->pc) ? -EIO : r;
}

void pmem_window_summary(struct pmem_window *w, char *buf, size_t len)
{
	char a[32], b[32], line[512];
	pcache_stats_line(w->pc, line, sizeof(line));
	char who[CONFIG_NAME_MAX + 8] = "pmem";
	if (w->name && strcmp(w->name, "pmem"))
		snprintf(who, sizeof(who), "pmem %s", w->name);
	snprintf(buf, len, "%s: %s at 0x%llx, granule %s%s%s: %s", who, human(w->size, a, sizeof(a)),
		 (unsigned long long)w->base, human(w->granule, b, sizeof(b)),
		 w->readonly ? ", read-only" : "",
		 w->flush_ignore ? ", flush = ignore (not crash-safe)" : "", line);
}

void pmem_window_stats_json(struct pmem_window *w, FILE *f)
{
	fprintf(f, "{\"base\": %llu, \"size\": %llu, \"granule\": %llu, \"dirty_log\": \"%s\", "
		   "\"flush\": \"%s\", \"flushes_ignored\": %llu, \"cache\": ",
		(unsigned long long)w->base, (unsigned long long)w->size,
		(unsigned long long)w->granule,
		w->ring_entries ? "ring" : w->manual_protect ? "bitmap-manual-protect" : "bitmap",
		w->flush_ignore ? "ignore" : "sync",
		(unsigned long long)__atomic_load_n(&w->flushes_ignored, __ATOMIC_RELAXED));
	pcache_stats_json(w->pc, f);
	fputc('}', f);
}

void pmem_window_unmap(struct pmem_window *w)
{
	if (!w)
		return;
	pcache_map_destroy(w->map);
	w->map = NULL;
}

void pmem_window_destroy(struct pmem_window *w)
{
	if (!w)
		return;
	pcache_map_destroy(w->map);
	pcache_put(w->pc); /* the last reference writes back and syncs */
	free(w);
}
