/* Fault injection rules (devices/fault.h): the text round trip, refused texts naming the bad
 * word, each `when` exactly, seeded probabilities reproducible, range edges, and add / remove
 * / check from several threads at once (this test is also built with TSan). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/fault.h"

static void roundtrip(const char *text)
{
	struct fault_rule r;
	char err[256], out[FAULT_RULE_MAX];
	if (fault_rule_parse(text, &r, err, sizeof(err))) {
		fprintf(stderr, "%s: %s\n", text, err);
		fail();
	}
	fault_rule_format(&r, out, sizeof(out));
	assert_string_equal(out, text);
}

/* Parses, and formats to `canon`. */
static void canonical(const char *text, const char *canon)
{
	struct fault_rule r;
	char err[256], out[FAULT_RULE_MAX];
	assert_int_equal(fault_rule_parse(text, &r, err, sizeof(err)), 0);
	fault_rule_format(&r, out, sizeof(out));
	assert_string_equal(out, canon);
	roundtrip(canon);
}

static void test_roundtrip(void **state)
{
	roundtrip("op=write range=1M+64K when=after:3 effect=ioerr");
	roundtrip("op=read when=prob:0.01 seed=7 effect=delay:200ms");
	roundtrip("op=write effect=torn:2");
	roundtrip("op=flush when=once effect=ioerr");
	roundtrip("op=read effect=unsupp");
	roundtrip("op=flush effect=enospc");
	roundtrip("op=any range=0-4K when=nth:5 effect=delay:1s");
	roundtrip("op=discard range=1G-2G effect=ioerr");
	roundtrip("op=write-zeroes range=512+1536 effect=unsupp");
	roundtrip("op=read when=prob:1 effect=ioerr");
	roundtrip("op=read when=prob:0 seed=0 effect=ioerr");
	roundtrip("op=read when=prob:0.000000001 seed=18446744073709551615 effect=delay:7us");
	roundtrip("op=write range=3T+1 when=after:0 effect=torn:100000");
	/* any order, explicit defaults, other spellings: the canonical form */
	canonical("effect=ioerr op=write", "op=write effect=ioerr");
	canonical("  op=write\twhen=always effect=ioerr ", "op=write effect=ioerr");
	canonical("op=write range=1048576+65536 effect=ioerr", "op=write range=1M+64K effect=ioerr");
	canonical("op=write range=0x100000-0x200000 effect=ioerr",
		  "op=write range=1M-2M effect=ioerr");
	canonical("op=write range=1k+1m effect=ioerr", "op=write range=1K+1M effect=ioerr");
	canonical("op=read when=prob:0.50 effect=delay:1000ms", "op=read when=prob:0.5 effect=delay:1s");
	canonical("op=read when=prob:1.0 effect=delay:1500us", "op=read when=prob:1 effect=delay:1500us");
}

/* The text is refused, and the message names `word`. */
static void bad(const char *text, const char *word)
{
	struct fault_rule r;
	char err[256] = "";
	assert_int_equal(fault_rule_parse(text, &r, err, sizeof(err)), -1);
	if (!strstr(err, word)) {
		fprintf(stderr, "'%s': message '%s' does not name '%s'\n", text, err, word);
		fail();
	}
	assert_non_null(strstr(err, "fault rule"));
}

