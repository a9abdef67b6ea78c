/* Static identity page tables for [0, 4 GiB) with 2 MiB pages, built by the assembler so that
 * neither entry spends (emulated, slow) ring-0 loops on them; the PVH stub uses them directly.
 *
 * Every entry is present, writable and user-accessible: ring 3 drives devices through MMIO and
 * reaches all RAM. [3 GiB, 4 GiB) is the PCI MMIO hole (LAPIC, IOAPIC, BARs, ECAM) and is
 * mapped uncached (PCD|PWT). The tables are in user-writable memory, so ring 3 can add mappings
 * (e.g. a pmem window above 4 GiB) by filling not-present entries, which needs no TLB flush. */
#define PTE_P 0x1
#define PTE_W 0x2
#define PTE_U 0x4
#define PTE_PWT 0x8
#define PTE_PCD 0x10
#define PTE_PS 0x80
#define TABLE (PTE_P | PTE_W | PTE_U)
#define BIG (PTE_P | PTE_W | PTE_U | PTE_PS)

	.section .data.pagetables, "aw"
	.balign 4096
	.globl pml4, pdpt, pd
pml4:	.quad pdpt + TABLE
	.fill 511, 8, 0
pdpt:	.quad pd + TABLE
	.quad pd + 0x1000 + TABLE
	.quad pd + 0x2000 + TABLE
	.quad pd + 0x3000 + TABLE
	.fill 508, 8, 0
pd:
	.set addr, 0
	.rept 1536			/* [0, 3 GiB): write-back */
	.quad addr + BIG
	.set addr, addr + 0x200000
	.endr
	.rept 512			/* [3 GiB, 4 GiB): uncached MMIO hole */
	.quad addr + BIG + PTE_PCD + PTE_PWT
	.set addr, addr + 0x200000
	.endr
