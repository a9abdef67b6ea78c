/* Kernel loaders. Everything read from the image is bounds-checked: a truncated or malformed
 * file, or one whose segments do not fit in guest RAM, gets a clear error and no write to
 * guest memory outside RAM. */
#ifndef CVMM_LOADER_H
#define CVMM_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/guest_mem.h"

struct load_info {
	uint64_t entry;      /* ELF e_entry: the 64-bit entry cvmm starts vCPUs at */
	bool has_pvh;        /* the image carries a XEN_ELFNOTE_PHYS32_ENTRY (type 18) note */
	uint64_t pvh_entry;  /* its 32-bit entry (what QEMU -kernel uses) */
	uint64_t lo, hi;     /* lowest and highest+1 guest-physical byte loaded */
};

/* Load an ELF64 x86-64 executable's PT_LOAD segments (p_paddr) into guest memory:
 * copy p_filesz bytes, zero the rest up to p_memsz. Refuses: not ELF64/x86-64/EXEC,
 * segments outside the file, p_filesz > p_memsz, segments not wholly inside guest RAM or
 * overlapping [reserved_lo, reserved_hi) (where cvmm puts boot tables), an entry outside
 * every loaded segment. Returns 0, or -1 with a one-line message in err. */
int elf_load_image(const void *buf, size_t len, struct guest_mem *mem, uint64_t reserved_lo,
		   uint64_t reserved_hi, struct load_info *out, char *err, size_t errlen);
/* Same, reading the file at path (message names the path). */
int elf_load_file(const char *path, struct guest_mem *mem, uint64_t reserved_lo,
		  uint64_t reserved_hi, struct load_info *out, char *err, size_t errlen);

#endif
