/* libFuzzer target: the Linux loaders (vmm/linux.c) on arbitrary bytes: linux_probe, then
 * linux_load_bzimage or linux_load_vmlinux with an initrd and a command line, into a small,
 * poisoned guest RAM. They must never crash or read outside the image (an exactly sized copy:
 * ASan), never write outside guest RAM (separate heap blocks: ASan), and keep their promises:
 *   - a refused bzImage leaves guest RAM untouched, and says why in one line;
 *   - a loaded kernel lies at or above 1 MiB and below the end of low RAM, the entry inside it
 *     (bzImage: load + 0x200), never over the boot tables (issue 14: pref_address wrapping to 0);
 *   - the initrd, if any, is page aligned, above the kernel, whole, and inside low RAM.
 * The first 4 input bytes choose the set-up (RAM size, initrd length, command line length,
 * whether a plausible bzImage header or ELF header is forced on); the rest is the image.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -D_GNU_SOURCE tests/fuzz/fuzz_linux.c \
 *         vmm/linux.c vmm/loader_elf.c lib/file.c lib/guest_mem.c vmm/acpi.c vmm/boot.c \
 *         vmm/cpuid.c -lelf */
#include <elf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/acpi.h"
#include "lib/guest_mem.h"
#include "vmm/linux.h"
#include "vmm/vm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_POISON 0xa5
/* Low RAM: the boot area below 1 MiB plus room for a small kernel and initrd. A second region
 * at 4 GiB stands for high RAM (never a place for the kernel or initrd). */
#define FUZZ_LOW_MAX (GPA_RESERVED_END + (512u << 10))
#define FUZZ_HIGH_SIZE 0x10000

static uint8_t *low, *high;

static int all_poison(const uint8_t *p, size_t n)
{
	return p[0] == FUZZ_POISON && !memcmp(p, p + 1, n - 1);
}

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)v); put16(p + 2, (uint16_t)(v >> 16)); }

/* Force the fields a bzImage must have to get past the first checks, keeping the fuzzer's
 * values for the rest (sizes, alignment, addresses). */
static void plausible_bzimage(uint8_t *b, size_t len)
{
	if (len < HDR_INIT_SIZE + 4)
		return;
	put16(b + HDR_BOOT_FLAG, HDR_BOOT_FLAG_MAGIC);
	put32(b + HDR_HEADER, HDR_MAGIC);
	if (b[HDR_JUMP + 1] < HDR_INIT_SIZE + 4 - HDR_HEADER)
		b[HDR_JUMP + 1] = (uint8_t)(HDR_INIT_SIZE + 4 - HDR_HEADER + (b[HDR_JUMP + 1] & 0x1f));
	put16(b + HDR_VERSION, (uint16_t)(0x020c + (b[HDR_VERSION] & 7)));
	b[HDR_LOADFLAGS] |= LOADFLAGS_LOADED_HIGH;
	b[HDR_XLOADFLAGS] |= XLF_KERNEL_64;
	b[HDR_SETUP_SECTS] &= 7;
	if (b[HDR_SYSSIZE + 2] | b[HDR_SYSSIZE + 3])
		b[HDR_SYSSIZE + 2] = b[HDR_SYSSIZE + 3] = 0;
	if (b[HDR_KERNEL_ALIGNMENT] & 1) /* half the time a small power of two */
		put32(b + HDR_KERNEL_ALIGNMENT, 1u << (12 + (b[HDR_KERNEL_ALIGNMENT] >> 1) % 10));
}

