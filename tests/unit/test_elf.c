/* ELF loader: a good image lands where it says; every broken one is refused with a message
 * naming the defect, and leaves guest memory untouched. Images are built in memory here. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/guest_mem.h"
#include "vmm/loader.h"

/* Guest RAM [0, RAM_SIZE); [0, RESERVED_HI) is where cvmm would put boot tables. */
#define RAM_SIZE 0x210000ull
#define RESERVED_HI 0x100000ull
#define POISON 0xcc

#define TEXT_GPA 0x100000ull
#define TEXT_SIZE 0x100u
#define DATA_GPA 0x200000ull
#define DATA_FILESZ 0x80u
#define DATA_MEMSZ 0x1000u
#define ENTRY (TEXT_GPA + 0x10)
#define PVH_ENTRY 0x100040u

#define IMG_MAX 0x4000
#define MAX_PH 8

/* ---- a tiny ELF64 builder: ehdr, room for MAX_PH phdrs, then segment data ---- */

struct elf_builder {
	uint8_t buf[IMG_MAX];
	size_t len;      /* bytes used so far: the image size */
	Elf64_Ehdr *eh;
	Elf64_Phdr *ph;  /* MAX_PH slots right after the ehdr */
};

static void eb_init(struct elf_builder *b, uint64_t entry)
{
	memset(b->buf, 0, sizeof(b->buf));
	b->eh = (Elf64_Ehdr *)b->buf;
	b->ph = (Elf64_Phdr *)(b->buf + sizeof(Elf64_Ehdr));
	memcpy(b->eh->e_ident, ELFMAG, SELFMAG);
	b->eh->e_ident[EI_CLASS] = ELFCLASS64;
	b->eh->e_ident[EI_DATA] = ELFDATA2LSB;
	b->eh->e_ident[EI_VERSION] = EV_CURRENT;
	b->eh->e_type = ET_EXEC;
	b->eh->e_machine = EM_X86_64;
	b->eh->e_version = EV_CURRENT;
	b->eh->e_entry = entry;
	b->eh->e_phoff = sizeof(Elf64_Ehdr);
	b->eh->e_ehsize = sizeof(Elf64_Ehdr);
	b->eh->e_phentsize = sizeof(Elf64_Phdr);
	b->len = sizeof(Elf64_Ehdr) + MAX_PH * sizeof(Elf64_Phdr);
}

/* Append a segment; its file data goes at the next 8-aligned offset. Returns its index. */
static int eb_add(struct elf_builder *b, uint32_t type, uint32_t flags, uint64_t paddr,
		  uint64_t memsz, const void *data, size_t filesz, uint64_t align)
{
	int i = b->eh->e_phnum++;
	size_t off = (b->len + 7) & ~(size_t)7;

	assert_true(i < MAX_PH);
	assert_true(off + filesz <= sizeof(b->buf));
	if (filesz)
		memcpy(b->buf + off, data, filesz);
	b->len = off + filesz;
	b->ph[i] = (Elf64_Phdr){
		.p_type = type, .p_flags = flags, .p_offset = off,
		.p_vaddr = paddr, .p_paddr = paddr,
		.p_filesz = filesz, .p_memsz = memsz, .p_align = align,
	};
	return i;
}

/* Append one note (header, name, desc, each padded to align) to a note buffer. */
static size_t note_add(uint8_t *p, size_t at, const char *name, uint32_t type, const void *desc,
		       uint32_t descsz, size_t align)
{
	uint32_t hdr[3] = { (uint32_t)strlen(name) + 1, descsz, type };

	memcpy(p + at, hdr, sizeof(hdr));
	at += sizeof(hdr);
	memcpy(p + at, name, hdr[0]);
	at += (hdr[0] + align - 1) & ~(align - 1);
	memcpy(p + at, desc, descsz);
	at += (descsz + align - 1) & ~(align - 1);
	return at;
}

