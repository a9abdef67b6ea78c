/* The guest's channel for write-log marks (issue 16: "marks ... by the guest"): the guest
 * writes a mark's text to I/O port MARK_PORT, one byte per OUT (an `outb` loop or `rep
 * outsb`; a wider OUT gives its bytes in order; the port is 4 wide), and a NUL or '\n' byte
 * ends it: the text is handed to on_mark (cvmm: a MARK entry
 * in every write log, and the [vm] power_cut = at-mark:NAME trigger). A port rather than a
 * virtio request: any guest code can reach it (the bundled guest, a Linux process after
 * ioperm(2)), with nothing to negotiate, and under QEMU it is an unclaimed port (ignored).
 * Bytes from one mark must come from one writer at a time (the guest serializes; bytes of
 * two vCPUs interleaved make one garbled mark, never a crash). A text longer than
 * MARK_PORT_MAX is dropped whole (counted, one line), so is an empty one. Reading the port
 * gives the number of marks taken so far (low byte), so a guest can tell cvmm from a VMM
 * without it. */
#ifndef CVMM_MARK_PORT_H
#define CVMM_MARK_PORT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/bus.h"

#define MARK_PORT     0x5cc
#define MARK_PORT_MAX 479   /* = BLK_LOG_MARK_MAX: what a log entry's sector holds */

struct mark_port {
	pthread_mutex_t lock;
	char buf[MARK_PORT_MAX + 1];
	size_t len;
	bool overflow;          /* the current text went past MARK_PORT_MAX: drop it at its end */
	uint64_t marks, dropped;
	void (*on_mark)(void *ctx, const char *text); /* called without the lock held */
	void *ctx;
};

void mark_port_init(struct mark_port *m, void (*on_mark)(void *ctx, const char *text),
		    void *ctx);
void mark_port_destroy(struct mark_port *m);
int mark_port_register(struct mark_port *m, struct bus *pio);
/* One byte from the guest (what the port's write handler does; tests call it directly). */
void mark_port_byte(struct mark_port *m, uint8_t b);

#endif
