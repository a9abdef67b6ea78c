/* Linux kernels as guests: the x86 64-bit boot protocol (Documentation/arch/x86/boot.rst).
 *
 * cvmm boots three kinds of image, told apart by content, never by file name:
 *   - its own guest: an ELF64 with no Linux markers (loaded by loader_elf.c, PVH
 *     hvm_start_info, every vCPU entered at e_entry: unchanged by this file);
 *   - a Linux vmlinux: an ELF64 with a "Linux" ELF note (or Xen's GUEST_OS note "linux").
 *     Its PT_LOAD segments go to their p_paddr and the BSP enters at e_entry, which for
 *     vmlinux is the *physical* address of startup_64 (vmlinux.lds: ENTRY(phys_startup_64)):
 *     the 64-bit entry of the decompressed kernel, which takes boot_params in RSI exactly
 *     like the bzImage's 64-bit entry. (The PVH note's entry is a 32-bit protected-mode entry
 *     reading hvm_start_info: cvmm enters 64-bit mode, so one boot_params path serves both.)
 *   - a bzImage: "HdrS" at 0x202, protocol >= 2.12 with XLF_KERNEL_64; its protected-mode
 *     part is loaded at pref_address (relocatable) or 1 MiB and entered at load + 0x200.
 *
 * For both Linux kinds the BSP starts in long mode (identity map of the low 4 GiB, GDT with
 * __BOOT_CS = 0x10 and __BOOT_DS = 0x18, interrupts off, RSI = boot_params); application
 * processors wait for INIT/SIPI from the kernel, as on a PC.
 *
 * Every field read from the image is checked before it is used; errors are one line naming
 * the file and the field. Nothing is written to guest memory until the image has passed. */
#ifndef CVMM_LINUX_H
#define CVMM_LINUX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/guest_mem.h"
#include "vmm/loader.h"

enum kernel_kind {
	KERNEL_CVMM_ELF = 0, /* the bundled guest or any ELF without Linux markers */
	KERNEL_VMLINUX,
	KERNEL_BZIMAGE,
};

/* Guest-physical places of the Linux boot data (below 1 MiB, next to boot.c's tables). */
#define GPA_LINUX_GDT        0x0520ULL /* 4 entries: null, null, __BOOT_CS, __BOOT_DS */
#define GPA_LINUX_CMDLINE    0x8000ULL /* = GPA_CMDLINE: boot.c writes the command line there */
#define GPA_LINUX_BOOT_PARAMS 0x9000ULL /* the zero page, 4 KiB */
#define LINUX_BOOT_CS        0x10
#define LINUX_BOOT_DS        0x18

/* Offsets in struct boot_params (arch/x86/include/uapi/asm/bootparam.h) and in the image:
 * the setup header sits at 0x1f1 in both. */
#define BP_ACPI_RSDP_ADDR    0x070
#define BP_EXT_RAMDISK_IMAGE 0x0c0
#define BP_EXT_RAMDISK_SIZE  0x0c4
#define BP_EXT_CMD_LINE_PTR  0x0c8
#define BP_E820_ENTRIES      0x1e8
#define BP_SENTINEL          0x1ef
#define BP_HDR               0x1f1
#define BP_E820_TABLE        0x2d0
#define BP_E820_MAX          128
#define BP_SIZE              0x1000

#define HDR_SETUP_SECTS      0x1f1
#define HDR_SYSSIZE          0x1f4
#define HDR_BOOT_FLAG        0x1fe
#define HDR_JUMP             0x200
#define HDR_HEADER           0x202
#define HDR_VERSION          0x206
#define HDR_TYPE_OF_LOADER   0x210
#define HDR_LOADFLAGS        0x211
#define HDR_CODE32_START     0x214
#define HDR_RAMDISK_IMAGE    0x218
#define HDR_RAMDISK_SIZE     0x21c
#define HDR_HEAP_END_PTR     0x224
#define HDR_CMD_LINE_PTR     0x228
#define HDR_INITRD_ADDR_MAX  0x22c
#define HDR_KERNEL_ALIGNMENT 0x230
#define HDR_RELOCATABLE      0x234
#define HDR_XLOADFLAGS       0x236
#define HDR_CMDLINE_SIZE     0x238
#define HDR_HARDWARE_SUBARCH 0x23c
#define HDR_PREF_ADDRESS     0x258
#define HDR_INIT_SIZE        0x260
#define HDR_END_MAX          0x290 /* boot_params pads the header up to here */

