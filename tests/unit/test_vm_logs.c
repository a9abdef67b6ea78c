/* The VM's side of marks and power cut (vmm/vm.c, issue 16), on a struct vm built by hand
 * (no KVM): vm_mark reaches every write log (blk and pmem) or the named device's, refuses
 * unknown devices and devices without a log; the at-mark and after-flushes triggers cut the
 * power once, at the right moment, and a cut freezes the files (nothing reaches them). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/blk.h"
#include "devices/blk_log.h"
#include "devices/pmem_log.h"
#include "mm/pcache.h"
#include "vmm/pmem_window.h"
#include "vmm/vm.h"

struct fx {
	char dir[64];
	struct vm_config cfg;
	struct vm vm;
	struct pmem_window win;
};

static void path(struct fx *f, char *out, const char *name)
{
	snprintf(out, CONFIG_PATH_MAX, "%s/%s", f->dir, name);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/cvmm-vmlogs.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	char err[256];
	config_defaults(&f->cfg);
	assert_int_equal(config_set_dev(&f->cfg, "blk", "data", "readonly", "off", "t", err,
					sizeof(err)), 0);
	assert_int_equal(config_set_dev(&f->cfg, "blk", "raw", "readonly", "off", "t", err,
					sizeof(err)), 0);
	assert_int_equal(config_set_dev(&f->cfg, "pmem", "dax", "readonly", "off", "t", err,
					sizeof(err)), 0);
	path(f, f->cfg.blk[0].path, "disk.img");
	path(f, f->cfg.blk[0].write_log, "disk.log");
	path(f, f->cfg.blk[1].path, "raw.img");
	path(f, f->cfg.pmem[0].path, "pmem.img");
	path(f, f->cfg.pmem[0].write_log, "pmem.log");
	for (int i = 0; i < 2; i++) {
		int fd = open(f->cfg.blk[i].path, O_RDWR | O_CREAT, 0600);
		assert_int_equal(ftruncate(fd, 1 << 20), 0);
		close(fd);
	}
	struct vm *vm = &f->vm;
	vm->cfg = &f->cfg;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	for (unsigned i = 0; i < 2; i++) {
		struct blk_file_opts o = { .path = f->cfg.blk[i].path, .direct = false };
		struct blk_backend *be;
		assert_int_equal(blk_file_open(&o, &be, err, sizeof(err)), 0);
		if (i == 0) {
			assert_int_equal(blk_log_attach(f->cfg.blk[0].path, 0, f->cfg.blk[0].write_log,
							&be, err, sizeof(err)), 0);
			vm->blk[i].log_be = be;
		}
		vm->blk[i].cfg = &f->cfg.blk[i];
		vm->blk[i].dev = (struct blk_dev *)be; /* only the backend is used here */
	}
	vm->nblk = 2;
	assert_int_equal(pcache_open(f->cfg.pmem[0].path, 2 << 20, false, &f->win.pc, err,
				     sizeof(err)), 0);
	f->win.name = "dax";
	vm->pmem[0].win = &f->win;
	vm->pmem[0].cfg = &f->cfg.pmem[0];
	assert_int_equal(pmem_log_attach(f->win.pc, f->cfg.pmem[0].path, f->cfg.pmem[0].write_log,
					 &vm->pmem[0].log, err, sizeof(err)), 0);
	vm->npmem = 1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	pmem_log_detach(f->vm.pmem[0].log);
	pcache_put(f->win.pc);
	for (unsigned i = 0; i < 2; i++) {
		struct blk_backend *be = (struct blk_backend *)f->vm.blk[i].dev;
		be->ops->destroy(be);
	}
	pthread_mutex_destroy(&f->vm.lock);
	pthread_cond_destroy(&f->vm.cond);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void test_marks(void **state)
{
	struct fx *f = *state;
	struct vm *vm = &f->vm;
	char err[256] = "";
	assert_int_equal(vm_mark(vm, NULL, "all", err, sizeof(err)), 2); /* raw has no log */
	assert_int_equal(blk_log_entries(vm->blk[0].log_be), 1);
	uint64_t p0 = pmem_log_entries(vm->pmem[0].log);
	assert_int_equal(vm_mark(vm, "data", "one", err, sizeof(err)), 1);
	assert_int_equal(blk_log_entries(vm->blk[0].log_be), 2);
	assert_int_equal(pmem_log_entries(vm->pmem[0].log), p0);
	assert_int_equal(vm_mark(vm, "dax", "two", err, sizeof(err)), 1);
	assert_int_equal(pmem_log_entries(vm->pmem[0].log), p0 + 1);
	assert_int_equal(vm_mark(vm, "raw", "x", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "\"raw\" has no write_log"));
	assert_int_equal(vm_mark(vm, "nope", "x", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no device \"nope\""));
	char big[600];
	memset(big, 'm', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	assert_int_equal(vm_mark(vm, "data", big, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "bad mark text"));
	assert_false(vm->cut);                  /* no plan: marks cut nothing */
}

static void test_cut_at_mark(void **state)
{
	struct fx *f = *state;
	struct vm *vm = &f->vm;
	char err[256];
	assert_int_equal(power_cut_parse("at-mark:stop", "sample:5", &vm->cut_plan, err,
					 sizeof(err)), 0);
	assert_int_equal(vm_mark(vm, NULL, "not yet", err, sizeof(err)), 2);
	assert_false(vm->cut);
	assert_int_equal(vm_mark(vm, NULL, "stop", err, sizeof(err)), 2); /* logged, then cut */
	assert_true(vm->cut);
	assert_true(vm->stopping);
	assert_int_equal(vm->exit_status, CVMM_EXIT_POWER_CUT);
	assert_non_null(strstr(vm->stop_reason, "power cut: at mark 'stop'"));
	assert_true(vm->cut_plan.sample);
	assert_int_equal(vm->cut_plan.seed, 5);
	/* the files are frozen: the window's cache refuses writes */
	assert_true(pcache_direct_write(f->win.pc, 0, "x", 1) < 0);
	/* a second trigger changes nothing */
	vm_power_cut(vm, false, 0, "again");
	assert_non_null(strstr(vm->stop_reason, "at mark 'stop'"));
	assert_true(vm->cut_plan.sample);
}

static void test_cut_after_flushes(void **state)
{
	struct fx *f = *state;
	struct vm *vm = &f->vm;
	char err[256];
	assert_int_equal(power_cut_parse("after-flushes:3", NULL, &vm->cut_plan, err, sizeof(err)),
			 0);
	vm_note_flush(vm);
	vm_note_flush(vm);
	assert_false(vm->cut);
	assert_int_equal(pcache_direct_write(f->win.pc, 0, "x", 1), 1);
	vm_note_flush(vm);
	assert_true(vm->cut);
	assert_int_equal(vm->exit_status, CVMM_EXIT_POWER_CUT);
	assert_non_null(strstr(vm->stop_reason, "after 3 FLUSHes"));
	assert_false(vm->cut_plan.sample);
	assert_true(pcache_direct_write(f->win.pc, 4096, "y", 1) < 0);
	vm_note_flush(vm);                      /* later FLUSHes: nothing more */
	assert_int_equal(vm->flushes, 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_marks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cut_at_mark, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cut_after_flushes, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
