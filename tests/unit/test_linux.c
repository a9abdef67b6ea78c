/* Linux loaders: bzImage header validation (a good synthetic header, then each bad field), the
 * boot_params zero page (e820 against the RAM layout, command line pointer, initrd placement),
 * vmlinux detection and loading, and the clearcpuid= policy. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/serial.h"
#include "devices/sysctl.h"
#include "vmm/acpi.h"
#include "vmm/linux.h"
#include "vmm/vm.h"

#define RAM (64u << 20)
#define KSIZE (64u << 10) /* protected-mode part of the synthetic bzImage */
#define SETUP_SECTS 4

static uint8_t *ram;
static struct guest_mem mem;

static uint16_t r16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t r32(const uint8_t *p) { return r16(p) | (uint32_t)r16(p + 2) << 16; }
static uint64_t r64(const uint8_t *p) { return r32(p) | (uint64_t)r32(p + 4) << 32; }
static void w16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void w32(uint8_t *p, uint32_t v) { w16(p, (uint16_t)v); w16(p + 2, (uint16_t)(v >> 16)); }
static void w64(uint8_t *p, uint64_t v) { w32(p, (uint32_t)v); w32(p + 4, (uint32_t)(v >> 32)); }

static int setup(void **state)
{
	ram = calloc(1, RAM);
	memset(&mem, 0, sizeof(mem));
	assert_int_equal(guest_mem_add(&mem, 0, RAM, ram), 0);
	return 0;
}

static int teardown(void **state)
{
	free(ram);
	return 0;
}

static size_t bz_len(void) { return (SETUP_SECTS + 1) * 512 + KSIZE; }

/* A bzImage as the kernel's build tools lay it out, with a 2.15 header. */
static uint8_t *make_bzimage(void)
{
	size_t len = bz_len();
	uint8_t *b = calloc(1, len);
	b[HDR_SETUP_SECTS] = SETUP_SECTS;
	w32(b + HDR_SYSSIZE, KSIZE / 16);
	w16(b + HDR_BOOT_FLAG, 0xaa55);
	b[HDR_JUMP] = 0xeb;
	b[HDR_JUMP + 1] = 0x6a;                 /* header ends at 0x26c */
	w32(b + HDR_HEADER, HDR_MAGIC);
	w16(b + HDR_VERSION, 0x020f);
	b[HDR_LOADFLAGS] = LOADFLAGS_LOADED_HIGH;
	w32(b + HDR_INITRD_ADDR_MAX, 0x7fffffff);
	w32(b + HDR_KERNEL_ALIGNMENT, 0x200000);
	b[HDR_RELOCATABLE] = 1;
	w16(b + HDR_XLOADFLAGS, 0x7f);
	w32(b + HDR_CMDLINE_SIZE, 2047);
	w64(b + HDR_PREF_ADDRESS, 0x1000000);
	w32(b + HDR_INIT_SIZE, 0x400000);
	for (size_t i = 0; i < KSIZE; i++)
		b[(SETUP_SECTS + 1) * 512 + i] = (uint8_t)(i * 7 + 1);
	return b;
}

static struct linux_params params(const char *cmdline)
{
	return (struct linux_params){
		.ram_low = RAM, .ram_high = 0, .rsdp = ACPI_GPA_BASE,
		.acpi_lo = ACPI_GPA_BASE, .acpi_hi = ACPI_GPA_BASE + ACPI_GPA_SIZE,
		.ecam_lo = 0, .ecam_hi = 0, .cmdline = cmdline,
	};
}

