/* ACPI tables for the guest, built by cvmm at start in the BIOS area 0xE0000..0xFFFFF (where an
 * OS also finds the RSDP by scanning), reserved in the memory map.
 *
 *   RSDP (revision 2) -> XSDT and RSDT -> FADT, MADT, MCFG;  FADT -> DSDT
 *   FADT: hardware-reduced ACPI (no PM timer, GPEs or SCI), the reset register (port 0x600,
 *         value 1) and the sleep control/status registers (ports 0x600/0x601: S5 powers off);
 *         no VGA, no CMOS RTC, no 8042 in IAPC_BOOT_ARCH.
 *   MADT: one enabled local APIC per vCPU (APIC ID = vCPU index), the IOAPIC at 0xFEC00000
 *         with GSI base 0, ISA IRQ 0 -> GSI 2 (as PCs do; devices/irq.c routes it so), LINT1 NMI.
 *   MCFG: ECAM for segment 0, buses 0..ecam_bus_end.
 *   DSDT: \_SB.PCI0 (PNP0A08, compatible PNP0A03) with _CRS: bus numbers, the config ports,
 *         the I/O windows, the 32-bit MMIO window and, if given, a 64-bit one; \_SB.COM1
 *         (PNP0501, I/O 0x3F8, IRQ 4); \_SB.MRES (PNP0C02: the ECAM and cvmm's control ports);
 *         \_S5 for power off.
 * The DSDT's AML is written by a small emitter here (no iasl at build time); tests/unit/test_acpi.c
 * disassembles every table with iasl. Pure functions over a buffer: no KVM needed. */
#ifndef CVMM_ACPI_H
#define CVMM_ACPI_H

#include <stddef.h>
#include <stdint.h>

#include "devices/sysctl.h"

#define ACPI_GPA_BASE   0xE0000ULL
#define ACPI_GPA_SIZE   0x20000ULL   /* to 1 MiB */

/* The system control ports the tables describe are devices/sysctl.h's (ACPI_PORT_CTL...). */

#define ACPI_IOAPIC_GPA  0xFEC00000u
#define ACPI_LAPIC_GPA   0xFEE00000u

struct acpi_params {
	unsigned ncpus;
	uint64_t ecam_base;
	unsigned ecam_bus_end;       /* last bus number, 0..255 */
	uint64_t mmio32_base, mmio32_end;  /* [base, end) */
	uint64_t mmio64_base, mmio64_end;  /* [base, end), 0,0 = none */
};

#define ACPI_MAX_TABLES 8

struct acpi_table_loc {
	char sig[5];
	uint32_t off;  /* from the start of the buffer */
	uint32_t len;
};

struct acpi_tables {
	uint64_t gpa;          /* guest-physical address of the buffer */
	size_t used;
	uint64_t rsdp;         /* guest-physical RSDP */
	struct acpi_table_loc t[ACPI_MAX_TABLES]; /* RSDP first, then every table */
	int n;
};

/* Build every table into buf (cap bytes, which the guest sees at gpa). Returns 0, or -1 with
 * err set (too small a buffer, bad parameters). */
int acpi_build(uint8_t *buf, size_t cap, uint64_t gpa, const struct acpi_params *p,
	       struct acpi_tables *out, char *err, size_t errlen);

/* Sum of bytes (a valid table sums to 0). */
uint8_t acpi_checksum(const uint8_t *p, size_t len);

/* The 32-bit compressed EISA ID of a "PNP0A03"-style string, as AML stores it. */
uint32_t acpi_eisaid(const char *id);

#endif
