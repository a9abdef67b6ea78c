/* Power cut, the VM's side (see power_cut.h): the cut itself and its triggers, the disks'
 * wrapper, the rewind of logged files. vm.c calls vm_power_cut_prepare at setup and
 * vm_power_cut_rewind at the end; machine.c wraps every disk. The plan's parser is in
 * power_cut_plan.c (config validation and the fuzzers use it alone). */
#include "vmm/power_cut.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/blk.h"
#include "devices/log_cut.h"
#include "mm/pcache.h"
#include "vmm/pmem_window.h"
#include "vmm/vm.h"

/* ---- the cut and its triggers ---------------------------------------------------------- */

void vm_power_cut(struct vm *vm, bool sample, uint64_t seed, const char *why)
{
	if (__atomic_exchange_n(&vm->cut, 1, __ATOMIC_ACQ_REL))
		return;
	vm->cut_plan.sample = sample;
	vm->cut_plan.seed = seed;
	/* First the files (nothing reaches them from here), then the stop: vCPUs and requests
	 * still running until they notice cannot change what the cut left. The disks' wrappers
	 * (machine.c) read vm->cut. */
	for (unsigned i = 0; i < vm->npmem; i++)
		pcache_power_cut(vm->pmem[i].win->pc);
	for (unsigned i = 0; i < vm->nblk; i++)
		if (vm->blk[i].shared)
			pcache_power_cut(vm->blk[i].shared->pc);
	vm_request_stop(vm, CVMM_EXIT_POWER_CUT, "power cut: %s", why);
}

void vm_note_flush(struct vm *vm)
{
	uint64_t n = __atomic_add_fetch(&vm->flushes, 1, __ATOMIC_ACQ_REL);
	if (vm->cut_plan.when == POWER_CUT_AFTER_FLUSHES && n == vm->cut_plan.n) {
		char why[64];
		snprintf(why, sizeof(why), "after %llu FLUSHes", (unsigned long long)n);
		vm_power_cut(vm, vm->cut_plan.sample, vm->cut_plan.seed, why);
	}
}

void vm_note_mark(struct vm *vm, const char *text)
{
	if (vm->cut_plan.when == POWER_CUT_AT_MARK && !strcmp(text, vm->cut_plan.mark)) {
		char why[POWER_CUT_MARK_MAX + 16];
		snprintf(why, sizeof(why), "at mark '%s'", text);
		vm_power_cut(vm, vm->cut_plan.sample, vm->cut_plan.seed, why);
	}
}

/* ---- the disks: an outermost backend wrapper ------------------------------------------ */

/* After vm_power_cut every request fails (IOERR): nothing more reaches the file or its write
 * log. A FLUSH that completes counts for [vm] power_cut = after-flushes:N. */
struct cut_be {
	struct blk_backend be;
	struct blk_backend *inner;
	struct vm *vm;
};

static bool is_cut(struct cut_be *c)
{
	return __atomic_load_n(&c->vm->cut, __ATOMIC_ACQUIRE);
}

static int cut_read(struct blk_backend *be, const struct iovec *iov, const uint64_t *gpa,
		    unsigned n, uint64_t off, uint64_t len)
{
	struct cut_be *c = (struct cut_be *)be;
	return is_cut(c) ? -EIO : c->inner->ops->read(c->inner, iov, gpa, n, off, len);
}

static int cut_write(struct blk_backend *be, const struct iovec *iov, const uint64_t *gpa,
		     unsigned n, uint64_t off, uint64_t len)
{
	struct cut_be *c = (struct cut_be *)be;
	return is_cut(c) ? -EIO : c->inner->ops->write(c->inner, iov, gpa, n, off, len);
}

static int cut_flush(struct blk_backend *be)
{
	struct cut_be *c = (struct cut_be *)be;
	if (is_cut(c))
		return -EIO;
	int r = c->inner->ops->flush(c->inner);
	if (r == 0)
		vm_note_flush(c->vm);
	return r;
}