static uint8_t text_bytes[TEXT_SIZE], data_bytes[DATA_FILESZ];

/* The good image: text (RX), data + bss (RW), and a note segment with a GNU build-id note
 * followed by the Xen PVH entry note, so the walker has to step over one note. */
static void eb_good(struct elf_builder *b)
{
	uint8_t notes[128] = { 0 };
	uint8_t id[20];
	uint32_t pvh = PVH_ENTRY;
	size_t n;

	for (size_t i = 0; i < sizeof(text_bytes); i++)
		text_bytes[i] = (uint8_t)(0x10 + i);
	for (size_t i = 0; i < sizeof(data_bytes); i++)
		data_bytes[i] = (uint8_t)(0xa0 ^ i);
	memset(id, 0x77, sizeof(id));
	n = note_add(notes, 0, "GNU", 3, id, sizeof(id), 4);
	n = note_add(notes, n, "Xen", 18, &pvh, sizeof(pvh), 4);

	eb_init(b, ENTRY);
	eb_add(b, PT_LOAD, PF_R | PF_X, TEXT_GPA, TEXT_SIZE, text_bytes, TEXT_SIZE, 0x1000);
	eb_add(b, PT_LOAD, PF_R | PF_W, DATA_GPA, DATA_MEMSZ, data_bytes, DATA_FILESZ, 0x1000);
	eb_add(b, PT_NOTE, PF_R, 0, 0, notes, n, 4);
}

/* ---- fixture: guest RAM poisoned before every load ---- */

struct fixture {
	uint8_t *ram;
	struct guest_mem mem;
	struct elf_builder b;
	struct load_info info;
	char err[512];
};

static int setup(void **state)
{
	struct fixture *f = test_calloc(1, sizeof(*f));

	assert_non_null(f);
	f->ram = test_malloc(RAM_SIZE);
	assert_non_null(f->ram);
	assert_int_equal(guest_mem_add(&f->mem, 0, RAM_SIZE, f->ram), 0);
	eb_good(&f->b);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	test_free(f->ram);
	test_free(f);
	return 0;
}

static bool ram_untouched(const struct fixture *f)
{
	static uint8_t poison[4096];

	memset(poison, POISON, sizeof(poison));
	for (uint64_t off = 0; off < RAM_SIZE; off += sizeof(poison))
		if (memcmp(f->ram + off, poison, sizeof(poison)))
			return false;
	return true;
}

/* Load the first len bytes of the builder's image from an exactly-sized heap copy, so ASan
 * sees any read past the end. */
static int load_prefix(struct fixture *f, size_t len)
{
	uint8_t *copy = test_malloc(len ? len : 1);
	int rc;

	memcpy(copy, f->b.buf, len);
	memset(f->ram, POISON, RAM_SIZE);
	memset(&f->info, 0x5a, sizeof(f->info));
	f->err[0] = '\0';
	rc = elf_load_image(copy, len, &f->mem, 0, RESERVED_HI, &f->info, f->err,
			    sizeof(f->err));
	test_free(copy);
	return rc;
}

static int load(struct fixture *f)
{
	return load_prefix(f, f->b.len);
}

/* The image must be refused with a one-line message containing `needle`, guest RAM untouched
 * and the caller's load_info not written. */
static void assert_refused(struct fixture *f, const char *needle)
{
	struct load_info poisoned;

	memset(&poisoned, 0x5a, sizeof(poisoned));
	assert_int_equal(load(f), -1);
	if (!strstr(f->err, needle))
		fail_msg("error \"%s\" lacks \"%s\"", f->err, needle);
	assert_non_null(strstr(f->err, "kernel image: "));
	assert_null(strchr(f->err, '\n'));
	assert_true(ram_untouched(f));
	assert_memory_equal(&f->info, &poisoned, sizeof(poisoned));
}

/* ---- the good image ---- */

