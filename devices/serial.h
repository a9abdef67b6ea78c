/* 8250/16550 UART at COM1 (0x3f8): transmit only, to stdout or a file.
 * Output is buffered per line so a guest line costs one write(2), and flushed at exit; a byte
 * budget (serial_set_limit) bounds what a guest can write to a file.
 * Interrupts: the transmitter-empty (THRE) interrupt, which Linux's 8250 driver needs to move
 * tty output once past its polled console, raises ISA IRQ 4 through set_irq (the line goes low
 * and high again on every THR write, so an edge-triggered IOAPIC pin sees each one). The
 * interrupt is cleared by reading IIR and re-armed by the next THR write or by enabling
 * IER.THRI (as a 16550 does, and as QEMU models it). */
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
	bool thr_ipending;  /* THRE interrupt pending (until IIR is read) */
	bool irq_level;     /* what set_irq was last told */
	void (*set_irq)(void *irq_ctx, bool level); /* NULL: no interrupt line wired */
	void *irq_ctx;
	uint64_t irqs;      /* rising edges raised, for tests and statistics */
	/* The output budget (issue 14): at most `limit` guest bytes reach out_fd (0: no limit),
	 * then one line saying the output was cut, then nothing. */
	uint64_t limit;
	uint64_t written;   /* guest bytes written to out_fd */
	uint64_t dropped;   /* guest bytes dropped past the limit */
	bool cut;           /* the cut line has been written */
};

/* dest: "stdio" or a file path (created/truncated). Returns 0 or -1 with err set. */
int serial_init(struct serial *s, const char *dest, char *err, size_t errlen);
/* Byte budget for the output (0 = none, the default after serial_init). */
void serial_set_limit(struct serial *s, uint64_t limit);
int serial_register(struct serial *s, struct bus *pio);
void serial_flush(struct serial *s);
void serial_destroy(struct serial *s);
/* Bus callbacks, exposed for unit tests. */
int serial_read(void *opaque, uint64_t off, void *data, unsigned size);
int serial_write(void *opaque, uint64_t off, const void *data, unsigned size);

#endif
