/* Write-log marks (issue 16): a MARK entry in the logs of a VM's devices, from the control
 * socket or the guest's mark port (devices/mark_port.h); also the at-mark power-cut trigger. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "devices/blk_log.h"
#include "devices/pmem_log.h"
#include "vmm/vm.h"

/* One device's part of vm_mark: 1 if its log took the mark, 0 if it is not asked or has no
 * log (and was not named), -1 with err set. mark(): blk_log_mark or pmem_log_mark. */
static int mark_device(const char *name, void *log, int (*mark)(void *log, const char *text),
		       const char *device, const char *text, bool *found, char *err,
		       size_t errlen)
{
	if (device && strcmp(device, name))
		return 0;
	*found = true;
	if (!log) {
		if (!device)
			return 0;
		snprintf(err, errlen, "device \"%s\" has no write_log", device);
		return -1;
	}
	int r = mark(log, text);
	if (r) {
		snprintf(err, errlen, "%s: %s", name,
			 r == -EINVAL ? "bad mark text (1..479 bytes, no NUL)" : strerror(-r));
		return -1;
	}
	return 1;
}

static int mark_blk(void *log, const char *text)
{
	return blk_log_mark(log, text);
}

static int mark_pmem(void *log, const char *text)
{
	return pmem_log_mark(log, text);
}

int vm_mark(struct vm *vm, const char *device, const char *text, char *err, size_t errlen)
{
	int logs = 0, r;
	bool found = !device;
	for (unsigned i = 0; i < vm->nblk; i++) {
		r = mark_device(vm->blk[i].cfg->name, vm->blk[i].log_be, mark_blk, device, text,
				&found, err, errlen);
		if (r < 0)
			return -1;
		logs += r;
	}
	for (unsigned i = 0; i < vm->npmem; i++) {
		r = mark_device(vm->pmem[i].cfg->name, vm->pmem[i].log, mark_pmem, device, text,
				&found, err, errlen);
		if (r < 0)
			return -1;
		logs += r;
	}
	if (!found) {
		snprintf(err, errlen, "no device \"%s\"", device);
		return -1;
	}
	vm_note_mark(vm, text);
	return logs;
}
