/* ELF64 kernel loader (see loader.h).
 *
 * The image is untrusted input: every offset and size read from it is checked against the
 * file length and guest RAM before use, overflow-safe. Loading is two-pass: all segments are
 * validated first and only then copied, so a rejected image leaves guest memory untouched. */
#include "vmm/loader.h"
#include "lib/file.h"

#include <errno.h>
#include <gelf.h>
#include <libelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A kernel image bigger than this is a wrong path (a disk image?), not a kernel. */
#define ELF_FILE_MAX (512ull << 20)
/* vmlinux has ~5 program headers; the cap keeps the O(n^2) overlap check cheap. */
#define ELF_MAX_PHDRS 256

/* XEN_ELFNOTE_PHYS32_ENTRY: the PVH 32-bit entry point, as read by QEMU and Xen. */
#define ELF_NOTE_XEN_PHYS32_ENTRY 18

/* "kernel '" + path + "'" */
#define ELF_LABEL_MAX (4096 + 16)

struct elf_seg {
	int idx;            /* program header index, for messages */
	uint64_t paddr, memsz, filesz, offset;
	bool exec;
};

static uint32_t elf_rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));	/* the image is little-endian, like the host */
	return v;
}

static uint64_t elf_rd64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* Walk the notes of one PT_NOTE segment for the Xen PVH entry. Note headers are 12 bytes;
 * name and desc are padded to the segment's alignment (4, or 8 for 8-aligned note segments). */
static int elf_scan_notes(const uint8_t *seg, uint64_t size, uint64_t seg_off, uint64_t align,
			  int idx, struct load_info *out, const char *label, char *err,
			  size_t errlen)
{
	uint64_t pos = 0;

	while (size - pos >= 12) {
		uint64_t namesz = elf_rd32(seg + pos);
		uint64_t descsz = elf_rd32(seg + pos + 4);
		uint32_t type = elf_rd32(seg + pos + 8);
		/* 32-bit sizes in 64-bit arithmetic: the padded sums below cannot overflow. */
		uint64_t name_pad = (namesz + align - 1) & ~(align - 1);
		uint64_t desc_pad = (descsz + align - 1) & ~(align - 1);
		uint64_t name_at = pos + 12, desc_at = name_at + name_pad;

		if (name_pad > size - name_at || descsz > size - desc_at)
			return fail_labelled(err, errlen, label,
					"malformed note in program header %d at offset 0x%llx: namesz 0x%llx descsz 0x%llx beyond segment size 0x%llx",
					idx, (unsigned long long)(seg_off + pos),
					(unsigned long long)namesz, (unsigned long long)descsz,
					(unsigned long long)size);
		if (namesz == 4 && !memcmp(seg + name_at, "Xen", 4) &&
		    type == ELF_NOTE_XEN_PHYS32_ENTRY) {
			if (descsz == 4)
				out->pvh_entry = elf_rd32(seg + desc_at);
			else if (descsz == 8)
				out->pvh_entry = elf_rd64(seg + desc_at);
			else
				return fail_labelled(err, errlen, label,
						"PVH entry note has descsz %llu, expected 4 or 8",
						(unsigned long long)descsz);
			out->has_pvh = true;
		}
		/* The last note's desc padding may be cut off by the segment end. */
		if (desc_pad >= size - desc_at)
			break;
		pos = desc_at + desc_pad;
	}
	return 0;
}

/* Check one PT_LOAD against the file and guest memory; fill seg. */
static int elf_check_load(const GElf_Phdr *ph, int idx, size_t len, const struct guest_mem *mem,
			  uint64_t reserved_lo, uint64_t reserved_hi, struct elf_seg *seg,
			  const char *label, char *err, size_t errlen)
{
	uint64_t end;

	if (ph->p_filesz > ph->p_memsz)
		return fail_labelled(err, errlen, label,
				"program header %d: filesz 0x%llx larger than memsz 0x%llx", idx,
				(unsigned long long)ph->p_filesz, (unsigned long long)ph->p_memsz);
	if (ph->p_filesz && (ph->p_offset > len || ph->p_filesz > len - ph->p_offset))
		return fail_labelled(err, errlen, label,
				"truncated: program header %d data at offset 0x%llx+0x%llx beyond file size 0x%zx",
				idx, (unsigned long long)ph->p_offset,
				(unsigned long long)ph->p_filesz, len);
	if (__builtin_add_overflow(ph->p_paddr, ph->p_memsz, &end))
		return fail_labelled(err, errlen, label,
				"program header %d: paddr 0x%llx + memsz 0x%llx wraps past 2^64", idx,
				(unsigned long long)ph->p_paddr, (unsigned long long)ph->p_memsz);
	if (!guest_mem_ptr(mem, ph->p_paddr, ph->p_memsz))
		return fail_labelled(err, errlen, label,
				"program header %d: [0x%llx, 0x%llx) is not inside guest RAM (%llu KiB)",
				idx, (unsigned long long)ph->p_paddr, (unsigned long long)end,
				(unsigned long long)(guest_mem_total(mem) >> 10));
	if (reserved_lo < reserved_hi && ph->p_paddr < reserved_hi && reserved_lo < end)
		return fail_labelled(err, errlen, label,
				"program header %d: [0x%llx, 0x%llx) overlaps the range [0x%llx, 0x%llx) reserved for boot tables",
				idx, (unsigned long long)ph->p_paddr, (unsigned long long)end,
				(unsigned long long)reserved_lo, (unsigned long long)reserved_hi);
	*seg = (struct elf_seg){
		.idx = idx,
		.paddr = ph->p_paddr,
		.memsz = ph->p_memsz,
		.filesz = ph->p_filesz,
		.offset = ph->p_offset,
		.exec = ph->p_flags & PF_X,
	};
	return 0;
}

