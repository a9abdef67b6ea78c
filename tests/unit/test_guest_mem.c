/* guest_mem: the one gate between guest-supplied addresses and host pointers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "lib/guest_mem.h"

#define RAM_GPA 0x100000ull
#define RAM_SIZE 0x10000ull

struct fixture {
	struct guest_mem m;
	uint8_t ram[RAM_SIZE];
	uint8_t hi[0x1000];
};

static int setup(void **state)
{
	struct fixture *f = test_calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(guest_mem_add(&f->m, RAM_GPA, RAM_SIZE, f->ram), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	test_free(*state);
	return 0;
}

static void test_inside(void **state)
{
	struct fixture *f = *state;

	assert_ptr_equal(guest_mem_ptr(&f->m, RAM_GPA, 1), f->ram);
	assert_ptr_equal(guest_mem_ptr(&f->m, RAM_GPA + 0x123, 8), f->ram + 0x123);
	/* the whole region, and the very last byte */
	assert_ptr_equal(guest_mem_ptr(&f->m, RAM_GPA, RAM_SIZE), f->ram);
	assert_ptr_equal(guest_mem_ptr(&f->m, RAM_GPA + RAM_SIZE - 1, 1), f->ram + RAM_SIZE - 1);
	assert_ptr_equal(guest_mem_ptr(&f->m, RAM_GPA + RAM_SIZE - 8, 8), f->ram + RAM_SIZE - 8);
}

static void test_outside(void **state)
{
	struct fixture *f = *state;

	assert_null(guest_mem_ptr(&f->m, 0, 1));
	assert_null(guest_mem_ptr(&f->m, RAM_GPA - 1, 1));
	assert_null(guest_mem_ptr(&f->m, RAM_GPA + RAM_SIZE, 1));
	assert_null(guest_mem_ptr(&f->m, UINT64_MAX, 1));
}

static void test_straddling(void **state)
{
	struct fixture *f = *state;

	/* starts before, ends inside */
	assert_null(guest_mem_ptr(&f->m, RAM_GPA - 1, 2));
	/* starts inside, ends one past the end */
	assert_null(guest_mem_ptr(&f->m, RAM_GPA + RAM_SIZE - 8, 9));
	assert_null(guest_mem_ptr(&f->m, RAM_GPA, RAM_SIZE + 1));
	/* covers the region and more on both sides */
	assert_null(guest_mem_ptr(&f->m, RAM_GPA - 1, RAM_SIZE + 2));
}

static void test_overflowing(void **state)
{
	struct fixture *f = *state;

	/* gpa + len wraps to a small number: a naive "gpa + len <= end" check would pass */
	assert_null(guest_mem_ptr(&f->m, RAM_GPA + 0x10, UINT64_MAX));
	assert_null(guest_mem_ptr(&f->m, RAM_GPA + 0x10, UINT64_MAX - 0x10 + 1));
	assert_null(guest_mem_ptr(&f->m, UINT64_MAX - 1, 4));
	assert_null(guest_mem_ptr(&f->m, RAM_GPA, 1ull << 63));
}

static void test_len_zero(void **state)
{
	struct fixture *f = *state;

	/* len 0 still requires the address itself to be valid */
	assert_ptr_equal(guest_mem_ptr(&f->m, RAM_GPA + 5, 0), f->ram + 5);
	assert_ptr_equal(guest_mem_ptr(&f->m, RAM_GPA + RAM_SIZE - 1, 0), f->ram + RAM_SIZE - 1);
	assert_null(guest_mem_ptr(&f->m, RAM_GPA + RAM_SIZE, 0));
	assert_null(guest_mem_ptr(&f->m, RAM_GPA - 1, 0));
}

static void test_multiple_regions(void **state)
{
	struct fixture *f = *state;
	/* adjacent to RAM: a range spanning both must still be refused (two host mappings) */
	uint64_t hi_gpa = RAM_GPA + RAM_SIZE;

	assert_int_equal(guest_mem_add(&f->m, hi_gpa, sizeof(f->hi), f->hi), 0);
	assert_int_equal(f->m.n, 2);
	assert_ptr_equal(guest_mem_ptr(&f->m, hi_gpa, 4), f->hi);
	assert_ptr_equal(guest_mem_ptr(&f->m, hi_gpa + 0xff0, 0x10), f->hi + 0xff0);
	assert_ptr_equal(guest_mem_ptr(&f->m, RAM_GPA + 8, 4), f->ram + 8);
	assert_null(guest_mem_ptr(&f->m, hi_gpa - 4, 8));
	assert_null(guest_mem_ptr(&f->m, hi_gpa + 0xff0, 0x11));
	assert_int_equal(guest_mem_total(&f->m), RAM_SIZE + sizeof(f->hi));
}

static void test_overlap_refused(void **state)
{
	struct fixture *f = *state;
	uint8_t other[16];

	assert_int_equal(guest_mem_add(&f->m, RAM_GPA, 16, other), -1);
	assert_int_equal(guest_mem_add(&f->m, RAM_GPA - 8, 16, other), -1);
	assert_int_equal(guest_mem_add(&f->m, RAM_GPA + RAM_SIZE - 1, 16, other), -1);
	assert_int_equal(guest_mem_add(&f->m, RAM_GPA - 1, RAM_SIZE + 2, other), -1);
	/* region wrapping past 2^64, and an empty region */
	assert_int_equal(guest_mem_add(&f->m, UINT64_MAX - 4, 16, other), -1);
	assert_int_equal(guest_mem_add(&f->m, 0, 0, other), -1);
	assert_int_equal(f->m.n, 1);
	/* exactly adjacent on either side is fine */
	assert_int_equal(guest_mem_add(&f->m, RAM_GPA - 16, 16, other), 0);
	assert_int_equal(f->m.n, 2);
	assert_int_equal(guest_mem_total(&f->m), RAM_SIZE + 16);
}

static void test_full(void **state)
{
	struct guest_mem m;
	static uint8_t buf[GUEST_MEM_MAX_REGIONS + 1][16];

	(void)state;
	memset(&m, 0, sizeof(m));
	for (int i = 0; i < GUEST_MEM_MAX_REGIONS; i++)
		assert_int_equal(guest_mem_add(&m, (uint64_t)i * 0x1000, 16, buf[i]), 0);
	assert_int_equal(guest_mem_add(&m, 0x100000, 16, buf[GUEST_MEM_MAX_REGIONS]), -1);
	assert_int_equal(m.n, GUEST_MEM_MAX_REGIONS);
	for (int i = 0; i < GUEST_MEM_MAX_REGIONS; i++)
		assert_ptr_equal(guest_mem_ptr(&m, (uint64_t)i * 0x1000 + 15, 1), &buf[i][15]);
	assert_null(guest_mem_ptr(&m, 0x100000, 1));
}

static void test_empty(void **state)
{
	struct guest_mem m;

	(void)state;
	memset(&m, 0, sizeof(m));
	assert_null(guest_mem_ptr(&m, 0, 1));
	assert_int_equal(guest_mem_total(&m), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_inside, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outside, setup, teardown),
		cmocka_unit_test_setup_teardown(test_straddling, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overflowing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_len_zero, setup, teardown),
		cmocka_unit_test_setup_teardown(test_multiple_regions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overlap_refused, setup, teardown),
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_empty),
	};

	return cmocka_run_group_tests_name("guest_mem", tests, NULL, NULL);
}