#define HDR_MAGIC            0x53726448u /* "HdrS" */
#define HDR_BOOT_FLAG_MAGIC  0xaa55
#define LOADFLAGS_LOADED_HIGH 0x01
#define LOADFLAGS_CAN_USE_HEAP 0x80
#define XLF_KERNEL_64        0x01
#define LINUX_MIN_VERSION    0x020c /* 2.12: xloadflags, the 64-bit entry is announced */
#define LINUX_LOADER_UNDEFINED 0xff

#define E820_RAM      1
#define E820_RESERVED 2

struct e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
};

/* What the VMM gives the kernel. */
struct linux_params {
	uint64_t ram_low;        /* bytes of RAM from 0 (below the PCI hole) */
	uint64_t ram_high;       /* bytes of RAM at 4 GiB */
	uint64_t rsdp;           /* guest-physical RSDP, 0 = none */
	uint64_t acpi_lo, acpi_hi; /* the reserved range holding the ACPI tables (may be 0,0) */
	uint64_t ecam_lo, ecam_hi; /* reserved: PCI ECAM window (may be 0,0) */
	const char *cmdline;
	const void *initrd;      /* NULL = none */
	size_t initrd_len;
};

/* What was loaded. */
struct linux_boot {
	enum kernel_kind kind;
	uint16_t version;        /* boot protocol of the image (vmlinux: what we emulate) */
	uint64_t entry;          /* 64-bit entry */
	uint64_t boot_params;    /* GPA of the zero page (RSI) */
	uint64_t kernel_lo, kernel_hi; /* guest-physical range the kernel may use while booting */
	uint64_t initrd_addr, initrd_size;
	int e820_entries;
	uint64_t insn_emulated;  /* ring-0 INT3/FWAIT cvmm handled (linux_emulate_insn) */
};

/* Tell the kinds apart from the first bytes (len may be the whole file). An ELF is a vmlinux
 * when it carries a "Linux" note or Xen's GUEST_OS note "linux"; the checks are bounded by
 * len and never fail: anything unrecognised is returned as KERNEL_CVMM_ELF when it starts
 * with the ELF magic, else -1 (neither ELF nor bzImage). */
int linux_probe(const void *img, size_t len, enum kernel_kind *kind);

/* The e820 map cvmm gives Linux: RAM 0..640K, the ACPI range reserved, RAM from 1 MiB to
 * ram_low, the ECAM reserved, RAM at 4 GiB. Sorted, non-overlapping. Returns the count. */
int linux_e820(const struct linux_params *p, struct e820_entry *e, int max);

/* Load a bzImage / vmlinux held in memory and fill the zero page at GPA_LINUX_BOOT_PARAMS
 * (the command line itself must already be at GPA_LINUX_CMDLINE: boot_setup_pvh writes it).
 * `label` names the file in messages. Returns 0, or -1 with one line in err. */
int linux_load_bzimage(const void *img, size_t len, struct guest_mem *mem,
		       const struct linux_params *p, struct linux_boot *out, const char *label,
		       char *err, size_t errlen);
int linux_load_vmlinux(const void *img, size_t len, struct guest_mem *mem,
		       const struct linux_params *p, struct linux_boot *out, const char *label,
		       char *err, size_t errlen);

/* The 4-entry GDT the 64-bit boot protocol asks for, at GPA_LINUX_GDT. */
int linux_write_gdt(struct guest_mem *mem);

/* Linux's clearcpuid= for a cvmm cpuid_mask (names or the pvm-host preset): the Linux flag
 * names, comma separated, into out. Returns 0, or -1 if it is longer than Linux reads
 * (LINUX_CLEARCPUID_MAX) or out is too small. Names Linux has no flag for are left out. */
#define LINUX_CLEARCPUID_MAX 127
int linux_clearcpuid(const char *mask, char *out, size_t outlen);

struct vm;
/* vm_create(): build the ACPI tables (vm->rsdp), the boot tables, and load cfg->kernel of
 * whichever kind it is (vm->lboot.kind; vm->kernel.entry), with cfg->initrd for Linux. */
int linux_vm_setup(struct vm *vm, char *err, size_t errlen);
/* vcpu_create() for a Linux kernel: the BSP gets the 64-bit boot protocol's registers; the
 * other vCPUs are left waiting for INIT/SIPI. */
int linux_vcpu_setup(struct vm *vm, int vcpu_fd, int index, char *err, size_t errlen);
struct kvm_run;
/* KVM_EXIT_INTERNAL_ERROR on a ring-0 INT3 (deliver #BP) or FWAIT (step over) of a Linux
 * guest. True if handled. */
bool linux_emulate_insn(struct vm *vm, int vcpu_fd, struct kvm_run *run);

#endif
