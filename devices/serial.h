/* 8250/16550 UART at COM1 (0x3f8): transmit only, to stdout or a file.
 * Output is buffered per line so a guest line costs one write(2), and flushed at exit. */
#ifndef CVMM_SERIAL_H
#define CVMM_SERIAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/bus.h"

#define SERIAL_COM1_BASE 0x3f8

struct serial {
	pthread_mutex_t lock;
	int out_fd;
	int own_fd;     /* close at destroy */
	uint8_t ier, lcr, mcr, scr, dll, dlm;
	char line[1024];
	size_t len;
	uint64_t bytes;
	void (*on_output)(void *ctx, size_t bytes); /* first-output timing */
	void *ctx;
};

/* dest: "stdio" or a file path (created/truncated). Returns 0 or -1 with err set. */
int serial_init(struct serial *s, const char *dest, char *err, size_t errlen);
int serial_register(struct serial *s, struct bus *pio);
void serial_flush(struct serial *s);
void serial_destroy(struct serial *s);
/* Bus callbacks, exposed for unit tests. */
int serial_read(void *opaque, uint64_t off, void *data, unsigned size);
int serial_write(void *opaque, uint64_t off, const void *data, unsigned size);

#endif
