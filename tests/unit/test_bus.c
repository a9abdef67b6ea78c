/* bus: registration, dispatch with device-relative offsets, and the empty-slot behaviour. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "devices/bus.h"

/* A fake device that records its last access and answers reads with a pattern. */
struct fake_dev {
	int reads, writes;
	uint64_t last_off;
	unsigned last_size;
	uint64_t last_wval;
	uint8_t fill;
	int rc;          /* what the callbacks return */
};

static int fake_read(void *opaque, uint64_t off, void *data, unsigned size)
{
	struct fake_dev *d = opaque;

	d->reads++;
	d->last_off = off;
	d->last_size = size;
	memset(data, d->fill, size);
	return d->rc;
}

static int fake_write(void *opaque, uint64_t off, const void *data, unsigned size)
{
	struct fake_dev *d = opaque;

	d->writes++;
	d->last_off = off;
	d->last_size = size;
	d->last_wval = 0;
	memcpy(&d->last_wval, data, size);
	return d->rc;
}

static void test_register_and_overlap(void **state)
{
	struct bus b;
	struct fake_dev a = { 0 }, c = { 0 };

	(void)state;
	bus_init(&b, "pio");
	assert_string_equal(b.name, "pio");
	assert_int_equal(bus_register(&b, "a", 0x3f8, 8, fake_read, fake_write, &a), 0);
	/* same range, partial overlaps on both ends, containing, contained */
	assert_int_equal(bus_register(&b, "c", 0x3f8, 8, fake_read, fake_write, &c), -1);
	assert_int_equal(bus_register(&b, "c", 0x3f0, 9, fake_read, fake_write, &c), -1);
	assert_int_equal(bus_register(&b, "c", 0x3ff, 4, fake_read, fake_write, &c), -1);
	assert_int_equal(bus_register(&b, "c", 0x300, 0x200, fake_read, fake_write, &c), -1);
	assert_int_equal(bus_register(&b, "c", 0x3fa, 1, fake_read, fake_write, &c), -1);
	/* zero length and wrapping ranges */
	assert_int_equal(bus_register(&b, "c", 0x1000, 0, fake_read, fake_write, &c), -1);
	assert_int_equal(bus_register(&b, "c", UINT64_MAX - 3, 8, fake_read, fake_write, &c), -1);
	assert_int_equal(b.n, 1);
	/* exactly adjacent on both sides is fine */
	assert_int_equal(bus_register(&b, "lo", 0x3f0, 8, fake_read, fake_write, &c), 0);
	assert_int_equal(bus_register(&b, "hi", 0x400, 8, fake_read, fake_write, &c), 0);
	assert_int_equal(b.n, 3);
}

static void test_full(void **state)
{
	struct bus b;
	struct fake_dev d = { 0 };

	(void)state;
	bus_init(&b, "mmio");
	for (int i = 0; i < BUS_MAX_DEVS; i++)
		assert_int_equal(bus_register(&b, "d", (uint64_t)i * 16, 16, fake_read, fake_write,
					      &d), 0);
	assert_int_equal(bus_register(&b, "d", 0x100000, 16, fake_read, fake_write, &d), -1);
	assert_int_equal(b.n, BUS_MAX_DEVS);
}

static void test_dispatch(void **state)
{
	struct bus b;
	struct fake_dev uart = { .fill = 0x11 }, rtc = { .fill = 0x22 };
	uint32_t v = 0;
	uint8_t byte = 0;

	(void)state;
	bus_init(&b, "pio");
	assert_int_equal(bus_register(&b, "uart", 0x3f8, 8, fake_read, fake_write, &uart), 0);
	assert_int_equal(bus_register(&b, "rtc", 0x70, 2, fake_read, fake_write, &rtc), 0);

	assert_true(bus_read(&b, 0x3fd, &byte, 1));
	assert_int_equal(byte, 0x11);
	assert_int_equal(uart.reads, 1);
	assert_int_equal(uart.last_off, 5);
	assert_int_equal(uart.last_size, 1);
	assert_int_equal(rtc.reads, 0);

	assert_true(bus_read(&b, 0x70, &v, 2));
	assert_int_equal(v & 0xffff, 0x2222);
	assert_int_equal(rtc.last_off, 0);
	assert_int_equal(rtc.last_size, 2);

	v = 0xa5;
	assert_true(bus_write(&b, 0x71, &v, 1));
	assert_int_equal(rtc.writes, 1);
	assert_int_equal(rtc.last_off, 1);
	assert_int_equal(rtc.last_wval, 0xa5);
	assert_int_equal(uart.writes, 0);

	/* a 4-byte access ending exactly at the device end is claimed */
	v = 0xdeadbeef;
	assert_true(bus_write(&b, 0x3fc, &v, 4));
	assert_int_equal(uart.last_off, 4);
	assert_int_equal(uart.last_wval, 0xdeadbeef);
	assert_int_equal(b.unclaimed, 0);
	assert_ptr_equal(bus_find(&b, 0x3ff, 1)->opaque, &uart);
	assert_string_equal(bus_find(&b, 0x71, 1)->name, "rtc");
}

