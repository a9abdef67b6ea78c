/* System control ports a PC guest resets or powers off through:
 *   0x64  (i8042 command port): 0xFE pulses the reset line (Linux reboot=k); reads 0 (no
 *         input or output pending, so a driver waiting for an empty buffer goes on at once).
 *         There is no keyboard controller behind it (the FADT says so).
 *   0x600 (ACPI reset register and sleep control register, described by vmm/acpi.c): ACPI_RESET_VALUE
 *         resets; SLP_EN with SLP_TYP 5 (S5) powers off. 0x601: sleep status, reads 0.
 * Neither reboots: cvmm ends the VM with a message saying which it was. */
#ifndef CVMM_SYSCTL_H
#define CVMM_SYSCTL_H

#include <stdint.h>

#include "devices/bus.h"

/* The ACPI ports (the FADT's reset register and PM1a control block, vmm/acpi.c describes them). */
#define ACPI_PORT_CTL    0x600  /* write 1: reset; write SLP_EN|SLP_TYP: sleep (S5 = off) */
#define ACPI_PORT_STS    0x601  /* sleep status (reads 0) */
#define ACPI_RESET_VALUE 0x01
#define ACPI_SLP_EN      0x20
#define ACPI_S5_TYP      5

enum sysctl_event { SYSCTL_RESET_KBD, SYSCTL_RESET_ACPI, SYSCTL_POWEROFF };

struct sysctl {
	void (*on_event)(void *ctx, enum sysctl_event ev);
	void *ctx;
};

int sysctl_register(struct sysctl *s, struct bus *pio);
/* Bus callbacks, exposed for unit tests. */
int sysctl_kbd_read(void *opaque, uint64_t off, void *data, unsigned size);
int sysctl_kbd_write(void *opaque, uint64_t off, const void *data, unsigned size);
int sysctl_acpi_read(void *opaque, uint64_t off, void *data, unsigned size);
int sysctl_acpi_write(void *opaque, uint64_t off, const void *data, unsigned size);
const char *sysctl_event_name(enum sysctl_event ev);

#endif
