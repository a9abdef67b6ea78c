/* Reset and power-off ports. See sysctl.h. */
#include "devices/sysctl.h"

#include <string.h>


#define KBD_PORT 0x64
#define KBD_CMD_RESET 0xfe

static void fire(struct sysctl *s, enum sysctl_event ev)
{
	if (s->on_event)
		s->on_event(s->ctx, ev);
}

int sysctl_kbd_read(void *opaque, uint64_t off, void *data, unsigned size)
{
	memset(data, 0, size);
	return 0;
}

int sysctl_kbd_write(void *opaque, uint64_t off, const void *data, unsigned size)
{
	if (size == 1 && *(const uint8_t *)data == KBD_CMD_RESET)
		fire(opaque, SYSCTL_RESET_KBD);
	return 0;
}

int sysctl_acpi_read(void *opaque, uint64_t off, void *data, unsigned size)
{
	memset(data, 0, size);
	return 0;
}

int sysctl_acpi_write(void *opaque, uint64_t off, const void *data, unsigned size)
{
	uint8_t v = *(const uint8_t *)data;
	if (off != 0 || size != 1)
		return 0;
	if (v & ACPI_SLP_EN) {
		if (((v >> 2) & 7) == ACPI_S5_TYP)
			fire(opaque, SYSCTL_POWEROFF);
		return 0; /* other sleep states: not supported, the write is ignored */
	}
	if (v == ACPI_RESET_VALUE)
		fire(opaque, SYSCTL_RESET_ACPI);
	return 0;
}

const char *sysctl_event_name(enum sysctl_event ev)
{
	switch (ev) {
	case SYSCTL_RESET_KBD: return "guest reset the machine through the keyboard controller "
				      "(port 0x64 <- 0xfe)";
	case SYSCTL_RESET_ACPI: return "guest reset the machine through the ACPI reset register "
				       "(port 0x600)";
	case SYSCTL_POWEROFF: return "guest powered off (ACPI S5)";
	}
	return "?";
}

int sysctl_register(struct sysctl *s, struct bus *pio)
{
	if (bus_register(pio, "i8042-reset", KBD_PORT, 1, sysctl_kbd_read, sysctl_kbd_write, s))
		return -1;
	return bus_register(pio, "acpi-ctl", ACPI_PORT_CTL, 2, sysctl_acpi_read, sysctl_acpi_write,
			    s);
}