static int elf_load_phdrs(Elf *elf, const uint8_t *img, size_t len, struct guest_mem *mem,
			  uint64_t reserved_lo, uint64_t reserved_hi, struct load_info *out,
			  const char *label, char *err, size_t errlen)
{
	struct elf_seg segs[ELF_MAX_PHDRS];
	int nseg = 0;
	GElf_Ehdr eh;
	size_t phnum;
	uint64_t tbl_end;
	bool entry_ok = false;

	if (!gelf_getehdr(elf, &eh))
		return fail_labelled(err, errlen, label, "unreadable ELF header: %s", elf_errmsg(-1));
	if (eh.e_machine != EM_X86_64)
		return fail_labelled(err, errlen, label, "not an x86-64 executable (e_machine %u)",
				eh.e_machine);
	if (eh.e_type != ET_EXEC)
		return fail_labelled(err, errlen, label,
				"not a static executable (e_type %u, want ET_EXEC)", eh.e_type);
	/* Use e_phnum unless it is PN_XNUM (the real count is then in section 0 and libelf
	 * finds it): libelf fails a table that runs off the end of the file with a bare
	 * "invalid data", and we want to say "truncated" and where. */
	if (eh.e_phnum != PN_XNUM)
		phnum = eh.e_phnum;
	else if (elf_getphdrnum(elf, &phnum) < 0)
		return fail_labelled(err, errlen, label, "unreadable program headers: %s",
				elf_errmsg(-1));
	if (phnum == 0)
		return fail_labelled(err, errlen, label, "no program headers");
	if (phnum > ELF_MAX_PHDRS)
		return fail_labelled(err, errlen, label, "%zu program headers, more than the %d allowed",
				phnum, ELF_MAX_PHDRS);
	if (eh.e_phentsize != sizeof(Elf64_Phdr))
		return fail_labelled(err, errlen, label, "program header size %u, want %zu",
				eh.e_phentsize, sizeof(Elf64_Phdr));
	if (__builtin_add_overflow(eh.e_phoff, phnum * sizeof(Elf64_Phdr), &tbl_end) ||
	    tbl_end > len)
		return fail_labelled(err, errlen, label,
				"truncated: program header table at offset 0x%llx+0x%zx beyond file size 0x%zx",
				(unsigned long long)eh.e_phoff, phnum * sizeof(Elf64_Phdr), len);

	*out = (struct load_info){ .entry = eh.e_entry, .lo = UINT64_MAX, .hi = 0 };

	for (size_t i = 0; i < phnum; i++) {
		GElf_Phdr ph;
		int idx = (int)i;

		if (!gelf_getphdr(elf, idx, &ph))
			return fail_labelled(err, errlen, label, "program header %d unreadable: %s", idx,
					elf_errmsg(-1));
		if (ph.p_type == PT_NOTE && ph.p_filesz) {
			uint64_t align = ph.p_align == 8 ? 8 : 4;

			if (ph.p_offset > len || ph.p_filesz > len - ph.p_offset)
				return fail_labelled(err, errlen, label,
						"truncated: program header %d notes at offset 0x%llx+0x%llx beyond file size 0x%zx",
						idx, (unsigned long long)ph.p_offset,
						(unsigned long long)ph.p_filesz, len);
			if (elf_scan_notes(img + ph.p_offset, ph.p_filesz, ph.p_offset, align, idx,
					   out, label, err, errlen) < 0)
				return -1;
			continue;
		}
		/* A zero-sized PT_LOAD loads nothing and places nothing. */
		if (ph.p_type != PT_LOAD || ph.p_memsz == 0)
			continue;
		if (elf_check_load(&ph, idx, len, mem, reserved_lo, reserved_hi, &segs[nseg],
				   label, err, errlen) < 0)
			return -1;
		/* Overlapping segments would make the result depend on load order (and one's
		 * bss would wipe the other's data): no linker emits that on purpose. */
		for (int j = 0; j < nseg; j++) {
			const struct elf_seg *a = &segs[j], *b = &segs[nseg];

			if (a->paddr < b->paddr + b->memsz && b->paddr < a->paddr + a->memsz)
				return fail_labelled(err, errlen, label,
						"program headers %d and %d overlap in guest memory",
						a->idx, b->idx);
		}
		nseg++;
	}

	if (nseg == 0)
		return fail_labelled(err, errlen, label, "no loadable (PT_LOAD) segments");
	for (int j = 0; j < nseg; j++) {
		const struct elf_seg *s = &segs[j];

		if (s->exec && eh.e_entry >= s->paddr && eh.e_entry - s->paddr < s->memsz)
			entry_ok = true;
		if (s->paddr < out->lo)
			out->lo = s->paddr;
		if (s->paddr + s->memsz > out->hi)
			out->hi = s->paddr + s->memsz;
	}
	if (!entry_ok)
		return fail_labelled(err, errlen, label,
				"entry point 0x%llx is not inside any executable loaded segment",
				(unsigned long long)eh.e_entry);

	/* Everything checked: now, and only now, write guest memory. */
	for (int j = 0; j < nseg; j++) {
		const struct elf_seg *s = &segs[j];
		uint8_t *dst = guest_mem_ptr(mem, s->paddr, s->memsz);

		/* p_offset is only checked when there is file data: don't even form the pointer
		 * for a bss-only segment. */
		if (s->filesz)
			memcpy(dst, img + s->offset, s->filesz);
		memset(dst + s->filesz, 0, s->memsz - s->filesz);
	}
	return 0;
}