static void test_bad_rules(void **state)
{
	bad("op=wrte effect=ioerr", "wrte");
	bad("op=write effect=explode", "explode");
	bad("op=write colour=red effect=ioerr", "colour");
	bad("op=write effect=ioerr bogus", "bogus");
	bad("op=write op=read effect=ioerr", "'op' given twice");
	bad("effect=ioerr", "no op=");
	bad("op=write", "no effect=");
	bad("", "no op=");
	bad("op=write range=1M effect=ioerr", "1M");
	bad("op=write range=1Q+1 effect=ioerr", "1Q");
	bad("op=write range=1M+zz effect=ioerr", "zz");
	bad("op=write range=2M-1M effect=ioerr", "2M-1M");
	bad("op=write range=1M-1M effect=ioerr", "1M-1M");
	bad("op=write range=4K+0 effect=ioerr", "4K+0");
	bad("op=write range=16T+18446744073709551615 effect=ioerr", "overflows");
	bad("op=write range=99999999999T+1 effect=ioerr", "99999999999T");
	bad("op=write range=-1+1 effect=ioerr", "-1+1");
	bad("op=write range=010+1 effect=ioerr", "010");
	bad("op=flush range=0+4K effect=ioerr", "flush");
	bad("op=write when=sometimes effect=ioerr", "sometimes");
	bad("op=write when=after:x effect=ioerr", "after:x");
	bad("op=write when=nth:0 effect=ioerr", "nth:0");
	bad("op=write when=prob:1.5 effect=ioerr", "prob:1.5");
	bad("op=write when=prob:0.0000000001 effect=ioerr", "prob:0.0000000001");
	bad("op=write when=prob:. effect=ioerr", "prob:.");
	bad("op=write when=prob:-0.1 effect=ioerr", "prob:-0.1");
	bad("op=write seed=7 effect=ioerr", "seed");
	bad("op=write when=prob:0.1 seed=x effect=ioerr", "'x'");
	bad("op=write effect=delay:5", "delay:5");
	bad("op=write effect=delay:61s", "delay:61s");
	bad("op=write effect=delay:5m", "delay:5m");
	bad("op=write effect=torn:0", "torn:0");
	bad("op=write effect=torn:", "torn:");
	bad("op=read effect=torn:2", "torn");
	bad("op=any effect=torn:2", "op=any");
	bad("op=write effect", "'effect' is not key=value");
	char longtext[1024];
	memset(longtext, 'a', sizeof(longtext) - 1);
	longtext[sizeof(longtext) - 1] = 0;
	bad(longtext, "longer");
}

/* ---- checks ---- */

static struct fault_set *blk_set(void)
{
	struct fault_set *s = malloc(sizeof(*s));
	fault_set_init(s, "test-blk fault", FAULT_OPS_BLK, FAULT_EFFECTS_BLK);
	return s;
}

static void put_set(struct fault_set *s)
{
	fault_set_destroy(s);
	free(s);
}

static int add(struct fault_set *s, const char *text)
{
	char err[256];
	int id = fault_add_text(s, text, err, sizeof(err));
	if (id < 0)
		fprintf(stderr, "%s: %s\n", text, err);
	return id;
}

static bool hit(struct fault_set *s, enum fault_op op, uint64_t off, uint64_t len,
		struct fault_action *a)
{
	struct fault_extent e = { off, len };
	return fault_check(s, op, &e, 1, a);
}

/* The pattern of firings of rule `text` over `n` matching writes: "..x.." */
static void pattern(const char *text, unsigned n, const char *want)
{
	struct fault_set *s = blk_set();
	assert_true(add(s, text) > 0);
	char got[64] = "";
	struct fault_action a;
	for (unsigned i = 0; i < n; i++)
		got[i] = hit(s, FAULT_OP_WRITE, 0, 512, &a) ? 'x' : '.';
	assert_string_equal(got, want);
	put_set(s);
}

static void test_when(void **state)
{
	pattern("op=write effect=ioerr", 5, "xxxxx");
	pattern("op=write when=always effect=ioerr", 3, "xxx");
	pattern("op=write when=once effect=ioerr", 5, "x....");
	pattern("op=write when=after:3 effect=ioerr", 6, "...xxx");
	pattern("op=write when=after:0 effect=ioerr", 3, "xxx");
	pattern("op=write when=nth:1 effect=ioerr", 4, "x...");
	pattern("op=write when=nth:3 effect=ioerr", 6, "..x...");
	pattern("op=write when=prob:0 effect=ioerr", 20, "....................");
	pattern("op=write when=prob:1 effect=ioerr", 20, "xxxxxxxxxxxxxxxxxxxx");
	/* requests that do not match do not count: after:1 fires on the 2nd WRITE, whatever
	 * reads come between */
	struct fault_set *s = blk_set();
	assert_int_equal(add(s, "op=write range=4K+4K when=after:1 effect=ioerr"), 1);
	struct fault_action a;
	assert_false(hit(s, FAULT_OP_WRITE, 4096, 512, &a));
	assert_false(hit(s, FAULT_OP_READ, 4096, 512, &a));
	assert_false(hit(s, FAULT_OP_WRITE, 0, 4096, &a)); /* outside */
	assert_true(hit(s, FAULT_OP_WRITE, 8191 - 511, 512, &a));
	assert_int_equal(a.effect, FAULT_IOERR);
	assert_int_equal(a.rule_id, 1);
	char *buf;
	size_t len;
	FILE *f = open_memstream(&buf, &len);
	fault_list_json(s, f);
	fclose(f);
	assert_string_equal(buf, "[{\"id\": 1, \"rule\": \"op=write range=4K+4K when=after:1 "
				 "effect=ioerr\", \"matched\": 2, \"fired\": 1}]");
	free(buf);
	assert_int_equal(fault_fired(s), 1);
	put_set(s);
}