static void test_good_bzimage(void **state)
{
	uint8_t *b = make_bzimage();
	struct linux_params p = params("console=ttyS0");
	struct linux_boot lb;
	char err[512] = "";
	int rc = linux_load_bzimage(b, bz_len(), &mem, &p, &lb, "bz", err, sizeof(err));
	if (rc)
		fail_msg("%s", err);
	assert_int_equal(lb.kind, KERNEL_BZIMAGE);
	assert_int_equal(lb.version, 0x020f);
	assert_int_equal(lb.entry, 0x1000000 + 0x200);   /* the 64-bit entry */
	assert_int_equal(lb.boot_params, GPA_LINUX_BOOT_PARAMS);
	assert_memory_equal(ram + 0x1000000, b + (SETUP_SECTS + 1) * 512, KSIZE);

	const uint8_t *bp = ram + GPA_LINUX_BOOT_PARAMS;
	/* The setup header is copied as far as its own length says (0x202 + byte at 0x201). */
	assert_memory_equal(bp + HDR_HEADER, "HdrS", 4);
	assert_int_equal(r16(bp + HDR_VERSION), 0x020f);
	assert_int_equal(r64(bp + HDR_PREF_ADDRESS), 0x1000000);
	assert_int_equal(bp[HDR_TYPE_OF_LOADER], 0xff);
	assert_true(bp[HDR_LOADFLAGS] & LOADFLAGS_LOADED_HIGH);
	assert_int_equal(r32(bp + HDR_CMD_LINE_PTR), GPA_LINUX_CMDLINE);
	assert_int_equal(r32(bp + HDR_RAMDISK_IMAGE), 0);
	assert_int_equal(r32(bp + HDR_RAMDISK_SIZE), 0);
	assert_int_equal(r64(bp + BP_ACPI_RSDP_ADDR), ACPI_GPA_BASE);
	assert_int_equal(bp[BP_SENTINEL], 0);

	/* e820: low RAM, the ACPI area reserved, RAM from 1 MiB to the end. */
	assert_int_equal(bp[BP_E820_ENTRIES], 3);
	const uint8_t *e = bp + BP_E820_TABLE;
	uint64_t want[3][3] = { { 0, 0xA0000, E820_RAM },
				{ ACPI_GPA_BASE, ACPI_GPA_SIZE, E820_RESERVED },
				{ 0x100000, RAM - 0x100000, E820_RAM } };
	for (int i = 0; i < 3; i++, e += 20) {
		assert_int_equal(r64(e), want[i][0]);
		assert_int_equal(r64(e + 8), want[i][1]);
		assert_int_equal(r32(e + 16), want[i][2]);
	}
	/* The 64-bit protocol's GDT: __BOOT_CS at 0x10, __BOOT_DS at 0x18. */
	const uint8_t *g = ram + GPA_LINUX_GDT;
	assert_int_equal(r64(g + LINUX_BOOT_CS), 0x00af9b000000ffffULL);
	assert_int_equal(r64(g + LINUX_BOOT_DS), 0x00cf93000000ffffULL);
	free(b);
}

static void test_initrd_placement(void **state)
{
	uint8_t *b = make_bzimage();
	size_t ilen = (1u << 20) + 123;
	uint8_t *initrd = malloc(ilen);
	memset(initrd, 0x5a, ilen);
	struct linux_params p = params("");
	p.initrd = initrd;
	p.initrd_len = ilen;
	struct linux_boot lb;
	char err[512] = "";
	assert_int_equal(linux_load_bzimage(b, bz_len(), &mem, &p, &lb, "bz", err, sizeof(err)), 0);
	/* As high as it goes, page aligned, whole, inside RAM, above the kernel. */
	assert_int_equal(lb.initrd_addr % 4096, 0);
	assert_int_equal(lb.initrd_addr, (RAM - ilen) & ~0xfffULL);
	assert_true(lb.initrd_addr >= lb.kernel_hi);
	const uint8_t *bp = ram + GPA_LINUX_BOOT_PARAMS;
	assert_int_equal(r32(bp + HDR_RAMDISK_IMAGE), lb.initrd_addr);
	assert_int_equal(r32(bp + HDR_RAMDISK_SIZE), ilen);
	assert_memory_equal(ram + lb.initrd_addr, initrd, ilen);

	/* initrd_addr_max below the end of RAM moves it down. */
	w32(b + HDR_INITRD_ADDR_MAX, 0x2ffffff);
	assert_int_equal(linux_load_bzimage(b, bz_len(), &mem, &p, &lb, "bz", err, sizeof(err)), 0);
	assert_true(lb.initrd_addr + ilen - 1 <= 0x2ffffff);
	assert_int_equal(lb.initrd_addr, (0x3000000 - ilen) & ~0xfffULL);

	/* Too large to fit above the kernel: refused, and says why. */
	w32(b + HDR_INITRD_ADDR_MAX, 0x7fffffff);
	p.initrd_len = RAM - 0x1000000;
	p.initrd = calloc(1, p.initrd_len);
	assert_int_equal(linux_load_bzimage(b, bz_len(), &mem, &p, &lb, "bz", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "initrd"));
	assert_non_null(strstr(err, "does not fit"));
	free((void *)p.initrd);
	free(initrd);
	free(b);
}

