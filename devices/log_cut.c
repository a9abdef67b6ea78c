/* Power cut: rewrite a file as a crash state of a write log (devices/log_cut.h). Reads the
 * log itself (independent of tools/cvmm-replay.c). */
#include "devices/log_cut.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/blk_log.h"

#define SEC      512ULL
#define CHUNK    (1ULL << 20)
#define PAGE_SEC 8ULL
#define KNOWN    (BLK_LOG_FLUSH | BLK_LOG_FUA | BLK_LOG_DISCARD | BLK_LOG_MARK | \
		  BLK_LOG_METADATA | BLK_LOG_PMEM_WB)

struct ent {
	uint64_t sector, nr, flags;
	uint64_t data;      /* byte offset of its data in the log */
};

struct range {
	uint64_t s0, s1;    /* sectors [s0, s1) */
};

struct cut {
	int logfd, basefd, tfd;
	struct ent *e;
	uint64_t n, last_flush; /* last_flush = n: none */
	uint64_t seed;
	uint64_t base_sec;
	uint8_t *buf;
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 2, 3)))
static int fail(struct cut *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->err, c->errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t r = pread(fd, (uint8_t *)buf + done, len - done, (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ENODATA;
		done += (size_t)r;
	}
	return 0;
}

static int pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t r = pwrite(fd, (const uint8_t *)buf + done, len - done, (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		done += (size_t)r;
	}
	return 0;
}

static uint64_t le64_at(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return le64toh(v);
}

/* Read and check the superblock and every counted entry's header. */
static int parse(struct cut *c, const char *path, bool full)
{
	uint8_t s[SEC];
	struct stat st;
	if (fstat(c->logfd, &st) < 0)
		return fail(c, "log '%s': %s", path, strerror(errno));
	uint64_t fsize = (uint64_t)st.st_size;
	if (fsize < SEC || pread_full(c->logfd, s, SEC, 0))
		return fail(c, "log '%s': too short for a superblock", path);
	uint32_t ss;
	memcpy(&ss, s + 24, 4);
	if (le64_at(s) != BLK_LOG_MAGIC || le64_at(s + 8) != BLK_LOG_VERSION ||
	    le32toh(ss) != SEC)
		return fail(c, "log '%s': not a dm-log-writes log of 512-byte sectors", path);
	uint64_t n = le64_at(s + 16);
	if (n > fsize / SEC)
		return fail(c, "log '%s': nr_entries %llu larger than the file", path,
			    (unsigned long long)n);
	c->e = calloc(n ? n : 1, sizeof(*c->e));
	if (!c->e)
		return fail(c, "log '%s': out of memory", path);
	uint64_t pos = SEC;
	c->last_flush = n;
	for (uint64_t i = 0; i < n; i++) {
		if (pos + SEC > fsize || pread_full(c->logfd, s, SEC, pos))
			return fail(c, "log '%s': entry %llu truncated", path, (unsigned long long)i);
		struct ent *e = &c->e[i];
		e->sector = le64_at(s);
		e->nr = le64_at(s + 8);
		e->flags = le64_at(s + 16);
		if (e->flags & ~KNOWN)
			return fail(c, "log '%s': entry %llu has unknown flags %#llx", path,
				    (unsigned long long)i, (unsigned long long)e->flags);
		if (!e->flags && !e->nr)
			return fail(c, "log '%s': entry %llu is all zeroes", path,
				    (unsigned long long)i);
		pos += SEC;
		e->data = pos;
		if (e->nr > (UINT64_MAX / SEC) - e->sector || e->sector + e->nr > c->base_sec)
			return fail(c, "log '%s': entry %llu (sectors %llu+%llu) is past the end of "
				    "the base (%llu sectors)", path, (unsigned long long)i,
				    (unsigned long long)e->sector, (unsigned long long)e->nr,
				    (unsigned long long)c->base_sec);
		if (!(e->flags & BLK_LOG_DISCARD))
			pos += e->nr * SEC;
		if (pos > fsize)
			return fail(c, "log '%s': entry %llu's data truncated", path,
				    (unsigned long long)i);
		if (e->flags & BLK_LOG_FLUSH)
			c->last_flush = i;
	}
	if (!full && pos != fsize)
		return fail(c, "log '%s': %llu bytes past its last counted entry: the log is not "
			    "closed (detach it first) or was cut short; use a full cut",
			    path, (unsigned long long)(fsize - pos));
	c->n = n;
	return 0;
}

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t unit_of(const struct ent *e)
{
	return (e->flags & BLK_LOG_PMEM_WB) && e->nr % PAGE_SEC == 0 ? PAGE_SEC : 1;
}

static bool keep(const struct cut *c, uint64_t i, uint64_t u)
{
	if (c->e[i].flags & BLK_LOG_FUA)
		return true;
	if (!c->seed)
		return false;
	return mix(c->seed ^ mix(i * 0x100000001b3ULL + u)) & 1;
}

/* Apply sectors [a, b) of entry i (clipped to the chunk [c0, c1), in sectors) to buf. */
static int apply(struct cut *c, uint64_t i, uint64_t a, uint64_t b, uint64_t c0)
{
	const struct ent *e = &c->e[i];
	uint8_t *dst = c->buf + (a - c0) * SEC;
	if (e->flags & BLK_LOG_DISCARD) {
		memset(dst, 0, (b - a) * SEC);
		return 0;
	}
	int r = pread_full(c->logfd, dst, (b - a) * SEC, e->data + (a - e->sector) * SEC);
	return r ? fail(c, "log: reading entry %llu's data: %s", (unsigned long long)i,
			strerror(-r)) : 0;
}

static bool has_data(const struct ent *e)
{
	return e->nr && !(e->flags & (BLK_LOG_FLUSH | BLK_LOG_MARK));
}

/* Build chunk [c0, c1) (sectors) of the cut state in c->buf and write it to the target. */
static int do_chunk(struct cut *c, uint64_t c0, uint64_t c1, uint64_t toff)
{
	int r = pread_full(c->basefd, c->buf, (c1 - c0) * SEC, c0 * SEC);
	if (r)
		return fail(c, "base: reading sectors %llu..%llu: %s", (unsigned long long)c0,
			    (unsigned long long)c1, strerror(-r));
	uint64_t upto = c->last_flush == c->n ? 0 : c->last_flush + 1;
	for (uint64_t i = 0; i < upto; i++) {
		const struct ent *e = &c->e[i];
		if (!has_data(e))
			continue;
		uint64_t a = e->sector > c0 ? e->sector : c0;
		uint64_t b = e->sector + e->nr < c1 ? e->sector + e->nr : c1;
		if (a < b && apply(c, i, a, b, c0))
			return -1;
	}
	for (uint64_t i = upto; i < c->n; i++) {
		const struct ent *e = &c->e[i];
		if (!has_data(e))
			continue;
		uint64_t a = e->sector > c0 ? e->sector : c0;
		uint64_t b = e->sector + e->nr < c1 ? e->sector + e->nr : c1;
		if (a >= b)
			continue;
		uint64_t us = unit_of(e);
		/* the units overlapping [a, b): runs of kept ones applied at once */
		uint64_t u = (a - e->sector) / us, uend = (b - e->sector + us - 1) / us;
		while (u < uend) {
			if (!keep(c, i, u)) {
				u++;
				continue;
			}
			uint64_t v = u + 1;
			while (v < uend && keep(c, i, v))
				v++;
			uint64_t x = e->sector + u * us, y = e->sector + v * us;
			if (x < a)
				x = a;
			if (y > b)
				y = b;
			if (apply(c, i, x, y, c0))
				return -1;
			u = v;
		}
	}
	r = pwrite_full(c->tfd, c->buf, (c1 - c0) * SEC, toff + c0 * SEC);
	return r ? fail(c, "target: writing at %llu: %s", (unsigned long long)(toff + c0 * SEC),
			strerror(-r)) : 0;
}

static int cmp_range(const void *x, const void *y)
{
	const struct range *a = x, *b = y;
	return a->s0 < b->s0 ? -1 : a->s0 > b->s0;
}

int blk_log_cut_open(struct blk_log_cut_files *f, const char *log_path, const char *base_path,
		     const char *target_path, unsigned flags, char *err, size_t errlen)
{
	f->log_path = log_path;
	f->base_path = base_path;
	f->target_path = target_path;
	f->basefd = f->tfd = -1;
	f->logfd = open(log_path, O_RDONLY | O_CLOEXEC);
	if (f->logfd < 0) {
		snprintf(err, errlen, "log '%s': %s", log_path, strerror(errno));
		return -1;
	}
	f->basefd = open(base_path, O_RDONLY | O_CLOEXEC);
	if (f->basefd < 0) {
		snprintf(err, errlen, "base '%s': %s", base_path, strerror(errno));
		blk_log_cut_close(f);
		return -1;
	}
	f->tfd = open(target_path, O_WRONLY | O_CLOEXEC | (flags & BLK_LOG_CUT_FULL ? O_CREAT : 0),
		      0600);
	if (f->tfd < 0) {
		snprintf(err, errlen, "target '%s': %s", target_path, strerror(errno));
		blk_log_cut_close(f);
		return -1;
	}
	return 0;
}

void blk_log_cut_close(struct blk_log_cut_files *f)
{
	if (f->logfd >= 0)
		close(f->logfd);
	if (f->basefd >= 0)
		close(f->basefd);
	if (f->tfd >= 0)
		close(f->tfd);
	f->logfd = f->basefd = f->tfd = -1;
}

int blk_log_power_cut(const char *log_path, const char *base_path, const char *target_path,
		      uint64_t target_offset, uint64_t seed, unsigned flags, char *report,
		      size_t report_len, char *err, size_t errlen)
{
	struct blk_log_cut_files f;
	if (report && report_len)
		report[0] = 0;
	if (blk_log_cut_open(&f, log_path, base_path, target_path, flags, err, errlen))
		return -1;
	int r = blk_log_power_cut_files(&f, target_offset, seed, flags, report, report_len, err,
					errlen);
	int tfd = f.tfd;
	f.tfd = -1;
	blk_log_cut_close(&f);
	if (close(tfd) < 0 && r == 0) {
		snprintf(err, errlen, "target '%s': %s", target_path, strerror(errno));
		r = -1;
	}
	return r;
}

int blk_log_power_cut_files(const struct blk_log_cut_files *f, uint64_t target_offset,
			    uint64_t seed, unsigned flags, char *report, size_t report_len,
			    char *err, size_t errlen)
{
	const char *log_path = f->log_path, *base_path = f->base_path,
		   *target_path = f->target_path;
	struct cut c = { .logfd = f->logfd, .basefd = f->basefd, .tfd = f->tfd, .seed = seed,
			 .err = err, .errlen = errlen };
	bool full = flags & BLK_LOG_CUT_FULL;
	struct range *rg = NULL;
	int ret = -1;
	if (report && report_len)
		report[0] = 0;
	/* the files stay the caller's: opened before the seccomp filter forbade opening */
	if (lseek(c.logfd, 0, SEEK_SET) < 0) {
		fail(&c, "log '%s': %s", log_path, strerror(errno));
		goto out;
	}
	struct stat st;
	if (fstat(c.basefd, &st) < 0) {
		fail(&c, "base '%s': %s", base_path, strerror(errno));
		goto out;
	}
	if (st.st_size % SEC) {
		fail(&c, "base '%s': size %lld is not a multiple of 512", base_path,
		     (long long)st.st_size);
		goto out;
	}
	c.base_sec = (uint64_t)st.st_size / SEC;
	if (parse(&c, log_path, full))
		goto out;
	uint64_t upto = c.last_flush == c.n ? 0 : c.last_flush + 1;

	/* The sectors to rewrite: every sector an entry after the last FLUSH touched (merged,
	 * sorted), or the whole region. Also count the units and the kept ones. */
	uint64_t nr = 0, units = 0, kept = 0, after = c.n - upto;
	rg = calloc(full ? 1 : (after ? after : 1), sizeof(*rg));
	if (!rg) {
		fail(&c, "out of memory");
		goto out;
	}
	for (uint64_t i = upto; i < c.n; i++) {
		const struct ent *e = &c.e[i];
		if (!has_data(e))
			continue;
		uint64_t us = unit_of(e), nu = (e->nr + us - 1) / us;
		units += nu;
		for (uint64_t u = 0; u < nu; u++)
			kept += keep(&c, i, u);
		if (!full)
			rg[nr++] = (struct range){ e->sector, e->sector + e->nr };
	}
	if (full) {
		rg[0] = (struct range){ 0, c.base_sec };
		nr = c.base_sec ? 1 : 0;
	} else if (nr) {
		qsort(rg, nr, sizeof(*rg), cmp_range);
		uint64_t m = 0;
		for (uint64_t k = 1; k < nr; k++) {
			if (rg[k].s0 <= rg[m].s1) {
				if (rg[k].s1 > rg[m].s1)
					rg[m].s1 = rg[k].s1;
			} else {
				rg[++m] = rg[k];
			}
		}
		nr = m + 1;
	}
	c.buf = malloc(CHUNK);
	if (!c.buf) {
		fail(&c, "out of memory");
		goto out;
	}
	uint64_t bytes = 0;
	for (uint64_t k = 0; k < nr; k++)
		for (uint64_t s = rg[k].s0; s < rg[k].s1; s += CHUNK / SEC) {
			uint64_t e = s + CHUNK / SEC < rg[k].s1 ? s + CHUNK / SEC : rg[k].s1;
			if (do_chunk(&c, s, e, target_offset))
				goto out;
			bytes += (e - s) * SEC;
		}
	if (fdatasync(c.tfd) < 0) {
		fail(&c, "target '%s': fdatasync: %s", target_path, strerror(errno));
		goto out;
	}
	uint64_t nflush = 0, kflush = 0;
	for (uint64_t i = 0; i < c.n; i++)
		if (c.e[i].flags & BLK_LOG_FLUSH) {
			nflush++;
			if (i <= c.last_flush && c.last_flush < c.n)
				kflush++;
		}
	if (report && report_len) {
		char at[64];
		if (c.last_flush < c.n)
			snprintf(at, sizeof(at), "entry %llu (FLUSH %llu of %llu)",
				 (unsigned long long)c.last_flush, (unsigned long long)kflush,
				 (unsigned long long)nflush);
		else
			snprintf(at, sizeof(at), "the base (no FLUSH)");
		snprintf(report, report_len,
			 "cut at %s; %llu entries after it, %llu units, %llu kept (seed %llu); "
			 "rewrote %llu bytes in %llu ranges (%s)", at, (unsigned long long)after,
			 (unsigned long long)units, (unsigned long long)kept,
			 (unsigned long long)seed, (unsigned long long)bytes,
			 (unsigned long long)nr, full ? "full" : "incremental");
	}
	ret = 0;
out:
	free(c.buf);
	free(c.e);
	free(rg);
	return ret;
}
