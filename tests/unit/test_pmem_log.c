/* The pmem window's write log (devices/pmem_log.c on the page cache's observer) and the power
 * cut (devices/log_cut.c), over the fake shadow table (tests/unit/test_pcache_env.h):
 *   - a run of stores, FLUSHes, writebacks, direct writes, punch/zero and a mark gives the
 *     entries in order, PMEM_WB on written-back pages, the data that reached the file, and
 *     FLUSH entries after the writes they cover; the independent reader
 *     (tests/tools/read_log_writes.py) accepts every byte and rebuilds the file at each FLUSH
 *     and at the end (and build/cvmm-replay too, once it knows PMEM_WB);
 *   - blk_log_power_cut leaves the target at the last FLUSH, or (seeded) at that state plus
 *     only units logged after it, the same for the same seed, incremental == full;
 *   - threads storing and FLUSHing against a background writeback: every store a FLUSH
 *     covered is logged before a FLUSH entry that precedes the thread's next mark (TSan). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/test_log_util.h"

#include <endian.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>

#include "devices/blk.h"
#include "devices/blk_log.h"
#include "devices/log_cut.h"
#include "devices/pmem_log.h"
#include "tests/unit/test_pcache_env.h"

#define SIZE  (2 * MIB)
#define GRAN  (64 * KIB)
#define PG    4096ULL

static char dir[64], logp[160], basep[168], outp[160], tgt[160];
static const char *reader = "tests/tools/read_log_writes.py";

/* The file as it is (zero-extended to SIZE: a truncated file reads as zeros past its end). */
static uint8_t *snap(struct env *e)
{
	size_t n;
	uint8_t *b = slurp(e->path, &n);
	assert_true(n <= SIZE);
	b = realloc(b, SIZE);
	memset(b + n, 0, SIZE - n);
	return b;
}

static void put_file(const char *path, const uint8_t *b, size_t n)
{
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, b, n), (ssize_t)n);
	close(fd);
}

