/* libFuzzer target: elf_load_image on arbitrary bytes into a small guest RAM must never
 * crash, read outside the input, or write outside guest RAM; on failure it must say why and
 * leave RAM untouched.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -D_GNU_SOURCE \
 *         tests/fuzz/fuzz_elf.c vmm/loader_elf.c lib/guest_mem.c -lelf */
#include <elf.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/guest_mem.h"
#include "vmm/loader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Two regions with a hole between them, so "inside RAM" has to mean inside one region.
 * Each is a separate heap block: ASan flags any write that escapes one. */
#define FUZZ_LO_GPA 0x0
#define FUZZ_LO_SIZE 0x4000
#define FUZZ_HI_GPA 0x10000
#define FUZZ_HI_SIZE 0x8000
#define FUZZ_POISON 0xa5

static int fuzz_untouched(const uint8_t *p, size_t n)
{
	/* p[0] is poison and every byte equals the one before it: all poison */
	return p[0] == FUZZ_POISON && !memcmp(p, p + 1, n - 1);
}

/* One load of img[0..size) into fresh poisoned RAM, checking the loader's promises. */
static void fuzz_load_once(const uint8_t *img, size_t size)
{
	struct guest_mem mem = { .n = 0 };
	struct load_info info;
	uint8_t *lo, *hi, *copy;
	char err[256];
	int rc;

	lo = malloc(FUZZ_LO_SIZE);
	hi = malloc(FUZZ_HI_SIZE);
	/* an exactly-sized copy: reads past the end of the image trip ASan */
	copy = malloc(size ? size : 1);
	if (!lo || !hi || !copy)
		abort();
	memcpy(copy, img, size);
	memset(lo, FUZZ_POISON, FUZZ_LO_SIZE);
	memset(hi, FUZZ_POISON, FUZZ_HI_SIZE);
	if (guest_mem_add(&mem, FUZZ_LO_GPA, FUZZ_LO_SIZE, lo) < 0 ||
	    guest_mem_add(&mem, FUZZ_HI_GPA, FUZZ_HI_SIZE, hi) < 0)
		abort();

	err[0] = '\0';
	/* [0, 0x1000) reserved, as cvmm reserves low memory for boot tables */
	rc = elf_load_image(copy, size, &mem, 0, 0x1000, &info, err, sizeof(err));
	if (rc < 0) {
		if (!err[0] || !memchr(err, '\0', sizeof(err)))
			abort();
		if (!fuzz_untouched(lo, FUZZ_LO_SIZE) || !fuzz_untouched(hi, FUZZ_HI_SIZE))
			abort();	/* a refused image wrote guest memory */
	} else {
		if (info.lo >= info.hi || !guest_mem_ptr(&mem, info.lo, 1) ||
		    !guest_mem_ptr(&mem, info.hi - 1, 1) || info.lo < 0x1000)
			abort();
		if (!guest_mem_ptr(&mem, info.entry, 1))
			abort();
	}
	if (memcmp(copy, img, size))
		abort();	/* the loader must not write its input */

	free(copy);
	free(hi);
	free(lo);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Elf64_Ehdr eh;
	uint8_t *patched;

	fuzz_load_once(data, size);

	/* Then the same bytes with a plausible ELF header forced on, so that even without a
	 * seed corpus the fuzzer spends its time in the program header and note checks
	 * rather than rediscovering the magic number. */
	if (size < sizeof(eh))
		return 0;
	patched = malloc(size);
	if (!patched)
		abort();
	memcpy(patched, data, size);
	memcpy(&eh, patched, sizeof(eh));
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_type = ET_EXEC;
	eh.e_machine = EM_X86_64;
	eh.e_version = EV_CURRENT;
	eh.e_phoff = sizeof(eh);
	eh.e_phentsize = sizeof(Elf64_Phdr);
	eh.e_phnum %= 8;
	memcpy(patched, &eh, sizeof(eh));
	fuzz_load_once(patched, size);
	free(patched);
	return 0;
}