static void check_good_load(struct fixture *f)
{
	assert_int_equal(f->info.entry, ENTRY);
	assert_true(f->info.has_pvh);
	assert_int_equal(f->info.pvh_entry, PVH_ENTRY);
	assert_int_equal(f->info.lo, TEXT_GPA);
	assert_int_equal(f->info.hi, DATA_GPA + DATA_MEMSZ);
	assert_memory_equal(f->ram + TEXT_GPA, text_bytes, TEXT_SIZE);
	assert_memory_equal(f->ram + DATA_GPA, data_bytes, DATA_FILESZ);
	/* bss zeroed up to memsz, and not one byte further */
	for (uint64_t a = DATA_GPA + DATA_FILESZ; a < DATA_GPA + DATA_MEMSZ; a++)
		if (f->ram[a] != 0)
			fail_msg("bss byte at 0x%llx is 0x%02x", (unsigned long long)a, f->ram[a]);
	assert_int_equal(f->ram[DATA_GPA + DATA_MEMSZ], POISON);
	assert_int_equal(f->ram[DATA_GPA - 1], POISON);
	assert_int_equal(f->ram[TEXT_GPA - 1], POISON);
	assert_int_equal(f->ram[TEXT_GPA + TEXT_SIZE], POISON);
	assert_int_equal(f->ram[0], POISON);
}

static void test_good_image(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(load(f), 0);
	check_good_load(f);
	/* out may be NULL when the caller does not care */
	assert_int_equal(elf_load_image(f->b.buf, f->b.len, &f->mem, 0, RESERVED_HI, NULL,
					f->err, sizeof(f->err)), 0);
}

static void test_entry_bounds(void **state)
{
	struct fixture *f = *state;

	/* the last byte of the text segment is a valid entry; one past it is not */
	f->b.eh->e_entry = TEXT_GPA + TEXT_SIZE - 1;
	assert_int_equal(load(f), 0);
	f->b.eh->e_entry = TEXT_GPA + TEXT_SIZE;
	assert_refused(f, "entry point 0x100100");
	/* inside a segment, but not an executable one */
	f->b.eh->e_entry = DATA_GPA;
	assert_refused(f, "entry point 0x200000");
	f->b.eh->e_entry = 0;
	assert_refused(f, "entry point");
}

static void test_no_pvh_note(void **state)
{
	struct fixture *f = *state;

	/* drop the note segment: still loads, just without a PVH entry */
	f->b.eh->e_phnum = 2;
	assert_int_equal(load(f), 0);
	assert_false(f->info.has_pvh);
	assert_int_equal(f->info.entry, ENTRY);
}