static int setup(void **state)
{
	(void)state;
	make_tmpdir(dir, sizeof(dir), "pmemlog");
	snprintf(logp, sizeof(logp), "%s/log", dir);
	snprintf(basep, sizeof(basep), "%s.base", logp);
	snprintf(outp, sizeof(outp), "%s/out", dir);
	snprintf(tgt, sizeof(tgt), "%s/target", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- a small log parser of the test's own (the format of devices/blk_log.h) ---- */
struct ent {
	uint64_t sector, nr, flags;
	uint8_t *data;
	char mark[480];
};

static struct ent *parse_log(const char *path, size_t *count)
{
	size_t n;
	uint8_t *b = slurp(path, &n);
	assert_true(n >= 512);
	uint64_t v[4];
	memcpy(v, b, 24);
	assert_int_equal(le64toh(v[0]), BLK_LOG_MAGIC);
	uint64_t nr = le64toh(v[2]);
	struct ent *e = calloc(nr + 1, sizeof(*e));
	size_t pos = 512;
	for (uint64_t i = 0; i < nr; i++) {
		assert_true(pos + 512 <= n);
		memcpy(v, b + pos, 32);
		e[i].sector = le64toh(v[0]);
		e[i].nr = le64toh(v[1]);
		e[i].flags = le64toh(v[2]);
		if (e[i].flags & BLK_LOG_MARK)
			memcpy(e[i].mark, b + pos + 32, le64toh(v[3]));
		pos += 512;
		if (!(e[i].flags & BLK_LOG_DISCARD) && e[i].nr) {
			e[i].data = malloc(e[i].nr * 512);
			assert_true(pos + e[i].nr * 512 <= n);
			memcpy(e[i].data, b + pos, e[i].nr * 512);
			pos += e[i].nr * 512;
		}
	}
	assert_int_equal(pos, n); /* closed: nothing past the counted entries */
	free(b);
	*count = nr;
	return e;
}

static void free_log(struct ent *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(e[i].data);
	free(e);
}

/* ---- the recorded run ---- */
struct recorded {
	struct env e;
	struct pmem_log *pl;
	uint8_t *s0, *s1, *s_mark, *s2, *s_end;
	uint64_t flush1, flush2, mark_idx;
};

static void store_page(struct env *e, uint64_t page, uint64_t v)
{
	for (uint64_t o = 0; o < PG; o += 512)
		assert_int_equal(env_store8(e, page * PG + o, v + o), PCACHE_FAULT_DONE);
}

static void open_logged(struct recorded *r)
{
	memset(r, 0, sizeof(*r));
	assert_int_equal(env_open(&r->e, SIZE, SIZE, GRAN, true), 0);
	char err[256];
	if (pmem_log_attach(r->e.pc, r->e.path, logp, &r->pl, err, sizeof(err)))
		fail_msg("%s", err);
	assert_non_null(pmem_log_base_how(r->pl));
	r->s0 = snap(&r->e);
}

/* Writes after the last FLUSH: `pages` pages written back from stores (one run), and a
 * direct write of 8 sectors (blk-style). */
static void tail_after_flush(struct recorded *r, unsigned pages)
{
	for (unsigned k = 0; k < pages; k++)
		store_page(&r->e, 40 + k, 0x7700 + k);
	assert_int_equal(pcache_writeback_range(r->e.pc, 0, SIZE), 0);
	uint8_t b[4096];
	fill(b, sizeof(b), 99);
	assert_int_equal(pcache_direct_write(r->e.pc, 60 * PG, b, sizeof(b)), (ssize_t)sizeof(b));
}

static void record(struct recorded *r, unsigned tail_pages)
{
	open_logged(r);
	struct env *e = &r->e;
	uint64_t cur = pcache_errseq_sample(e->pc);
	store_page(e, 0, 0x1000);
	store_page(e, 3, 0x3000);
	assert_int_equal(pcache_flush(e->pc, &cur), 0);              /* 0 WB 0, 1 WB 3, 2 FLUSH */
	r->flush1 = 2;
	r->s1 = snap(e);
	store_page(e, 5, 0x5000);
	store_page(e, 6, 0x6000);
	assert_int_equal(pcache_writeback_range(e->pc, 0, SIZE), 0); /* 3 WB 5, 4 WB 6 */
	uint8_t b[4096];
	fill(b, 1024, 1);
	assert_int_equal(pcache_direct_write(e->pc, 16 * PG + 512, b, 1024), 1024); /* 5 */
	fill(b, 300, 2);
	assert_int_equal(pcache_direct_write(e->pc, 20 * PG + 100, b, 300), 300);   /* 6 */
	assert_int_equal(pcache_break_punch(e->pc, 24 * PG, 2 * PG, false), 0);     /* 7 */
	assert_int_equal(pcache_break_punch(e->pc, 28 * PG, PG, true), 0);          /* 8 */
	assert_int_equal(pmem_log_mark(r->pl, "before-flush"), 0);                  /* 9 */
	r->mark_idx = 9;
	r->s_mark = snap(e);
	store_page(e, 5, 0x5500);       /* a store the next FLUSH covers, not yet written back */
	assert_int_equal(pcache_flush(e->pc, &cur), 0);              /* 10 WB 5, 11 FLUSH */
	r->flush2 = 11;
	r->s2 = snap(e);
	if (tail_pages)
		tail_after_flush(r, tail_pages);     /* 12.. WB 40.., then a direct write */
	r->s_end = snap(e);
	pmem_log_detach(r->pl);
	r->pl = NULL;
}

static void recorded_free(struct recorded *r)
{
	env_close(&r->e);
	free(r->s0);
	free(r->s1);
	free(r->s_mark);
	free(r->s2);
	free(r->s_end);
}

static void check_reader_at(uint64_t idx, const uint8_t *want)
{
	size_t n;
	assert_int_equal(run("python3 %s %s --base %s --out %s --end-at-entry %llu", reader, logp,
			     basep, outp, (unsigned long long)idx), 0);
	uint8_t *got = slurp(outp, &n);
	assert_int_equal(n, SIZE);
	assert_memory_equal(got, want, SIZE);
	free(got);
}

static void test_entries_and_reader(void **state)
{
	(void)state;
	struct recorded r;
	record(&r, 2);
	size_t n;
	uint8_t *b = slurp(basep, &n);
	assert_int_equal(n, SIZE);
	assert_memory_equal(b, r.s0, SIZE);
	free(b);

	struct ent *e = parse_log(logp, &n);
	static const struct { uint64_t flags, sector, nr; } want[] = {
		{ BLK_LOG_PMEM_WB, 0, 8 }, { BLK_LOG_PMEM_WB, 3 * 8, 8 }, { BLK_LOG_FLUSH, 0, 0 },
		{ BLK_LOG_PMEM_WB, 5 * 8, 8 }, { BLK_LOG_PMEM_WB, 6 * 8, 8 },
		{ 0, 16 * 8 + 1, 2 },                      /* aligned direct write */
		{ 0, 20 * 8, 1 },                          /* unaligned: its covering sector */
		{ BLK_LOG_DISCARD, 24 * 8, 16 },           /* punch */
		{ 0, 28 * 8, 8 },                          /* zero range: a write of zeroes */
		{ BLK_LOG_MARK, 0, 0 },
		{ BLK_LOG_PMEM_WB, 5 * 8, 8 }, { BLK_LOG_FLUSH, 0, 0 },
		{ BLK_LOG_PMEM_WB, 40 * 8, 8 }, { BLK_LOG_PMEM_WB, 41 * 8, 8 }, { 0, 60 * 8, 8 },
	};
	assert_int_equal(n, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(e[i].flags, want[i].flags);
		assert_int_equal(e[i].sector, want[i].sector);
		assert_int_equal(e[i].nr, want[i].nr);
	}
	/* the data is what reached the file by then */
	assert_memory_equal(e[0].data, r.s1, PG);
	assert_memory_equal(e[1].data, r.s1 + 3 * PG, PG);
	assert_memory_equal(e[3].data, r.s_mark + 5 * PG, PG);
	assert_memory_equal(e[4].data, r.s_mark + 6 * PG, PG);
	assert_memory_equal(e[5].data, r.s_mark + 16 * PG + 512, 1024);
	assert_memory_equal(e[6].data, r.s_mark + 20 * PG, 512);
	for (size_t i = 0; i < PG; i++)
		assert_int_equal(e[8].data[i], 0);
	assert_string_equal(e[9].mark, "before-flush");
	assert_memory_equal(e[10].data, r.s2 + 5 * PG, PG);
	assert_memory_not_equal(e[10].data, e[3].data, PG);
	assert_memory_equal(e[12].data, r.s_end + 40 * PG, PG);
	assert_memory_equal(e[14].data, r.s_end + 60 * PG, PG);
	free_log(e, n);

	/* the independent reader accepts every byte, sees the same entries, and rebuilds the
	 * file at each FLUSH, at the mark and at the end */
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "python3 %s %s --dump", reader, logp);
	FILE *p = popen(cmd, "r");
	char line[1024];
	size_t lines = 0;
	while (fgets(line, sizeof(line), p)) {
		unsigned long long idx, flags;
		assert_int_equal(sscanf(line, "%llu %llu", &idx, &flags), 2);
		assert_int_equal(idx, lines);
		assert_int_equal(flags, want[lines].flags);
		lines++;
	}
	assert_int_equal(pclose(p), 0);
	assert_int_equal(lines, n);
	check_reader_at(r.flush1, r.s1);
	check_reader_at(r.mark_idx, r.s_mark);
	check_reader_at(r.flush2, r.s2);
	check_reader_at(n - 1, r.s_end);
	recorded_free(&r);
}

/* build/cvmm-replay rebuilds the same states. It is being taught PMEM_WB on another branch:
 * until it knows the flag it refuses the log ("unknown flags"), and this test says so and
 * skips instead of failing; any other failure fails. */
static void test_cvmm_replay(void **state)
{
	(void)state;
	struct recorded r;
	record(&r, 2);
	int rc = run("%s %s --list >/dev/null 2>%s/err", replay_bin(), logp, dir);
	if (rc != 0) {
		assert_int_equal(run("grep -q 'unknown flags' %s/err", dir), 0);
		fprintf(stderr, "note: %s does not know PMEM_WB yet: skipped\n", replay_bin());
		recorded_free(&r);
		skip();
	}
	static const struct { int which; } pts[] = { { 1 }, { 2 }, { 3 } };
	for (size_t k = 0; k < 3; k++) {
		uint64_t idx = pts[k].which == 1 ? r.flush1 : pts[k].which == 2 ? r.flush2 : 14;
		const uint8_t *want = pts[k].which == 1 ? r.s1 : pts[k].which == 2 ? r.s2 : r.s_end;
		assert_int_equal(run("%s %s --base %s --out %s --end-at-entry %llu", replay_bin(),
				     logp, basep, outp, (unsigned long long)idx), 0);
		size_t n;
		uint8_t *got = slurp(outp, &n);
		assert_int_equal(n, SIZE);
		assert_memory_equal(got, want, SIZE);
		free(got);
	}
	assert_int_equal(run("%s %s --base %s --out %s", replay_bin(), logp, basep, outp), 0);
	size_t n;
	uint8_t *got = slurp(outp, &n);
	assert_memory_equal(got, r.s_end, SIZE);
	free(got);
	recorded_free(&r);
}

/* ---- power cut ---- */

static int cut(const char *log, const char *target, uint64_t toff, uint64_t seed,
	       unsigned flags, char *report, size_t rlen)
{
	char err[256];
	int r = blk_log_power_cut(log, basep, target, toff, seed, flags, report, rlen, err,
				  sizeof(err));
	if (r)
		fprintf(stderr, "power cut: %s\n", err);
	return r;
}

/* The target after a seeded cut: everything up to the last FLUSH, and each unit logged after
 * it either as the FLUSH state or as its later data, pages whole; returns the kept units as
 * a bit mask (pages 40..47: bits 0..7, the 8 sectors at page 60: bits 8..15). */
static unsigned check_cut_state(const struct recorded *r, const uint8_t *got)
{
	unsigned mask = 0;
	for (uint64_t s = 0; s < SIZE / 512; s++) {
		const uint8_t *g = got + s * 512, *a = r->s2 + s * 512, *z = r->s_end + s * 512;
		uint64_t page = s / 8;
		int bit = page >= 40 && page < 48 ? (int)(page - 40) : page == 60 ? 8 + (int)(s % 8)
										  : -1;
		if (bit < 0) {
			assert_memory_equal(g, a, 512);
			continue;
		}
		assert_memory_not_equal(a, z, 512);
		bool later = memcmp(g, z, 512) == 0;
		assert_true(later || memcmp(g, a, 512) == 0);
		if (page != 60 && s % 8) /* a page is one unit: its sectors agree */
			assert_int_equal(!!(mask & (1u << bit)), later);
		if (later)
			mask |= 1u << bit;
	}
	return mask;
}

static void test_power_cut(void **state)
{
	(void)state;
	struct recorded r;
	record(&r, 8);
	char rep[256];
	size_t n;
	/* exactly the last FLUSH, rewriting only what the tail touched */
	put_file(tgt, r.s_end, SIZE);
	assert_int_equal(cut(logp, tgt, 0, 0, 0, rep, sizeof(rep)), 0);
	uint8_t *got = slurp(tgt, &n);
	assert_int_equal(n, SIZE);
	assert_memory_equal(got, r.s2, SIZE);
	free(got);
	assert_non_null(strstr(rep, "cut at entry 11 (FLUSH 2 of 2); 9 entries after it, 16 units, "
				    "0 kept (seed 0); rewrote 36864 bytes in 2 ranges (incremental)"));

	/* seeded: a state between, the same for the same seed; full == incremental */
	unsigned masks[8], any = 0, differ = 0;
	for (uint64_t seed = 1; seed <= 8; seed++) {
		put_file(tgt, r.s_end, SIZE);
		assert_int_equal(cut(logp, tgt, 0, seed, 0, rep, sizeof(rep)), 0);
		got = slurp(tgt, &n);
		masks[seed - 1] = check_cut_state(&r, got);
		char want[64];
		snprintf(want, sizeof(want), "16 units, %d kept (seed %llu)",
			 __builtin_popcount(masks[seed - 1]), (unsigned long long)seed);
		assert_non_null(strstr(rep, want));
		any |= masks[seed - 1];
		differ |= masks[seed - 1] ^ masks[0];
		/* again, and as a full cut into a new file: the same bytes */
		put_file(tgt, r.s_end, SIZE);
		assert_int_equal(cut(logp, tgt, 0, seed, 0, rep, sizeof(rep)), 0);
		uint8_t *again = slurp(tgt, &n);
		assert_memory_equal(again, got, SIZE);
		free(again);
		unlink(outp);
		assert_int_equal(cut(logp, outp, 0, seed, BLK_LOG_CUT_FULL, rep, sizeof(rep)), 0);
		assert_non_null(strstr(rep, "(full)"));
		again = slurp(outp, &n);
		assert_int_equal(n, SIZE);
		assert_memory_equal(again, got, SIZE);
		free(again);
		free(got);
	}
	assert_true(any != 0);    /* some seed keeps something */
	assert_true(differ != 0); /* and the seeds do not all agree */
	unlink(outp);
	assert_int_equal(cut(logp, outp, 0, 0, BLK_LOG_CUT_FULL, rep, sizeof(rep)), 0);
	got = slurp(outp, &n);
	assert_memory_equal(got, r.s2, SIZE);
	free(got);

	/* a log with bytes past its counted entries (not closed): refused incrementally */
	char cmd[1024], log2[200];
	snprintf(log2, sizeof(log2), "%s/log2", dir);
	snprintf(cmd, sizeof(cmd), "cp %s %s && head -c 512 /dev/zero >> %s", logp, log2, log2);
	assert_int_equal(system(cmd), 0);
	char err[256];
	put_file(tgt, r.s_end, SIZE);
	assert_int_equal(blk_log_power_cut(log2, basep, tgt, 0, 0, 0, rep, sizeof(rep), err,
					   sizeof(err)), -1);
	assert_non_null(strstr(err, "not closed"));
	got = slurp(tgt, &n);
	assert_memory_equal(got, r.s_end, SIZE); /* untouched */
	free(got);
	assert_int_equal(cut(log2, outp, 0, 0, BLK_LOG_CUT_FULL, rep, sizeof(rep)), 0);
	/* a base too small for the log: refused */
	assert_int_equal(truncate(basep, 30 * PG), 0);
	assert_int_equal(blk_log_power_cut(logp, basep, tgt, 0, 0, 0, rep, sizeof(rep), err,
					   sizeof(err)), -1);
	assert_non_null(strstr(err, "past the end of the base"));
	recorded_free(&r);
}

/* The whole power-cut sequence on the real file: stores FLUSHed, then a direct write, a
 * written-back store and a store never written back; the VM "stops": no exit-time writeback
 * (pcache_power_cut), the log detached, the cache closed; the cut leaves the file
 * exactly as at the FLUSH. */
static void test_power_cut_sequence(void **state)
{
	(void)state;
	struct recorded r;
	open_logged(&r);
	struct env *e = &r.e;
	uint64_t cur = pcache_errseq_sample(e->pc);
	store_page(e, 2, 0x2000);
	assert_int_equal(pcache_flush(e->pc, &cur), 0);
	uint8_t *s_flush = snap(e);
	uint8_t b[4096];
	fill(b, sizeof(b), 42);
	assert_int_equal(pcache_direct_write(e->pc, 30 * PG, b, sizeof(b)), (ssize_t)sizeof(b));
	store_page(e, 7, 0x7000);
	assert_int_equal(pcache_writeback_range(e->pc, 0, SIZE), 0);
	store_page(e, 9, 0x9000); /* dirty in the cache at the cut */
	pcache_power_cut(e->pc);
	pmem_log_detach(r.pl);
	r.pl = NULL;
	pcache_map_destroy(e->m);
	e->m = NULL;
	pcache_put(e->pc);
	e->pc = NULL;
	uint8_t *s_stop = snap(e);
	assert_memory_equal(s_stop + 9 * PG, s_flush + 9 * PG, PG); /* not written at exit */
	assert_memory_not_equal(s_stop + 7 * PG, s_flush + 7 * PG, PG);
	char rep[256];
	assert_int_equal(cut(logp, e->path, 0, 0, 0, rep, sizeof(rep)), 0);
	assert_non_null(strstr(rep, "rewrote 8192 bytes in 2 ranges"));
	uint8_t *got = snap(e);
	assert_memory_equal(got, s_flush, SIZE);
	free(got);
	free(s_stop);
	free(s_flush);
	recorded_free(&r);
}

/* After pcache_power_cut nothing is logged: not a FLUSH that found nothing to write. */
static void test_nothing_logged_after_cut(void **state)
{
	(void)state;
	struct recorded r;
	open_logged(&r);
	uint64_t cur = pcache_errseq_sample(r.e.pc);
	store_page(&r.e, 1, 0x1000);
	assert_int_equal(pcache_flush(r.e.pc, &cur), 0);
	assert_int_equal(pmem_log_entries(r.pl), 2);
	pcache_power_cut(r.e.pc);
	(void)pcache_flush(r.e.pc, &cur);
	assert_int_equal(pmem_log_entries(r.pl), 2);
	pmem_log_detach(r.pl);
	r.pl = NULL;
	recorded_free(&r);
}

/* A blk log (devices/blk_log.c) of a disk at an offset in its file: the cut rewrites the
 * disk's region of the file and nothing else. */
static void test_power_cut_blk(void **state)
{
	(void)state;
	char disk[200];
	snprintf(disk, sizeof(disk), "%s/disk", dir);
	uint8_t *img = malloc(MIB);
	fill(img, MIB, 5);
	put_file(disk, img, MIB);
	const uint64_t off = 64 * KIB;
	struct blk_file_opts o = { .path = disk, .direct = false, .offset = off };
	struct blk_backend *be;
	char err[256];
	assert_int_equal(blk_file_open(&o, &be, err, sizeof(err)), 0);
	if (blk_log_attach(disk, off, logp, &be, err, sizeof(err)))
		fail_msg("%s", err);
	uint8_t b[8192];
	fill(b, sizeof(b), 6);
	struct iovec v = { b, 4096 };
	assert_int_equal(be->ops->write(be, &v, NULL, 1, 0, 4096), 0);
	assert_int_equal(be->ops->flush(be), 0);
	size_t n;
	uint8_t *s_flush = slurp(disk, &n);
	v = (struct iovec){ b + 4096, 4096 };
	assert_int_equal(be->ops->write(be, &v, NULL, 1, 8192, 4096), 0);
	assert_int_equal(be->ops->discard(be, 0, 1024), 0);
	be->ops->destroy(be);
	uint8_t *s_end = slurp(disk, &n);
	assert_memory_not_equal(s_end, s_flush, MIB);
	char rep[256];
	assert_int_equal(cut(logp, disk, off, 0, 0, rep, sizeof(rep)), 0);
	uint8_t *got = slurp(disk, &n);
	assert_int_equal(n, MIB);
	assert_memory_equal(got, s_flush, MIB);
	assert_non_null(strstr(rep, "10 units, 0 kept"));
	assert_non_null(strstr(rep, "rewrote 5120 bytes in 2 ranges"));
	/* seeded: sector-granular units of the write and the discard */
	put_file(disk, s_end, MIB);
	assert_int_equal(cut(logp, disk, off, 12345, 0, rep, sizeof(rep)), 0);
	free(got);
	got = slurp(disk, &n);
	for (uint64_t s = 0; s < MIB / 512; s++) {
		const uint8_t *g = got + s * 512;
		if (memcmp(g, s_flush + s * 512, 512))
			assert_memory_equal(g, s_end + s * 512, 512);
	}
	assert_memory_equal(got, s_flush, off); /* outside the disk: never touched */
	free(got);
	free(s_flush);
	free(s_end);
	free(img);
}

/* Truncate with the log on: a DISCARD of what the file lost (up to the base's end); an
 * observer without a truncate callback makes pcache_truncate refuse; one log per file. */
static int trunc_called;
static void obs_flush_only(void *ctx)
{
	(void)ctx;
	trunc_called++;
}
static const struct pcache_observer_ops no_truncate_ops = { .flush = obs_flush_only };

static void test_truncate_and_attach(void **state)
{
	(void)state;
	struct recorded r;
	open_logged(&r);
	struct env *e = &r.e;
	char err[256];
	struct pmem_log *again;
	assert_int_equal(pmem_log_attach(e->pc, e->path, outp, &again, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "already has a write log"));
	assert_int_equal(pcache_set_observer(e->pc, &no_truncate_ops, NULL), -EBUSY);
	store_page(e, 1, 0x1111);
	assert_int_equal(pcache_truncate(e->pc, SIZE / 2), 0);
	uint64_t cur = pcache_errseq_sample(e->pc);
	assert_int_equal(pcache_flush(e->pc, &cur), 0);
	uint8_t *s_end = snap(e);
	pmem_log_detach(r.pl);
	r.pl = NULL;
	size_t n;
	struct ent *l = parse_log(logp, &n);
	assert_int_equal(n, 3);
	assert_int_equal(l[0].flags, BLK_LOG_DISCARD);
	assert_int_equal(l[0].sector, SIZE / 2 / 512);
	assert_int_equal(l[0].nr, SIZE / 2 / 512);
	assert_int_equal(l[1].flags, BLK_LOG_PMEM_WB);
	assert_int_equal(l[2].flags, BLK_LOG_FLUSH);
	free_log(l, n);
	check_reader_at(2, s_end);
	free(s_end);
	/* an observer that cannot take a truncate: refused while it is installed */
	assert_int_equal(pcache_set_observer(e->pc, &no_truncate_ops, NULL), 0);
	assert_int_equal(pcache_truncate(e->pc, SIZE / 4), -EOPNOTSUPP);
	assert_int_equal(pcache_flush(e->pc, &cur), 0);
	assert_int_equal(trunc_called, 1);
	assert_int_equal(pcache_set_observer(e->pc, NULL, NULL), 0);
	assert_int_equal(pcache_truncate(e->pc, SIZE / 4), 0);
	assert_int_equal(pcache_flush(e->pc, &cur), 0);
	assert_int_equal(trunc_called, 1); /* removed: not called any more */
	recorded_free(&r);
}

/* ---- the FLUSH rule under concurrency ----
 * Writer threads each own one page: store k into it, FLUSH, then mark "t k". A background
 * thread writes back the whole window in a loop, with the race delay holding its runs between
 * "hint taken, DIRTY cleared" and the file write, so a writer's FLUSH often finds its page
 * taken by the background writeback and must wait for it. The rule: the store k was covered
 * by a FLUSH that returned before the mark, so the last PMEM_WB entry of the page before the
 * last FLUSH entry preceding the mark holds k. */
#define NWR   3
#define ITERS 25

struct wthr {
	struct env *e;
	struct pmem_log *pl;
	int t;
};
static int stop_bg;

static uint64_t wpage(int t)
{
	return 16 * (uint64_t)t + 5; /* one page in a granule of its own */
}

static void *flush_writer(void *arg)
{
	struct wthr *a = arg;
	uint64_t cur = pcache_errseq_sample(a->e->pc);
	for (uint64_t k = 1; k <= ITERS; k++) {
		CHECK(env_store8(a->e, wpage(a->t) * PG + 8, ((uint64_t)a->t << 32) | k) ==
		      PCACHE_FAULT_DONE);
		CHECK(pcache_flush(a->e->pc, &cur) == 0);
		char m[32];
		snprintf(m, sizeof(m), "t%d k%llu", a->t, (unsigned long long)k);
		CHECK(pmem_log_mark(a->pl, m) == 0);
	}
	return NULL;
}

static void *bg_writeback(void *arg)
{
	struct env *e = arg;
	while (!__atomic_load_n(&stop_bg, __ATOMIC_ACQUIRE)) {
		CHECK(pcache_writeback_range(e->pc, 0, SIZE) == 0);
		sched_yield();
	}
	return NULL;
}

static void test_flush_order_threads(void **state)
{
	(void)state;
	struct recorded r;
	open_logged(&r);
	pcache_set_race_delay(r.e.pc, 300);
	pthread_t bg, th[NWR];
	struct wthr a[NWR];
	__atomic_store_n(&stop_bg, 0, __ATOMIC_RELEASE);
	assert_int_equal(pthread_create(&bg, NULL, bg_writeback, &r.e), 0);
	for (int t = 0; t < NWR; t++) {
		a[t] = (struct wthr){ .e = &r.e, .pl = r.pl, .t = t };
		assert_int_equal(pthread_create(&th[t], NULL, flush_writer, &a[t]), 0);
	}
	for (int t = 0; t < NWR; t++)
		pthread_join(th[t], NULL);
	__atomic_store_n(&stop_bg, 1, __ATOMIC_RELEASE);
	pthread_join(bg, NULL);
	pcache_set_race_delay(r.e.pc, 0);
	pmem_log_detach(r.pl);
	r.pl = NULL;

	size_t n;
	struct ent *e = parse_log(logp, &n);
	unsigned marks = 0, flushes = 0, wbs = 0;
	for (size_t i = 0; i < n; i++) {
		flushes += !!(e[i].flags & BLK_LOG_FLUSH);
		wbs += !!(e[i].flags & BLK_LOG_PMEM_WB);
		if (!(e[i].flags & BLK_LOG_MARK))
			continue;
		marks++;
		int t;
		unsigned long long k;
		assert_int_equal(sscanf(e[i].mark, "t%d k%llu", &t, &k), 2);
		size_t f = i;
		while (f-- > 0 && !(e[f].flags & BLK_LOG_FLUSH))
			;
		assert_true(f < i); /* a FLUSH entry precedes the mark */
		size_t w = f;
		while (w-- > 0 && !((e[w].flags & BLK_LOG_PMEM_WB) && e[w].sector == wpage(t) * 8))
			;
		assert_true(w < f);
		uint64_t v;
		memcpy(&v, e[w].data + 8, 8);
		if (v != (((uint64_t)t << 32) | k))
			fail_msg("mark '%s' (entry %zu): the last FLUSH before it (entry %zu) follows "
				 "a writeback of the page holding %#llx, not the store it covered",
				 e[i].mark, i, f, (unsigned long long)v);
	}
	assert_int_equal(marks, NWR * ITERS);
	assert_true(flushes >= NWR * ITERS);
	assert_true(wbs >= NWR * ITERS);
	free_log(e, n);
	/* and the reader accepts the whole log */
	assert_int_equal(run("python3 %s %s --dump >/dev/null", reader, logp), 0);
	recorded_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_entries_and_reader, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cvmm_replay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_power_cut, setup, teardown),
		cmocka_unit_test_setup_teardown(test_power_cut_sequence, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nothing_logged_after_cut, setup, teardown),
		cmocka_unit_test_setup_teardown(test_power_cut_blk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncate_and_attach, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_order_threads, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
