#include "devices/serial.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lib/file.h"

#define LCR_DLAB 0x80
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define IER_THRI 0x02
#define IIR_NO_INT 0x01
#define IIR_THRI 0x02
#define IIR_FIFO 0xc0

int serial_init(struct serial *s, const char *dest, char *err, size_t errlen)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	s->lcr = 0x03;
	s->own_fd = -1;
	if (!dest[0] || !strcmp(dest, "stdio")) {
		s->out_fd = STDOUT_FILENO;
		return 0;
	}
	/* 0600, and never through a symbolic link (lib/file.h): cvmm often runs as root. */
	s->out_fd = file_create(dest, "serial", err, errlen);
	if (s->out_fd < 0)
		return -1;
	s->own_fd = s->out_fd;
	return 0;
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* console gone: the guest must not stall on it */
		p += w;
		n -= (size_t)w;
	}
}

static void flush_locked(struct serial *s)
{
	if (!s->len)
		return;
	size_t n = s->len;
	if (s->limit) {
		uint64_t room = s->written < s->limit ? s->limit - s->written : 0;
		if (n > room)
			n = (size_t)room;
	}
	write_all(s->out_fd, s->line, n);
	s->written += n;
	if (n < s->len) {
		s->dropped += s->len - n;
		if (!s->cut) {
			char msg[200];
			int m = snprintf(msg, sizeof(msg),
					 "%s[cvmm: serial output cut here: serial_limit of %llu bytes "
					 "reached; the rest of the guest's output is dropped]\n",
					 n && s->line[n - 1] == '\n' ? "" : "\n",
					 (unsigned long long)s->limit);
			write_all(s->out_fd, msg, (size_t)m);
			s->cut = true;
		}
	}
	s->len = 0;
}

void serial_set_limit(struct serial *s, uint64_t limit)
{
	pthread_mutex_lock(&s->lock);
	s->limit = limit;
	pthread_mutex_unlock(&s->lock);
}

void serial_flush(struct serial *s)
{
	pthread_mutex_lock(&s->lock);
	flush_locked(s);
	pthread_mutex_unlock(&s->lock);
}

static void put_char(struct serial *s, uint8_t c)
{
	s->bytes++;
	if (s->cut) { /* past the budget: counted, not buffered */
		s->dropped++;
		return;
	}
	s->line[s->len++] = (char)c;
	if (c == '\n' || s->len == sizeof(s->line))
		flush_locked(s);
}

/* Only the THRE source exists (no input, no line or modem status changes). */
static uint8_t iir_locked(const struct serial *s)
{
	return (s->ier & IER_THRI) && s->thr_ipending ? IIR_THRI : IIR_NO_INT;
}

static void update_irq_locked(struct serial *s)
{
	bool level = !(iir_locked(s) & IIR_NO_INT);
	if (level == s->irq_level)
		return;
	s->irq_level = level;
	if (level)
		s->irqs++;
	if (s->set_irq)
		s->set_irq(s->irq_ctx, level);
}

int serial_write(void *opaque, uint64_t off, const void *data, unsigned size)
{
	struct serial *s = opaque;
	uint8_t v = *(const uint8_t *)data;
	if (size != 1)
		return -1;
	pthread_mutex_lock(&s->lock);
	bool dlab = s->lcr & LCR_DLAB;
	switch (off) {
	case 0:
		if (dlab) {
			s->dll = v;
		} else {
			/* THR: the transmitter is busy for an instant (the line drops), then empty
			 * again (it rises): one edge per character. */
			s->thr_ipending = false;
			update_irq_locked(s);
			put_char(s, v);
			if (s->on_output)
				s->on_output(s->ctx, 1);
			s->thr_ipending = true;
			update_irq_locked(s);
		}
		break;
	case 1:
		if (dlab) {
			s->dlm = v;
		} else {
			uint8_t changed = (uint8_t)((s->ier ^ v) & 0x0f);
			s->ier = v & 0x0f;
			/* Enabling THRI while the transmitter is empty raises the interrupt again,
			 * even if an IIR read had cleared it (Linux's startup probe relies on it). */
			if (!(s->ier & IER_THRI))
				s->thr_ipending = false;
			else if (changed & IER_THRI)
				s->thr_ipending = true;
			update_irq_locked(s);
		}
		break;
	case 2: break; /* FCR: FIFOs are always "enabled" and never fill */
	case 3: s->lcr = v; break;
	case 4: s->mcr = v & 0x1f; break;
	case 7: s->scr = v; break;
	default: break; /* LSR/MSR are read-only */
	}
	pthread_mutex_unlock(&s->lock);
	return 0;
}

int serial_read(void *opaque, uint64_t off, void *data, unsigned size)
{
	struct serial *s = opaque;
	uint8_t v = 0;
	if (size != 1)
		return -1;
	pthread_mutex_lock(&s->lock);
	bool dlab = s->lcr & LCR_DLAB;
	switch (off) {
	case 0: v = dlab ? s->dll : 0; break;      /* no input: RBR reads 0 */
	case 1: v = dlab ? s->dlm : s->ier; break;
	case 2:                                    /* IIR: FIFOs enabled; reading clears THRE */
		v = IIR_FIFO | iir_locked(s);
		if ((v & 0x0f) == IIR_THRI) {
			s->thr_ipending = false;
			update_irq_locked(s);
		}
		break;
	case 3: v = s->lcr; break;
	case 4: v = s->mcr; break;
	case 5: v = LSR_THRE | LSR_TEMT; break;    /* transmitter always ready */
	case 6: /* MSR: DCD DSR CTS; in loopback, CTS=RTS DSR=DTR RI=OUT1 DCD=OUT2 */
		if (s->mcr & 0x10)
			v = (uint8_t)((s->mcr & 0x02) << 3 | (s->mcr & 0x01) << 5 |
				      (s->mcr & 0x04) << 4 | (s->mcr & 0x08) << 4);
		else
			v = 0xb0;
		break;
	case 7: v = s->scr; break;
	}
	pthread_mutex_unlock(&s->lock);
	*(uint8_t *)data = v;
	return 0;
}

int serial_register(struct serial *s, struct bus *pio)
{
	return bus_register(pio, "serial0", SERIAL_COM1_BASE, 8, serial_read, serial_write, s);
}

void serial_destroy(struct serial *s)
{
	serial_flush(s);
	if (s->own_fd >= 0)
		close(s->own_fd);
	pthread_mutex_destroy(&s->lock);
}