static void test_pvh_note_variants(void **state)
{
	struct fixture *f = *state;
	uint8_t notes[64] = { 0 };
	uint64_t pvh64 = 0x1234567890ull;
	uint32_t pvh32 = 0x100080, odd = 7;
	size_t n;

	/* 64-bit desc, in an 8-aligned note segment (name padded to 8) */
	n = note_add(notes, 0, "Xen", 18, &pvh64, sizeof(pvh64), 8);
	eb_init(&f->b, ENTRY);
	eb_add(&f->b, PT_LOAD, PF_R | PF_X, TEXT_GPA, TEXT_SIZE, text_bytes, TEXT_SIZE, 0x1000);
	eb_add(&f->b, PT_NOTE, PF_R, 0, 0, notes, n, 8);
	assert_int_equal(load(f), 0);
	assert_true(f->info.has_pvh);
	assert_int_equal(f->info.pvh_entry, pvh64);

	/* a Xen note of another type is not the PVH entry */
	memset(notes, 0, sizeof(notes));
	n = note_add(notes, 0, "Xen", 17, &pvh32, sizeof(pvh32), 4);
	eb_init(&f->b, ENTRY);
	eb_add(&f->b, PT_LOAD, PF_R | PF_X, TEXT_GPA, TEXT_SIZE, text_bytes, TEXT_SIZE, 0x1000);
	eb_add(&f->b, PT_NOTE, PF_R, 0, 0, notes, n, 4);
	assert_int_equal(load(f), 0);
	assert_false(f->info.has_pvh);

	/* type 18 under another name neither */
	memset(notes, 0, sizeof(notes));
	n = note_add(notes, 0, "Xe", 18, &pvh32, sizeof(pvh32), 4);
	eb_init(&f->b, ENTRY);
	eb_add(&f->b, PT_LOAD, PF_R | PF_X, TEXT_GPA, TEXT_SIZE, text_bytes, TEXT_SIZE, 0x1000);
	eb_add(&f->b, PT_NOTE, PF_R, 0, 0, notes, n, 4);
	assert_int_equal(load(f), 0);
	assert_false(f->info.has_pvh);

	/* a PVH note whose desc is neither 4 nor 8 bytes */
	memset(notes, 0, sizeof(notes));
	n = note_add(notes, 0, "Xen", 18, &odd, 2, 4);
	eb_init(&f->b, ENTRY);
	eb_add(&f->b, PT_LOAD, PF_R | PF_X, TEXT_GPA, TEXT_SIZE, text_bytes, TEXT_SIZE, 0x1000);
	eb_add(&f->b, PT_NOTE, PF_R, 0, 0, notes, n, 4);
	assert_refused(f, "descsz 2");
}

static void test_zero_size_load_ignored(void **state)
{
	struct fixture *f = *state;

	/* an empty PT_LOAD anywhere (even outside RAM) places nothing */
	eb_add(&f->b, PT_LOAD, PF_R, 0xdead00000000ull, 0, NULL, 0, 0x1000);
	assert_int_equal(load(f), 0);
	check_good_load(f);
}

/* ---- truncation: every prefix of a good image ---- */

static void test_every_truncation(void **state)
{
	struct fixture *f = *state;
	char want[128];

	for (size_t len = 0; len < f->b.len; len++) {
		if (load_prefix(f, len) == 0)
			fail_msg("image truncated to %zu of %zu bytes was loaded", len, f->b.len);
		if (!strstr(f->err, "truncated"))
			fail_msg("prefix %zu: \"%s\" does not say truncated", len, f->err);
		if (!ram_untouched(f))
			fail_msg("prefix %zu: guest RAM written by a refused image", len);
	}

	/* the messages name the part that is cut off */
	assert_int_equal(load_prefix(f, 10), -1);
	assert_non_null(strstr(f->err, "truncated: 10 bytes"));
	assert_int_equal(load_prefix(f, sizeof(Elf64_Ehdr) + 8), -1);
	assert_non_null(strstr(f->err, "truncated: program header table"));
	snprintf(want, sizeof(want),
		 "kernel image: truncated: program header 1 data at offset 0x%llx+0x%x beyond file size 0x%llx",
		 (unsigned long long)f->b.ph[1].p_offset, DATA_FILESZ,
		 (unsigned long long)f->b.ph[1].p_offset + 4);
	assert_int_equal(load_prefix(f, f->b.ph[1].p_offset + 4), -1);
	assert_string_equal(f->err, want);
	assert_int_equal(load_prefix(f, f->b.len - 1), -1);
	assert_non_null(strstr(f->err, "truncated: program header 2 notes"));
}

/* ---- header defects ---- */

static void test_bad_headers(void **state)
{
	struct fixture *f = *state;

	f->b.buf[1] = 'X';
	assert_refused(f, "not an ELF file (bad magic)");
	eb_good(&f->b);
	f->b.eh->e_ident[EI_CLASS] = ELFCLASS32;
	assert_refused(f, "not a 64-bit ELF (class 1)");
	eb_good(&f->b);
	f->b.eh->e_ident[EI_DATA] = ELFDATA2MSB;
	assert_refused(f, "little-endian");
	eb_good(&f->b);
	f->b.eh->e_machine = EM_386;
	assert_refused(f, "not an x86-64 executable (e_machine 3)");
	eb_good(&f->b);
	f->b.eh->e_machine = EM_AARCH64;
	assert_refused(f, "x86-64");
	eb_good(&f->b);
	f->b.eh->e_type = ET_DYN;
	assert_refused(f, "ET_EXEC");
	eb_good(&f->b);
	f->b.eh->e_type = ET_REL;
	assert_refused(f, "ET_EXEC");
}

