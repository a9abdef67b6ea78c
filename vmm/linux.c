/* Linux bzImage and vmlinux loaders and the boot_params zero page. See linux.h. */
#include "vmm/linux.h"
#include "lib/file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vmm/pmem_window.h"
#include "vmm/acpi.h"
#include "vmm/boot.h"
#include "vmm/cpuid.h"
#include "vmm/vm.h"

/* x86 COMMAND_LINE_SIZE is 2048: what a vmlinux (which has no cmdline_size field) copies. */
#define LINUX_VMLINUX_CMDLINE_MAX 2047
/* The protocol version we present for a vmlinux (which has no setup header of its own). */
#define LINUX_VMLINUX_VERSION 0x020f

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)rd16(p) | (uint32_t)rd16(p + 2) << 16; }
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void wr32(uint8_t *p, uint32_t v) { wr16(p, (uint16_t)v); wr16(p + 2, (uint16_t)(v >> 16)); }
static void wr64(uint8_t *p, uint64_t v) { wr32(p, (uint32_t)v); wr32(p + 4, (uint32_t)(v >> 32)); }

/* ---- telling the kinds apart ------------------------------------------------------------ */

/* Walk one note segment [seg, seg+size) (4-byte aligned notes, as vmlinux has them). */
static bool notes_say_linux(const uint8_t *seg, uint64_t size)
{
	uint64_t pos = 0;
	while (size - pos >= 12) {
		uint64_t namesz = rd32(seg + pos), descsz = rd32(seg + pos + 4);
		uint32_t type = rd32(seg + pos + 8);
		uint64_t name_at = pos + 12;
		uint64_t desc_at = name_at + ((namesz + 3) & ~3ULL);
		if (desc_at > size || descsz > size - desc_at)
			return false;
		const char *name = (const char *)seg + name_at;
		if (namesz == 6 && !memcmp(name, "Linux", 6))
			return true;
		/* XEN_ELFNOTE_GUEST_OS (6) = "linux" */
		if (namesz == 4 && !memcmp(name, "Xen", 4) && type == 6 && descsz >= 5 &&
		    !memcmp(seg + desc_at, "linux", 5))
			return true;
		uint64_t next = desc_at + ((descsz + 3) & ~3ULL);
		if (next <= pos || next > size)
			return false;
		pos = next;
	}
	return false;
}

static bool elf_is_linux(const uint8_t *b, size_t len)
{
	/* ELF64 little-endian header fields, each bounded by len. */
	if (len < 64 || b[4] != 2 || b[5] != 1)
		return false;
	uint64_t phoff = rd64(b + 0x20);
	uint16_t phentsize = rd16(b + 0x36), phnum = rd16(b + 0x38);
	if (phentsize != 56 || phoff > len || (uint64_t)phnum * 56 > len - phoff)
		return false;
	for (unsigned i = 0; i < phnum; i++) {
		const uint8_t *ph = b + phoff + (uint64_t)i * 56;
		if (rd32(ph) != 4 /* PT_NOTE */)
			continue;
		uint64_t off = rd64(ph + 8), filesz = rd64(ph + 32);
		if (off > len || filesz > len - off)
			continue;
		if (notes_say_linux(b + off, filesz))
			return true;
	}
	return false;
}

int linux_probe(const void *img, size_t len, enum kernel_kind *kind)
{
	const uint8_t *b = img;
	if (len >= 4 && !memcmp(b, "\177ELF", 4)) {
		*kind = elf_is_linux(b, len) ? KERNEL_VMLINUX : KERNEL_CVMM_ELF;
		return 0;
	}
	if (len >= HDR_HEADER + 4 && rd32(b + HDR_HEADER) == HDR_MAGIC) {
		*kind = KERNEL_BZIMAGE;
		return 0;
	}
	return -1;
}

/* ---- memory map ------------------------------------------------------------------------- */

static int e820_add(struct e820_entry *e, int n, int max, uint64_t addr, uint64_t size,
		    uint32_t type)
{
	if (size == 0 || n >= max)
		return n;
	e[n] = (struct e820_entry){ addr, size, type };
	return n + 1;
}

