#include "vmm/vm.h"

#include "devices/pmem_log.h"
#include "devices/pmem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "devices/blk.h"
#include "devices/irq.h"
#include "vmm/machine.h"
#include "devices/serial.h"
#include "vmm/pmem_window.h"
#include "vmm/boot.h"
#include "vmm/control.h"
#include "vmm/cpuid.h"
#include "lib/kvm_compat.h"
#include "lib/file.h"
#include "vmm/seccomp.h"
#include "vmm/vcpu.h"

double ts_diff(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

static int fail(char *err, size_t errlen, const char *what)
{
	snprintf(err, errlen, "%s: %s", what, strerror(errno));
	return -1;
}

/* /dev/kvm: say exactly what is wrong, since "it does not start" is the usual first report. */
static int kvm_open(struct vm *vm, char *err, size_t errlen)
{
	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		if (errno == ENOENT)
			snprintf(err, errlen, "/dev/kvm: not present (KVM not available on this host: "
				 "load kvm_intel/kvm_amd or enable virtualization)");
		else if (errno == EACCES || errno == EPERM)
			snprintf(err, errlen, "/dev/kvm: permission denied (run as root or join the "
				 "'kvm' group)");
		else
			snprintf(err, errlen, "/dev/kvm: %s", strerror(errno));
		return -1;
	}
	int api = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (api != KVM_API_VERSION) {
		snprintf(err, errlen, "/dev/kvm: API version %d, cvmm needs %d", api, KVM_API_VERSION);
		return -1;
	}
	return 0;
}

static int set_memslot(struct vm *vm, uint32_t slot, uint64_t gpa, uint64_t size, void *host,
		       char *err, size_t errlen)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot, .flags = 0, .guest_phys_addr = gpa, .memory_size = size,
		.userspace_addr = (uint64_t)(uintptr_t)host,
	};
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
		return fail(err, errlen, "KVM_SET_USER_MEMORY_REGION");
	return 0;
}

static int setup_ram(struct vm *vm, char *err, size_t errlen)
{
	vm->ram_size = vm->cfg->mem_size;
	vm->ram = mmap(NULL, vm->ram_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (vm->ram == MAP_FAILED) {
		vm->ram = NULL;
		return fail(err, errlen, "guest RAM mmap");
	}
	/* Transparent huge pages for guest RAM: Debian's default THP mode is "madvise", so without
	 * this RAM is 4 KiB pages and large guest buffers cost a host page walk per 4 KiB
	 * (bench: 256 KiB blk reads 341-356 us -> 186-218 us, 1 MiB writes 1.5-2.1 -> 2.3-3.0
	 * GB/s). Best effort: a host without THP just keeps small pages. */
	madvise(vm->ram, vm->ram_size, MADV_HUGEPAGE);
	uint64_t low = vm->ram_size < LOW_RAM_MAX ? vm->ram_size : LOW_RAM_MAX;
	uint64_t high = vm->ram_size - low;
	if (set_memslot(vm, 0, 0, low, vm->ram, err, errlen) ||
	    guest_mem_add(&vm->mem, 0, low, vm->ram) < 0)
		return -1;
	vm->nr_memslots = 1;
	if (high) {
		uint8_t *h = (uint8_t *)vm->ram + low;
		if (set_memslot(vm, 1, GPA_HIGH_RAM, high, h, err, errlen) ||
		    guest_mem_add(&vm->mem, GPA_HIGH_RAM, high, h) < 0)
			return -1;
		vm->nr_memslots = 2;
	}
	return 0;
}

static int setup_cpuid(struct vm *vm, char *err, size_t errlen)
{
	int nent = 256;
	for (;;) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + (size_t)nent * sizeof(c->entries[0]));
		if (!c)
			return fail(err, errlen, "cpuid");
		c->nent = (uint32_t)nent;
		if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
			vm->cpuid = c;
			break;
		}
		free(c);
		if (errno != E2BIG || nent > 4096)
			return fail(err, errlen, "KVM_GET_SUPPORTED_CPUID");
		nent *= 2;
	}
	cpuid_advertise_mce_recovery(vm->cpuid);
	return cpuid_apply_mask(vm->cpuid, vm->cfg->cpuid_mask, err, errlen);
}

static void vm_exits_json(void *ctx, FILE *f);

