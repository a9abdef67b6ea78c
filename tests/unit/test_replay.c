/* cvmm-replay (build/cvmm-replay) against the dm-log-writes format itself: the logs here are
 * written by hand from the format description (devices/blk_log.h), not by the writer in
 * devices/blk_log.c, so that the tool is checked against the format. What is checked: the
 * prefixes (--end-at-flush against --end-at-entry and against images computed here), --list's
 * epochs, and --crash-states: the number of states, every image produced against one
 * computed here from the units the manifest says were applied, and seeded samples. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/test_log_util.h"

#include <endian.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SEC      512u
#define DISK_SEC 128u
#define DISK     (DISK_SEC * SEC)
#define FLUSH    1u
#define FUA      2u
#define DISCARD  4u
#define MARK     8u
#define PMEM_WB  (1u << 8) /* cvmm's CVMM_PMEM_WB: one 4 KiB page of pmem writeback */
#define MAXU     128

static char dir[64], logp[128], basep[128], outp[128], out2[128];

/* ---- the log, as this test writes it ---- */

struct ent {
	uint64_t sector, nr, flags;
	const char *mark;
	uint8_t *data;
};
static struct ent ents[32];
static size_t nents;
static uint8_t base_img[DISK];

static void add(uint64_t sector, uint64_t nr, uint64_t flags, const char *mark)
{
	struct ent *e = &ents[nents];
	*e = (struct ent){ .sector = sector, .nr = nr, .flags = flags, .mark = mark };
	if (nr && !(flags & DISCARD)) {
		e->data = malloc(nr * SEC);
		fill(e->data, nr * SEC, 1000 + (uint32_t)nents);
	}
	nents++;
}

static void put64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

/* Superblock { magic, version 1, nr_entries, u32 sector size }, then each entry: a sector
 * { sector, nr_sectors, flags, data_len } (+ mark text), then its data unless DISCARD. */
static void write_log(void)
{
	int fd = open(logp, O_CREAT | O_TRUNC | O_WRONLY, 0600);
	assert_true(fd >= 0);
	uint8_t s[SEC] = { 0 };
	put64(s, 0x6a736677736872ULL);
	put64(s + 8, 1);
	put64(s + 16, nents);
	uint32_t ss = htole32(SEC);
	memcpy(s + 24, &ss, 4);
	assert_int_equal(write(fd, s, SEC), SEC);
	for (size_t i = 0; i < nents; i++) {
		memset(s, 0, SEC);
		put64(s, ents[i].sector);
		put64(s + 8, ents[i].nr);
		put64(s + 16, ents[i].flags);
		if (ents[i].mark) {
			put64(s + 24, strlen(ents[i].mark));
			memcpy(s + 32, ents[i].mark, strlen(ents[i].mark));
		}
		assert_int_equal(write(fd, s, SEC), SEC);
		if (ents[i].data)
			assert_int_equal(write(fd, ents[i].data, ents[i].nr * SEC),
					 (ssize_t)(ents[i].nr * SEC));
	}
	close(fd);
}

/* The log of these tests:
 *   epoch 0: 0 write 0+2, 1 write 1+1 (overlaps 0)                        3 units
 *            2 FLUSH
 *   epoch 1: 3 write 4+2, 4 FUA write 5+1, 5 MARK, 6 DISCARD 8+4,
 *            7 PMEM_WB 16+8 (one page), 8 write 4+1 (overlaps 3)           5 units
 *            9 FLUSH
 *   epoch 2: 10 PMEM_WB 24+16 (two pages), 11 write 40+70                 72 units
 *            12 FLUSH carrying data 120+2 (a PREFLUSH write)
 *   epoch 3: 12's data, 13 write 80+40                                     42 units */