int linux_e820(const struct linux_params *p, struct e820_entry *e, int max)
{
	int n = 0;
	uint64_t low_end = p->ram_low < 0xA0000 ? p->ram_low : 0xA0000;
	n = e820_add(e, n, max, 0, low_end, E820_RAM);
	if (p->acpi_hi > p->acpi_lo)
		n = e820_add(e, n, max, p->acpi_lo, p->acpi_hi - p->acpi_lo, E820_RESERVED);
	if (p->ram_low > GPA_RESERVED_END)
		n = e820_add(e, n, max, GPA_RESERVED_END, p->ram_low - GPA_RESERVED_END, E820_RAM);
	if (p->ecam_hi > p->ecam_lo)
		n = e820_add(e, n, max, p->ecam_lo, p->ecam_hi - p->ecam_lo, E820_RESERVED);
	if (p->ram_high)
		n = e820_add(e, n, max, GPA_HIGH_RAM, p->ram_high, E820_RAM);
	return n;
}

/* ---- shared: initrd placement and the zero page ---------------------------------------- */

/* Place the initrd page-aligned as high as allowed: below min(initrd_addr_max + 1, end of
 * low RAM), above the kernel's range. */
static int place_initrd(const struct linux_params *p, uint32_t initrd_addr_max,
			struct linux_boot *b, const char *label, char *err, size_t errlen)
{
	b->initrd_addr = b->initrd_size = 0;
	if (!p->initrd)
		return 0;
	if (p->initrd_len == 0)
		return fail_labelled(err, errlen, label, "initrd is empty");
	uint64_t top = p->ram_low;
	if ((uint64_t)initrd_addr_max + 1 < top)
		top = (uint64_t)initrd_addr_max + 1;
	uint64_t size = p->initrd_len;
	if (size > top || ((top - size) & ~0xfffULL) < b->kernel_hi)
		return fail_labelled(err, errlen, label,
			     "initrd of %zu bytes does not fit between the kernel's end 0x%llx and "
			     "0x%llx (min of initrd_addr_max 0x%x + 1 and the end of low RAM): "
			     "give the VM more memory or use a smaller initrd",
			     p->initrd_len, (unsigned long long)b->kernel_hi,
			     (unsigned long long)top, initrd_addr_max);
	b->initrd_addr = (top - size) & ~0xfffULL;
	b->initrd_size = size;
	return 0;
}

/* Fill the zero page: hdr (hdr_len bytes from 0x1f1, already validated) plus our fields. */
static int write_boot_params(struct guest_mem *mem, const struct linux_params *p,
			     const uint8_t *hdr, size_t hdr_len, struct linux_boot *b,
			     const char *label, char *err, size_t errlen)
{
	uint8_t *bp = guest_mem_ptr(mem, GPA_LINUX_BOOT_PARAMS, BP_SIZE);
	if (!bp)
		return fail_labelled(err, errlen, label, "guest RAM too small for boot_params");
	memset(bp, 0, BP_SIZE);
	memcpy(bp + BP_HDR, hdr, hdr_len);

	bp[HDR_TYPE_OF_LOADER] = LINUX_LOADER_UNDEFINED;
	/* The 16-bit setup code does not run (we enter at the 64-bit entry), so no heap. */
	bp[HDR_LOADFLAGS] = (uint8_t)((bp[HDR_LOADFLAGS] | LOADFLAGS_LOADED_HIGH) &
				      ~LOADFLAGS_CAN_USE_HEAP);
	wr16(bp + HDR_HEAP_END_PTR, 0);
	wr32(bp + HDR_CMD_LINE_PTR, (uint32_t)GPA_LINUX_CMDLINE);
	wr32(bp + BP_EXT_CMD_LINE_PTR, 0);
	wr32(bp + HDR_RAMDISK_IMAGE, (uint32_t)b->initrd_addr);
	wr32(bp + HDR_RAMDISK_SIZE, (uint32_t)b->initrd_size);
	wr32(bp + BP_EXT_RAMDISK_IMAGE, (uint32_t)(b->initrd_addr >> 32));
	wr32(bp + BP_EXT_RAMDISK_SIZE, (uint32_t)(b->initrd_size >> 32));
	wr32(bp + HDR_HARDWARE_SUBARCH, 0); /* a PC */
	wr64(bp + BP_ACPI_RSDP_ADDR, p->rsdp);

	struct e820_entry e[BP_E820_MAX];
	int n = linux_e820(p, e, BP_E820_MAX);
	for (int i = 0; i < n; i++) {
		uint8_t *d = bp + BP_E820_TABLE + i * 20;
		wr64(d, e[i].addr);
		wr64(d + 8, e[i].size);
		wr32(d + 16, e[i].type);
	}
	bp[BP_E820_ENTRIES] = (uint8_t)n;
	b->e820_entries = n;
	b->boot_params = GPA_LINUX_BOOT_PARAMS;

	if (b->initrd_size) {
		void *dst = guest_mem_ptr(mem, b->initrd_addr, b->initrd_size);
		if (!dst)
			return fail_labelled(err, errlen, label, "initrd at 0x%llx is outside guest RAM",
				     (unsigned long long)b->initrd_addr);
		memcpy(dst, p->initrd, b->initrd_size);
	}
	return linux_write_gdt(mem) ? fail_labelled(err, errlen, label, "guest RAM too small for the GDT")
				    : 0;
}