static void test_unclaimed(void **state)
{
	struct bus b;
	struct fake_dev d = { .fill = 0 };
	uint64_t v = 0;

	(void)state;
	bus_init(&b, "pio");
	assert_int_equal(bus_register(&b, "d", 0x80, 1, fake_read, fake_write, &d), 0);

	assert_false(bus_read(&b, 0x81, &v, 8));
	assert_int_equal(v, UINT64_MAX);
	v = 0;
	assert_false(bus_read(&b, 0x7f, &v, 1));
	assert_int_equal(v, 0xff);	/* only `size` bytes are filled */
	assert_false(bus_write(&b, 0x1234, &v, 4));
	assert_int_equal(b.unclaimed, 3);
	assert_int_equal(d.reads + d.writes, 0);
	assert_null(bus_find(&b, 0x81, 1));
}

static void test_device_refuses(void **state)
{
	struct bus b;
	struct fake_dev d = { .fill = 0x42, .rc = -1 };
	uint16_t v = 0;

	(void)state;
	bus_init(&b, "pio");
	assert_int_equal(bus_register(&b, "d", 0x10, 4, fake_read, fake_write, &d), 0);
	/* a device that declines the access makes it look unclaimed: all ones, counted */
	assert_false(bus_read(&b, 0x10, &v, 2));
	assert_int_equal(v, 0xffff);
	assert_false(bus_write(&b, 0x10, &v, 2));
	assert_int_equal(d.reads, 1);
	assert_int_equal(d.writes, 1);
	assert_int_equal(b.unclaimed, 2);

	/* a read-only device (no write callback) drops writes */
	assert_int_equal(bus_register(&b, "ro", 0x20, 4, fake_read, NULL, &d), 0);
	assert_false(bus_write(&b, 0x20, &v, 2));
	assert_int_equal(b.unclaimed, 3);
}

static void test_straddling_not_claimed(void **state)
{
	struct bus b;
	struct fake_dev d = { .fill = 0x33 }, e = { .fill = 0x44 };
	uint32_t v = 0;

	(void)state;
	bus_init(&b, "mmio");
	assert_int_equal(bus_register(&b, "d", 0x1000, 8, fake_read, fake_write, &d), 0);
	assert_int_equal(bus_register(&b, "e", 0x1008, 8, fake_read, fake_write, &e), 0);
	/* crossing from d into e: neither device may see it */
	assert_false(bus_read(&b, 0x1006, &v, 4));
	assert_int_equal(v, 0xffffffff);
	/* starting just before d */
	assert_false(bus_write(&b, 0xffe, &v, 4));
	/* running past e's end */
	assert_false(bus_read(&b, 0x100f, &v, 2));
	assert_null(bus_find(&b, 0x1007, 2));
	assert_int_equal(d.reads + d.writes + e.reads + e.writes, 0);
	assert_int_equal(b.unclaimed, 3);

	/* a device at the very top of the address space; an access there must not wrap */
	assert_int_equal(bus_register(&b, "top", UINT64_MAX - 7, 7, fake_read, fake_write, &d), 0);
	assert_false(bus_read(&b, UINT64_MAX - 1, &v, 4));
	assert_true(bus_read(&b, UINT64_MAX - 3, &v, 2));
	assert_int_equal(d.last_off, 4);
}

static void test_move(void **state)
{
	struct bus b;
	struct fake_dev bar = { .fill = 0x55 }, other = { .fill = 0x66 };
	uint8_t v;

	(void)state;
	bus_init(&b, "mmio");
	assert_int_equal(bus_register(&b, "bar", 0xe0000000, 0x1000, fake_read, fake_write, &bar),
			 0);
	assert_int_equal(bus_register(&b, "other", 0xe0001000, 0x1000, fake_read, fake_write,
				      &other), 0);

	/* onto the other device, partially onto it, off the top, unknown device/base: refused */
	assert_int_equal(bus_move(&b, &bar, 0xe0000000, 0xe0001000), -1);
	assert_int_equal(bus_move(&b, &bar, 0xe0000000, 0xe0000800), -1);
	assert_int_equal(bus_move(&b, &bar, 0xe0000000, UINT64_MAX - 0x10), -1);
	assert_int_equal(bus_move(&b, &bar, 0xdead0000, 0xf0000000), -1);
	assert_int_equal(bus_move(&b, &b, 0xe0000000, 0xf0000000), -1);
	v = 0;
	assert_true(bus_read(&b, 0xe0000010, &v, 1));
	assert_int_equal(v, 0x55);

	/* a real move: the old range is empty, the new one dispatches with new offsets */
	assert_int_equal(bus_move(&b, &bar, 0xe0000000, 0xf0000000), 0);
	assert_false(bus_read(&b, 0xe0000010, &v, 1));
	assert_int_equal(v, 0xff);
	assert_true(bus_read(&b, 0xf0000ff0, &v, 1));
	assert_int_equal(v, 0x55);
	assert_int_equal(bar.last_off, 0xff0);
	/* moving over its own old range (a partial shift) is not an overlap with itself */
	assert_int_equal(bus_move(&b, &bar, 0xf0000000, 0xf0000800), 0);
	assert_true(bus_read(&b, 0xf0000800, &v, 1));
	assert_int_equal(bar.last_off, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_register_and_overlap),
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_dispatch),
		cmocka_unit_test(test_unclaimed),
		cmocka_unit_test(test_device_refuses),
		cmocka_unit_test(test_straddling_not_claimed),
		cmocka_unit_test(test_move),
	};

	return cmocka_run_group_tests_name("bus", tests, NULL, NULL);
}