static void test_bad_phdr_table(void **state)
{
	struct fixture *f = *state;

	f->b.eh->e_phnum = 0;
	assert_refused(f, "no program headers");
	eb_good(&f->b);
	f->b.eh->e_phnum = 1000;
	assert_refused(f, "1000 program headers");
	eb_good(&f->b);
	f->b.eh->e_phentsize = 32;
	assert_refused(f, "program header size 32");
	eb_good(&f->b);
	f->b.eh->e_phoff = f->b.len - 8;
	assert_refused(f, "truncated: program header table");
	eb_good(&f->b);
	f->b.eh->e_phoff = UINT64_MAX - 8;	/* e_phoff + table size wraps */
	assert_refused(f, "program header");
	eb_good(&f->b);
	f->b.ph[0].p_type = PT_NULL;
	f->b.ph[1].p_type = PT_NOTE + 100;
	assert_refused(f, "no loadable (PT_LOAD) segments");
}

/* ---- segment defects ---- */

static void test_segment_beyond_file(void **state)
{
	struct fixture *f = *state;
	char want[160];

	f->b.ph[1].p_offset = f->b.len - 0x10;
	snprintf(want, sizeof(want),
		 "truncated: program header 1 data at offset 0x%llx+0x80 beyond file size 0x%zx",
		 (unsigned long long)f->b.len - 0x10, f->b.len);
	assert_refused(f, want);
	/* an offset so large that offset + filesz wraps past 2^64 */
	eb_good(&f->b);
	f->b.ph[1].p_offset = UINT64_MAX - 0x10;
	assert_refused(f, "truncated: program header 1 data at offset 0xffffffffffffffef+0x80");
	/* an in-file offset with a filesz so large that offset + filesz wraps */
	eb_good(&f->b);
	f->b.ph[1].p_filesz = f->b.ph[1].p_memsz = UINT64_MAX - 0x100;
	assert_refused(f, "truncated: program header 1 data");
	eb_good(&f->b);
	f->b.ph[0].p_filesz = f->b.ph[0].p_memsz = 1ull << 62;
	assert_refused(f, "truncated: program header 0");
}

static void test_filesz_exceeds_memsz(void **state)
{
	struct fixture *f = *state;

	f->b.ph[1].p_filesz = DATA_MEMSZ + 1;
	assert_refused(f, "program header 1: filesz 0x1001 larger than memsz 0x1000");
	/* bss only (filesz 0): p_offset is irrelevant, even absurd, and the segment is zeroed */
	f->b.ph[1].p_filesz = 0;
	f->b.ph[1].p_offset = UINT64_MAX - 2;
	assert_int_equal(load(f), 0);
	for (uint64_t a = DATA_GPA; a < DATA_GPA + DATA_MEMSZ; a++)
		if (f->ram[a] != 0)
			fail_msg("bss byte at 0x%llx is 0x%02x", (unsigned long long)a, f->ram[a]);
}