/* A [pmem] device in "devices": its window (mm: the cache) and its virtio device (FLUSH
 * requests, injected faults). */
static void pmem_stats_json(void *ctx, FILE *f)
{
	struct vm_pmem *p = ctx;
	fputs("{\"window\": ", f);
	pmem_window_stats_json(p->win, f);
	fputs(", \"device\": ", f);
	if (p->dev)
		pmem_dev_stats_json(p->dev, f);
	else
		fputs("null", f);
	fputc('}', f);
}

/* Bytes of the file a control request may address: the window, or the disk's end in it. */
static uint64_t blk_file_end(const struct vm_blk *d)
{
	return d->cfg->offset + d->dev->capacity * 512;
}

static int control_mark(void *ctx, const char *device, const char *text, char *err,
			size_t errlen)
{
	return vm_mark(ctx, device, text, err, errlen);
}

static void control_power_cut(void *ctx, bool sample, uint64_t seed)
{
	vm_power_cut(ctx, sample, seed, "asked on the control socket");
}

/* The control socket's view of the devices (vmm/control.h): the default target (the first
 * window's cache) and every device by name. */
/* Bytes of a window's file a request may address: the window, or further where a disk on
 * that file reaches. */
static uint64_t window_file_limit(const struct vm *vm, const struct pmem_window *w)
{
	uint64_t lim = w->size;
	for (unsigned i = 0; i < vm->nblk; i++)
		if (vm->blk[i].shared && vm->blk[i].shared->pc == w->pc &&
		    blk_file_end(&vm->blk[i]) > lim)
			lim = blk_file_end(&vm->blk[i]);
	return lim;
}

static void control_devices(struct vm *vm, struct control_deps *d)
{
	if (vm->npmem) {
		d->pc = vm->pmem[0].win->pc;
		d->image_limit = window_file_limit(vm, vm->pmem[0].win);
	} else if (vm->nblk) {
		d->image_limit = blk_file_end(&vm->blk[0]);
	}
	if (vm->nblk)
		d->blk = vm->blk[0].dev;
	for (unsigned i = 0; i < vm->nblk && d->ndev < CONTROL_DEVICES_MAX; i++) {
		struct vm_blk *b = &vm->blk[i];
		d->dev[d->ndev++] = (struct control_device){
			.name = b->cfg->name, .kind = "blk", .blk = b->dev, .faults = &b->dev->faults,
			.pc = b->shared ? b->shared->pc : NULL,
			.image_limit = b->shared && b->shared->size > blk_file_end(b)
				? b->shared->size : blk_file_end(b),
		};
	}
	for (unsigned i = 0; i < vm->npmem && d->ndev < CONTROL_DEVICES_MAX; i++) {
		struct pmem_window *w = vm->pmem[i].win;
		d->dev[d->ndev++] = (struct control_device){
			.name = w->name, .kind = "pmem", .pc = w->pc,
			.image_limit = window_file_limit(vm, w),
			.stats_json = pmem_stats_json, .stats_ctx = &vm->pmem[i],
			.faults = &vm->pmem[i].dev->faults,
		};
	}
}

/* The stats JSON's device part: "pmem" and "blk" are the first of each kind (what scripts
 * written for one of each read), "devices" every device by name. */
static void vm_devices_json(struct vm *vm, FILE *f)
{
	if (vm->npmem) { /* mm */
		fprintf(f, ", \"pmem\": ");
		pmem_window_stats_json(vm->pmem[0].win, f);
	}
	if (vm->nblk) { /* devices/blk.h: backend (file or pcache) and request counters */
		fprintf(f, ", \"blk\": ");
		blk_stats_json(vm->blk[0].dev, f);
	}
	fprintf(f, ", \"devices\": {");
	for (unsigned i = 0; i < vm->nblk; i++) {
		fprintf(f, "%s\"%s\": {\"kind\": \"blk\", \"stats\": ", i ? ", " : "",
			vm->blk[i].cfg->name);
		blk_stats_json(vm->blk[i].dev, f);
		fputc('}', f);
	}
	for (unsigned i = 0; i < vm->npmem; i++) {
		fprintf(f, "%s\"%s\": {\"kind\": \"pmem\", \"stats\": ", i || vm->nblk ? ", " : "",
			vm->pmem[i].cfg->name);
		pmem_stats_json(&vm->pmem[i], f);
		fputc('}', f);
	}
	fputc('}', f);
}