static void test_prob_seeded(void **state)
{
	/* the same seed fires on the same requests; another seed elsewhere; roughly P of them */
	char a1[1001] = "", a2[1001] = "", b[1001] = "";
	const char *texts[3] = { "op=read when=prob:0.25 seed=7 effect=ioerr",
				 "op=read when=prob:0.25 seed=7 effect=ioerr",
				 "op=read when=prob:0.25 seed=8 effect=ioerr" };
	char *out[3] = { a1, a2, b };
	for (int t = 0; t < 3; t++) {
		struct fault_set *s = blk_set();
		assert_true(add(s, "op=write effect=ioerr") > 0); /* other ops leave it alone */
		assert_true(add(s, texts[t]) > 0);
		struct fault_action a;
		for (int i = 0; i < 1000; i++) {
			if (i % 3 == 0)
				assert_true(hit(s, FAULT_OP_WRITE, 0, 512, &a));
			out[t][i] = hit(s, FAULT_OP_READ, (uint64_t)i * 512, 512, &a) ? 'x' : '.';
		}
		put_set(s);
	}
	assert_string_equal(a1, a2);
	assert_string_not_equal(a1, b);
	int n = 0;
	for (int i = 0; i < 1000; i++)
		n += a1[i] == 'x';
	assert_in_range(n, 200, 300);
	/* the generator is splitmix64 from the seed: its first output with seed 0 is
	 * 0xe220a8397b1dcdaf (the reference value), 0.883 of 2^64: a rule of prob:0.883
	 * does not fire on it, prob:0.884 does. */
	struct fault_set *s = blk_set();
	struct fault_action a;
	assert_true(add(s, "op=read when=prob:0.883 seed=0 effect=ioerr") > 0);
	assert_false(hit(s, FAULT_OP_READ, 0, 512, &a));
	put_set(s);
	s = blk_set();
	assert_true(add(s, "op=read when=prob:0.884 seed=0 effect=ioerr") > 0);
	assert_true(hit(s, FAULT_OP_READ, 0, 512, &a));
	put_set(s);
}

static void test_range_edges(void **state)
{
	struct fault_set *s = blk_set();
	/* [1 MiB, 1 MiB + 64 KiB) */
	assert_true(add(s, "op=any range=1M+64K effect=ioerr") > 0);
	struct fault_action a;
	const uint64_t lo = 1 << 20, hi = lo + (64 << 10);
	assert_false(hit(s, FAULT_OP_READ, lo - 512, 512, &a));   /* ends at the start */
	assert_true(hit(s, FAULT_OP_READ, lo - 512, 1024, &a));   /* its last sector is in */
	assert_true(hit(s, FAULT_OP_WRITE, lo, 512, &a));
	assert_true(hit(s, FAULT_OP_DISCARD, hi - 512, 512, &a)); /* the last sector */
	assert_false(hit(s, FAULT_OP_WRITE, hi, 512, &a));        /* starts at the end */
	assert_true(hit(s, FAULT_OP_WRITE, 0, 4ULL << 30, &a));   /* covers it all */
	assert_false(hit(s, FAULT_OP_READ, lo, 0, &a));           /* empty: touches nothing */
	/* a guest's extent whose end would wrap: clamped, not wrapped */
	assert_true(hit(s, FAULT_OP_READ, lo + 4096, UINT64_MAX, &a));
	assert_false(hit(s, FAULT_OP_READ, UINT64_MAX - 10, UINT64_MAX, &a));
	/* a flush has no extent: a ranged rule never matches it */
	assert_false(fault_check(s, FAULT_OP_FLUSH, NULL, 0, &a));
	/* several extents (discard segments): one inside is enough */
	struct fault_extent ext[3] = { { 0, 512 }, { hi, 4096 }, { lo + 8192, 512 } };
	assert_false(fault_check(s, FAULT_OP_DISCARD, ext, 2, &a));
	assert_true(fault_check(s, FAULT_OP_DISCARD, ext, 3, &a));
	/* start-end: the end is exclusive */
	assert_int_equal(fault_remove(s, 1), 0);
	assert_true(add(s, "op=read range=8K-12K effect=unsupp") > 0);
	assert_false(hit(s, FAULT_OP_READ, 12288, 512, &a));
	assert_true(hit(s, FAULT_OP_READ, 12288 - 512, 512, &a));
	assert_int_equal(a.effect, FAULT_UNSUPP);
	assert_false(hit(s, FAULT_OP_READ, 4096, 4096, &a));
	put_set(s);
}