int linux_write_gdt(struct guest_mem *mem)
{
	uint64_t *gdt = guest_mem_ptr(mem, GPA_LINUX_GDT, 4 * 8);
	if (!gdt)
		return -1;
	gdt[0] = 0;
	gdt[1] = 0;
	gdt[2] = 0x00af9b000000ffffULL; /* __BOOT_CS: 64-bit code, DPL0, exec/read */
	gdt[3] = 0x00cf93000000ffffULL; /* __BOOT_DS: flat data, read/write */
	return 0;
}

static int check_cmdline(const struct linux_params *p, uint32_t max, const char *label,
			 char *err, size_t errlen)
{
	size_t n = strlen(p->cmdline);
	if (n > max)
		return fail_labelled(err, errlen, label,
			     "cmdline of %zu bytes is longer than the %u the kernel accepts "
			     "(cmdline_size)", n, max);
	return 0;
}

/* ---- bzImage ---------------------------------------------------------------------------- */

int linux_load_bzimage(const void *img, size_t len, struct guest_mem *mem,
		       const struct linux_params *p, struct linux_boot *out, const char *label,
		       char *err, size_t errlen)
{
	const uint8_t *b = img;
	struct linux_boot lb = { .kind = KERNEL_BZIMAGE };

	if (len < HDR_HEADER + 4 || rd32(b + HDR_HEADER) != HDR_MAGIC)
		return fail_labelled(err, errlen, label, "not a bzImage (no 'HdrS' boot header at 0x202)");
	/* The header's own length: it ends at 0x202 + the byte at 0x201 (the jump offset). */
	size_t hdr_end = HDR_HEADER + b[HDR_JUMP + 1];
	if (hdr_end > len)
		return fail_labelled(err, errlen, label,
			     "truncated: setup header ends at 0x%zx, file has 0x%zx bytes", hdr_end,
			     len);
	/* Every field read below lies before HDR_INIT_SIZE + 4: the header must cover them all
	 * before any is read (the version too: a 0x206-byte file with a length byte of 0 ends
	 * right before it). */
	if (hdr_end < HDR_VERSION + 2)
		return fail_labelled(err, errlen, label,
			     "setup header length 0x%zx is too short to hold the protocol version",
			     hdr_end - BP_HDR);
	lb.version = rd16(b + HDR_VERSION);
	if (lb.version < LINUX_MIN_VERSION)
		return fail_labelled(err, errlen, label,
			     "boot protocol %u.%02u is older than 2.12: no 64-bit entry (cvmm "
			     "needs a 64-bit kernel, 3.8 or later)", lb.version >> 8,
			     lb.version & 0xff);
	if (hdr_end < HDR_INIT_SIZE + 4)
		return fail_labelled(err, errlen, label,
			     "setup header length 0x%zx is too short for protocol %u.%02u",
			     hdr_end - BP_HDR, lb.version >> 8, lb.version & 0xff);
	if (rd16(b + HDR_BOOT_FLAG) != HDR_BOOT_FLAG_MAGIC)
		return fail_labelled(err, errlen, label, "boot_flag is 0x%04x, not 0xaa55",
			     rd16(b + HDR_BOOT_FLAG));
	uint16_t xlf = rd16(b + HDR_XLOADFLAGS);
	if (!(xlf & XLF_KERNEL_64))
		return fail_labelled(err, errlen, label,
			     "no 64-bit entry point (xloadflags 0x%x lacks XLF_KERNEL_64): a 32-bit "
			     "kernel", xlf);
	if (!(b[HDR_LOADFLAGS] & LOADFLAGS_LOADED_HIGH))
		return fail_labelled(err, errlen, label,
			     "loadflags 0x%02x: LOADED_HIGH clear (a zImage, not a bzImage)",
			     b[HDR_LOADFLAGS]);

	unsigned setup_sects = b[HDR_SETUP_SECTS] ? b[HDR_SETUP_SECTS] : 4;
	uint64_t setup_size = (uint64_t)(setup_sects + 1) * 512;
	if (setup_size >= len)
		return fail_labelled(err, errlen, label,
			     "setup_sects %u puts the kernel at offset 0x%llx, beyond the file's "
			     "0x%zx bytes", setup_sects, (unsigned long long)setup_size, len);
	uint64_t syssize = (uint64_t)rd32(b + HDR_SYSSIZE) * 16;
	if (syssize == 0)
		return fail_labelled(err, errlen, label, "syssize is 0: no protected-mode kernel");
	if (syssize <= 0x200)
		return fail_labelled(err, errlen, label,
			     "syssize says 0x%llx bytes of kernel: too few to hold the 64-bit entry "
			     "at +0x200", (unsigned long long)syssize);
	if (syssize > len - setup_size)
		return fail_labelled(err, errlen, label,
			     "truncated: syssize says 0x%llx bytes of kernel after the 0x%llx bytes "
			     "of setup, the file has only 0x%llx", (unsigned long long)syssize,
			     (unsigned long long)setup_size,
			     (unsigned long long)(len - setup_size));

	uint32_t align = rd32(b + HDR_KERNEL_ALIGNMENT);
	uint32_t init_size = rd32(b + HDR_INIT_SIZE);
	uint64_t load;
	if (b[HDR_RELOCATABLE]) {
		if (align == 0 || (align & (align - 1)) || align > (1u << 30))
			return fail_labelled(err, errlen, label,
				     "kernel_alignment 0x%x is not a power of two up to 1 GiB",
				     align);
		uint64_t pref = rd64(b + HDR_PREF_ADDRESS);
		if (pref < GPA_RESERVED_END)
			pref = GPA_RESERVED_END;
		/* Round up with an overflow check: pref_address near 2^64 would wrap to 0 and put
		 * the kernel over the page tables, GDT, zero page and ACPI tables. */
		if (__builtin_add_overflow(pref, (uint64_t)align - 1, &load))
			return fail_labelled(err, errlen, label,
				     "pref_address 0x%llx rounded up to kernel_alignment 0x%x is "
				     "beyond 2^64 (the image is corrupt)",
				     (unsigned long long)pref, align);
		load &= ~((uint64_t)align - 1);
	} else {
		load = GPA_RESERVED_END; /* code32_start's traditional 1 MiB */
	}
	uint64_t need = init_size > syssize ? init_size : syssize;
	/* Bounds after aligning: at or above 1 MiB, and the whole of it in low RAM. */
	if (load < GPA_RESERVED_END || load > p->ram_low || need > p->ram_low - load)
		return fail_labelled(err, errlen, label,
			     "the kernel needs RAM from 0x%llx to 0x%llx (init_size 0x%x) but RAM "
			     "below the PCI hole ends at 0x%llx: give the VM more memory",
			     (unsigned long long)load, (unsigned long long)(load + need), init_size,
			     (unsigned long long)p->ram_low);
	lb.kernel_lo = load;
	lb.kernel_hi = load + need;
	lb.entry = load + 0x200; /* the 64-bit entry (boot.rst, "64-bit BOOT PROTOCOL") */

	uint32_t cmax = rd32(b + HDR_CMDLINE_SIZE);
	if (check_cmdline(p, cmax, label, err, errlen) ||
	    place_initrd(p, rd32(b + HDR_INITRD_ADDR_MAX), &lb, label, err, errlen))
		return -1;

	/* Everything checked: write guest memory. */
	void *dst = guest_mem_ptr(mem, load, syssize);
	if (!dst)
		return fail_labelled(err, errlen, label, "load address 0x%llx is outside guest RAM",
			     (unsigned long long)load);
	memcpy(dst, b + setup_size, syssize);
	size_t copy = (hdr_end < HDR_END_MAX ? hdr_end : HDR_END_MAX) - BP_HDR;
	if (write_boot_params(mem, p, b + BP_HDR, copy, &lb, label, err, errlen))
		return -1;
	/* code32_start: where the protected-mode part actually is (informational for us). */
	uint8_t *bp = guest_mem_ptr(mem, GPA_LINUX_BOOT_PARAMS, BP_SIZE);
	wr32(bp + HDR_CODE32_START, (uint32_t)load);
	*out = lb;
	return 0;
}

