/* The blk write log (devices/blk_log.c) over a blk_file backend on a temp file: the log's
 * bytes are checked by an independent reader written from the format description
 * (tests/tools/read_log_writes.py), and cvmm-replay (build/cvmm-replay) and that reader
 * must both rebuild, at every FLUSH point and at a mark, exactly the disk as it was then. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/test_log_util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/blk.h"
#include "devices/blk_log.h"

#define DISK   (2u << 20)
#define NTHR   8
#define PERTHR 20

static char dir[64], disk[128], logp[160], basep[168], outp[160], pyout[160];

static const char *reader = "tests/tools/read_log_writes.py";

static uint8_t *snapshot(void)
{
	size_t n;
	uint8_t *b = slurp(disk, &n);
	assert_int_equal(n, DISK);
	return b;
}

static int setup(void **state)
{
	(void)state;
	make_tmpdir(dir, sizeof(dir), "blklog");
	snprintf(disk, sizeof(disk), "%s/disk", dir);
	snprintf(logp, sizeof(logp), "%s/log", dir);
	snprintf(basep, sizeof(basep), "%s.base", logp);
	snprintf(outp, sizeof(outp), "%s/out", dir);
	snprintf(pyout, sizeof(pyout), "%s/pyout", dir);
	uint8_t *b = malloc(DISK);
	fill(b, DISK, 7);
	int fd = open(disk, O_CREAT | O_TRUNC | O_WRONLY, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, b, DISK), DISK);
	close(fd);
	free(b);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static struct blk_backend *open_logged(bool readonly)
{
	struct blk_file_opts o = { .path = disk, .direct = false, .readonly = readonly };
	struct blk_backend *in, *be;
	char err[256];
	assert_int_equal(blk_file_open(&o, &in, err, sizeof(err)), 0);
	if (blk_log_wrap(in, logp, &be, err, sizeof(err)))
		fail_msg("%s", err);
	return be;
}

static int wr(struct blk_backend *be, uint64_t sector, unsigned nsec, uint32_t seed)
{
	size_t n = (size_t)nsec * 512;
	uint8_t *b = malloc(n);
	fill(b, n, seed);
	struct iovec v = { b, n };
	int rc = be->ops->write(be, &v, NULL, 1, sector * 512, n);
	free(b);
	return rc;
}

/* Both replayers, stopped at entry idx, rebuild exactly `want`. */
static void check_replay_at(uint64_t idx, const uint8_t *want)
{
	size_t n;
	assert_int_equal(run("%s %s --base %s --out %s --end-at-entry %llu", replay_bin(), logp,
			     basep, outp, (unsigned long long)idx), 0);
	uint8_t *got = slurp(outp, &n);
	assert_int_equal(n, DISK);
	assert_memory_equal(got, want, DISK);
	free(got);
	assert_int_equal(run("python3 %s %s --base %s --out %s --end-at-entry %llu", reader, logp,
			     basep, pyout, (unsigned long long)idx), 0);
	got = slurp(pyout, &n);
	assert_int_equal(n, DISK);
	assert_memory_equal(got, want, DISK);
	free(got);
}

struct dump_line {
	unsigned long long idx, flags, sector, nr, dlen;
	char hash[80], mark[256];
};

/* The independent reader's view of the log (it also validates the format, strictly). */
static struct dump_line *dump(size_t *count)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "python3 %s %s --dump", reader, logp);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	size_t cap = 512, n = 0;
	struct dump_line *d = calloc(cap, sizeof(*d));
	char line[1024];
	while (fgets(line, sizeof(line), p)) {
		assert_true(n < cap);
		struct dump_line *x = &d[n++];
		int k = sscanf(line, "%llu %llu %llu %llu %llu %79s %255[^\n]", &x->idx, &x->flags,
			       &x->sector, &x->nr, &x->dlen, x->hash, x->mark);
		assert_true(k >= 6);
	}
	assert_int_equal(pclose(p), 0); /* the reader accepted every byte */
	*count = n;
	return d;
}