static void test_add_remove_order(void **state)
{
	struct fault_set *s = blk_set();
	char err[256];
	struct fault_action a;
	assert_int_equal(add(s, "op=write when=nth:2 effect=torn:3"), 1);
	assert_int_equal(add(s, "op=write effect=delay:5ms"), 2);
	assert_int_equal(add(s, "op=flush effect=ioerr"), 3);
	/* first write: rule 1 matches but does not fire; rule 2 fires */
	assert_true(hit(s, FAULT_OP_WRITE, 0, 4096, &a));
	assert_int_equal(a.effect, FAULT_DELAY);
	assert_int_equal(a.delay_us, 5000);
	assert_int_equal(a.rule_id, 2);
	/* second: rule 1 fires and rule 2 does not see it */
	assert_true(hit(s, FAULT_OP_WRITE, 0, 4096, &a));
	assert_int_equal(a.effect, FAULT_TORN);
	assert_int_equal(a.torn_sectors, 3);
	assert_true(fault_check(s, FAULT_OP_FLUSH, NULL, 0, &a));
	assert_int_equal(a.effect, FAULT_IOERR);
	char *buf;
	size_t len;
	FILE *f = open_memstream(&buf, &len);
	fault_list_json(s, f);
	fclose(f);
	assert_non_null(strstr(buf, "{\"id\": 1, \"rule\": \"op=write when=nth:2 effect=torn:3\", "
				    "\"matched\": 2, \"fired\": 1}"));
	assert_non_null(strstr(buf, "{\"id\": 2, \"rule\": \"op=write effect=delay:5ms\", "
				    "\"matched\": 1, \"fired\": 1}"));
	free(buf);
	/* remove: ids are not reused, unknown ids refused, the others keep working */
	assert_int_equal(fault_remove(s, 2), 0);
	assert_int_equal(fault_remove(s, 2), -1);
	assert_int_equal(fault_remove(s, 99), -1);
	assert_int_equal(add(s, "op=read effect=ioerr"), 4);
	assert_false(hit(s, FAULT_OP_WRITE, 0, 4096, &a));
	assert_true(hit(s, FAULT_OP_READ, 0, 4096, &a));
	assert_int_equal(a.rule_id, 4);
	assert_int_equal(fault_fired(s), 4);
	fault_clear(s);
	assert_false(fault_check(s, FAULT_OP_FLUSH, NULL, 0, &a));
	assert_false(hit(s, FAULT_OP_READ, 0, 4096, &a));
	assert_int_equal(a.effect, FAULT_NONE);
	/* what the device cannot do is refused with the word and the alternatives */
	assert_int_equal(fault_add_text(s, "op=flush effect=enospc", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "enospc"));
	assert_non_null(strstr(err, "test-blk fault"));
	assert_non_null(strstr(err, "ioerr, unsupp, delay, torn"));
	/* a full set */
	for (int i = 0; i < FAULT_MAX_RULES; i++)
		assert_true(add(s, "op=read when=once effect=ioerr") > 0);
	assert_int_equal(fault_add_text(s, "op=read effect=ioerr", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "32 rules"));
	put_set(s);

	struct fault_set p;
	fault_set_init(&p, "test-pmem fault", FAULT_OPS_PMEM, FAULT_EFFECTS_PMEM);
	assert_int_equal(fault_add_text(&p, "op=read effect=ioerr", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "op=read"));
	assert_non_null(strstr(err, "it has: flush"));
	assert_int_equal(fault_add_text(&p, "op=flush effect=unsupp", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "unsupp"));
	assert_int_equal(fault_add_text(&p, "op=flush effect=enospc", err, sizeof(err)), -1);
	fault_set_allow(&p, FAULT_ENOSPC, true);
	assert_int_equal(fault_add_text(&p, "op=flush effect=enospc", err, sizeof(err)), 1);
	assert_int_equal(fault_add_text(&p, "op=any when=once effect=ioerr", err, sizeof(err)), 2);
	fault_set_destroy(&p);
}

