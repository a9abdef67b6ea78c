/* Power cut plans (vmm/power_cut.h): every trigger and state form, and the refusals, each
 * naming the bad text. The VM side (the cut itself) needs /dev/kvm; the page cache's part is
 * test_pcache's test_power_cut_freezes_file. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "vmm/power_cut.h"

static void test_triggers(void **state)
{
	(void)state;
	struct power_cut_plan p;
	char err[256];
	assert_int_equal(power_cut_parse(NULL, NULL, &p, err, sizeof(err)), 0);
	assert_int_equal(p.when, POWER_CUT_NONE);
	assert_false(p.sample);
	assert_int_equal(power_cut_parse("after-flushes:3", "", &p, err, sizeof(err)), 0);
	assert_int_equal(p.when, POWER_CUT_AFTER_FLUSHES);
	assert_int_equal(p.n, 3);
	assert_int_equal(power_cut_parse("after:250ms", NULL, &p, err, sizeof(err)), 0);
	assert_int_equal(p.when, POWER_CUT_AFTER_MS);
	assert_int_equal(p.ms, 250);
	assert_int_equal(power_cut_parse("after:3s", NULL, &p, err, sizeof(err)), 0);
	assert_int_equal(p.ms, 3000);
	assert_int_equal(power_cut_parse("after:2m", NULL, &p, err, sizeof(err)), 0);
	assert_int_equal(p.ms, 120000);
	assert_int_equal(power_cut_parse("at-mark:fsync done", "sample:42", &p, err, sizeof(err)),
			 0);
	assert_int_equal(p.when, POWER_CUT_AT_MARK);
	assert_string_equal(p.mark, "fsync done");
	assert_true(p.sample);
	assert_int_equal(p.seed, 42);
	assert_int_equal(power_cut_parse("", "last-flush", &p, err, sizeof(err)), 0);
	assert_false(p.sample);
}

static void test_refusals(void **state)
{
	(void)state;
	struct power_cut_plan p;
	char err[256];
	const struct { const char *trig, *st, *want; } bad[] = {
		{ "after-flushes:0", NULL, "after-flushes:0" },
		{ "after-flushes:-1", NULL, "after-flushes:-1" },
		{ "after-flushes:", NULL, "bad count" },
		{ "after:5", NULL, "bad duration" },
		{ "after:5h", NULL, "bad duration" },
		{ "after:99999999999999999999s", NULL, "bad duration" },
		{ "at-mark:", NULL, "bad mark" },
		{ "soon", NULL, "unknown trigger" },
		{ NULL, "sample:", "bad state" },
		{ NULL, "sample:1x", "bad state" },
		{ NULL, "sample:0", "SEED >= 1" },
		{ NULL, "first-flush", "first-flush" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = 0;
		assert_int_equal(power_cut_parse(bad[i].trig, bad[i].st, &p, err, sizeof(err)), -1);
		if (!strstr(err, bad[i].want) || !strstr(err, "power_cut"))
			fail_msg("%s / %s: '%s' lacks '%s'", bad[i].trig, bad[i].st, err, bad[i].want);
	}
	char longmark[200] = "at-mark:";
	memset(longmark + 8, 'm', 150);
	longmark[158] = 0;
	assert_int_equal(power_cut_parse(longmark, NULL, &p, err, sizeof(err)), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_triggers),
		cmocka_unit_test(test_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