static int setup(void **state)
{
	(void)state;
	make_tmpdir(dir, sizeof(dir), "replay");
	snprintf(logp, sizeof(logp), "%s/log", dir);
	snprintf(basep, sizeof(basep), "%s/log.base", dir);
	snprintf(outp, sizeof(outp), "%s/out", dir);
	snprintf(out2, sizeof(out2), "%s/out2", dir);
	fill(base_img, DISK, 7);
	int fd = open(basep, O_CREAT | O_TRUNC | O_WRONLY, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, base_img, DISK), DISK);
	close(fd);
	nents = 0;
	add(0, 2, 0, NULL);
	add(1, 1, 0, NULL);
	add(0, 0, FLUSH, NULL);
	add(4, 2, 0, NULL);
	add(5, 1, FUA, NULL);
	add(0, 0, MARK, "m1");
	add(8, 4, DISCARD, NULL);
	add(16, 8, PMEM_WB, NULL);
	add(4, 1, 0, NULL);
	add(0, 0, FLUSH, NULL);
	add(24, 16, PMEM_WB, NULL);
	add(40, 70, 0, NULL);
	add(120, 2, FLUSH, NULL);
	add(80, 40, 0, NULL);
	write_log();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	for (size_t i = 0; i < nents; i++)
		free(ents[i].data);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- the crash-state model, computed here ---- */

struct unit {
	size_t entry;
	uint64_t first, count; /* sectors of the entry */
	const char *kind;
};

/* Epoch k: [start, end) of the log (epoch 0 from entry 0; epoch k >= 1 from the k-th FLUSH
 * entry) and its units: a sector of a write, a 4 KiB page of a PMEM_WB entry, a whole
 * DISCARD; none for FUA entries (always applied), marks and empty FLUSHes. */
static size_t epoch_units(unsigned k, struct unit *u, size_t *start, size_t *end)
{
	unsigned flushes = 0;
	*start = 0;
	*end = nents;
	for (size_t i = 0; i < nents; i++) {
		if (!(ents[i].flags & FLUSH))
			continue;
		if (++flushes == k)
			*start = i;
		if (flushes == k + 1) {
			*end = i;
			break;
		}
	}
	size_t n = 0;
	for (size_t i = *start; i < *end; i++) {
		const struct ent *e = &ents[i];
		if (!e->nr || (e->flags & FUA))
			continue;
		uint64_t step = (e->flags & DISCARD) ? e->nr : (e->flags & PMEM_WB) ? 8 : 1;
		const char *kind = (e->flags & DISCARD) ? "discard"
				   : (e->flags & PMEM_WB) ? "page" : "sector";
		for (uint64_t s = 0; s < e->nr; s += step) {
			assert_true(n < MAXU);
			u[n++] = (struct unit){ i, s, step, kind };
		}
	}
	return n;
}

static void apply(uint8_t *img, const struct ent *e, uint64_t first, uint64_t count)
{
	if (e->flags & DISCARD)
		memset(img + (e->sector + first) * SEC, 0, count * SEC);
	else
		memcpy(img + (e->sector + first) * SEC, e->data + first * SEC, count * SEC);
}

/* The image after entries 0..last, all applied. */
static void prefix_image(uint8_t *img, size_t last)
{
	memcpy(img, base_img, DISK);
	for (size_t i = 0; i <= last && i < nents; i++)
		if (ents[i].nr)
			apply(img, &ents[i], 0, ents[i].nr);
}

/* Crash state of epoch k with the units in `set` applied (bit u: unit u). */
static void state_image(uint8_t *img, unsigned k, const uint64_t *set)
{
	struct unit u[MAXU];
	size_t start, end, nu = epoch_units(k, u, &start, &end);
	memcpy(img, base_img, DISK);
	if (start)
		prefix_image(img, start - 1);
	size_t j = 0;
	for (size_t i = start; i < end; i++) {
		if ((ents[i].flags & FUA) && ents[i].nr)
			apply(img, &ents[i], 0, ents[i].nr);
		for (; j < nu && u[j].entry == i; j++)
			if ((set[j / 64] >> (j % 64)) & 1)
				apply(img, &ents[i], u[j].first, u[j].count);
	}
}