static int elf_load_labelled(const void *buf, size_t len, struct guest_mem *mem,
			     uint64_t reserved_lo, uint64_t reserved_hi, struct load_info *out,
			     const char *label, char *err, size_t errlen)
{
	const uint8_t *img = buf;
	struct load_info info;
	Elf *elf;
	int rc;

	/* The identification bytes are checked by hand first: the messages are clearer than
	 * libelf's, and it guarantees libelf never needs to byte-swap (i.e. write) the image. */
	if (len < SELFMAG && (len == 0 || !memcmp(img, ELFMAG, len)))
		return fail_labelled(err, errlen, label,
				"truncated: %zu bytes, smaller than an ELF header", len);
	if (len < SELFMAG || memcmp(img, ELFMAG, SELFMAG))
		return fail_labelled(err, errlen, label, "not an ELF file (bad magic)");
	if (len < sizeof(Elf64_Ehdr))
		return fail_labelled(err, errlen, label,
				"truncated: %zu bytes, smaller than an ELF header", len);
	if (img[EI_CLASS] != ELFCLASS64)
		return fail_labelled(err, errlen, label, "not a 64-bit ELF (class %u)", img[EI_CLASS]);
	if (img[EI_DATA] != ELFDATA2LSB)
		return fail_labelled(err, errlen, label, "not a little-endian ELF (data encoding %u)",
				img[EI_DATA]);

	if (elf_version(EV_CURRENT) == EV_NONE)
		return fail_labelled(err, errlen, label, "libelf: %s", elf_errmsg(-1));
	/* elf_memory() takes a non-const pointer but only reads a native-endian image. */
	elf = elf_memory((char *)(uintptr_t)buf, len);
	if (!elf)
		return fail_labelled(err, errlen, label, "libelf: %s", elf_errmsg(-1));
	if (elf_kind(elf) != ELF_K_ELF)
		rc = fail_labelled(err, errlen, label, "not an ELF file");
	else
		rc = elf_load_phdrs(elf, img, len, mem, reserved_lo, reserved_hi, &info, label,
				    err, errlen);
	elf_end(elf);
	/* The caller's load_info is only written on success. */
	if (rc == 0 && out)
		*out = info;
	return rc;
}

int elf_load_image(const void *buf, size_t len, struct guest_mem *mem, uint64_t reserved_lo,
		   uint64_t reserved_hi, struct load_info *out, char *err, size_t errlen)
{
	return elf_load_labelled(buf, len, mem, reserved_lo, reserved_hi, out, "kernel image",
				 err, errlen);
}

int elf_load_file(const char *path, struct guest_mem *mem, uint64_t reserved_lo,
		  uint64_t reserved_hi, struct load_info *out, char *err, size_t errlen)
{
	char label[ELF_LABEL_MAX];
	uint8_t *buf;
	size_t len;

	if (file_read_all(path, "kernel", ELF_FILE_MAX, &buf, &len, err, errlen))
		return -1;
	snprintf(label, sizeof(label), "kernel '%s'", path);
	int rc = elf_load_labelled(buf, len, mem, reserved_lo, reserved_hi, out, label, err, errlen);
	free(buf);
	return rc;
}