/* ---- vmlinux ---------------------------------------------------------------------------- */

int linux_load_vmlinux(const void *img, size_t len, struct guest_mem *mem,
		       const struct linux_params *p, struct linux_boot *out, const char *label,
		       char *err, size_t errlen)
{
	struct linux_boot lb = { .kind = KERNEL_VMLINUX, .version = LINUX_VMLINUX_VERSION };
	struct load_info li;
	char eerr[512];

	if (check_cmdline(p, LINUX_VMLINUX_CMDLINE_MAX, label, err, errlen))
		return -1;
	/* Segments are checked against all of guest RAM by the ELF loader; the kernel must sit
	 * in low RAM (it is linked at 16 MiB) and away from the boot tables below 1 MiB. To
	 * place the initrd before anything is written, look at the segments first: a dry run
	 * on an empty guest_mem is not possible, so load, then check; on a later failure the
	 * VM is not started anyway. */
	if (elf_load_image(img, len, mem, 0, GPA_RESERVED_END, &li, eerr, sizeof(eerr))) {
		const char *why = strncmp(eerr, "kernel image: ", 14) ? eerr : eerr + 14;
		return fail_labelled(err, errlen, label, "%s", why);
	}
	if (li.hi > p->ram_low)
		return fail_labelled(err, errlen, label,
			     "the kernel occupies RAM up to 0x%llx but RAM below the PCI hole ends "
			     "at 0x%llx: give the VM more memory", (unsigned long long)li.hi,
			     (unsigned long long)p->ram_low);
	lb.entry = li.entry;
	lb.kernel_lo = li.lo;
	lb.kernel_hi = li.hi;
	if (place_initrd(p, 0x7fffffff, &lb, label, err, errlen))
		return -1;

	/* A vmlinux has no setup header: present the one a boot loader would have copied. */
	uint8_t hdr[HDR_END_MAX - BP_HDR];
	memset(hdr, 0, sizeof(hdr));
	wr16(hdr + (HDR_BOOT_FLAG - BP_HDR), HDR_BOOT_FLAG_MAGIC);
	wr32(hdr + (HDR_HEADER - BP_HDR), HDR_MAGIC);
	wr16(hdr + (HDR_VERSION - BP_HDR), LINUX_VMLINUX_VERSION);
	hdr[HDR_LOADFLAGS - BP_HDR] = LOADFLAGS_LOADED_HIGH;
	wr32(hdr + (HDR_INITRD_ADDR_MAX - BP_HDR), 0x7fffffff);
	wr32(hdr + (HDR_KERNEL_ALIGNMENT - BP_HDR), 0x200000);
	wr16(hdr + (HDR_XLOADFLAGS - BP_HDR), XLF_KERNEL_64);
	wr32(hdr + (HDR_CMDLINE_SIZE - BP_HDR), LINUX_VMLINUX_CMDLINE_MAX);
	wr64(hdr + (HDR_PREF_ADDRESS - BP_HDR), li.lo);
	wr32(hdr + (HDR_INIT_SIZE - BP_HDR), (uint32_t)(li.hi - li.lo));
	if (write_boot_params(mem, p, hdr, sizeof(hdr), &lb, label, err, errlen))
		return -1;
	*out = lb;
	return 0;
}