/* Corrupt one field, expect a refusal naming it, and nothing written to guest RAM. */
static void expect_bad(void (*corrupt)(uint8_t *b, size_t *len), const char *cmdline,
		       const char *needle)
{
	uint8_t *b = make_bzimage();
	size_t len = bz_len();
	corrupt(b, &len);
	memset(ram, 0, RAM);
	struct linux_params p = params(cmdline);
	struct linux_boot lb;
	char err[512] = "";
	assert_int_equal(linux_load_bzimage(b, len, &mem, &p, &lb, "kernel 'bz'", err, sizeof(err)),
			 -1);
	if (!strstr(err, needle))
		fail_msg("error '%s' does not mention '%s'", err, needle);
	assert_non_null(strstr(err, "kernel 'bz'"));
	for (size_t i = 0; i < RAM; i += 4096)
		if (ram[i] || ram[i + 0x200])
			fail_msg("guest RAM written at 0x%zx by a refused image", i);
	free(b);
}

static void bad_magic(uint8_t *b, size_t *len) { b[HDR_HEADER] = 'X'; }
static void old_version(uint8_t *b, size_t *len) { w16(b + HDR_VERSION, 0x020b); }
static void setup_beyond_file(uint8_t *b, size_t *len) { b[HDR_SETUP_SECTS] = 200; }
static void no_64bit(uint8_t *b, size_t *len) { w16(b + HDR_XLOADFLAGS, 0x7e); }
static void syssize_beyond(uint8_t *b, size_t *len) { w32(b + HDR_SYSSIZE, KSIZE / 16 + 1); }
static void truncated(uint8_t *b, size_t *len) { *len -= 100; }
static void bad_boot_flag(uint8_t *b, size_t *len) { w16(b + HDR_BOOT_FLAG, 0x1234); }
static void zimage(uint8_t *b, size_t *len) { b[HDR_LOADFLAGS] = 0; }
static void huge_init(uint8_t *b, size_t *len) { w32(b + HDR_INIT_SIZE, RAM); }
static void short_header(uint8_t *b, size_t *len) { b[HDR_JUMP + 1] = 0x20; }
static void header_past_end(uint8_t *b, size_t *len) { *len = 0x240; }
static void bad_align(uint8_t *b, size_t *len) { w32(b + HDR_KERNEL_ALIGNMENT, 0x300000); }
static void tiny_cmdline(uint8_t *b, size_t *len) { w32(b + HDR_CMDLINE_SIZE, 4); }
/* Found by tests/fuzz/fuzz_linux.c: 0x200 bytes or less of kernel cannot hold the 64-bit
 * entry at +0x200, which would be entered in unloaded memory. */
static void tiny_syssize(uint8_t *b, size_t *len)
{
	w32(b + HDR_SYSSIZE, 0x200 / 16);
	w32(b + HDR_INIT_SIZE, 0x200);
}