static void test_segment_outside_ram(void **state)
{
	struct fixture *f = *state;

	/* straddles the end of RAM by one byte */
	f->b.ph[1].p_paddr = RAM_SIZE - DATA_MEMSZ + 1;
	assert_refused(f, "program header 1: [0x20f001, 0x210001) is not inside guest RAM");
	/* exactly at the end is fine */
	f->b.ph[1].p_paddr = RAM_SIZE - DATA_MEMSZ;
	assert_int_equal(load(f), 0);
	assert_memory_equal(f->ram + RAM_SIZE - DATA_MEMSZ, data_bytes, DATA_FILESZ);
	/* far away */
	f->b.ph[1].p_paddr = 0x100000000ull;
	assert_refused(f, "not inside guest RAM");
	/* memsz huge (bss only): must not be zero-filled past RAM */
	eb_good(&f->b);
	f->b.ph[1].p_memsz = 1ull << 40;
	assert_refused(f, "not inside guest RAM");
}

static void test_segment_wraps(void **state)
{
	struct fixture *f = *state;

	f->b.ph[1].p_paddr = UINT64_MAX - 0x10;
	assert_refused(f, "program header 1: paddr 0xffffffffffffffef + memsz 0x1000 wraps past 2^64");
	eb_good(&f->b);
	f->b.ph[1].p_memsz = UINT64_MAX;
	f->b.ph[1].p_paddr = 1;
	assert_refused(f, "wraps past 2^64");
}

static void test_segment_in_reserved(void **state)
{
	struct fixture *f = *state;

	/* text moved to end one byte into the reserved area: refused */
	f->b.ph[0].p_paddr = RESERVED_HI - TEXT_SIZE + 1;
	f->b.eh->e_entry = f->b.ph[0].p_paddr;
	assert_refused(f, "program header 0: [0xfff01, 0x100001) overlaps the range [0x0, 0x100000) reserved");
	/* wholly inside it */
	f->b.ph[0].p_paddr = 0x7000;
	f->b.eh->e_entry = 0x7000;
	assert_refused(f, "reserved");
	/* a reserved range that only the bss of a segment reaches */
	eb_good(&f->b);
	assert_int_equal(elf_load_image(f->b.buf, f->b.len, &f->mem, DATA_GPA + DATA_MEMSZ - 1,
					DATA_GPA + DATA_MEMSZ + 0x1000, &f->info, f->err,
					sizeof(f->err)), -1);
	assert_non_null(strstr(f->err, "program header 1"));
	assert_non_null(strstr(f->err, "reserved"));
	/* (the good image starts exactly at RESERVED_HI: touching the range is fine) */
	f->b.ph[0].p_paddr = 0x7000;
	f->b.eh->e_entry = 0x7000;
	/* no reserved range (lo == hi): low memory is loadable */
	assert_int_equal(elf_load_image(f->b.buf, f->b.len, &f->mem, 0, 0, &f->info, f->err,
					sizeof(f->err)), 0);
	assert_memory_equal(f->ram + 0x7000, text_bytes, TEXT_SIZE);
}

static void test_overlapping_segments(void **state)
{
	struct fixture *f = *state;

	f->b.ph[1].p_paddr = TEXT_GPA + TEXT_SIZE - 1;
	assert_refused(f, "program headers 0 and 1 overlap");
	/* touching is not overlapping */
	f->b.ph[1].p_paddr = TEXT_GPA + TEXT_SIZE;
	assert_int_equal(load(f), 0);
}

static void test_malformed_notes(void **state)
{
	struct fixture *f = *state;
	uint8_t *note = f->b.buf + f->b.ph[2].p_offset;
	uint32_t v;

	/* namesz of the first note huge: must not skip past the segment or wrap */
	v = 0xffffffff;
	memcpy(note, &v, 4);
	assert_refused(f, "malformed note in program header 2");
	assert_non_null(strstr(f->err, "namesz 0xffffffff"));
	/* descsz huge */
	eb_good(&f->b);
	note = f->b.buf + f->b.ph[2].p_offset;
	v = 0xfffffff0;
	memcpy(note + 4, &v, 4);
	assert_refused(f, "descsz 0xfffffff0");
	/* descsz one byte too many for the segment */
	eb_good(&f->b);
	note = f->b.buf + f->b.ph[2].p_offset;
	v = (uint32_t)f->b.ph[2].p_filesz - 12 - 4 + 1;
	memcpy(note + 4, &v, 4);
	assert_refused(f, "malformed note");
	/* the note segment claims more than the file has */
	eb_good(&f->b);
	f->b.ph[2].p_filesz += 1;
	assert_refused(f, "truncated: program header 2 notes");
	/* a segment too short for a note header is simply empty of notes */
	eb_good(&f->b);
	f->b.ph[2].p_filesz = 11;
	assert_int_equal(load(f), 0);
	assert_false(f->info.has_pvh);
}

