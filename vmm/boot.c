#include "vmm/boot.h"

#include <stdio.h>
#include <string.h>

#include "vmm/vm.h"

#define PTE_P   (1ULL << 0)
#define PTE_W   (1ULL << 1)
#define PTE_PS  (1ULL << 7)
#define PTE_PCD (1ULL << 4)
#define PTE_PWT (1ULL << 3)

int boot_setup_pvh(struct guest_mem *mem, uint64_t ram_low, uint64_t ram_high,
		   const char *cmdline, char *err, size_t errlen)
{
	/* Flat GDT: null, 64-bit code (0x8), data (0x10). */
	uint64_t *gdt = guest_mem_ptr(mem, GPA_BOOT_GDT, 3 * 8);
	uint64_t *pml4 = guest_mem_ptr(mem, GPA_BOOT_PML4, 4096);
	uint64_t *pdpt = guest_mem_ptr(mem, GPA_BOOT_PDPT, 4096);
	uint64_t *pd = guest_mem_ptr(mem, GPA_BOOT_PD, 4 * 4096);
	struct hvm_start_info *si = guest_mem_ptr(mem, GPA_START_INFO, sizeof(*si));
	struct hvm_memmap_entry *mm =
		guest_mem_ptr(mem, GPA_MEMMAP, BOOT_MEMMAP_MAX * sizeof(*mm));
	const size_t cmax = 4096; /* 0x8000..0x9000 */
	char *cl = guest_mem_ptr(mem, GPA_CMDLINE, cmax);
	if (!gdt || !pml4 || !pdpt || !pd || !si || !mm || !cl) {
		snprintf(err, errlen, "guest RAM too small for the boot tables");
		return -1;
	}
	size_t clen = strlen(cmdline);
	if (clen >= cmax) {
		snprintf(err, errlen, "cmdline: %zu bytes is longer than the %zu allowed", clen,
			 cmax - 1);
		return -1;
	}

	gdt[0] = 0;
	gdt[1] = 0x00af9b000000ffffULL; /* code: P, DPL0, S, exec/read, accessed, L, G */
	gdt[2] = 0x00cf93000000ffffULL; /* data: P, DPL0, S, read/write, accessed, D/B, G */

	memset(pml4, 0, 4096);
	memset(pdpt, 0, 4096);
	pml4[0] = GPA_BOOT_PDPT | PTE_P | PTE_W;
	for (int i = 0; i < 4; i++) {
		pdpt[i] = (GPA_BOOT_PD + i * 4096ULL) | PTE_P | PTE_W;
		for (int j = 0; j < 512; j++) {
			uint64_t pa = ((uint64_t)i << 30) | ((uint64_t)j << 21);
			uint64_t flags = PTE_P | PTE_W | PTE_PS;
			if (pa >= GPA_PCI_HOLE)
				flags |= PTE_PCD | PTE_PWT;
			pd[i * 512 + j] = pa | flags;
		}
	}

	int n = 0;
	/* Low 640 KiB, then RAM from 1 MiB (the legacy hole stays out, as on a PC). */
	mm[n++] = (struct hvm_memmap_entry){ 0, 0xA0000, 1, 0 };
	if (ram_low > GPA_RESERVED_END)
		mm[n++] = (struct hvm_memmap_entry){ GPA_RESERVED_END, ram_low - GPA_RESERVED_END, 1, 0 };
	if (ram_high)
		mm[n++] = (struct hvm_memmap_entry){ GPA_HIGH_RAM, ram_high, 1, 0 };

	memcpy(cl, cmdline, clen + 1);
	*si = (struct hvm_start_info){
		.magic = HVM_START_MAGIC,
		.version = 1,
		.cmdline_paddr = GPA_CMDLINE,
		.memmap_paddr = GPA_MEMMAP,
		.memmap_entries = (uint32_t)n,
	};
	return 0;
}

void boot_long_mode_sregs(struct kvm_sregs *s)
{
	struct kvm_segment code = {
		.base = 0, .limit = 0xffffffff, .selector = 0x8, .type = 0xb,
		.present = 1, .dpl = 0, .db = 0, .s = 1, .l = 1, .g = 1,
	};
	struct kvm_segment data = {
		.base = 0, .limit = 0xffffffff, .selector = 0x10, .type = 0x3,
		.present = 1, .dpl = 0, .db = 1, .s = 1, .l = 0, .g = 1,
	};
	s->cs = code;
	s->ds = s->es = s->fs = s->gs = s->ss = data;
	s->tr = (struct kvm_segment){ .limit = 0x67, .type = 0xb, .present = 1 };
	s->ldt = (struct kvm_segment){ .unusable = 1 };
	s->gdt.base = GPA_BOOT_GDT;
	s->gdt.limit = 3 * 8 - 1;
	s->idt.base = 0;
	s->idt.limit = 0;
	s->cr0 = 0x80050033ULL; /* PG WP NE ET MP PE */
	s->cr3 = GPA_BOOT_PML4;
	s->cr4 = 0x20;          /* PAE */
	s->efer = 0x500;        /* LME LMA */
}

void boot_entry_regs(struct kvm_regs *r, uint64_t entry, unsigned vcpu_index)
{
	memset(r, 0, sizeof(*r));
	r->rip = entry;
	r->rflags = 0x2;
	r->rbx = GPA_START_INFO;
	r->rsi = GPA_START_INFO;
	r->rdi = vcpu_index;
}