int vm_create(struct vm *vm, struct vm_config *cfg, char *err, size_t errlen)
{
	memset(vm, 0, sizeof(*vm));
	vm->cfg = cfg;
	vm->kvm_fd = vm->vm_fd = -1;
	vm->ncpus = cfg->cpus;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	bus_init(&vm->pio, "pio");
	bus_init(&vm->mmio, "mmio");
	clock_gettime(CLOCK_MONOTONIC, &vm->stats.t_start);
	vm->stats_fd = -1;
	if (power_cut_parse(cfg->power_cut, cfg->power_cut_state, &vm->cut_plan, err, errlen))
		return -1;

	/* Created now (0600, no symbolic link followed: lib/file.h), written at exit: a bad path
	 * is a setup error, not a surprise after the run. */
	if (cfg->stats_json[0]) {
		vm->stats_fd = file_create(cfg->stats_json, "stats_json", err, errlen);
		if (vm->stats_fd < 0)
			return -1;
	}
	if (kvm_open(vm, err, errlen))
		return -1;
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0)
		return fail(err, errlen, "KVM_CREATE_VM");

	/* Without this, every memslot change zaps all shadow pages of the VM (HOST.md); the page
	 * cache changes memslots on every fault and invalidation, so it must zap only the slot. */
	int quirks = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_DISABLE_QUIRKS2);
	if (quirks > 0 && (quirks & KVM_X86_QUIRK_SLOT_ZAP_ALL)) {
		struct kvm_enable_cap cap = { .cap = KVM_CAP_DISABLE_QUIRKS2,
					      .args = { KVM_X86_QUIRK_SLOT_ZAP_ALL } };
		if (ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap) < 0)
			return fail(err, errlen, "KVM_ENABLE_CAP(DISABLE_QUIRKS2, SLOT_ZAP_ALL)");
		vm->slot_zap_quirk_off = true;
	}

	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, 0xfffbd000UL) < 0)
		return fail(err, errlen, "KVM_SET_TSS_ADDR");
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return fail(err, errlen, "KVM_CREATE_IRQCHIP");
	/* The PC pin routes the MADT describes (IRQ 0 -> GSI 2), and the PIT (devices/irq.h). */
	if (irq_routes_set_default(vm->vm_fd) < 0)
		return fail(err, errlen, "KVM_SET_GSI_ROUTING");
	if (irq_create_pit(vm->vm_fd) < 0)
		return fail(err, errlen, "KVM_CREATE_PIT2");

	if (setup_ram(vm, err, errlen) || setup_cpuid(vm, err, errlen))
		return -1;
	/* mm: the [pmem] windows go above RAM, one after the other (pmem_window_place), each
	 * with its own memslots; before the devices (the virtio-pmem devices report them) and
	 * the vCPUs (dirty logging mode, machine checks). */
	uint64_t lo = vm->ram_size < LOW_RAM_MAX ? vm->ram_size : LOW_RAM_MAX;
	struct pmem_window_slot at = {
		.above = vm->ram_size > lo ? GPA_HIGH_RAM + (vm->ram_size - lo) : lo,
		.slot_base = PMEM_WINDOW_SLOT_BASE, .only = cfg->npmem == 1,
	};
	for (unsigned i = 0; i < cfg->npmem; i++) {
		const struct pmem_config *pc = &cfg->pmem[i];
		struct vm_pmem *p = &vm->pmem[i];
		/* A missing image is created here, 0600 and not through a dangling symbolic link
		 * (lib/file.h); mm/ then opens the existing file. */
		if (!pc->readonly && file_precreate(pc->path, "pmem path", err, errlen))
			return -1;
		at.index = i;
		p->cfg = pc;
		if (pmem_window_create(&p->win, pc, vm->kvm_fd, vm->vm_fd, &at, err, errlen))
			return -1;
		vm->npmem = i + 1;
		at.above = p->win->base + p->win->size + PMEM_WINDOW_PARK;
		at.slot_base += pmem_window_nslots(p->win);
	}
	/* [pmem] write_log: the file as it is now to PATH.base, then every change of it through
	 * any view (devices/pmem_log.h). Before the devices: nothing has run yet. */
	for (unsigned i = 0; i < vm->npmem; i++) {
		struct vm_pmem *p = &vm->pmem[i];
		if (p->cfg->write_log[0] &&
		    pmem_log_attach(p->win->pc, p->cfg->path, p->cfg->write_log, &p->log, err,
				    errlen))
			return -1;
	}
	if (devices_setup(vm, err, errlen))
		return -1;
	/* The console's byte budget (issue 14): a guest must not fill the host's disk. */
	if (vm->serial)
		serial_set_limit(vm->serial, cfg->serial_limit);

	/* ACPI tables, boot tables, and the kernel: cvmm's guest, a vmlinux or a bzImage. */
	if (linux_vm_setup(vm, err, errlen))
		return -1;

	vm->vcpus = calloc((size_t)vm->ncpus, sizeof(*vm->vcpus));
	if (!vm->vcpus)
		return fail(err, errlen, "vcpus");
	for (int i = 0; i < vm->ncpus; i++)
		if (vcpu_create(vm, &vm->vcpus[i], i, err, errlen))
			return -1;

	if (vm_power_cut_prepare(vm, err, errlen))
		return -1;
	/* The control socket (vmm/control.h), last: it reads the vCPUs' counters. */
	if (cfg->control[0]) {
		struct control_deps d = { .exits_json = vm_exits_json, .ctx = vm,
					  .power_cut = control_power_cut, .mark = control_mark };
		control_devices(vm, &d);
		if (control_start(&vm->control, cfg->control, &d, err, errlen))
			return -1;
	}
	return 0;
}

