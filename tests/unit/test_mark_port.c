/* The guest's mark channel (devices/mark_port.h): texts end at NUL or '\n', an over-long one
 * is dropped whole, empty ones are nothing, the port decodes wide OUTs byte by byte, and a
 * read gives the count. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "devices/mark_port.h"

struct got {
	int n;
	char last[MARK_PORT_MAX + 1];
};

static void on_mark(void *ctx, const char *text)
{
	struct got *g = ctx;
	g->n++;
	snprintf(g->last, sizeof(g->last), "%s", text);
}

static void send(struct mark_port *m, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		mark_port_byte(m, (uint8_t)s[i]);
}

static void test_texts(void **state)
{
	(void)state;
	struct got g = { 0 };
	struct mark_port m;
	mark_port_init(&m, on_mark, &g);
	send(&m, "fsync done\n", 11);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.last, "fsync done");
	send(&m, "gen 7", 6); /* with its NUL */
	assert_int_equal(g.n, 2);
	assert_string_equal(g.last, "gen 7");
	send(&m, "\n\n", 2);   /* empty: nothing */
	assert_int_equal(g.n, 2);
	char big[MARK_PORT_MAX + 2];
	memset(big, 'x', sizeof(big));
	send(&m, big, MARK_PORT_MAX); /* exactly the most: taken */
	send(&m, "\n", 1);
	assert_int_equal(g.n, 3);
	assert_int_equal(strlen(g.last), MARK_PORT_MAX);
	send(&m, big, sizeof(big));    /* one too many: dropped whole */
	send(&m, "\n", 1);
	assert_int_equal(g.n, 3);
	assert_int_equal(m.dropped, 1);
	send(&m, "after\n", 6);       /* and the next one is clean */
	assert_string_equal(g.last, "after");
	assert_int_equal(m.marks, 4);
	mark_port_destroy(&m);
}

static void test_port(void **state)
{
	(void)state;
	struct got g = { 0 };
	struct mark_port m;
	struct bus pio;
	bus_init(&pio, "pio");
	mark_port_init(&m, on_mark, &g);
	assert_int_equal(mark_port_register(&m, &pio), 0);
	uint32_t w = 'a' | 'b' << 8 | 'c' << 16; /* an outl of "abc\0" */
	bus_write(&pio, MARK_PORT, &w, 4);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.last, "abc");
	uint8_t c = 0xee;
	bus_read(&pio, MARK_PORT, &c, 1);
	assert_int_equal(c, 1);
	mark_port_destroy(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_texts),
		cmocka_unit_test(test_port),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