struct thr {
	struct blk_backend *be;
	int t;
	bool flusher;
};

static void *writer(void *arg)
{
	struct thr *a = arg;
	for (int k = 0; k < PERTHR; k++) {
		if (a->flusher) {
			assert_int_equal(a->be->ops->flush(a->be), 0);
			continue;
		}
		uint64_t sector = 1024 + (uint64_t)(a->t * PERTHR + k) * 8;
		assert_int_equal(wr(a->be, sector, 8, (uint32_t)(1000 + a->t * PERTHR + k)), 0);
	}
	return NULL;
}

static void test_log_and_replay(void **state)
{
	(void)state;
	const char *how;
	char err[256];
	assert_int_equal(blk_log_capture_base(disk, 0, DISK, basep, &how, err, sizeof(err)), 0);
	assert_non_null(how);
	uint8_t *s0 = snapshot();
	size_t n;
	uint8_t *b = slurp(basep, &n);
	assert_int_equal(n, DISK);
	assert_memory_equal(b, s0, DISK);
	free(b);

	struct blk_backend *be = open_logged(false);
	assert_int_equal(be->size, DISK);
	assert_int_equal(wr(be, 8, 8, 1), 0);                          /* 0 */
	assert_int_equal(wr(be, 100, 1, 2), 0);                        /* 1 */
	assert_int_equal(be->ops->flush(be), 0);                       /* 2 */
	uint8_t *s1 = snapshot();
	assert_int_equal(be->ops->discard(be, 64 * 512, 16 * 512), 0); /* 3 */
	assert_int_equal(be->ops->write_zeroes(be, 200 * 512, 16 * 512, false), 0); /* 4 */
	assert_int_equal(blk_log_mark(be, "after-zero"), 0);           /* 5 */
	uint8_t *s_mark = snapshot();
	uint8_t two[2][4096];
	fill(two[0], 4096, 3);
	fill(two[1], 4096, 4);
	struct iovec v[2] = { { two[0], 4096 }, { two[1], 4096 } };
	assert_int_equal(be->ops->write(be, v, NULL, 2, 300 * 512, 8192), 0); /* 6 */
	assert_int_equal(be->ops->flush(be), 0);                       /* 7 */
	uint8_t *s2 = snapshot();
	assert_int_equal(blk_log_entries(be), 8);

	/* Concurrent writers and a flusher. */
	pthread_t th[NTHR + 1];
	struct thr a[NTHR + 1];
	for (int t = 0; t <= NTHR; t++) {
		a[t] = (struct thr){ .be = be, .t = t, .flusher = t == NTHR };
		assert_int_equal(pthread_create(&th[t], NULL, writer, &a[t]), 0);
	}
	for (int t = 0; t <= NTHR; t++)
		pthread_join(th[t], NULL);
	assert_int_equal(be->ops->flush(be), 0);
	uint8_t *s3 = snapshot();
	uint64_t total = blk_log_entries(be);
	assert_int_equal(total, 8 + NTHR * PERTHR + PERTHR + 1);
	be->ops->destroy(be);

	/* The reader's view of the fixed part. */
	struct dump_line *d = dump(&n);
	assert_int_equal(n, total);
	static const struct { unsigned long long flags, sector, nr; const char *mark; } want[] = {
		{ 0, 8, 8, NULL }, { 0, 100, 1, NULL }, { 1, 0, 0, NULL }, { 4, 64, 16, NULL },
		{ 0, 200, 16, NULL }, { 8, 0, 0, "after-zero" }, { 0, 300, 16, NULL },
		{ 1, 0, 0, NULL },
	};
	for (size_t i = 0; i < 8; i++) {
		assert_int_equal(d[i].idx, i);
		assert_int_equal(d[i].flags, want[i].flags);
		assert_int_equal(d[i].sector, want[i].sector);
		assert_int_equal(d[i].nr, want[i].nr);
		if (want[i].mark) {
			assert_int_equal(d[i].dlen, strlen(want[i].mark));
			assert_string_equal(d[i].mark, want[i].mark);
		} else {
			assert_int_equal(d[i].dlen, 0);
		}
	}
	/* The concurrent part: every write once, at its sector; flushes empty. */
	bool seen[NTHR * PERTHR] = { false };
	unsigned flushes = 0;
	for (size_t i = 8; i < n; i++) {
		if (d[i].flags == 1) {
			assert_int_equal(d[i].nr, 0);
			flushes++;
			continue;
		}
		assert_int_equal(d[i].flags, 0);
		assert_int_equal(d[i].nr, 8);
		assert_true(d[i].sector >= 1024 && (d[i].sector - 1024) % 8 == 0);
		uint64_t k = (d[i].sector - 1024) / 8;
		assert_true(k < NTHR * PERTHR);
		assert_false(seen[k]);
		seen[k] = true;
	}
	assert_int_equal(flushes, PERTHR + 1);
	assert_int_equal(d[n - 1].flags, 1);
	free(d);

	/* Every FLUSH point of the serial part, the mark and the end. */
	check_replay_at(2, s1);
	check_replay_at(7, s2);
	check_replay_at(total - 1, s3);
	assert_int_equal(run("%s %s --base %s --out %s --end-at-mark after-zero", replay_bin(),
			     logp, basep, outp), 0);
	b = slurp(outp, &n);
	assert_memory_equal(b, s_mark, DISK);
	free(b);
	/* Before any entry: the base. Entry 0 only: the base plus the first write. */
	assert_int_equal(run("%s %s --base %s --out %s --end-at-entry 0", replay_bin(), logp,
			     basep, outp), 0);
	b = slurp(outp, &n);
	uint8_t *e0 = malloc(DISK);
	memcpy(e0, s0, DISK);
	fill(e0 + 8 * 512, 8 * 512, 1);
	assert_memory_equal(b, e0, DISK);
	free(b);
	free(e0);

	/* --list counts the FLUSH points and names the mark. */
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "%s %s --list", replay_bin(), logp);
	FILE *p = popen(cmd, "r");
	char line[512];
	bool mark_line = false, count_line = false;
	char expect[64];
	snprintf(expect, sizeof(expect), "%u FLUSH points, 1 marks", 2 + flushes);
	while (fgets(line, sizeof(line), p)) {
		if (strstr(line, "5 sector 0 count 0 flags MARK mark 'after-zero'"))
			mark_line = true;
		if (strstr(line, expect))
			count_line = true;
	}
	assert_int_equal(pclose(p), 0);
	assert_true(mark_line);
	assert_true(count_line);
	free(s0);
	free(s1);
	free(s2);
	free(s3);
	free(s_mark);
}

