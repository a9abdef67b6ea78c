/* The one place devices are created and put on the buses (kvmtool keeps this in one place
 * too). Transport (PCI) and device models live in their own files. */
#include "devices/registry.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/debug_exit.h"
#include "devices/serial.h"

static void on_serial_output(void *ctx, size_t bytes)
{
	vm_note_output(ctx, bytes);
}

static void on_debug_exit(void *ctx, uint32_t value)
{
	vm_request_stop(ctx, value > 255 ? 255 : (int)value, "guest wrote %u to the debug-exit port",
			value);
}

int devices_setup(struct vm *vm, char *err, size_t errlen)
{
	vm->serial = calloc(1, sizeof(*vm->serial));
	struct debug_exit *dx = calloc(1, sizeof(*dx));
	if (!vm->serial || !dx) {
		free(dx);
		snprintf(err, errlen, "devices: out of memory");
		return -1;
	}
	vm->debug_exit = dx;
	if (serial_init(vm->serial, vm->cfg->serial, err, errlen))
		return -1;
	vm->serial->on_output = on_serial_output;
	vm->serial->ctx = vm;
	dx->on_exit = on_debug_exit;
	dx->ctx = vm;
	if (serial_register(vm->serial, &vm->pio) || debug_exit_register(dx, &vm->pio)) {
		snprintf(err, errlen, "device registration: port range conflict");
		return -1;
	}
	return 0;
}