/* ---- from a file ---- */

static void test_load_file(void **state)
{
	struct fixture *f = *state;
	char path[] = "/tmp/cvmm-test-elf-XXXXXX";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, f->b.buf, f->b.len), (ssize_t)f->b.len);
	close(fd);
	memset(f->ram, POISON, RAM_SIZE);
	assert_int_equal(elf_load_file(path, &f->mem, 0, RESERVED_HI, &f->info, f->err,
				       sizeof(f->err)), 0);
	check_good_load(f);

	/* a defect in a file names the file */
	assert_int_equal(truncate(path, 100), 0);
	assert_int_equal(elf_load_file(path, &f->mem, 0, RESERVED_HI, &f->info, f->err,
				       sizeof(f->err)), -1);
	assert_non_null(strstr(f->err, "kernel '"));
	assert_non_null(strstr(f->err, path));
	assert_non_null(strstr(f->err, "': truncated: program header table"));
	assert_int_equal(truncate(path, 0), 0);
	assert_int_equal(elf_load_file(path, &f->mem, 0, RESERVED_HI, &f->info, f->err,
				       sizeof(f->err)), -1);
	assert_non_null(strstr(f->err, "truncated: 0 bytes"));
	/* a FIFO is refused, not waited on */
	unlink(path);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(elf_load_file(path, &f->mem, 0, RESERVED_HI, &f->info, f->err,
				       sizeof(f->err)), -1);
	assert_non_null(strstr(f->err, "': not a regular file"));
	unlink(path);

	assert_int_equal(elf_load_file("/nonexistent/guest.elf", &f->mem, 0, RESERVED_HI,
				       &f->info, f->err, sizeof(f->err)), -1);
	assert_string_equal(f->err, "kernel '/nonexistent/guest.elf': No such file or directory");
	assert_int_equal(elf_load_file("/tmp", &f->mem, 0, RESERVED_HI, &f->info, f->err,
				       sizeof(f->err)), -1);
	assert_string_equal(f->err, "kernel '/tmp': not a regular file");
}

static void test_small_err_buffer(void **state)
{
	struct fixture *f = *state;
	char tiny[8];

	f->b.buf[0] = 0;
	/* truncated, NUL-terminated, never overrun (ASan watches); NULL err is allowed */
	assert_int_equal(elf_load_image(f->b.buf, f->b.len, &f->mem, 0, RESERVED_HI, &f->info,
					tiny, sizeof(tiny)), -1);
	assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
	assert_int_equal(elf_load_image(f->b.buf, f->b.len, &f->mem, 0, RESERVED_HI, &f->info,
					NULL, 0), -1);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_good_image),
		T(test_entry_bounds),
		T(test_no_pvh_note),
		T(test_pvh_note_variants),
		T(test_zero_size_load_ignored),
		T(test_every_truncation),
		T(test_bad_headers),
		T(test_bad_phdr_table),
		T(test_segment_beyond_file),
		T(test_filesz_exceeds_memsz),
		T(test_segment_outside_ram),
		T(test_segment_wraps),
		T(test_segment_in_reserved),
		T(test_overlapping_segments),
		T(test_malformed_notes),
		T(test_load_file),
		T(test_small_err_buffer),
	};
#undef T

	return cmocka_run_group_tests_name("elf", tests, NULL, NULL);
}