/* Bad input gets the documented exit codes, never a wrong image silently. */
static void test_replay_errors(void **state)
{
	(void)state;
	const char *how;
	char err[256];
	assert_int_equal(blk_log_capture_base(disk, 0, DISK, basep, &how, err, sizeof(err)), 0);
	struct blk_backend *be = open_logged(false);
	assert_int_equal(wr(be, 0, 64, 9), 0);
	assert_int_equal(be->ops->flush(be), 0);
	be->ops->destroy(be);
	const char *rb = replay_bin();
	assert_int_equal(run("%s %s --base %s --out %s", rb, logp, basep, outp), 0);
	/* A base too small for the log's writes: refused, not silently extended. */
	assert_int_equal(truncate(basep, 64 * 512 - 512), 0);
	assert_int_equal(run("%s %s --base %s --out %s 2>/dev/null", rb, logp, basep, outp), 1);
	assert_int_equal(truncate(basep, DISK), 0);
	assert_int_equal(run("%s %s --base %s --out %s", rb, logp, basep, outp), 0);
	assert_int_equal(run("%s %s --base %s --out %s --end-at-entry 2 2>/dev/null", rb, logp,
			     basep, outp), 3);
	assert_int_equal(run("%s %s --base %s --out %s --end-at-mark nope 2>/dev/null", rb, logp,
			     basep, outp), 3);
	assert_int_equal(run("%s %s --list --out x 2>/dev/null", rb, logp), 64);
	assert_int_equal(run("%s 2>/dev/null", rb), 64);
	/* Entries past nr_entries (a writer that stopped before its superblock update): not
	 * replayed, and --list says so. */
	int lfd = open(logp, O_WRONLY | O_APPEND);
	assert_true(lfd >= 0);
	uint8_t junk[512] = { 1 };
	assert_int_equal(write(lfd, junk, sizeof(junk)), 512);
	close(lfd);
	assert_int_equal(run("%s %s --list | grep -q '^512 bytes after the last entry'", rb, logp), 0);
	assert_int_equal(run("%s %s --base %s --out %s", rb, logp, basep, outp), 0);
	/* Truncated: the write's data cut short. */
	assert_int_equal(truncate(logp, 512 + 512 + 100), 0);
	assert_int_equal(run("%s %s --list >/dev/null 2>&1", rb, logp), 1);
	assert_int_equal(run("python3 %s %s --dump >/dev/null 2>&1", reader, logp), 1);
	/* Wrong magic. */
	int fd = open(logp, O_WRONLY);
	assert_int_equal(pwrite(fd, "X", 1, 0), 1);
	close(fd);
	assert_int_equal(run("%s %s --base %s --out %s 2>/dev/null", rb, logp, basep, outp), 1);
	assert_int_equal(run("python3 %s %s --dump >/dev/null 2>&1", reader, logp), 1);
	/* Too short for a superblock. */
	assert_int_equal(truncate(logp, 10), 0);
	assert_int_equal(run("%s %s --list 2>/dev/null", rb, logp), 1);
}