static void test_bad_bzimage_fields(void **state)
{
	expect_bad(bad_magic, "", "HdrS");
	expect_bad(old_version, "", "older than 2.12");
	expect_bad(setup_beyond_file, "", "setup_sects 200");
	expect_bad(no_64bit, "", "XLF_KERNEL_64");
	expect_bad(syssize_beyond, "", "syssize");
	expect_bad(truncated, "", "truncated");
	expect_bad(bad_boot_flag, "", "boot_flag");
	expect_bad(zimage, "", "LOADED_HIGH");
	expect_bad(huge_init, "", "more memory");
	expect_bad(short_header, "", "too short");
	expect_bad(header_past_end, "", "truncated");
	expect_bad(bad_align, "", "kernel_alignment");
	expect_bad(tiny_cmdline, "console=ttyS0", "cmdline");
	expect_bad(tiny_syssize, "", "64-bit entry");
}

/* Issue 14 defect 1: a file of exactly 518 bytes (0x206) with 'HdrS' and a setup header
 * length byte of 0 ends before the protocol version at 0x206: refused, with no read past the
 * buffer (ASan reports one). The buffer is exactly that long so any over-read trips ASan. */
static void test_header_shorter_than_its_fields(void **state)
{
	for (size_t len = HDR_HEADER + 4; len <= HDR_INIT_SIZE + 4; len++) {
		uint8_t *b = calloc(1, len);
		w32(b + HDR_HEADER, HDR_MAGIC);
		b[HDR_JUMP + 1] = (uint8_t)(len - HDR_HEADER); /* the header ends at the file's end */
		if (len == HDR_HEADER + 4)
			b[HDR_JUMP + 1] = 0;
		struct linux_params p = params("");
		struct linux_boot lb;
		char err[512] = "";
		assert_int_equal(linux_load_bzimage(b, len, &mem, &p, &lb, "bz", err, sizeof(err)),
				 -1);
		assert_true(err[0] != 0);
		free(b);
	}
}

/* Issue 14 defect 2: pref_address near 2^64 with 2 MiB kernel_alignment must not wrap to a
 * load address of 0 (over the page tables, GDT, zero page and ACPI tables): refused. And a
 * pref_address below 1 MiB that aligns to 0 is raised to the 1 MiB floor first, still aligned. */
static void huge_pref(uint8_t *b, size_t *len) { w64(b + HDR_PREF_ADDRESS, ~0ULL); }
static void huge_pref2(uint8_t *b, size_t *len)
{
	w64(b + HDR_PREF_ADDRESS, ~0ULL - 0x1fffff); /* aligned already: no wrap, far too high */
}

static void test_pref_address_wrap(void **state)
{
	expect_bad(huge_pref, "", "pref_address");
	expect_bad(huge_pref2, "", "more memory");
	/* Below 1 MiB: loaded at the first 2 MiB-aligned address at or above 1 MiB. */
	uint8_t *b = make_bzimage();
	w64(b + HDR_PREF_ADDRESS, 0x1000);
	struct linux_params p = params("");
	struct linux_boot lb;
	char err[512] = "";
	int rc = linux_load_bzimage(b, bz_len(), &mem, &p, &lb, "bz", err, sizeof(err));
	if (rc)
		fail_msg("%s", err);
	assert_int_equal(lb.kernel_lo, 0x200000);
	free(b);
}