/* ---- running the tool ---- */

/* The tool's stdout (at most `cap` bytes) and exit status. */
static int capture(char *buf, size_t cap, const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	size_t n = fread(buf, 1, cap - 1, p);
	buf[n] = 0;
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 255;
}

static void assert_image(const char *path, const uint8_t *want)
{
	size_t n;
	uint8_t *got = slurp(path, &n);
	assert_int_equal(n, DISK);
	if (memcmp(got, want, DISK))
		fail_msg("%s differs from the expected image", path);
	free(got);
}

/* "0-3,5" or "-" into a bit set of units. */
static void parse_ranges(const char *s, uint64_t *set, size_t units)
{
	memset(set, 0, (MAXU / 64) * 8);
	if (!strcmp(s, "-"))
		return;
	while (*s) {
		char *end;
		unsigned long a = strtoul(s, &end, 10), b = a;
		if (*end == '-')
			b = strtoul(end + 1, &end, 10);
		assert_true(a <= b && b < units);
		for (unsigned long u = a; u <= b; u++)
			set[u / 64] |= 1ULL << (u % 64);
		assert_true(*end == ',' || !*end);
		s = *end ? end + 1 : end;
	}
}

struct state {
	char name[64];
	uint64_t set[MAXU / 64];
};

/* DIR/states.txt, each line "IMAGE EPOCH UNITS"; every image checked against the model. */
static size_t check_manifest(const char *d, unsigned k, struct state *st, size_t cap)
{
	struct unit u[MAXU];
	size_t start, end, nu = epoch_units(k, u, &start, &end);
	char path[256], line[1024];
	snprintf(path, sizeof(path), "%s/states.txt", d);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	size_t n = 0;
	uint8_t *want = malloc(DISK);
	while (fgets(line, sizeof(line), f)) {
		char name[64], ranges[900];
		unsigned ek;
		assert_int_equal(sscanf(line, "%63s %u %899s", name, &ek, ranges), 3);
		assert_int_equal(ek, k);
		assert_true(n < cap);
		snprintf(st[n].name, sizeof(st[n].name), "%s", name);
		parse_ranges(ranges, st[n].set, nu);
		state_image(want, k, st[n].set);
		snprintf(path, sizeof(path), "%s/%s", d, name);
		assert_image(path, want);
		n++;
	}
	fclose(f);
	free(want);
	return n;
}

/* DIR/units.txt says what this test computes: UNIT ENTRY SECTOR COUNT KIND. */
static void check_units(const char *d, unsigned k)
{
	struct unit u[MAXU];
	size_t start, end, nu = epoch_units(k, u, &start, &end);
	char path[256], want[128];
	snprintf(path, sizeof(path), "%s/units.txt", d);
	size_t len;
	char *txt = (char *)slurp(path, &len), *p = txt;
	for (size_t j = 0; j < nu; j++) {
		int w = snprintf(want, sizeof(want), "%zu %zu %llu %llu %s\n", j, u[j].entry,
				 (unsigned long long)(ents[u[j].entry].sector + u[j].first),
				 (unsigned long long)u[j].count, u[j].kind);
		if (strncmp(p, want, (size_t)w))
			fail_msg("units.txt line %zu: want %s", j, want);
		p += w;
	}
	assert_int_equal(*p, 0);
	free(txt);
}

static void crash_dir(char *d, size_t len, const char *name)
{
	snprintf(d, len, "%s/%s", dir, name);
}

/* ---- tests ---- */

/* The prefixes: --end-at-flush K is --end-at-entry of the K-th FLUSH entry, and both are the
 * entries applied in order. */
