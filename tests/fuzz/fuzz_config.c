/* libFuzzer target: config_parse_string on arbitrary text must never crash, overrun or leak,
 * and must leave every string field NUL-terminated whether it succeeds or fails.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -D_GNU_SOURCE \
 *         tests/fuzz/fuzz_config.c vmm/config.c vmm/power_cut_plan.c devices/fault.c devices/virtio.c \
 *         devices/virtqueue.c lib/guest_mem.c lib/iov.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_check_terminated(const char *field, size_t size)
{
	if (!memchr(field, '\0', size))
		abort();
}

static void fuzz_check_faults(const struct fault_lines *fl)
{
	if (fl->n > CONFIG_MAX_FAULTS)
		abort();
	for (unsigned k = 0; k < fl->n; k++) {
		fuzz_check_terminated(fl->text[k], sizeof(fl->text[k]));
		fuzz_check_terminated(fl->where[k], sizeof(fl->where[k]));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vm_config *c;
	char *text;
	char err[256];

	/* The parser takes a C string: stop at the first NUL like a real caller would. */
	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	c = malloc(sizeof(*c));
	if (!c) {
		free(text);
		return 0;
	}
	config_defaults(c);
	/* A relative base exercises path joining on every path key. */
	strcpy(c->base_dir, "fuzz/base");
	err[0] = '\0';
	if (config_parse_string(c, text, "fuzz.conf", err, sizeof(err)) < 0 && !err[0])
		abort();	/* a failure must always say why */

	fuzz_check_terminated(c->kernel, sizeof(c->kernel));
	fuzz_check_terminated(c->cmdline, sizeof(c->cmdline));
	fuzz_check_terminated(c->serial, sizeof(c->serial));
	fuzz_check_terminated(c->cpuid_mask, sizeof(c->cpuid_mask));
	fuzz_check_terminated(c->stats_json, sizeof(c->stats_json));
	fuzz_check_terminated(c->control, sizeof(c->control));
	fuzz_check_terminated(c->power_cut, sizeof(c->power_cut));
	fuzz_check_terminated(c->power_cut_state, sizeof(c->power_cut_state));
	if (c->npmem > CONFIG_MAX_PMEM || c->nblk > CONFIG_MAX_BLK)
		abort();
	for (unsigned i = 0; i < c->npmem; i++) {
		fuzz_check_terminated(c->pmem[i].name, sizeof(c->pmem[i].name));
		fuzz_check_terminated(c->pmem[i].path, sizeof(c->pmem[i].path));
		fuzz_check_terminated(c->pmem[i].write_log, sizeof(c->pmem[i].write_log));
		fuzz_check_faults(&c->pmem[i].faults);
	}
	for (unsigned i = 0; i < c->nblk; i++) {
		fuzz_check_terminated(c->blk[i].name, sizeof(c->blk[i].name));
		fuzz_check_terminated(c->blk[i].path, sizeof(c->blk[i].path));
		fuzz_check_terminated(c->blk[i].write_log, sizeof(c->blk[i].write_log));
		fuzz_check_faults(&c->blk[i].faults);
	}
	fuzz_check_terminated(err, sizeof(err));
	/* Validation must cope with whatever got parsed. It opens the kernel path, and a fuzzed
	 * path could name a device whose open has side effects (/dev/watchdog): point it at a
	 * file that surely exists and is harmless, so the later checks run too. */
	strcpy(c->kernel, "/proc/self/exe");
	config_validate(c, err, sizeof(err));

	free(c);
	free(text);
	return 0;
}
