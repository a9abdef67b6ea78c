/* Debug-exit port (QEMU's isa-debug-exit convention, port 0xf4, 4 bytes wide): a guest write of
 * value V ends the VM. cvmm exits with V (capped at 255); QEMU would exit with (V << 1) | 1.
 * The bundled guest writes 0 = all passed, 1 = a test failed, 2 = crash or bad command line. */
#ifndef CVMM_DEBUG_EXIT_H
#define CVMM_DEBUG_EXIT_H

#include <stdint.h>

#include "devices/bus.h"

#define DEBUG_EXIT_PORT 0xf4

struct debug_exit {
	void (*on_exit)(void *ctx, uint32_t value);
	void *ctx;
};

int debug_exit_register(struct debug_exit *d, struct bus *pio);

#endif
