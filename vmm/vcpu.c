#include "vmm/vcpu.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmm/pmem_window.h"
#include "vmm/mce.h"
#include "vmm/boot.h"
#include "vmm/cpuid.h"

#define KICK_SIGNAL SIGUSR1

static void kick_handler(int sig)
{
	(void)sig; /* only to make KVM_RUN return EINTR */
}

void vcpu_signals_init(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_handler; /* no SA_RESTART: KVM_RUN must return */
	sigemptyset(&sa.sa_mask);
	sigaction(KICK_SIGNAL, &sa, NULL);
}

int vcpu_create(struct vm *vm, struct vcpu *v, int index, char *err, size_t errlen)
{
	memset(v, 0, sizeof(*v));
	v->vm = vm;
	v->index = index;
	v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)index);
	if (v->fd < 0) {
		snprintf(err, errlen, "KVM_CREATE_VCPU %d: %s", index, strerror(errno));
		return -1;
	}
	int sz = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (sz <= 0) {
		snprintf(err, errlen, "KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
		return -1;
	}
	v->run_size = (size_t)sz;
	v->run = mmap(NULL, v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		v->run = NULL;
		snprintf(err, errlen, "mmap kvm_run: %s", strerror(errno));
		return -1;
	}

	struct kvm_cpuid2 *c = cpuid_dup(vm->cpuid);
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	cpuid_set_topology(c, (unsigned)index, (unsigned)vm->ncpus);
	int r = ioctl(v->fd, KVM_SET_CPUID2, c);
	free(c);
	if (r < 0) {
		snprintf(err, errlen, "KVM_SET_CPUID2: %s", strerror(errno));
		return -1;
	}
	/* mm: machine-check banks (to refuse a pmem store on ENOSPC), once per vCPU; the dirty
	 * ring if used */
	if (vm->npmem) {
		char why[256];
		bool mce_ok = mce_setup_vcpu(vm->kvm_fd, v->fd, why, sizeof(why)) == 0;
		if (!mce_ok)
			fprintf(stderr, "cvmm: pmem: vcpu %d: machine checks unavailable (%s); a store "
				"the page cache must refuse will stop the VM instead\n", index, why);
		for (unsigned i = 0; i < vm->npmem; i++)
			if (pmem_window_vcpu_init(vm->pmem[i].win, v->fd, index, mce_ok, err, errlen))
				return -1;
	}

	if (vm->lboot.kind != KERNEL_CVMM_ELF) /* Linux: BSP at the 64-bit entry, APs wait */
		return linux_vcpu_setup(vm, v->fd, index, err, errlen);

	struct kvm_sregs s;
	if (ioctl(v->fd, KVM_GET_SREGS, &s) < 0) {
		snprintf(err, errlen, "KVM_GET_SREGS: %s", strerror(errno));
		return -1;
	}
	boot_long_mode_sregs(&s);
	if (ioctl(v->fd, KVM_SET_SREGS, &s) < 0) {
		snprintf(err, errlen, "KVM_SET_SREGS: %s", strerror(errno));
		return -1;
	}
	struct kvm_regs regs;
	boot_entry_regs(&regs, vm->kernel.entry, (unsigned)index);
	if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0) {
		snprintf(err, errlen, "KVM_SET_REGS: %s", strerror(errno));
		return -1;
	}
	/* With the in-kernel LAPIC, application processors wait for INIT/SIPI. Our guests are
	 * entered directly in long mode (HOST.md), so every vCPU starts runnable. */
	struct kvm_mp_state mp = { .mp_state = KVM_MP_STATE_RUNNABLE };
	if (ioctl(v->fd, KVM_SET_MP_STATE, &mp) < 0) {
		snprintf(err, errlen, "KVM_SET_MP_STATE: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static void handle_io(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	unsigned size = run->io.size;
	/* count > 1 is a string instruction KVM batched (rep ins). rep outs arrives one element per
	 * exit on these hosts (measured: 505 exits for 505 bytes), so console lines cost ~16 us/byte. */
	for (uint32_t i = 0; i < run->io.count; i++, data += size) {
		if (run->io.direction == KVM_EXIT_IO_OUT)
			bus_write(&v->vm->pio, run->io.port, data, size);
		else
			bus_read(&v->vm->pio, run->io.port, data, size);
	}
}

static void handle_mmio(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	unsigned len = run->mmio.len;
	if (len == 0 || len > 8)
		return;
	if (run->mmio.is_write)
		bus_write(&v->vm->mmio, run->mmio.phys_addr, run->mmio.data, len);
	else
		bus_read(&v->vm->mmio, run->mmio.phys_addr, run->mmio.data, len);
}

/* mm: an exit in the pmem window is a page-cache fault (vmm/pmem_window.h): an MMIO exit there
 * (absent granule, or a store to a READONLY one), or an emulation failure whose RIP is in an
 * absent granule (an instruction fetch, HOST.md). True if handled (or the VM is stopping). */
static bool handle_pmem(struct vcpu *v, bool internal)
{
	struct vm *vm = v->vm;
	for (unsigned i = 0; i < vm->npmem; i++) {
		struct pmem_window *w = vm->pmem[i].win;
		char msg[512];
		enum pmem_exit r = internal ? pmem_window_internal(w, v->index, v->fd, v->run, msg,
								   sizeof(msg))
					    : pmem_window_mmio(w, v->fd, v->run, msg, sizeof(msg));
		if (r == PMEM_EXIT_NOT_MINE)
			continue;
		if (r == PMEM_EXIT_FATAL)
			vm_request_stop(vm, 125, "vcpu %d: %s", v->index, msg);
		return true;
	}
	return false;
}

/* Describe where a vCPU is, for a fatal exit: RIP, CPL and the instruction bytes. */
static void describe_vcpu(struct vcpu *v, char *buf, size_t len)
{
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	if (ioctl(v->fd, KVM_GET_REGS, &regs) < 0 || ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0) {
		snprintf(buf, len, "(registers unavailable: %s)", strerror(errno));
		return;
	}
	int n = snprintf(buf, len, "rip=0x%llx rsp=0x%llx cpl=%u cr2=0x%llx", regs.rip, regs.rsp,
			 sregs.cs.selector & 3, sregs.cr2);
	struct kvm_translation tr = { .linear_address = regs.rip };
	if (n > 0 && (size_t)n < len && ioctl(v->fd, KVM_TRANSLATE, &tr) == 0 && tr.valid) {
		const uint8_t *p = guest_mem_ptr(&v->vm->mem, tr.physical_address, 1);
		if (p) {
			n += snprintf(buf + n, len - (size_t)n, " bytes");
			for (int i = 0; i < 15 && (size_t)n < len; i++) {
				p = guest_mem_ptr(&v->vm->mem, tr.physical_address + (uint64_t)i, 1);
				if (!p)
					break;
				n += snprintf(buf + n, len - (size_t)n, " %02x", *p);
			}
		}
	}
}

static const char *internal_suberror(uint32_t s)
{
	switch (s) {
	case KVM_INTERNAL_ERROR_EMULATION: return "instruction emulation failed";
	case KVM_INTERNAL_ERROR_SIMUL_EX: return "exception while delivering an exception";
	case KVM_INTERNAL_ERROR_DELIVERY_EV: return "event delivery failed";
	default: return "unknown";
	}
}

void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	struct vm *vm = v->vm;
	char where[256];

	for (;;) {
		if (__atomic_load_n(&vm->stopping, __ATOMIC_ACQUIRE))
			break;
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				v->exits[VMEXIT_INTR]++;
				continue;
			}
			describe_vcpu(v, where, sizeof(where));
			vm_request_stop(vm, 125, "vcpu %d: KVM_RUN failed: %s (%s)", v->index,
					strerror(errno), where);
			break;
		}
		struct kvm_run *run = v->run;
		switch (run->exit_reason) {
		case KVM_EXIT_IO:
			v->exits[VMEXIT_IO]++;
			handle_io(v);
			break;
		case KVM_EXIT_MMIO:
			v->exits[VMEXIT_MMIO]++;
			if (!handle_pmem(v, false)) /* mm */
				handle_mmio(v);
			break;
		case KVM_EXIT_HLT:
			/* Only without an in-kernel irqchip; then HLT with nothing to wake it is the end. */
			v->exits[VMEXIT_HLT]++;
			vm_request_stop(vm, 125, "vcpu %d: guest halted", v->index);
			break;
		case KVM_EXIT_SHUTDOWN:
			v->exits[VMEXIT_SHUTDOWN]++;
			describe_vcpu(v, where, sizeof(where));
			vm_request_stop(vm, 125, "vcpu %d: guest shutdown (triple fault?) at %s", v->index,
					where);
			break;
		case KVM_EXIT_INTERNAL_ERROR:
			v->exits[VMEXIT_INTERNAL]++;
			if (handle_pmem(v, true)) /* mm: a fetch from the window */
				break;
			if (linux_emulate_insn(vm, v->fd, run)) /* Linux: ring-0 INT3, FWAIT */
				break;
			describe_vcpu(v, where, sizeof(where));
			vm_request_stop(vm, 125, "vcpu %d: KVM internal error, suberror %u (%s), at %s",
					v->index, run->internal.suberror,
					internal_suberror(run->internal.suberror), where);
			break;
		case KVM_EXIT_FAIL_ENTRY:
			v->exits[VMEXIT_OTHER]++;
			vm_request_stop(vm, 125, "vcpu %d: VM entry failed, hardware reason 0x%llx",
					v->index,
					(unsigned long long)run->fail_entry.hardware_entry_failure_reason);
			break;
		case KVM_EXIT_INTR:
			v->exits[VMEXIT_INTR]++;
			break;
		case KVM_EXIT_DIRTY_RING_FULL: /* mm: collect the pmem window's dirty ring */
			v->exits[VMEXIT_OTHER]++;
			if (!vm->npmem || pmem_window_ring_full(vm->pmem[0].win) < 0)
				vm_request_stop(vm, 125, "vcpu %d: dirty ring full and cannot be "
						"harvested", v->index);
			break;
		default:
			v->exits[VMEXIT_OTHER]++;
			describe_vcpu(v, where, sizeof(where));
			vm_request_stop(vm, 125, "vcpu %d: unhandled KVM exit reason %u at %s", v->index,
					run->exit_reason, where);
			break;
		}
	}
	return NULL;
}

void vcpu_kick(struct vcpu *v)
{
	if (!v->run)
		return;
	__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_RELEASE);
	if (v->started)
		pthread_kill(v->thread, KICK_SIGNAL);
}

void vcpu_destroy(struct vcpu *v)
{
	if (v->run)
		munmap(v->run, v->run_size);
	if (v->fd > 0)
		close(v->fd);
	v->run = NULL;
	v->fd = -1;
}