/* ---- files ------------------------------------------------------------------------------ */

/* ---- CPUID policy for Linux ------------------------------------------------------------- */

/* cvmm's feature names (vmm/cpuid.c) as Linux's clearcpuid= knows them (the /proc/cpuinfo
 * flag names); NULL: Linux has no name for it (osxsave follows xsave there). */
static const char *linux_flag_name(const char *name)
{
	static const struct { const char *cvmm, *lnx; } map[] = {
		{ "tsc-deadline", "tsc_deadline_timer" },
		{ "osxsave", NULL },
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (!strcmp(map[i].cvmm, name))
			return map[i].lnx;
	return name;
}

struct clearcpuid_buf {
	char *out;
	size_t len;
};

/* Is `name` one of the comma-separated entries of `list` (whole entries only: "avx" is not in
 * "avx2,avx512f")? */
static bool list_has(const char *list, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = list; *p; p += strcspn(p, ","), p += *p == ',') {
		if (strcspn(p, ",") == n && !strncmp(p, name, n))
			return true;
	}
	return false;
}

static int clearcpuid_add(const struct cpuid_feature *f, void *ctx)
{
	struct clearcpuid_buf *b = ctx;
	const char *n = linux_flag_name(f->name);
	if (!n || list_has(b->out, n)) /* a repeated name is harmless: skip it anyway */
		return 0;
	size_t used = strlen(b->out);
	int w = snprintf(b->out + used, b->len - used, "%s%s", used ? "," : "", n);
	return w < 0 || (size_t)w >= b->len - used ? -1 : 0;
}