void vm_note_output(struct vm *vm, size_t bytes)
{
	if (!__atomic_load_n(&vm->stats.have_first_output, __ATOMIC_RELAXED)) {
		pthread_mutex_lock(&vm->lock);
		if (!vm->stats.have_first_output) {
			clock_gettime(CLOCK_MONOTONIC, &vm->stats.t_first_output);
			__atomic_store_n(&vm->stats.have_first_output, true, __ATOMIC_RELEASE);
		}
		pthread_mutex_unlock(&vm->lock);
	}
	__atomic_add_fetch(&vm->stats.serial_bytes, bytes, __ATOMIC_RELAXED);
}

void vm_request_stop(struct vm *vm, int status, const char *fmt, ...)
{
	pthread_mutex_lock(&vm->lock);
	if (!vm->stopping) {
		vm->exit_status = status;
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(vm->stop_reason, sizeof(vm->stop_reason), fmt, ap);
		va_end(ap);
		__atomic_store_n(&vm->stopping, true, __ATOMIC_RELEASE);
		for (int i = 0; i < vm->ncpus; i++)
			vcpu_kick(&vm->vcpus[i]);
		pthread_cond_broadcast(&vm->cond);
	}
	pthread_mutex_unlock(&vm->lock);
}

int vm_run(struct vm *vm)
{
	vcpu_signals_init();
	/* Everything is set up: from here every thread (those running already, through TSYNC, and
	 * the vCPUs and device threads started later) is held to the allow-list (seccomp.h). */
	if (vm->cfg->seccomp) {
		char err[256];
		if (seccomp_install(err, sizeof(err)))
			vm_request_stop(vm, 126, "%s", err);
	}
	for (int i = 0; i < vm->ncpus && !__atomic_load_n(&vm->stopping, __ATOMIC_ACQUIRE); i++) {
		struct vcpu *v = &vm->vcpus[i];
		if (pthread_create(&v->thread, NULL, vcpu_thread, v) != 0) {
			vm_request_stop(vm, 125, "cannot start vcpu %d thread", i);
			break;
		}
		pthread_mutex_lock(&vm->lock);
		v->started = true;
		if (vm->stopping)
			vcpu_kick(v);
		pthread_mutex_unlock(&vm->lock);
	}

	pthread_mutex_lock(&vm->lock);
	struct timespec start, deadline, cut_at;
	clock_gettime(CLOCK_REALTIME, &start);
	deadline = start;
	deadline.tv_sec += vm->cfg->timeout_s;
	/* [vm] power_cut = after:DURATION, measured from here */
	bool cut_timer = vm->cut_plan.when == POWER_CUT_AFTER_MS;
	cut_at = start;
	cut_at.tv_sec += (time_t)(vm->cut_plan.ms / 1000);
	cut_at.tv_nsec += (long)(vm->cut_plan.ms % 1000) * 1000000L;
	if (cut_at.tv_nsec >= 1000000000L) {
		cut_at.tv_sec++;
		cut_at.tv_nsec -= 1000000000L;
	}
	while (!vm->stopping) {
		bool timed = vm->cfg->timeout_s != 0;
		bool cut_first = cut_timer && (!timed || cut_at.tv_sec < deadline.tv_sec ||
					       (cut_at.tv_sec == deadline.tv_sec &&
						cut_at.tv_nsec < deadline.tv_nsec));
		if (!timed && !cut_timer) {
			pthread_cond_wait(&vm->cond, &vm->lock);
			continue;
		}
		const struct timespec *until = cut_first ? &cut_at : &deadline;
		if (pthread_cond_timedwait(&vm->cond, &vm->lock, until) != ETIMEDOUT ||
		    vm->stopping)
			continue;
		pthread_mutex_unlock(&vm->lock);
		if (cut_first) {
			char why[64];
			snprintf(why, sizeof(why), "after %llu ms",
				 (unsigned long long)vm->cut_plan.ms);
			vm_power_cut(vm, vm->cut_plan.sample, vm->cut_plan.seed, why);
			cut_timer = false;
		} else {
			vm_request_stop(vm, 124, "timeout: guest still running after %u s",
					vm->cfg->timeout_s);
		}
		pthread_mutex_lock(&vm->lock);
	}
	pthread_mutex_unlock(&vm->lock);

	for (int i = 0; i < vm->ncpus; i++)
		if (vm->vcpus[i].started)
			pthread_join(vm->vcpus[i].thread, NULL);
	clock_gettime(CLOCK_MONOTONIC, &vm->stats.t_end);
	if (vm->serial)
		serial_flush(vm->serial);
	return vm->exit_status;
}

