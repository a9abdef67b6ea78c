/* Boot state for a guest entered directly in 64-bit mode (cvmm's entry) with its boot
 * information in the PVH hvm_start_info layout, so the same guest reads one format under cvmm
 * and under QEMU's PVH -kernel boot. */
#ifndef CVMM_BOOT_H
#define CVMM_BOOT_H

#include <stddef.h>
#include <stdint.h>

#include "lib/guest_mem.h"
#include "lib/kvm_compat.h"

#define HVM_START_MAGIC 0x336ec578u

struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct hvm_memmap_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type; /* 1 RAM, 2 reserved */
	uint32_t reserved;
};

#define BOOT_MEMMAP_MAX 16

/* Write identity page tables (0..4 GiB, 2 MiB pages), a flat 64-bit GDT, hvm_start_info with
 * the RAM map and the command line. ram_low/ram_high: bytes of RAM below the PCI hole and at
 * 4 GiB. Returns 0 or -1 with err set (command line too long). */
int boot_setup_pvh(struct guest_mem *mem, uint64_t ram_low, uint64_t ram_high,
		   const char *cmdline, char *err, size_t errlen);

/* Registers for a vCPU entering the 64-bit entry: long mode, CPL0, flat segments,
 * RBX = RSI = start info, RDI = vCPU index. */
void boot_long_mode_sregs(struct kvm_sregs *s);
void boot_entry_regs(struct kvm_regs *r, uint64_t entry, unsigned vcpu_index);

#endif