int linux_clearcpuid(const char *mask, char *out, size_t outlen)
{
	if (!outlen)
		return -1;
	out[0] = 0;
	struct clearcpuid_buf b = { out, outlen };
	char err[512];
	if (cpuid_mask_foreach(mask, clearcpuid_add, &b, err, sizeof(err)))
		return -1;
	/* Linux 6.1 reads the option into a 128-byte buffer (cpu_parse_early_param). */
	return strlen(out) > LINUX_CLEARCPUID_MAX ? -1 : 0;
}

/* ---- the VM side: ACPI, kernel, initrd, vCPU entry -------------------------------------- */

/* The guest's physical address width (CPUID 0x80000008 EAX[7:0]), 36 if unknown. */
static unsigned guest_phys_bits(struct vm *vm)
{
	struct kvm_cpuid_entry2 *e = vm->cpuid ? cpuid_find(vm->cpuid, 0x80000008, 0) : NULL;
	unsigned bits = e ? (e->eax & 0xff) : 0;
	return bits >= 32 && bits <= 52 ? bits : 36;
}

static int build_acpi(struct vm *vm, uint64_t ram_low, uint64_t ram_high, char *err,
		      size_t errlen)
{
	uint8_t *buf = guest_mem_ptr(&vm->mem, ACPI_GPA_BASE, ACPI_GPA_SIZE);
	if (!buf) {
		snprintf(err, errlen, "guest RAM too small for the ACPI tables");
		return -1;
	}
	/* A 64-bit PCI window above everything else in the guest-physical map: high RAM and the
	 * virtio-pmem window that mm/ puts right above it. cvmm's own BAR allocator uses only the
	 * 32-bit window; this one is for the guest OS to (re)assign 64-bit BARs into. */
	uint64_t top = ram_high ? GPA_HIGH_RAM + ram_high : GPA_HIGH_RAM;
	for (unsigned i = 0; i < vm->npmem; i++)
		if (vm->pmem[i].win->base + vm->pmem[i].win->size > top)
			top = vm->pmem[i].win->base + vm->pmem[i].win->size;
	uint64_t base64 = (top + (1ULL << 30) - 1) & ~((1ULL << 30) - 1);
	uint64_t lim = 1ULL << guest_phys_bits(vm);
	uint64_t end64 = base64 + (64ULL << 30) < lim ? base64 + (64ULL << 30) : lim;
	struct acpi_params ap = {
		.ncpus = (unsigned)vm->ncpus,
		.ecam_base = GPA_ECAM,
		.ecam_bus_end = 255,
		.mmio32_base = GPA_PCI_MMIO,
		.mmio32_end = GPA_PCI_MMIO_END,
		.mmio64_base = base64 < end64 ? base64 : 0,
		.mmio64_end = base64 < end64 ? end64 : 0,
	};
	struct acpi_tables t;
	(void)ram_low;
	if (acpi_build(buf, ACPI_GPA_SIZE, ACPI_GPA_BASE, &ap, &t, err, errlen))
		return -1;
	vm->rsdp = t.rsdp;
	return 0;
}