/* Failed operations are not logged; marks check their argument; links are refused. */
static void test_failures_and_marks(void **state)
{
	(void)state;
	struct blk_backend *be = open_logged(true);
	assert_int_equal(wr(be, 0, 8, 1), -EROFS);
	assert_int_equal(be->ops->discard(be, 0, 4096), -EROFS);
	assert_int_equal(be->ops->write_zeroes(be, 0, 4096, true), -EROFS);
	assert_int_equal(blk_log_entries(be), 0);
	assert_int_equal(blk_log_mark(be, ""), -EINVAL);
	char big[BLK_LOG_MARK_MAX + 2];
	memset(big, 'm', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	assert_int_equal(blk_log_mark(be, big), -EINVAL);
	big[BLK_LOG_MARK_MAX] = 0;
	assert_int_equal(blk_log_mark(be, big), 0);
	assert_int_equal(blk_log_entries(be), 1);
	be->ops->destroy(be);
	size_t n;
	struct dump_line *d = dump(&n);
	assert_int_equal(n, 1);
	assert_int_equal(d[0].dlen, BLK_LOG_MARK_MAX);
	free(d);

	struct blk_file_opts o = { .path = disk, .direct = false };
	struct blk_backend *in;
	char err[256];
	assert_int_equal(blk_file_open(&o, &in, err, sizeof(err)), 0);
	assert_int_equal(blk_log_mark(in, "x"), -EINVAL); /* not a log backend */
	char link[200];
	snprintf(link, sizeof(link), "%s/link", dir);
	assert_int_equal(symlink(logp, link), 0);
	assert_int_equal(blk_log_wrap(in, link, &be, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "symbolic link"));
}

/* What [blk] write_log does in blk_setup: a window of the file becomes PATH.base, and the
 * log's sectors count from the window's start. */
static void test_attach_window(void **state)
{
	(void)state;
	struct blk_file_opts o = { .path = disk, .direct = false, .offset = 1u << 20 };
	struct blk_backend *be;
	char err[256];
	assert_int_equal(blk_file_open(&o, &be, err, sizeof(err)), 0);
	assert_int_equal(be->size, DISK - (1u << 20));
	if (blk_log_attach(disk, o.offset, logp, &be, err, sizeof(err)))
		fail_msg("%s", err);
	uint8_t *s0 = snapshot();
	size_t n;
	uint8_t *b = slurp(basep, &n);
	assert_int_equal(n, be->size);
	assert_memory_equal(b, s0 + o.offset, n);
	free(b);
	assert_int_equal(wr(be, 16, 8, 77), 0);
	assert_int_equal(be->ops->flush(be), 0);
	uint8_t *s1 = snapshot();
	uint64_t size = be->size;
	be->ops->destroy(be);
	assert_int_equal(run("%s %s --base %s --out %s", replay_bin(), logp, basep, outp), 0);
	b = slurp(outp, &n);
	assert_int_equal(n, size);
	assert_memory_equal(b, s1 + o.offset, n);
	free(b);
	free(s0);
	free(s1);
	/* A base that cannot be written: the backend is gone, err names the path. */
	assert_int_equal(blk_file_open(&o, &be, err, sizeof(err)), 0);
	char bad[200];
	snprintf(bad, sizeof(bad), "%s/no/such/dir/log", dir);
	assert_int_equal(blk_log_attach(disk, o.offset, bad, &be, err, sizeof(err)), -1);
	assert_null(be);
	assert_non_null(strstr(err, "no/such/dir/log.base"));
}

/* ---- the FLUSH rule: a write in flight when a flush is issued is not covered by it, so the
 * flush waits for it and its entry comes first; the inner flush runs after it completed. */
struct slow_be {
	struct blk_backend be;
	int seq, write_done_at, flush_at;
	pthread_mutex_t m;
};

static int slow_write(struct blk_backend *be, const struct iovec *iov, const uint64_t *gpa,
		      unsigned n, uint64_t off, uint64_t len)
{
	struct slow_be *s = (struct slow_be *)be;
	usleep(200 * 1000);
	pthread_mutex_lock(&s->m);
	s->write_done_at = ++s->seq;
	pthread_mutex_unlock(&s->m);
	return 0;
}
static int slow_flush(struct blk_backend *be)
{
	struct slow_be *s = (struct slow_be *)be;
	pthread_mutex_lock(&s->m);
	s->flush_at = ++s->seq;
	pthread_mutex_unlock(&s->m);
	return 0;
}
static void slow_destroy(struct blk_backend *be)
{
	pthread_mutex_destroy(&((struct slow_be *)be)->m);
	free(be);
}
static const struct blk_backend_ops slow_ops = {
	.write = slow_write, .flush = slow_flush, .destroy = slow_destroy,
};

static void *slow_writer(void *arg)
{
	struct blk_backend *be = arg;
	uint8_t b[4096] = { 0 };
	struct iovec v = { b, sizeof(b) };
	assert_int_equal(be->ops->write(be, &v, NULL, 1, 4096, 4096), 0);
	return NULL;
}

static void test_flush_waits_for_writes_in_flight(void **state)
{
	(void)state;
	struct slow_be *s = calloc(1, sizeof(*s));
	s->be = (struct blk_backend){ .ops = &slow_ops, .size = DISK };
	pthread_mutex_init(&s->m, NULL);
	struct blk_backend *be;
	char err[256];
	assert_int_equal(blk_log_wrap(&s->be, logp, &be, err, sizeof(err)), 0);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, slow_writer, be), 0);
	usleep(50 * 1000); /* the write is in the inner backend now */
	assert_int_equal(be->ops->flush(be), 0);
	pthread_join(t, NULL);
	assert_int_equal(s->write_done_at, 1);
	assert_int_equal(s->flush_at, 2);
	be->ops->destroy(be);
	size_t n;
	struct dump_line *d = dump(&n);
	assert_int_equal(n, 2);
	assert_int_equal(d[0].flags, 0);
	assert_int_equal(d[0].sector, 8);
	assert_int_equal(d[1].flags, 1);
	free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_log_and_replay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replay_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failures_and_marks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_attach_window, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_waits_for_writes_in_flight, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
