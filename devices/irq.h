/* Interrupt wiring of the PC platform cvmm presents, in one place so that the ACPI tables
 * (vmm/acpi.c), the KVM GSI routing table and the devices agree:
 *
 *   ISA IRQ 0 (the PIT)  -> PIC master pin 0 and IOAPIC pin 2   (MADT override IRQ0 -> GSI 2)
 *   ISA IRQ n, n=1..15   -> PIC pin n and IOAPIC pin n          (n = 2 is the PIC cascade:
 *                                                                 no route, as QEMU does)
 *   GSI 16..23           -> IOAPIC pins 16..23
 *   GSI 24 and up        -> MSI routes (devices/pci.c allocates them for MSI-X vectors)
 *
 * KVM_SET_GSI_ROUTING replaces the whole table, so whoever commits it (pci.c, for MSI-X)
 * must start from irq_default_routes() and append its MSI routes. irq_routes_set_default()
 * commits the pin routes alone; vm_create() calls it once before any device can commit. */
#ifndef CVMM_IRQ_H
#define CVMM_IRQ_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/kvm_compat.h"

#define IRQ_IOAPIC_PINS   24
#define IRQ_TIMER_GSI     2    /* where ISA IRQ 0 arrives on the IOAPIC */
#define IRQ_COM1          4
#define IRQ_FIRST_MSI_GSI 24   /* first GSI free for MSI routes */
#define IRQ_DEFAULT_ROUTES 38  /* entries irq_default_routes() writes */

/* Write the pin routes into e[0..max); returns how many were written (IRQ_DEFAULT_ROUTES
 * when max allows). */
unsigned irq_default_routes(struct kvm_irq_routing_entry *e, unsigned max);
/* Commit the pin routes alone. Returns 0 or -1 (errno set). */
int irq_routes_set_default(int vm_fd);
/* KVM_IRQ_LINE for an ISA IRQ / GSI. vm_fd < 0 (unit tests) does nothing. */
int irq_line(int vm_fd, unsigned gsi, bool level);
/* The in-kernel i8254 PIT (KVM_CREATE_PIT2, speaker port a dummy). Returns 0 or -1. */
int irq_create_pit(int vm_fd);

#endif