int linux_vm_setup(struct vm *vm, char *err, size_t errlen)
{
	const struct vm_config *cfg = vm->cfg;
	uint64_t ram_low = vm->ram_size < LOW_RAM_MAX ? vm->ram_size : LOW_RAM_MAX;
	uint64_t ram_high = vm->ram_size - ram_low;
	char label[4200];
	uint8_t *img = NULL, *initrd = NULL;
	size_t len = 0, initrd_len = 0;
	enum kernel_kind kind;
	int rc = -1;

	if (build_acpi(vm, ram_low, ram_high, err, errlen))
		return -1;
	if (file_read_all(cfg->kernel, "kernel", 512ULL << 20, &img, &len, err, errlen))
		return -1;
	snprintf(label, sizeof(label), "kernel '%s'", cfg->kernel);
	if (linux_probe(img, len, &kind) < 0) {
		snprintf(err, errlen, "%s: not a kernel cvmm can boot: neither an ELF64 executable "
			 "(cvmm's guest or a Linux vmlinux) nor a Linux bzImage ('HdrS' header)",
			 label);
		goto out;
	}
	vm->lboot = (struct linux_boot){ .kind = kind };

	/* The command line; for Linux with a cpuid_mask, plus clearcpuid= for the same features:
	 * on hosts like the project's, KVM_SET_CPUID2 does not reach CPUID leaf 1 ECX (HOST.md,
	 * README), so the kernel is told directly. */
	char cmdline[CONFIG_CMDLINE_MAX + LINUX_CLEARCPUID_MAX + 16];
	snprintf(cmdline, sizeof(cmdline), "%s", cfg->cmdline);
	if (kind != KERNEL_CVMM_ELF && cfg->cpuid_mask[0]) {
		char cc[LINUX_CLEARCPUID_MAX + 64];
		if (linux_clearcpuid(cfg->cpuid_mask, cc, sizeof(cc))) {
			snprintf(err, errlen, "cpuid_mask '%s': more than Linux's clearcpuid= takes "
				 "(%d characters)", cfg->cpuid_mask, LINUX_CLEARCPUID_MAX);
			goto out;
		}
		if (cc[0]) {
			size_t n = strlen(cmdline);
			snprintf(cmdline + n, sizeof(cmdline) - n, "%sclearcpuid=%s", n ? " " : "", cc);
		}
	}
	/* Page tables, the flat GDT, hvm_start_info and the command line at GPA_CMDLINE: what
	 * the bundled guest reads, and the identity map and command line Linux is given too. */
	if (boot_setup_pvh(&vm->mem, ram_low, ram_high, cmdline, err, errlen))
		goto out;
	struct hvm_start_info *si = guest_mem_ptr(&vm->mem, GPA_START_INFO, sizeof(*si));
	if (si)
		si->rsdp_paddr = vm->rsdp;
	if (kind == KERNEL_CVMM_ELF) {
		if (cfg->initrd[0]) {
			snprintf(err, errlen, "initrd '%s': only a Linux kernel takes an initrd "
				 "(%s has no Linux ELF note)", cfg->initrd, label);
			goto out;
		}
		/* The bundled guest's path, unchanged: every vCPU at e_entry with hvm_start_info. */
		rc = elf_load_image(img, len, &vm->mem, 0, GPA_RESERVED_END, &vm->kernel, err,
				    errlen);
		if (rc && !strncmp(err, "kernel image: ", 14)) {
			char why[512];
			snprintf(why, sizeof(why), "%s", err + 14);
			snprintf(err, errlen, "%s: %s", label, why);
		}
		goto out;
	}
	if (cfg->initrd[0] && file_read_all(cfg->initrd, "initrd", 2ULL << 30, &initrd,
					      &initrd_len, err, errlen))
		goto out;
	struct linux_params p = {
		.ram_low = ram_low,
		.ram_high = ram_high,
		.rsdp = vm->rsdp,
		.acpi_lo = ACPI_GPA_BASE,
		.acpi_hi = ACPI_GPA_BASE + ACPI_GPA_SIZE,
		.ecam_lo = GPA_ECAM,
		.ecam_hi = GPA_ECAM + (256ULL << 20),
		.cmdline = cmdline,
		.initrd = initrd,
		.initrd_len = initrd_len,
	};
	rc = kind == KERNEL_BZIMAGE
		? linux_load_bzimage(img, len, &vm->mem, &p, &vm->lboot, label, err, errlen)
		: linux_load_vmlinux(img, len, &vm->mem, &p, &vm->lboot, label, err, errlen);
	if (rc == 0)
		vm->kernel = (struct load_info){ .entry = vm->lboot.entry, .lo = vm->lboot.kernel_lo,
						 .hi = vm->lboot.kernel_hi };
out:
	free(img);
	free(initrd);
	return rc;
}

