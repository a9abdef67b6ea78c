/* Static identity page tables for [0, 4 GiB) with 2 MiB pages, built by the assembler so that
 * neither entry spends (emulated, slow) ring-0 loops on them; the PVH stub uses them directly.
 *
 * Every entry is present, writable and user-accessible: ring 3 drives devices through MMIO and
 * reaches all RAM. [0xB0000000, 4 GiB) is the PCI hole (ECAM at 0xB0000000 under cvmm and QEMU
 * q35, BARs, IOAPIC, LAPIC; neither puts RAM there) and is mapped uncached (PCD|PWT). More mappings (a pmem window or BARs above 4 GiB) are added by the
 * SYS_MAP service (arch/map.c), which fills entries here and in tables from its own pool. */
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
	.rept 1408			/* [0, 0xB0000000): write-back */
	.quad addr + BIG
	.set addr, addr + 0x200000
	.endr
	.rept 640			/* [0xB0000000, 4 GiB): uncached PCI hole */
	.quad addr + BIG + PTE_PCD + PTE_PWT
	.set addr, addr + 0x200000
	.endr