static const char *const exit_names[VMEXIT_NR] = {
	[VMEXIT_IO] = "io", [VMEXIT_MMIO] = "mmio", [VMEXIT_HLT] = "hlt",
	[VMEXIT_SHUTDOWN] = "shutdown", [VMEXIT_INTERNAL] = "internal", [VMEXIT_INTR] = "intr",
	[VMEXIT_OTHER] = "other",
};

/* The exits so far, as a JSON object (for the control socket's stats; read while the vCPUs
 * run, so the per-vCPU counters are loaded atomically). */
static void vm_exits_json(void *ctx, FILE *f)
{
	struct vm *vm = ctx;
	fputc('{', f);
	for (int k = 0; k < VMEXIT_NR; k++) {
		uint64_t n = 0;
		for (int i = 0; i < vm->ncpus; i++)
			n += __atomic_load_n(&vm->vcpus[i].exits[k], __ATOMIC_RELAXED);
		fprintf(f, "%s\"%s\":%llu", k ? "," : "", exit_names[k], (unsigned long long)n);
	}
	fputc('}', f);
}

void vm_print_summary(struct vm *vm)
{
	uint64_t exits[VMEXIT_NR] = { 0 };
	for (int i = 0; i < vm->ncpus; i++)
		for (int k = 0; k < VMEXIT_NR; k++)
			exits[k] += vm->vcpus[i].exits[k];
	double run = ts_diff(&vm->stats.t_start, &vm->stats.t_end);
	char first[32] = "none";
	if (vm->stats.have_first_output)
		snprintf(first, sizeof(first), "%.3f s",
			 ts_diff(&vm->stats.t_start, &vm->stats.t_first_output));
	char ex[256] = "";
	size_t n = 0;
	for (int k = 0; k < VMEXIT_NR; k++)
		if (exits[k] && n < sizeof(ex))
			n += (size_t)snprintf(ex + n, sizeof(ex) - n, "%s%s %llu", n ? ", " : "",
					      exit_names[k], (unsigned long long)exits[k]);
	fprintf(stderr, "cvmm: %s; status %d; run %.3f s, first output %s, exits: %s\n",
		vm->stop_reason, vm->exit_status, run, first, n ? ex : "none");
	if (vm->serial)
		serial_flush(vm->serial); /* a last partial line may be what passes the budget */
	if (vm->serial && vm->serial->cut)
		fprintf(stderr, "cvmm: serial output cut at serial_limit %llu bytes; %llu bytes of "
			"guest output dropped\n", (unsigned long long)vm->serial->limit,
			(unsigned long long)vm->serial->dropped);
	for (unsigned i = 0; i < vm->npmem; i++) { /* mm: page-cache counters */
		char line[1024];
		pmem_window_summary(vm->pmem[i].win, line, sizeof(line));
		fprintf(stderr, "cvmm: %s\n", line);
	}

	if (vm->stats_fd >= 0) {
		FILE *f = fdopen(vm->stats_fd, "w");
		if (!f) {
			int e = errno;
			close(vm->stats_fd);
			vm->stats_fd = -1;
			fprintf(stderr, "cvmm: stats_json '%s': %s\n", vm->cfg->stats_json,
				strerror(e));
			return;
		}
		vm->stats_fd = -1; /* fclose below closes it */
		fprintf(f, "{\"status\": %d, \"run_s\": %.6f, \"first_output_s\": %.6f, "
			   "\"serial_bytes\": %llu, \"serial_dropped\": %llu, \"exits\": {",
			vm->exit_status, run,
			vm->stats.have_first_output
				? ts_diff(&vm->stats.t_start, &vm->stats.t_first_output) : -1.0,
			(unsigned long long)vm->stats.serial_bytes,
			(unsigned long long)(vm->serial ? vm->serial->dropped : 0));
		for (int k = 0; k < VMEXIT_NR; k++)
			fprintf(f, "%s\"%s\": %llu", k ? ", " : "", exit_names[k],
				(unsigned long long)exits[k]);
		fprintf(f, "}, \"unclaimed_pio\": %llu, \"unclaimed_mmio\": %llu",
			(unsigned long long)vm->pio.unclaimed, (unsigned long long)vm->mmio.unclaimed);
		vm_devices_json(vm, f);
		fprintf(f, "}\n");
		fclose(f);
	}
}