/* ---- threads: add / remove / check at once ---- */

#define THREADS 4
#define ROUNDS  2000

struct tctx {
	struct fault_set *s;
	int idx;
	uint64_t fired;
};

static void *checker(void *arg)
{
	struct tctx *t = arg;
	struct fault_action a;
	for (int i = 0; i < ROUNDS * 4; i++) {
		struct fault_extent e = { (uint64_t)(i % 64) * 4096, 4096 };
		if (fault_check(t->s, (enum fault_op)(1 + i % 5), e.off % 8192 ? &e : NULL,
				e.off % 8192 ? 1 : 0, &a))
			t->fired++;
	}
	return NULL;
}

static void *churner(void *arg)
{
	struct tctx *t = arg;
	static const char *const texts[] = {
		"op=read range=0+64K effect=ioerr",
		"op=write when=prob:0.5 seed=3 effect=delay:0us",
		"op=any when=after:2 effect=unsupp",
		"op=flush when=once effect=ioerr",
	};
	char err[256];
	for (int i = 0; i < ROUNDS; i++) {
		int id = fault_add_text(t->s, texts[(i + t->idx) % 4], err, sizeof(err));
		if (i % 7 == 0) {
			char *buf;
			size_t len;
			FILE *f = open_memstream(&buf, &len);
			fault_list_json(t->s, f);
			fclose(f);
			free(buf);
		}
		if (id > 0)
			assert_int_equal(fault_remove(t->s, (unsigned)id), 0);
	}
	return NULL;
}

static void test_threads(void **state)
{
	struct fault_set *s = blk_set();
	/* a rule that stays the whole time, so every checker sees rules */
	assert_int_equal(add(s, "op=discard effect=ioerr"), 1);
	pthread_t th[2 * THREADS];
	struct tctx t[2 * THREADS];
	for (int i = 0; i < 2 * THREADS; i++) {
		t[i] = (struct tctx){ s, i, 0 };
		assert_int_equal(pthread_create(&th[i], NULL, i < THREADS ? checker : churner, &t[i]), 0);
	}
	uint64_t fired = 0;
	for (int i = 0; i < 2 * THREADS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		fired += t[i].fired;
	}
	assert_int_equal(fault_fired(s), fired);
	/* every discard fired (rule 1 comes first) */
	assert_true(fired >= THREADS * ROUNDS * 4 / 5);
	char *buf;
	size_t len;
	FILE *f = open_memstream(&buf, &len);
	fault_list_json(s, f);
	fclose(f);
	char want[128];
	snprintf(want, sizeof(want), "[{\"id\": 1, \"rule\": \"op=discard effect=ioerr\", \"matched\": "
		 "%d, \"fired\": %d}]", THREADS * ROUNDS * 4 / 5, THREADS * ROUNDS * 4 / 5);
	assert_string_equal(buf, want);
	free(buf);
	put_set(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_bad_rules),
		cmocka_unit_test(test_when),
		cmocka_unit_test(test_prob_seeded),
		cmocka_unit_test(test_range_edges),
		cmocka_unit_test(test_add_remove_order),
		cmocka_unit_test(test_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