int linux_vcpu_setup(struct vm *vm, int vcpu_fd, int index, char *err, size_t errlen)
{
	if (index != 0)
		return 0; /* application processors wait for INIT/SIPI (in-kernel LAPIC) */
	struct kvm_sregs s;
	if (ioctl(vcpu_fd, KVM_GET_SREGS, &s) < 0) {
		snprintf(err, errlen, "KVM_GET_SREGS: %s", strerror(errno));
		return -1;
	}
	boot_long_mode_sregs(&s);
	s.cs.selector = LINUX_BOOT_CS;
	s.ds.selector = s.es.selector = s.fs.selector = s.gs.selector = s.ss.selector =
		LINUX_BOOT_DS;
	s.gdt.base = GPA_LINUX_GDT;
	s.gdt.limit = 4 * 8 - 1;
	if (ioctl(vcpu_fd, KVM_SET_SREGS, &s) < 0) {
		snprintf(err, errlen, "KVM_SET_SREGS: %s", strerror(errno));
		return -1;
	}
	struct kvm_regs r;
	memset(&r, 0, sizeof(r));
	r.rip = vm->lboot.entry;
	r.rsi = vm->lboot.boot_params;
	r.rflags = 0x2; /* interrupts off */
	if (ioctl(vcpu_fd, KVM_SET_REGS, &r) < 0) {
		snprintf(err, errlen, "KVM_SET_REGS: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* Instructions KVM's instruction emulator gives up on in guest ring 0 (HOST.md: on these hosts
 * ring 0 is emulated) that a Linux kernel executes whatever its CPUID says:
 *   INT3 (0xCC): Linux runs one on purpose in int3_selftest() (alternative_instructions())
 *     and more when it live-patches text (text_poke_bp). The emulator cannot deliver INT n in
 *     long mode. cvmm does what the CPU would: RIP past the INT3 (a trap) and #BP injected.
 *   FWAIT (0x9B): fpu__drop() (every thread exit) runs one to drop a pending x87 exception of
 *     user space, with an exception-table fixup that ignores it. cvmm steps over it: the
 *     outcome the fixup gives.
 * Everything else that is feature-dependent is hidden with clearcpuid= (linux_clearcpuid()).
 * Returns true when the instruction was handled. */
bool linux_emulate_insn(struct vm *vm, int vcpu_fd, struct kvm_run *run)
{
	if (vm->lboot.kind == KERNEL_CVMM_ELF || run->internal.suberror != KVM_INTERNAL_ERROR_EMULATION)
		return false;
	struct kvm_regs r;
	struct kvm_sregs s;
	if (ioctl(vcpu_fd, KVM_GET_REGS, &r) < 0 || ioctl(vcpu_fd, KVM_GET_SREGS, &s) < 0)
		return false;
	if ((s.cs.selector & 3) != 0)
		return false;
	struct kvm_translation tr = { .linear_address = r.rip };
	if (ioctl(vcpu_fd, KVM_TRANSLATE, &tr) < 0 || !tr.valid)
		return false;
	const uint8_t *op = guest_mem_ptr(&vm->mem, tr.physical_address, 1);
	if (!op)
		return false;
	if (*op == 0x9b) {
		r.rip += 1;
		if (ioctl(vcpu_fd, KVM_SET_REGS, &r) < 0)
			return false;
		__atomic_add_fetch(&vm->lboot.insn_emulated, 1, __ATOMIC_RELAXED);
		return true;
	}
	if (*op != 0xcc)
		return false;
	struct kvm_vcpu_events ev;
	if (ioctl(vcpu_fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
		return false;
	r.rip += 1;
	ev.exception.injected = 1;
	ev.exception.nr = 3;
	ev.exception.has_error_code = 0;
	ev.exception.error_code = 0;
	ev.flags = 0;
	if (ioctl(vcpu_fd, KVM_SET_REGS, &r) < 0 || ioctl(vcpu_fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
		return false;
	__atomic_add_fetch(&vm->lboot.insn_emulated, 1, __ATOMIC_RELAXED);
	return true;
}