void vm_destroy(struct vm *vm)
{
	/* First: its requests use the devices and the page cache. */
	control_stop(vm->control);
	vm->control = NULL;
	if (vm->vcpus) {
		for (int i = 0; i < vm->ncpus; i++)
			vcpu_destroy(&vm->vcpus[i]);
		free(vm->vcpus);
	}
	/* Device I/O threads use guest RAM: stop them before it goes away. */
	devices_destroy(vm);
	/* mm: unmap the window and write back what the guest left dirty (needs vm_fd). */
	/* The windows' order matters with write logs (devices/pmem_log.h): unmap them all (the
	 * guest's last stores become DIRTY pages), then each log sees the exit-time writeback as
	 * a FLUSH of its own before it closes (after a power cut: nothing more reaches the file,
	 * nothing is logged), then the last references go. */
	for (unsigned i = 0; i < vm->npmem; i++)
		pmem_window_unmap(vm->pmem[i].win);
	bool cut = __atomic_load_n(&vm->cut, __ATOMIC_ACQUIRE);
	for (unsigned i = 0; i < vm->npmem; i++) {
		struct vm_pmem *p = &vm->pmem[i];
		if (!p->log)
			continue;
		if (!cut) {
			uint64_t cursor = pcache_errseq_sample(p->win->pc);
			int r = pcache_flush(p->win->pc, &cursor);
			if (r)
				fprintf(stderr, "cvmm: pmem %s: writing back at exit: %s\n",
					p->cfg->name, strerror(-r));
		}
		pmem_log_detach(p->log);
		p->log = NULL;
	}
	for (unsigned i = 0; i < vm->npmem; i++) {
		pmem_window_destroy(vm->pmem[i].win);
		vm->pmem[i].win = NULL;
	}
	/* Every log is closed: a power cut leaves the logged files as the plan says. */
	if (cut)
		vm_power_cut_rewind(vm);
	for (unsigned i = 0; i < CONFIG_MAX_BLK + CONFIG_MAX_PMEM; i++)
		if (vm->cut_files[i].open) {
			blk_log_cut_close(&vm->cut_files[i].f);
			vm->cut_files[i].open = false;
		}
	vm->npmem = 0;
	if (vm->serial) {
		serial_destroy(vm->serial);
		free(vm->serial);
	}
	free(vm->debug_exit);
	free(vm->cpuid);
	if (vm->stats_fd >= 0)
		close(vm->stats_fd);
	if (vm->ram)
		munmap(vm->ram, vm->ram_size);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	pthread_mutex_destroy(&vm->lock);
	pthread_cond_destroy(&vm->cond);
}