static void test_prefixes(void **state)
{
	(void)state;
	static const size_t flush_at[] = { 2, 9, 12 };
	uint8_t *want = malloc(DISK);
	for (unsigned k = 1; k <= 3; k++) {
		prefix_image(want, flush_at[k - 1]);
		assert_int_equal(run("%s %s --base %s --out %s --end-at-flush %u", replay_bin(),
				     logp, basep, outp, k), 0);
		assert_image(outp, want);
		assert_int_equal(run("%s %s --base %s --out %s --end-at-entry %zu", replay_bin(),
				     logp, basep, out2, flush_at[k - 1]), 0);
		assert_image(out2, want);
	}
	assert_int_equal(run("%s %s --base %s --out %s --end-at-flush last", replay_bin(), logp,
			     basep, outp), 0);
	prefix_image(want, 12);
	assert_image(outp, want);
	assert_int_equal(run("%s %s --base %s --out %s --end-at-mark m1", replay_bin(), logp,
			     basep, outp), 0);
	prefix_image(want, 5);
	assert_image(outp, want);
	assert_int_equal(run("%s %s --base %s --out %s", replay_bin(), logp, basep, outp), 0);
	prefix_image(want, nents - 1);
	assert_image(outp, want);
	free(want);
}

static void test_list(void **state)
{
	(void)state;
	static char out[8192];
	assert_int_equal(capture(out, sizeof(out), "%s %s --list", replay_bin(), logp), 0);
	static const char *want[] = {
		"7 sector 16 count 8 flags PMEM_WB\n",
		"4 sector 5 count 1 flags FUA\n",
		"12 sector 120 count 2 flags FLUSH\n",
		"3 FLUSH points, 1 marks\n",
		"FLUSH at entries: 2 9 12\n",
		"FUA at entries: 4\n",
		"marks at entries: 5\n",
		"4 epochs",
		"epoch 0: entries 0..1, 3 units\n",
		"epoch 1: entries 2..8, 5 units\n",
		"epoch 2: entries 9..11, 72 units\n",
		"epoch 3: entries 12..13, 42 units\n",
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (!strstr(out, want[i]))
			fail_msg("--list lacks '%s':\n%s", want[i], out);
	/* The model of this test agrees on the unit counts. */
	struct unit u[MAXU];
	size_t s, e;
	assert_int_equal(epoch_units(0, u, &s, &e), 3);
	assert_int_equal(epoch_units(1, u, &s, &e), 5);
	assert_int_equal(epoch_units(2, u, &s, &e), 72);
	assert_int_equal(epoch_units(3, u, &s, &e), 42);
}

/* Epochs 0 and 1 are small: every subset, index = bit pattern, every image as computed. */
static void test_exhaustive(void **state)
{
	(void)state;
	static char out[16384];
	static struct state st[64];
	char d[128];
	for (unsigned k = 0; k <= 1; k++) {
		struct unit u[MAXU];
		size_t start, end, nu = epoch_units(k, u, &start, &end);
		size_t total = (size_t)1 << nu;
		crash_dir(d, sizeof(d), k ? "ex1" : "ex0");
		assert_int_equal(capture(out, sizeof(out), "%s %s --crash-states --epoch %u "
					 "--base %s --out-dir %s", replay_bin(), logp, k, basep, d), 0);
		char head[128];
		snprintf(head, sizeof(head), ", %zu units, %zu states, producing all %zu\n", nu,
			 total, total);
		if (!strstr(out, head))
			fail_msg("want '%s' in:\n%s", head, out);
		assert_int_equal(check_manifest(d, k, st, 64), total);
		for (size_t i = 0; i < total; i++) {
			char name[64];
			snprintf(name, sizeof(name), "state-%u-%zu.img", k, i);
			assert_string_equal(st[i].name, name);
			assert_int_equal(st[i].set[0], i); /* the bit pattern */
			assert_non_null(strstr(out, name)); /* and listed on stdout */
		}
		check_units(d, k);
	}
	/* The extremes against the prefixes: epoch 0 with nothing is the base, with everything
	 * the first FLUSH point; epoch 1 with everything is every entry before the next FLUSH. */
	crash_dir(d, sizeof(d), "ex0");
	char p[256];
	uint8_t *want = malloc(DISK);
	snprintf(p, sizeof(p), "%s/state-0-0.img", d);
	assert_image(p, base_img);
	assert_int_equal(run("%s %s --base %s --out %s --end-at-flush 1", replay_bin(), logp,
			     basep, outp), 0);
	size_t n;
	uint8_t *flush1 = slurp(outp, &n);
	snprintf(p, sizeof(p), "%s/state-0-7.img", d);
	assert_image(p, flush1);
	crash_dir(d, sizeof(d), "ex1");
	assert_int_equal(run("%s %s --base %s --out %s --end-at-entry 8", replay_bin(), logp,
			     basep, outp), 0);
	uint8_t *e8 = slurp(outp, &n);
	snprintf(p, sizeof(p), "%s/state-1-31.img", d);
	assert_image(p, e8);
	/* Epoch 1 with nothing is the first FLUSH point plus the FUA write only. */
	memcpy(want, flush1, DISK);
	memcpy(want + 5 * SEC, ents[4].data, SEC);
	snprintf(p, sizeof(p), "%s/state-1-0.img", d);
	assert_image(p, want);
	/* The later write to sector 4 (unit 4) wins over the earlier (unit 0) when both are in;
	 * with only the earlier, its data stays. */
	memcpy(want + 4 * SEC, ents[3].data, SEC);
	snprintf(p, sizeof(p), "%s/state-1-1.img", d);
	assert_image(p, want);
	memcpy(want + 4 * SEC, ents[8].data, SEC);
	snprintf(p, sizeof(p), "%s/state-1-17.img", d);
	assert_image(p, want);
	free(want);
	free(flush1);
	free(e8);
}

/* The sample's documented generator, written here again: splitmix64 from the seed, a draw
 * takes ceil(U/64) outputs, unit u is bit u%64 of output u/64, a repeated subset is drawn
 * again; the none and all subsets come first. */
static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void expected_sample(uint64_t seed, size_t units, size_t n, struct state *st)
{
	size_t w = (units + 63) / 64;
	uint64_t rng = seed;
	memset(st, 0, n * sizeof(*st));
	for (size_t j = 0; j < units; j++)
		st[1].set[j / 64] |= 1ULL << (j % 64);
	for (size_t i = 2; i < n;) {
		for (size_t k = 0; k < w; k++)
			st[i].set[k] = splitmix64(&rng);
		if (units % 64)
			st[i].set[w - 1] &= (1ULL << (units % 64)) - 1;
		bool dup = false;
		for (size_t j = 0; j < i; j++)
			dup |= !memcmp(st[i].set, st[j].set, sizeof(st[i].set));
		if (!dup)
			i++;
	}
}

/* Reads DIR/states.txt whole. */
static char *manifest(const char *d)
{
	char path[256];
	size_t n;
	snprintf(path, sizeof(path), "%s/states.txt", d);
	return (char *)slurp(path, &n);
}

/* Epochs 2 and 3 are too big: a seeded sample with both extremes, distinct subsets, every
 * image right; the same seed the same states, another seed others. */
static void test_sample(void **state)
{
	(void)state;
	static char out[16384];
	static struct state st[16];
	char d1[128], d2[128], d3[128];
	static const char *counts[] = { NULL, NULL, ", 72 units, 2^72 states, producing a sample "
					"of 10 (splitmix64, seed 5)\n", ", 42 units, 4398046511104 "
					"states, producing a sample of 10 (splitmix64, seed 5)\n" };
	for (unsigned k = 2; k <= 3; k++) {
		struct unit u[MAXU];
		size_t start, end, nu = epoch_units(k, u, &start, &end);
		snprintf(d1, sizeof(d1), "%s/s%u-a", dir, k);
		snprintf(d2, sizeof(d2), "%s/s%u-b", dir, k);
		snprintf(d3, sizeof(d3), "%s/s%u-c", dir, k);
		assert_int_equal(capture(out, sizeof(out), "%s %s --crash-states --epoch %u --base %s "
					 "--out-dir %s --sample 10 --seed 5", replay_bin(), logp, k,
					 basep, d1), 0);
		if (!strstr(out, counts[k]))
			fail_msg("want '%s' in:\n%s", counts[k], out);
		assert_int_equal(check_manifest(d1, k, st, 16), 10);
		check_units(d1, k);
		uint64_t all[MAXU / 64] = { 0 };
		for (size_t j = 0; j < nu; j++)
			all[j / 64] |= 1ULL << (j % 64);
		uint64_t none[MAXU / 64] = { 0 };
		assert_memory_equal(st[0].set, none, sizeof(none));
		assert_memory_equal(st[1].set, all, sizeof(all));
		static struct state exp[16];
		expected_sample(5, nu, 10, exp);
		for (size_t i = 0; i < 10; i++)
			assert_memory_equal(st[i].set, exp[i].set, sizeof(st[i].set));
		/* The same seed: the same states, byte for byte. --max-states below the count
		 * samples --max-states states when no --sample is given. */
		assert_int_equal(run("%s %s --crash-states --epoch %u --base %s --out-dir %s "
				     "--max-states 10 --seed 5 >/dev/null", replay_bin(), logp, k,
				     basep, d2), 0);
		char *m1 = manifest(d1), *m2 = manifest(d2);
		assert_string_equal(m1, m2);
		assert_int_equal(run("cmp -s %s/state-%u-7.img %s/state-%u-7.img", d1, k, d2, k), 0);
		/* Another seed: other drawn subsets (the extremes stay). */
		assert_int_equal(run("%s %s --crash-states --epoch %u --sample 10 --seed 6 "
				     "--base %s --out-dir %s >/dev/null", replay_bin(), logp, k,
				     basep, d3), 0);
		char *m3 = manifest(d3);
		assert_string_not_equal(m1, m3);
		assert_int_equal(check_manifest(d3, k, st, 16), 10);
		assert_memory_equal(st[0].set, none, sizeof(none));
		assert_memory_equal(st[1].set, all, sizeof(all));
		free(m1);
		free(m2);
		free(m3);
	}
	/* Epoch 3 starts at a FLUSH entry with data: that data is a unit after the flush, so the
	 * empty state is entry 11's FLUSH point and the full one is the whole log. */
	snprintf(d1, sizeof(d1), "%s/s3-a", dir);
	uint8_t *want = malloc(DISK);
	char p[256];
	prefix_image(want, 11);
	snprintf(p, sizeof(p), "%s/state-3-0.img", d1);
	assert_image(p, want);
	prefix_image(want, 13);
	snprintf(p, sizeof(p), "%s/state-3-1.img", d1);
	assert_image(p, want);
	free(want);
	/* A sample of nearly every state (7 of 8, 31 of 32): distinct subsets, as the
	 * generator says. */
	for (unsigned k = 0; k <= 1; k++) {
		size_t n = k ? 31 : 7;
		struct unit u[MAXU];
		size_t start, end, nu = epoch_units(k, u, &start, &end);
		snprintf(d1, sizeof(d1), "%s/near%u", dir, k);
		assert_int_equal(run("%s %s --crash-states --epoch %u --max-states 1 --sample %zu "
				     "--seed 9 --base %s --out-dir %s >/dev/null", replay_bin(), logp,
				     k, n, basep, d1), 0);
		static struct state got[32], exp[32];
		assert_int_equal(check_manifest(d1, k, got, 32), n);
		expected_sample(9, nu, n, exp);
		for (size_t i = 0; i < n; i++)
			assert_memory_equal(got[i].set, exp[i].set, sizeof(got[i].set));
	}
	/* Without --out-dir: the count and the states, no files. */
	assert_int_equal(capture(out, sizeof(out), "%s %s --crash-states --epoch 2 --sample 3",
				 replay_bin(), logp), 0);
	assert_non_null(strstr(out, "2^72 states, producing a sample of 3 (splitmix64, seed 0)"));
	assert_non_null(strstr(out, "state-2-0.img 2 -\n"));
	assert_non_null(strstr(out, "state-2-1.img 2 0-71\n"));
	assert_non_null(strstr(out, "state-2-2.img 2 "));
}

/* Bad arguments: exit 64 and one line naming the argument; missing epochs, FLUSHes: 3. */
static void test_errors(void **state)
{
	(void)state;
	const char *rb = replay_bin();
	static const struct { const char *args, *names; } bad[] = {
		{ "--crash-states", "--epoch" },
		{ "--crash-states --epoch x", "--epoch" },
		{ "--crash-states --epoch -1", "--epoch" },
		{ "--crash-states --epoch 1 --out-dir D", "--out-dir" },
		{ "--crash-states --epoch 1 --base B", "--base" },
		{ "--crash-states --epoch 1 --sample 1", "--sample" },
		{ "--crash-states --epoch 1 --max-states 0", "--max-states" },
		{ "--crash-states --epoch 1 --max-states 9999999", "--max-states" },
		{ "--crash-states --epoch 1 --seed 1x", "--seed" },
		{ "--crash-states --epoch 1 --out O", "--out" },
		{ "--list --epoch 1", "--epoch" },
		{ "--list --crash-states", "--crash-states" },
		{ "--base B --out O --epoch 1", "--epoch" },
		{ "--base B --out O --end-at-flush 0", "--end-at-flush" },
		{ "--base B --out O --end-at-flush first", "--end-at-flush" },
		{ "--base B --out O --end-at-flush 1 --end-at-entry 1", "--end-at-" },
		{ "--base B --out O --sample 3", "--sample" },
		{ "--frobnicate", "--frobnicate" },
	};
	static char err[4096];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = capture(err, sizeof(err), "%s %s %s 2>&1", rb, logp, bad[i].args);
		if (rc != 64)
			fail_msg("'%s': exit %d, want 64", bad[i].args, rc);
		char *nl = strchr(err, '\n');
		if (!strstr(err, bad[i].names) || !nl || nl[1])
			fail_msg("'%s': want one line naming %s, got: %s", bad[i].args,
				 bad[i].names, err);
	}
	assert_int_equal(run("%s %s --crash-states --epoch 4 2>/dev/null", rb, logp), 3);
	assert_int_equal(run("%s %s --crash-states --epoch 3 >/dev/null", rb, logp), 0);
	assert_int_equal(run("%s %s --base %s --out %s --end-at-flush 4 2>/dev/null", rb, logp,
			     basep, outp), 3);
	/* A missing FLUSH leaves no image behind. */
	assert_int_equal(access(outp, F_OK), -1);
	/* A base too small for the epoch's entries: refused, as for a prefix. */
	assert_int_equal(truncate(basep, 100 * SEC), 0);
	char d[128];
	crash_dir(d, sizeof(d), "small");
	assert_int_equal(run("%s %s --crash-states --epoch 2 --sample 2 --base %s --out-dir %s "
			     ">/dev/null 2>&1", rb, logp, basep, d), 1);
	/* An unknown flag is still a bad log. */
	int fd = open(logp, O_WRONLY);
	uint8_t f[8];
	put64(f, 1u << 9);
	assert_int_equal(pwrite(fd, f, 8, SEC + 16), 8);
	close(fd);
	assert_int_equal(run("%s %s --list >/dev/null 2>&1", rb, logp), 1);
	assert_int_equal(run("%s %s --help | grep -q CVMM_PMEM_WB", rb, logp), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_prefixes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exhaustive, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sample, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
