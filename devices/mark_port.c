/* The guest's mark channel: see mark_port.h. */
#include "devices/mark_port.h"

#include <stdio.h>
#include <string.h>

void mark_port_init(struct mark_port *m, void (*on_mark)(void *ctx, const char *text),
		    void *ctx)
{
	memset(m, 0, sizeof(*m));
	pthread_mutex_init(&m->lock, NULL);
	m->on_mark = on_mark;
	m->ctx = ctx;
}

void mark_port_destroy(struct mark_port *m)
{
	pthread_mutex_destroy(&m->lock);
}

void mark_port_byte(struct mark_port *m, uint8_t b)
{
	char text[MARK_PORT_MAX + 1];
	bool deliver = false, drop = false;
	pthread_mutex_lock(&m->lock);
	if (b == 0 || b == '\n') {
		if (m->overflow || m->len == 0) {
			drop = m->overflow || m->len;
			m->dropped += drop;
		} else {
			memcpy(text, m->buf, m->len);
			text[m->len] = 0;
			deliver = true;
			m->marks++;
		}
		m->len = 0;
		m->overflow = false;
	} else if (m->len == MARK_PORT_MAX) {
		m->overflow = true;
	} else {
		m->buf[m->len++] = (char)b;
	}
	pthread_mutex_unlock(&m->lock);
	if (drop)
		fprintf(stderr, "cvmm: mark port: a guest mark longer than %d bytes dropped\n",
			MARK_PORT_MAX);
	/* Outside the lock: on_mark appends to logs (and may cut the power). */
	if (deliver && m->on_mark)
		m->on_mark(m->ctx, text);
}

static int mark_write(void *opaque, uint64_t off, const void *data, unsigned size)
{
	const uint8_t *p = data;
	if (off != 0)
		return 0;
	for (unsigned i = 0; i < size; i++) /* a wider OUT: its bytes in order */
		mark_port_byte(opaque, p[i]);
	return 0;
}

static int mark_read(void *opaque, uint64_t off, void *data, unsigned size)
{
	struct mark_port *m = opaque;
	memset(data, 0, size);
	pthread_mutex_lock(&m->lock);
	((uint8_t *)data)[0] = (uint8_t)m->marks;
	pthread_mutex_unlock(&m->lock);
	return 0;
}

int mark_port_register(struct mark_port *m, struct bus *pio)
{
	return bus_register(pio, "mark", MARK_PORT, 4, mark_read, mark_write, m);
}