/* A minimal vmlinux-like ELF: one executable PT_LOAD at 16 MiB and a PT_NOTE. */
static uint8_t *make_elf(bool linux_note, size_t *lenp)
{
	static const uint8_t note_linux[] = { 6, 0, 0, 0, 4, 0, 0, 0, 0, 1, 0, 0,
					      'L', 'i', 'n', 'u', 'x', 0, 0, 0, 1, 2, 3, 4 };
	static const uint8_t note_other[] = { 4, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0,
					      'G', 'N', 'U', 0, 1, 2, 3, 4 };
	const uint8_t *note = linux_note ? note_linux : note_other;
	size_t nlen = linux_note ? sizeof(note_linux) : sizeof(note_other);
	size_t code_off = 0x1000, code_len = 0x2000, len = code_off + code_len;
	uint8_t *b = calloc(1, len);
	Elf64_Ehdr *eh = (Elf64_Ehdr *)b;
	memcpy(eh->e_ident, ELFMAG, SELFMAG);
	eh->e_ident[EI_CLASS] = ELFCLASS64;
	eh->e_ident[EI_DATA] = ELFDATA2LSB;
	eh->e_ident[EI_VERSION] = EV_CURRENT;
	eh->e_type = ET_EXEC;
	eh->e_machine = EM_X86_64;
	eh->e_version = EV_CURRENT;
	eh->e_entry = 0x1000000;
	eh->e_phoff = sizeof(*eh);
	eh->e_ehsize = sizeof(*eh);
	eh->e_phentsize = sizeof(Elf64_Phdr);
	eh->e_phnum = 2;
	Elf64_Phdr *ph = (Elf64_Phdr *)(b + sizeof(*eh));
	ph[0] = (Elf64_Phdr){ .p_type = PT_LOAD, .p_flags = PF_R | PF_X, .p_offset = code_off,
			      .p_vaddr = 0xffffffff81000000ULL, .p_paddr = 0x1000000,
			      .p_filesz = code_len, .p_memsz = code_len + 0x10000, .p_align = 4096 };
	ph[1] = (Elf64_Phdr){ .p_type = PT_NOTE, .p_offset = 0x200, .p_filesz = nlen,
			      .p_memsz = nlen, .p_align = 4 };
	memcpy(b + 0x200, note, nlen);
	memset(b + code_off, 0x90, code_len);
	*lenp = len;
	return b;
}

static void test_probe(void **state)
{
	enum kernel_kind k;
	size_t len;
	uint8_t *elf = make_elf(true, &len);
	assert_int_equal(linux_probe(elf, len, &k), 0);
	assert_int_equal(k, KERNEL_VMLINUX);
	free(elf);
	elf = make_elf(false, &len);
	assert_int_equal(linux_probe(elf, len, &k), 0);
	assert_int_equal(k, KERNEL_CVMM_ELF);
	/* A note that claims more bytes than the file has: not Linux, and no overread. */
	w32(elf + 0x200, 0x7fffffff);
	assert_int_equal(linux_probe(elf, len, &k), 0);
	assert_int_equal(k, KERNEL_CVMM_ELF);
	free(elf);
	uint8_t *bz = make_bzimage();
	assert_int_equal(linux_probe(bz, bz_len(), &k), 0);
	assert_int_equal(k, KERNEL_BZIMAGE);
	free(bz);
	assert_int_equal(linux_probe("just some text, not a kernel", 29, &k), -1);
	assert_int_equal(linux_probe("", 0, &k), -1);
}

static void test_vmlinux(void **state)
{
	size_t len;
	uint8_t *elf = make_elf(true, &len);
	uint8_t initrd[5000];
	memset(initrd, 0x33, sizeof(initrd));
	struct linux_params p = params("root=/dev/vda");
	p.initrd = initrd;
	p.initrd_len = sizeof(initrd);
	struct linux_boot lb;
	char err[512] = "";
	int rc = linux_load_vmlinux(elf, len, &mem, &p, &lb, "vmlinux", err, sizeof(err));
	if (rc)
		fail_msg("%s", err);
	assert_int_equal(lb.kind, KERNEL_VMLINUX);
	assert_int_equal(lb.entry, 0x1000000);  /* e_entry: the physical startup_64 */
	assert_int_equal(lb.kernel_lo, 0x1000000);
	assert_int_equal(lb.kernel_hi, 0x1000000 + 0x2000 + 0x10000);
	assert_int_equal(ram[0x1000000], 0x90);
	assert_int_equal(ram[0x1000000 + 0x2000], 0);  /* bss zeroed */
	const uint8_t *bp = ram + GPA_LINUX_BOOT_PARAMS;
	assert_memory_equal(bp + HDR_HEADER, "HdrS", 4);
	assert_int_equal(r16(bp + HDR_BOOT_FLAG), 0xaa55);
	assert_int_equal(bp[HDR_TYPE_OF_LOADER], 0xff);
	assert_int_equal(r32(bp + HDR_CMD_LINE_PTR), GPA_LINUX_CMDLINE);
	assert_int_equal(r32(bp + HDR_RAMDISK_SIZE), sizeof(initrd));
	assert_int_equal(r32(bp + HDR_RAMDISK_IMAGE), lb.initrd_addr);
	assert_int_equal(lb.initrd_addr % 4096, 0);
	assert_memory_equal(ram + lb.initrd_addr, initrd, sizeof(initrd));
	assert_int_equal(bp[BP_E820_ENTRIES], 3);

	/* A vmlinux has no cmdline_size: cvmm holds it to x86's COMMAND_LINE_SIZE. */
	char longline[3000];
	memset(longline, 'a', sizeof(longline) - 1);
	longline[sizeof(longline) - 1] = 0;
	p.cmdline = longline;
	assert_int_equal(linux_load_vmlinux(elf, len, &mem, &p, &lb, "vmlinux", err, sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "cmdline"));
	free(elf);
}

