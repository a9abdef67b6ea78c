/* 8250 console: line-buffered output to a file, registers a driver probes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "devices/serial.h"

static void out(struct bus *b, uint64_t port, uint8_t v)
{
	assert_true(bus_write(b, port, &v, 1));
}

static uint8_t in(struct bus *b, uint64_t port)
{
	uint8_t v;
	assert_true(bus_read(b, port, &v, 1));
	return v;
}

static void test_output_reaches_file_by_line(void **state)
{
	char path[] = "/tmp/cvmm-serial-XXXXXX";
	int fd = mkstemp(path);
	close(fd);
	struct serial s;
	struct bus b;
	char err[128];
	bus_init(&b, "pio");
	assert_int_equal(serial_init(&s, path, err, sizeof(err)), 0);
	assert_int_equal(serial_register(&s, &b), 0);
	const char *msg = "hi\npartial";
	for (const char *p = msg; *p; p++)
		out(&b, 0x3f8, (uint8_t)*p);
	char buf[64] = "";
	FILE *f = fopen(path, "r");
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	assert_string_equal(buf, "hi\n"); /* a whole line is written, the rest waits */
	serial_destroy(&s);               /* ...and is flushed at exit */
	f = fopen(path, "r");
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	assert_string_equal(buf, msg);
	unlink(path);
}

static void test_registers(void **state)
{
	char path[] = "/tmp/cvmm-serial-XXXXXX";
	int fd = mkstemp(path);
	close(fd);
	struct serial s;
	struct bus b;
	char err[128];
	bus_init(&b, "pio");
	serial_init(&s, path, err, sizeof(err));
	serial_register(&s, &b);
	assert_int_equal(in(&b, 0x3fd) & 0x60, 0x60); /* LSR: THR empty, transmitter idle */
	out(&b, 0x3ff, 0x5a);
	assert_int_equal(in(&b, 0x3ff), 0x5a);       /* scratch register: UART present */
	out(&b, 0x3fb, 0x83);                        /* DLAB on */
	out(&b, 0x3f8, 0x01);                        /* divisor low, not output */
	out(&b, 0x3fb, 0x03);
	assert_int_equal(s.bytes, 0);
	assert_int_equal(s.dll, 1);
	uint32_t wide = 0x41414141;
	assert_false(bus_write(&b, 0x3f8, &wide, 4)); /* only byte access */
	serial_destroy(&s);
	unlink(path);
}

static size_t slurp(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	size_t n = fread(buf, 1, len - 1, f);
	fclose(f);
	buf[n] = 0;
	return n;
}

/* Issue 14 defect 3: a guest looping on THR must not fill the host's filesystem. Output stops
 * at the budget (mid-line too), one line says it was cut, and nothing more is written. */
static void test_output_budget(void **state)
{
	char path[] = "/tmp/cvmm-serial-XXXXXX";
	int fd = mkstemp(path);
	close(fd);
	struct serial s;
	struct bus b;
	char err[128];
	bus_init(&b, "pio");
	assert_int_equal(serial_init(&s, path, err, sizeof(err)), 0);
	assert_int_equal(s.limit, 0); /* the device alone: no budget until cvmm sets one */
	serial_set_limit(&s, 10);
	assert_int_equal(serial_register(&s, &b), 0);
	const char *msg = "abcdef\nghijklmnop\nqrstuv\n";
	for (int round = 0; round < 3; round++)
		for (const char *p = msg; *p; p++)
			out(&b, 0x3f8, (uint8_t)*p);
	char buf[4096];
	slurp(path, buf, sizeof(buf));
	const char *cut = strstr(buf, "cvmm: serial output cut");
	assert_non_null(cut);
	assert_null(strstr(cut + 1, "cvmm: serial output cut")); /* once */
	assert_memory_equal(buf, "abcdef\nghi\n", 11);          /* 10 bytes, then a newline */
	assert_non_null(strstr(buf, "serial_limit"));
	assert_int_equal(s.bytes, 3 * strlen(msg));              /* all counted... */
	assert_int_equal(s.dropped, 3 * strlen(msg) - 10);        /* ...and what was dropped */
	size_t before = strlen(buf);
	for (int i = 0; i < 5000; i++)
		out(&b, 0x3f8, 'x');
	out(&b, 0x3f8, '\n');
	serial_destroy(&s);
	assert_int_equal(slurp(path, buf, sizeof(buf)), before); /* nothing after the cut line */
	unlink(path);

	/* 0: no budget. */
	fd = mkstemp(strcpy(path, "/tmp/cvmm-serial-XXXXXX"));
	close(fd);
	assert_int_equal(serial_init(&s, path, err, sizeof(err)), 0);
	serial_set_limit(&s, 0);
	for (int i = 0; i < 3000; i++)
		serial_write(&s, 0, "y", 1);
	serial_destroy(&s);
	assert_int_equal(slurp(path, buf, sizeof(buf)), 3000);
	unlink(path);
}

static void test_bad_destination(void **state)
{
	struct serial s;
	char err[256];
	assert_int_equal(serial_init(&s, "/nonexistent-dir/x.log", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "/nonexistent-dir/x.log"));
	serial_destroy(&s); /* must not close fd 0 or crash */
	assert_int_not_equal(fcntl(0, F_GETFD), -1); /* stdin still open */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_output_reaches_file_by_line),
		cmocka_unit_test(test_registers),
		cmocka_unit_test(test_bad_destination),
		cmocka_unit_test(test_output_budget),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