static void plausible_elf(uint8_t *b, size_t len)
{
	Elf64_Ehdr eh;
	if (len < sizeof(eh))
		return;
	memcpy(&eh, b, sizeof(eh));
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_type = ET_EXEC;
	eh.e_machine = EM_X86_64;
	eh.e_version = EV_CURRENT;
	eh.e_phoff = sizeof(eh);
	eh.e_phentsize = sizeof(Elf64_Phdr);
	eh.e_phnum %= 6;
	memcpy(b, &eh, sizeof(eh));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 4)
		return 0;
	uint8_t mode = data[0];
	uint64_t ram_low = GPA_RESERVED_END + ((uint64_t)data[1] << 11); /* 1 MiB .. +510 KiB */
	size_t initrd_len = data[2] & 0x80 ? (size_t)(data[2] & 0x7f) * 1031 + 1 : 0;
	size_t cmd_len = (size_t)data[3] * 9;
	data += 4;
	size -= 4;

	if (!low) {
		low = malloc(FUZZ_LOW_MAX);
		high = malloc(FUZZ_HIGH_SIZE);
		if (!low || !high)
			abort();
	}
	struct guest_mem mem = { .n = 0 };
	memset(low, FUZZ_POISON, ram_low);
	memset(high, FUZZ_POISON, FUZZ_HIGH_SIZE);
	if (guest_mem_add(&mem, 0, ram_low, low) < 0 ||
	    guest_mem_add(&mem, GPA_HIGH_RAM, FUZZ_HIGH_SIZE, high) < 0)
		abort();

	/* The image: an exactly sized copy, optionally made plausible. */
	uint8_t *img = malloc(size ? size : 1);
	uint8_t *initrd = malloc(initrd_len ? initrd_len : 1);
	char *cmdline = malloc(cmd_len + 1);
	if (!img || !initrd || !cmdline)
		abort();
	memcpy(img, data, size);
	if (mode & 1)
		plausible_bzimage(img, size);
	else if (mode & 2)
		plausible_elf(img, size);
	memset(initrd, 0x3c, initrd_len);
	memset(cmdline, 'c', cmd_len);
	cmdline[cmd_len] = 0;

	struct linux_params p = {
		.ram_low = ram_low, .ram_high = FUZZ_HIGH_SIZE, .rsdp = ACPI_GPA_BASE,
		.acpi_lo = ACPI_GPA_BASE, .acpi_hi = ACPI_GPA_BASE + ACPI_GPA_SIZE,
		.cmdline = cmdline, .initrd = initrd_len ? initrd : NULL, .initrd_len = initrd_len,
	};
	enum kernel_kind kind;
	int probed = linux_probe(img, size, &kind);
	bool bz = (mode & 4) ? !(mode & 2) : (probed == 0 && kind == KERNEL_BZIMAGE);
	struct linux_boot lb;
	char err[512];
	err[0] = 0;
	int rc = bz ? linux_load_bzimage(img, size, &mem, &p, &lb, "kernel 'f'", err, sizeof(err))
		    : linux_load_vmlinux(img, size, &mem, &p, &lb, "kernel 'f'", err, sizeof(err));
	if (rc < 0) {
		if (!err[0] || !memchr(err, 0, sizeof(err)) || strchr(err, '\n') ||
		    strncmp(err, "kernel 'f': ", 12))
			abort(); /* one line, naming the file */
		if (bz && (!all_poison(low, ram_low) || !all_poison(high, FUZZ_HIGH_SIZE)))
			abort(); /* a refused bzImage wrote guest memory */
	} else {
		if (lb.kernel_lo < GPA_RESERVED_END || lb.kernel_hi <= lb.kernel_lo ||
		    lb.kernel_hi > ram_low)
			abort(); /* kernel over the boot tables, or outside low RAM */
		if (lb.entry < lb.kernel_lo || lb.entry >= lb.kernel_hi)
			abort();
		if (bz && lb.entry != lb.kernel_lo + 0x200)
			abort();
		if (lb.boot_params != GPA_LINUX_BOOT_PARAMS)
			abort();
		if (initrd_len) {
			if (lb.initrd_size != initrd_len || lb.initrd_addr % 4096 ||
			    lb.initrd_addr < lb.kernel_hi || lb.initrd_addr + initrd_len > ram_low ||
			    memcmp(low + lb.initrd_addr, initrd, initrd_len))
				abort();
		} else if (lb.initrd_addr || lb.initrd_size) {
			abort();
		}
		/* The zero page: the header magic and our command line pointer. */
		const uint8_t *bp = low + GPA_LINUX_BOOT_PARAMS;
		if (memcmp(bp + HDR_HEADER, "HdrS", 4) || bp[HDR_TYPE_OF_LOADER] != 0xff)
			abort();
	}
	if (memcmp(img, data, size) && !(mode & 3))
		abort(); /* the loader must not write its input */
	free(cmdline);
	free(initrd);
	free(img);
	return 0;
}