static void test_e820_with_high_ram(void **state)
{
	struct linux_params p = {
		.ram_low = 0xB0000000, .ram_high = 1ULL << 30,
		.acpi_lo = ACPI_GPA_BASE, .acpi_hi = ACPI_GPA_BASE + ACPI_GPA_SIZE,
		.ecam_lo = 0xB0000000, .ecam_hi = 0xC0000000,
	};
	struct e820_entry e[8];
	int n = linux_e820(&p, e, 8);
	assert_int_equal(n, 5);
	assert_int_equal(e[2].addr, 0x100000);
	assert_int_equal(e[2].addr + e[2].size, 0xB0000000);
	assert_int_equal(e[3].type, E820_RESERVED);
	assert_int_equal(e[3].addr, 0xB0000000);
	assert_int_equal(e[4].addr, 0x100000000ULL);
	assert_int_equal(e[4].size, 1ULL << 30);
	assert_int_equal(e[4].type, E820_RAM);
	for (int i = 1; i < n; i++)
		assert_true(e[i].addr >= e[i - 1].addr + e[i - 1].size);
}

static void test_clearcpuid(void **state)
{
	char out[256];
	assert_int_equal(linux_clearcpuid("pvm-host", out, sizeof(out)), 0);
	assert_true(strlen(out) <= LINUX_CLEARCPUID_MAX);
	assert_non_null(strstr(out, "cx16"));
	assert_non_null(strstr(out, "xsave"));
	assert_non_null(strstr(out, "popcnt"));
	assert_null(strstr(out, "osxsave"));     /* Linux has no flag name for it */
	assert_int_equal(linux_clearcpuid("tsc-deadline,cx16", out, sizeof(out)), 0);
	assert_string_equal(out, "tsc_deadline_timer,cx16");
	/* a name that is a prefix of one already listed still gets in; a repeat does not */
	assert_int_equal(linux_clearcpuid("avx2,avx,avx2", out, sizeof(out)), 0);
	assert_string_equal(out, "avx2,avx");
	assert_int_equal(linux_clearcpuid("", out, sizeof(out)), 0);
	assert_string_equal(out, "");
	assert_int_equal(linux_clearcpuid("pvm-host", out, 8), -1); /* too small: refused */
}

/* The 8250's THRE interrupt, as Linux's driver uses it (IRQ 4 through set_irq). */
static int irq_level = -1, irq_edges;
static void fake_irq(void *ctx, bool level)
{
	if (level && irq_level != 1)
		irq_edges++;
	irq_level = level;
}

static uint8_t uart_in(struct serial *s, unsigned off)
{
	uint8_t v;
	assert_int_equal(serial_read(s, off, &v, 1), 0);
	return v;
}

static void uart_out(struct serial *s, unsigned off, uint8_t v)
{
	assert_int_equal(serial_write(s, off, &v, 1), 0);
}