static int cut_discard(struct blk_backend *be, uint64_t off, uint64_t len)
{
	struct cut_be *c = (struct cut_be *)be;
	return is_cut(c) ? -EIO : c->inner->ops->discard(c->inner, off, len);
}

static int cut_write_zeroes(struct blk_backend *be, uint64_t off, uint64_t len, bool unmap)
{
	struct cut_be *c = (struct cut_be *)be;
	return is_cut(c) ? -EIO : c->inner->ops->write_zeroes(c->inner, off, len, unmap);
}

static void cut_destroy(struct blk_backend *be)
{
	struct cut_be *c = (struct cut_be *)be;
	c->inner->ops->destroy(c->inner);
	free(c);
}

static const struct blk_backend_ops cut_ops = {
	.read = cut_read, .write = cut_write, .flush = cut_flush, .discard = cut_discard,
	.write_zeroes = cut_write_zeroes, .destroy = cut_destroy,
};

int power_cut_wrap_blk(struct vm *vm, struct blk_backend **be, char *err, size_t errlen)
{
	struct cut_be *c = calloc(1, sizeof(*c));
	if (!c) {
		(*be)->ops->destroy(*be);
		*be = NULL;
		snprintf(err, errlen, "blk: out of memory");
		return -1;
	}
	c->inner = *be;
	c->vm = vm;
	c->be = **be;           /* size, readonly, serial */
	c->be.ops = &cut_ops;
	*be = &c->be;
	return 0;
}

/* ---- logged files ------------------------------------------------------------------------ */

/* The files a power cut rewinds, opened now (vmm/vm.h struct vm_cut_file). */
int vm_power_cut_prepare(struct vm *vm, char *err, size_t errlen)
{
	const struct vm_config *cfg = vm->cfg;
	for (unsigned i = 0; i < cfg->nblk + cfg->npmem; i++) {
		bool blk = i < cfg->nblk;
		const char *log = blk ? cfg->blk[i].write_log : cfg->pmem[i - cfg->nblk].write_log;
		if (!log[0])
			continue;
		struct vm_cut_file *c = &vm->cut_files[i];
		c->kind = blk ? "blk" : "pmem";
		c->name = blk ? cfg->blk[i].name : cfg->pmem[i - cfg->nblk].name;
		c->offset = blk ? cfg->blk[i].offset : 0;
		snprintf(c->base, sizeof(c->base), "%s.base", log);
		if (blk_log_cut_open(&c->f, log, c->base,
				     blk ? cfg->blk[i].path : cfg->pmem[i - cfg->nblk].path,
				     BLK_LOG_CUT_FULL, err, errlen))
			return -1;
		c->open = true;
	}
	return 0;
}

/* After a power cut, a device with a write log gets exactly its last FLUSH (or a sampled
 * state after it): devices/log_cut.h, on the closed log and file. FULL: rebuilt from the
 * base, not only the ranges logged after the FLUSH, because a write racing the cut may have
 * reached the file without reaching the log. */
void vm_power_cut_rewind(struct vm *vm)
{
	uint64_t seed = vm->cut_plan.sample ? vm->cut_plan.seed : 0;
	for (unsigned i = 0; i < CONFIG_MAX_BLK + CONFIG_MAX_PMEM; i++) {
		struct vm_cut_file *c = &vm->cut_files[i];
		if (!c->open)
			continue;
		char report[512], err[512];
		if (blk_log_power_cut_files(&c->f, c->offset, seed, BLK_LOG_CUT_FULL, report,
					    sizeof(report), err, sizeof(err)))
			fprintf(stderr, "cvmm: power cut: %s %s: the file could not be set to its "
				"crash state: %s\n", c->kind, c->name, err);
		else
			fprintf(stderr, "cvmm: power cut: %s %s: %s\n", c->kind, c->name, report);
	}
}