static void test_serial_thre_irq(void **state)
{
	struct serial s;
	char err[128];
	assert_int_equal(serial_init(&s, "/dev/null", err, sizeof(err)), 0);
	s.set_irq = fake_irq;
	irq_level = -1;
	irq_edges = 0;
	assert_int_equal(uart_in(&s, 2) & 0x0f, 0x01);     /* IIR: nothing pending */
	uart_out(&s, 1, 0x02);                              /* IER.THRI: the empty THR interrupts */
	assert_int_equal(irq_level, 1);
	assert_int_equal(uart_in(&s, 2) & 0x0f, 0x02);     /* IIR says THRE... */
	assert_int_equal(irq_level, 0);                 /* ...and reading it clears it */
	assert_int_equal(uart_in(&s, 2) & 0x0f, 0x01);
	uart_out(&s, 0, 'x');                               /* each character: a new edge */
	uart_out(&s, 0, 'y');
	assert_int_equal(irq_level, 1);
	assert_int_equal(irq_edges, 3);
	uart_out(&s, 1, 0x00);                              /* THRI off: line drops */
	assert_int_equal(irq_level, 0);
	uart_out(&s, 1, 0x02);                              /* on again: re-asserted (the 8250 probe) */
	assert_int_equal(irq_level, 1);
	/* Loopback (MCR 0x10 | RTS | OUT2): MSR shows CTS and DCD, the autoconfig check. */
	uart_out(&s, 4, 0x10 | 0x0a);
	assert_int_equal(uart_in(&s, 6) & 0xf0, 0x90);
	uart_out(&s, 4, 0x10 | 0x05);                       /* DTR | OUT1: DSR and RI */
	assert_int_equal(uart_in(&s, 6) & 0xf0, 0x60);
	serial_destroy(&s);
}

static enum sysctl_event last_ev;
static int nev;
static void on_ev(void *ctx, enum sysctl_event ev)
{
	last_ev = ev;
	nev++;
}

static void test_sysctl_reset_and_poweroff(void **state)
{
	struct sysctl sc = { .on_event = on_ev };
	struct bus b;
	bus_init(&b, "pio");
	assert_int_equal(sysctl_register(&sc, &b), 0);
	uint8_t v = 0xff;
	assert_true(bus_read(&b, 0x64, &v, 1));
	assert_int_equal(v, 0);                         /* i8042 status: input buffer empty */
	v = 0xd1;
	bus_write(&b, 0x64, &v, 1);
	assert_int_equal(nev, 0);                       /* other commands: nothing */
	v = 0xfe;
	bus_write(&b, 0x64, &v, 1);
	assert_int_equal(nev, 1);
	assert_int_equal(last_ev, SYSCTL_RESET_KBD);
	v = ACPI_RESET_VALUE;
	bus_write(&b, ACPI_PORT_CTL, &v, 1);
	assert_int_equal(last_ev, SYSCTL_RESET_ACPI);
	v = ACPI_SLP_EN | (ACPI_S5_TYP << 2);
	bus_write(&b, ACPI_PORT_CTL, &v, 1);
	assert_int_equal(last_ev, SYSCTL_POWEROFF);
	assert_int_equal(nev, 3);
	v = ACPI_SLP_EN | (3 << 2);                     /* S3: not supported, ignored */
	bus_write(&b, ACPI_PORT_CTL, &v, 1);
	assert_int_equal(nev, 3);
	assert_non_null(strstr(sysctl_event_name(SYSCTL_RESET_KBD), "0x64"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_bzimage),
		cmocka_unit_test(test_initrd_placement),
		cmocka_unit_test(test_bad_bzimage_fields),
		cmocka_unit_test(test_header_shorter_than_its_fields),
		cmocka_unit_test(test_pref_address_wrap),
		cmocka_unit_test(test_probe),
		cmocka_unit_test(test_vmlinux),
		cmocka_unit_test(test_e820_with_high_ram),
		cmocka_unit_test(test_clearcpuid),
		cmocka_unit_test(test_serial_thre_irq),
		cmocka_unit_test(test_sysctl_reset_and_poweroff),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
