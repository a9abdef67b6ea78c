/* cvmm-replay: materialise a disk image from a dm-log-writes format log (cvmm's [blk]
 * write_log, devices/blk_log.h; also logs made by Linux's dm-log-writes) and its base image:
 * the image at any entry, mark or FLUSH, and the crash states between two FLUSHes (every
 * subset of what the disk may or may not have kept, CrashMonkey's addition to replay-log).
 * Standalone: reads the format itself and shares no code with the writer. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC    0x6a736677736872ULL
#define F_FLUSH   1ULL
#define F_FUA     2ULL
#define F_DISCARD 4ULL
#define F_MARK    8ULL
#define F_META    16ULL
/* cvmm's own flag (CVMM_PMEM_WB): one 4 KiB page written back from the pmem window,
 * sector = file offset / 512, nr_sectors = 8. Replayed as a write; a crash-state unit is a
 * page, since writeback writes pages whole. */
#define F_PMEM_WB (1ULL << 8)
#define F_KNOWN   (F_FLUSH | F_FUA | F_DISCARD | F_MARK | F_META | F_PMEM_WB)
#define PAGE      4096u

/* Sample and exhaustive limits: each state is a disk image, so a million is already absurd;
 * the bound keeps the subset table in memory. */
#define MAX_STATES   (1u << 20)
#define MAX_SETWORDS (1u << 26)

enum { EX_OK = 0, EX_BADLOG = 1, EX_IO = 2, EX_NOTFOUND = 3, EX_USAGE = 64 };

static const char *usage =
"usage: cvmm-replay LOG --list\n"
"       cvmm-replay LOG --base BASE --out IMAGE\n"
"                   [--end-at-entry N | --end-at-mark NAME | --end-at-flush K|last]\n"
"       cvmm-replay LOG --crash-states --epoch K [--base BASE --out-dir DIR]\n"
"                   [--max-states N] [--sample N] [--seed S]\n"
"\n"
"LOG is a write log in the dm-log-writes format ([blk] write_log = PATH; BASE is PATH.base,\n"
"the disk as it was when logging started).\n"
"  --list              print every entry (index, sector, count, flags, mark text), the\n"
"                      number of FLUSH points and marks, the indexes of the FLUSH, FUA and\n"
"                      mark entries, and each epoch (below) with its number of units\n"
"  --base BASE         the image the log starts from\n"
"  --out IMAGE         created (or truncated): BASE with the log's entries applied\n"
"  --end-at-entry N    apply entries 0..N (default: all)\n"
"  --end-at-mark NAME  apply entries up to and including the first mark NAME\n"
"  --end-at-flush K    apply entries up to and including the K-th FLUSH entry (1-based;\n"
"                      'last': the last one)\n"
"Entries: a write puts its data at its sector; a DISCARD zeroes its range; a FLUSH or a\n"
"MARK changes nothing (but for its data, if it has any). Sectors are the log's sector\n"
"size (the superblock's; cvmm writes 512).\n"
"Flag 256 is cvmm's CVMM_PMEM_WB: one 4 KiB page written back from the pmem window\n"
"(sector = file offset / 512, count 8), replayed as a write.\n"
"\n"
"Crash states. Epoch 0 is the entries before the first FLUSH entry; epoch K >= 1 is the\n"
"K-th FLUSH entry and the entries after it up to the next FLUSH entry or the end of the\n"
"log (F FLUSH entries make F + 1 epochs). A crash state of epoch K is: the entries before\n"
"the epoch all applied, then the epoch's entries in log order, each FUA entry applied and\n"
"each unit applied or not. Units, numbered from 0 in log order: each sector of a write\n"
"(of the FLUSH entry's own data too, if any: it is written after the flush), each 4 KiB\n"
"page of a CVMM_PMEM_WB entry, each DISCARD entry as a whole. A FUA entry was durable\n"
"when it completed, so it is always applied (this says nothing of the entries before\n"
"it). Entries without data have no units. A state is a subset of the units: U units\n"
"make 2^U states (distinct subsets can make equal images, e.g. when a unit overwrites\n"
"an earlier one).\n"
"  --crash-states      print the number of states of epoch K and the states produced,\n"
"                      one line each: IMAGE EPOCH UNITS (applied units as \"0-3,5\"; \"-\":\n"
"                      none)\n"
"  --epoch K           0 .. number of FLUSH entries\n"
"  --out-dir DIR       (with --base) write each state as DIR/state-K-I.img, the lines\n"
"                      above to DIR/states.txt and the units to DIR/units.txt (one line\n"
"                      each: UNIT ENTRY SECTOR COUNT sector|page|discard); DIR is created\n"
"                      if missing; states.txt lists this run's images, older ones stay\n"
"  --max-states N      produce every state when there are at most N (default 256, at most\n"
"                      1048576): I is the subset's bit pattern, bit u = unit u applied\n"
"  --sample N          else N distinct states (2..1048576; default: --max-states or 2; all if\n"
"                      there are no more): I = 0 no unit, I = 1 every unit, then subsets\n"
"                      drawn with splitmix64 from state S: a draw takes ceil(U/64)\n"
"                      outputs, unit u is bit u%64 of output u/64; a draw equal to an\n"
"                      earlier subset is dropped\n"
"  --seed S            default 0\n"
"Exit status: 0 done; 1 bad log (wrong magic or version, truncated, malformed entry, an\n"
"entry past the end of BASE);\n"
"2 I/O error on BASE, IMAGE or DIR; 3 entry, mark, FLUSH or epoch not found; 64 bad usage.\n";

struct entry {
	uint64_t sector, nr, flags, dlen;
	uint64_t data; /* log offset of its data */
};

static const char *logpath;
static int logfd = -1;
static uint64_t sectorsize, nr_entries, logsize;

__attribute__((format(printf, 2, 3)))
static int fail(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "cvmm-replay: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return code;
}

/* pread (wr false) or pwrite all of len bytes at off, resuming after short transfers and
 * EINTR. False on an error, or at the end of the file for a read (a truncated log). */
static bool io_at(int fd, bool wr, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t r = wr ? pwrite(fd, (char *)buf + done, len - done, (off_t)(off + done))
			       : pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		done += (size_t)r;
	}
	return true;
}

static bool read_at(int fd, void *buf, size_t len, uint64_t off)
{
	return io_at(fd, false, buf, len, off);
}

static bool write_at(int fd, const void *buf, size_t len, uint64_t off)
{
	return io_at(fd, true, (void *)buf, len, off);
}

static uint64_t le64_at(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return le64toh(v);
}

static int open_log(void)
{
	logfd = open(logpath, O_RDONLY | O_CLOEXEC);
	if (logfd < 0)
		return fail(EX_BADLOG, "log '%s': %s", logpath, strerror(errno));
	struct stat st;
	if (fstat(logfd, &st) < 0)
		return fail(EX_BADLOG, "log '%s': %s", logpath, strerror(errno));
	logsize = (uint64_t)st.st_size;
	uint8_t s[28];
	if (!read_at(logfd, s, sizeof(s), 0))
		return fail(EX_BADLOG, "log '%s': truncated: no superblock (%llu bytes)", logpath,
			    (unsigned long long)logsize);
	if (le64_at(s) != MAGIC)
		return fail(EX_BADLOG, "log '%s': wrong magic 0x%llx (not a dm-log-writes log)",
			    logpath, (unsigned long long)le64_at(s));
	if (le64_at(s + 8) != 1)
		return fail(EX_BADLOG, "log '%s': version %llu, this tool reads version 1", logpath,
			    (unsigned long long)le64_at(s + 8));
	nr_entries = le64_at(s + 16);
	uint32_t ss;
	memcpy(&ss, s + 24, 4);
	sectorsize = le32toh(ss);
	if (sectorsize < 512 || sectorsize > 65536 || (sectorsize & (sectorsize - 1)))
		return fail(EX_BADLOG, "log '%s': bad sector size %llu", logpath,
			    (unsigned long long)sectorsize);
	return EX_OK;
}

/* Read entry at *pos (advanced past it and its data); mark text into mark (if any). */
static int next_entry(uint64_t idx, uint64_t *pos, struct entry *e, char *mark, size_t mlen)
{
	uint8_t *sec = malloc(sectorsize);
	if (!sec)
		return fail(EX_IO, "out of memory");
	if (!read_at(logfd, sec, sectorsize, *pos)) {
		free(sec);
		return fail(EX_BADLOG, "log '%s': truncated: entry %llu is past the end of the file",
			    logpath, (unsigned long long)idx);
	}
	e->sector = le64_at(sec);
	e->nr = le64_at(sec + 8);
	e->flags = le64_at(sec + 16);
	e->dlen = le64_at(sec + 24);
	e->data = *pos + sectorsize;
	mark[0] = 0;
	int rc = EX_OK;
	if (!e->flags && !e->nr)
		rc = fail(EX_BADLOG, "log '%s': malformed entry %llu (all zero)", logpath,
			  (unsigned long long)idx);
	else if (e->flags & ~F_KNOWN)
		rc = fail(EX_BADLOG, "log '%s': entry %llu has unknown flags", logpath,
			  (unsigned long long)idx);
	else if (e->dlen > sectorsize - 32)
		rc = fail(EX_BADLOG, "log '%s': entry %llu: data_len larger than its sector",
			  logpath, (unsigned long long)idx);
	else if (e->nr > (UINT64_MAX / sectorsize) / 2)
		rc = fail(EX_BADLOG, "log '%s': entry %llu: absurd sector count", logpath,
			  (unsigned long long)idx);
	if (rc == EX_OK && (e->flags & F_MARK)) {
		size_t n = e->dlen < mlen - 1 ? e->dlen : mlen - 1;
		memcpy(mark, sec + 32, n);
		mark[n] = 0;
	}
	free(sec);
	if (rc)
		return rc;
	*pos += sectorsize;
	if (!(e->flags & F_DISCARD)) {
		uint64_t d = e->nr * sectorsize;
		if (*pos + d > logsize)
			return fail(EX_BADLOG, "log '%s': truncated: the data of entry %llu is cut short",
				    logpath, (unsigned long long)idx);
		*pos += d;
	}
	return EX_OK;
}

static const char *flagstr(uint64_t f, char *buf)
{
	buf[0] = 0;
	static const char *names[] = { "FLUSH", "FUA", "DISCARD", "MARK", "METADATA", NULL, NULL,
				       NULL, "PMEM_WB" };
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i] && (f & (1ULL << i)))
			strcat(strcat(buf, buf[0] ? "|" : ""), names[i]);
	return buf[0] ? buf : "WRITE";
}

/* The crash-state units of an entry (see the usage text): how many, and *unit_sectors, the
 * sectors in each (the last one may be shorter). */
static uint64_t units_of(const struct entry *e, uint64_t *unit_sectors)
{
	*unit_sectors = e->nr;
	if (!e->nr || (e->flags & F_FUA))
		return 0;
	if (e->flags & F_DISCARD)
		return 1;
	*unit_sectors = (e->flags & F_PMEM_WB) && sectorsize < PAGE ? PAGE / sectorsize : 1;
	return (e->nr + *unit_sectors - 1) / *unit_sectors;
}

/* A growable list of entry indexes, for --list's summary lines. */
struct idxlist {
	uint64_t *v;
	size_t n, cap;
};

static bool idx_push(struct idxlist *l, uint64_t x)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		uint64_t *v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return false;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = x;
	return true;
}

static void idx_print(const char *what, const struct idxlist *l)
{
	printf("%s at entries:", what);
	for (size_t i = 0; i < l->n; i++)
		printf(" %llu", (unsigned long long)l->v[i]);
	printf("%s\n", l->n ? "" : " none");
}

/* Epoch k's line for --list: its first entry, its last, its units. */
static void epoch_print(uint64_t k, uint64_t start, uint64_t end, uint64_t units)
{
	if (start == end)
		printf("epoch %llu: no entries, 0 units\n", (unsigned long long)k);
	else
		printf("epoch %llu: entries %llu..%llu, %llu units\n", (unsigned long long)k,
		       (unsigned long long)start, (unsigned long long)end - 1,
		       (unsigned long long)units);
}

static int do_list(void)
{
	uint64_t pos = sectorsize;
	struct idxlist fl = { 0 }, fua = { 0 }, mk = { 0 }, units = { 0 };
	int rc = EX_OK;
	printf("log %s: %llu entries, sector size %llu\n", logpath,
	       (unsigned long long)nr_entries, (unsigned long long)sectorsize);
	uint64_t eu = 0; /* units of the epoch being read */
	for (uint64_t i = 0; i < nr_entries && !rc; i++) {
		struct entry e;
		char mark[4096], fb[64];
		rc = next_entry(i, &pos, &e, mark, sizeof(mark));
		if (rc)
			break;
		if (e.flags & F_FLUSH) {
			if (!idx_push(&fl, i) || !idx_push(&units, eu))
				rc = fail(EX_IO, "out of memory");
			eu = 0;
		}
		if ((e.flags & F_FUA) && !idx_push(&fua, i))
			rc = fail(EX_IO, "out of memory");
		if ((e.flags & F_MARK) && !idx_push(&mk, i))
			rc = fail(EX_IO, "out of memory");
		uint64_t us;
		eu += units_of(&e, &us);
		printf("%llu sector %llu count %llu flags %s", (unsigned long long)i,
		       (unsigned long long)e.sector, (unsigned long long)e.nr, flagstr(e.flags, fb));
		if (e.flags & F_MARK)
			printf(" mark '%s'", mark);
		putchar('\n');
	}
	if (!rc) {
		printf("%zu FLUSH points, %zu marks\n", fl.n, mk.n);
		idx_print("FLUSH", &fl);
		idx_print("FUA", &fua);
		idx_print("marks", &mk);
		printf("%zu epochs (epoch 0: before the first FLUSH entry; epoch K: from the K-th)\n",
		       fl.n + 1);
		for (size_t k = 0; k <= fl.n; k++)
			epoch_print(k, k ? fl.v[k - 1] : 0, k < fl.n ? fl.v[k] : nr_entries,
				    k < fl.n ? units.v[k] : eu);
		if (pos < logsize)
			printf("%llu bytes after the last entry the superblock counts (the writer "
			       "stopped before it updated nr_entries: they are not replayed)\n",
			       (unsigned long long)(logsize - pos));
	}
	free(fl.v);
	free(fua.v);
	free(mk.v);
	free(units.v);
	return rc;
}

/* Copy all of in to out (both at offset 0; out empty): a reflink (FICLONE) when the file
 * system shares blocks, else copy_file_range (in-kernel, maybe server-side), else read and
 * write. A crash-state run copies one image per state, so the cheap ways matter. */
static bool copy_fd(int in, int out)
{
	if (ioctl(out, FICLONE, in) == 0)
		return true;
	static char buf[1 << 20];
	loff_t off = 0;
	for (;;) {
		loff_t o2 = off;
		ssize_t r = copy_file_range(in, &off, out, &o2, 1 << 30, 0);
		if (r > 0)
			continue;
		if (r == 0)
			return true;
		if (errno == EINTR)
			continue;
		if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
			return false;
		break; /* copy_file_range cannot here: the rest by read and write */
	}
	for (;;) {
		ssize_t r = pread(in, buf, sizeof(buf), off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return false;
		if (r == 0)
			return true;
		if (!write_at(out, buf, (size_t)r, (uint64_t)off))
			return false;
		off += r;
	}
}

/* A new image `out` (created or truncated) with BASE's content, and the size of it. */
static int copy_base(const char *base, const char *out, int *outfd, uint64_t *size)
{
	int in = open(base, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return fail(EX_IO, "base '%s': %s", base, strerror(errno));
	struct stat st;
	if (fstat(in, &st) < 0) {
		close(in);
		return fail(EX_IO, "base '%s': %s", base, strerror(errno));
	}
	int fd = open(out, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		close(in);
		return fail(EX_IO, "out '%s': %s", out, strerror(errno));
	}
	if (!copy_fd(in, fd)) {
		int e = errno;
		close(in);
		close(fd);
		return fail(EX_IO, "copying base '%s' to '%s': %s", base, out, strerror(e));
	}
	close(in);
	*outfd = fd;
	*size = (uint64_t)st.st_size;
	return EX_OK;
}

/* Entry idx must lie inside the image: a log replayed on the wrong base is refused rather
 * than silently extending it. */
static int check_fits(uint64_t idx, const struct entry *e, uint64_t image)
{
	if (e->sector > image / sectorsize || e->nr > image / sectorsize - e->sector)
		return fail(EX_BADLOG, "log '%s': entry %llu (sectors %llu+%llu) is past the end of "
			    "the base image (%llu bytes): wrong base?", logpath, (unsigned long long)idx,
			    (unsigned long long)e->sector, (unsigned long long)e->nr,
			    (unsigned long long)image);
	return EX_OK;
}

/* Apply sectors [first, first + count) of entry idx to the image: its data, or zeroes for a
 * DISCARD (the contents of a discarded range are unspecified: zeroes are what cvmm's file
 * backend leaves, a punched hole). */
static int apply_part(int fd, const char *out, uint64_t idx, const struct entry *e,
		      uint64_t first, uint64_t count)
{
	static uint8_t buf[1 << 20];
	static const uint8_t zero[1 << 16];
	uint64_t off = (e->sector + first) * sectorsize, src = e->data + first * sectorsize;
	uint64_t bytes = count * sectorsize;
	bool discard = e->flags & F_DISCARD;
	for (uint64_t d = 0; d < bytes;) {
		uint64_t max = discard ? sizeof(zero) : sizeof(buf);
		size_t n = (size_t)(bytes - d < max ? bytes - d : max);
		if (!discard && !read_at(logfd, buf, n, src + d))
			return fail(EX_BADLOG, "log '%s': truncated in entry %llu", logpath,
				    (unsigned long long)idx);
		if (!write_at(fd, discard ? zero : buf, n, off + d))
			return fail(EX_IO, "out '%s': write failed at %llu: %s", out,
				    (unsigned long long)(off + d), strerror(errno));
		d += n;
	}
	return EX_OK;
}

/* What ends a prefix: the first mark named `mark`, or the K-th FLUSH entry (flush;
 * UINT64_MAX: the last one). */
struct stop {
	const char *mark;
	uint64_t flush;
};

/* The index of the entry that s names, read without applying anything (so that a missing
 * mark or FLUSH leaves no image behind). */
static int find_stop(const struct stop *s, uint64_t *idx)
{
	uint64_t pos = sectorsize, flushes = 0;
	bool found = false;
	for (uint64_t i = 0; i < nr_entries; i++) {
		struct entry e;
		char mark[4096];
		int rc = next_entry(i, &pos, &e, mark, sizeof(mark));
		if (rc)
			return rc;
		if (s->mark && (e.flags & F_MARK) && !strcmp(mark, s->mark)) {
			*idx = i;
			return EX_OK;
		}
		if (!s->mark && (e.flags & F_FLUSH)) {
			*idx = i;
			found = true;
			if (++flushes == s->flush)
				return EX_OK;
		}
	}
	if (s->mark)
		return fail(EX_NOTFOUND, "log '%s': no mark '%s'", logpath, s->mark);
	if (s->flush == UINT64_MAX && found)
		return EX_OK;
	if (s->flush == UINT64_MAX)
		return fail(EX_NOTFOUND, "--end-at-flush last: log '%s' has no FLUSH entry", logpath);
	return fail(EX_NOTFOUND, "--end-at-flush %llu: log '%s' has %llu FLUSH entries",
		    (unsigned long long)s->flush, logpath, (unsigned long long)flushes);
}

/* BASE with entries 0..last applied (none if the log is empty) written to out. */
static int replay_prefix(const char *base, const char *out, uint64_t last)
{
	int fd;
	uint64_t image;
	int rc = copy_base(base, out, &fd, &image);
	if (rc)
		return rc;
	uint64_t pos = sectorsize;
	for (uint64_t i = 0; i < nr_entries && i <= last && !rc; i++) {
		struct entry e;
		char mark[4096];
		rc = next_entry(i, &pos, &e, mark, sizeof(mark));
		if (!rc)
			rc = check_fits(i, &e, image);
		if (!rc)
			rc = apply_part(fd, out, i, &e, 0, e.nr);
	}
	if (close(fd) < 0 && !rc)
		rc = fail(EX_IO, "out '%s': %s", out, strerror(errno));
	return rc;
}

/* ---- crash states ---- */

/* Epoch k of the log: entries[0..end) read, the epoch is [start, end); unit u of the epoch
 * belongs to the entry i with first[i - start] <= u < first[i - start] + its units. */
struct epoch {
	uint64_t k, start, end, units;
	struct entry *e;
	uint64_t *first;
};

/* Read entries up to the (k+1)-th FLUSH entry (excluded) or the end of the log. */
static int load_epoch(uint64_t k, struct epoch *ep)
{
	uint64_t pos = sectorsize, flushes = 0, cap = 0;
	ep->k = k;
	ep->start = 0;
	ep->end = 0;
	ep->e = NULL;
	for (uint64_t i = 0; i < nr_entries; i++) {
		struct entry e;
		char mark[4096];
		int rc = next_entry(i, &pos, &e, mark, sizeof(mark));
		if (rc)
			return rc;
		if ((e.flags & F_FLUSH) && ++flushes == k + 1)
			break;
		if ((e.flags & F_FLUSH) && flushes == k)
			ep->start = i;
		if (i == cap) {
			cap = cap ? cap * 2 : 64;
			struct entry *v = realloc(ep->e, cap * sizeof(*v));
			if (!v)
				return fail(EX_IO, "out of memory");
			ep->e = v;
		}
		ep->e[i] = e;
		ep->end = i + 1;
	}
	if (flushes < k)
		return fail(EX_NOTFOUND, "--epoch %llu: log '%s' has %llu FLUSH entries, so epochs "
			    "0..%llu", (unsigned long long)k, logpath, (unsigned long long)flushes,
			    (unsigned long long)flushes);
	ep->first = calloc(ep->end - ep->start + 1, sizeof(*ep->first));
	if (!ep->first)
		return fail(EX_IO, "out of memory");
	ep->units = 0;
	for (uint64_t i = ep->start; i < ep->end; i++) {
		uint64_t us;
		ep->first[i - ep->start] = ep->units;
		ep->units += units_of(&ep->e[i], &us);
	}
	return EX_OK;
}

static bool bit(const uint64_t *set, uint64_t u)
{
	return (set[u / 64] >> (u % 64)) & 1;
}

/* splitmix64 (Steele, Lea, Flood 2014; the seeding generator of xoshiro): a documented,
 * portable stream, so that a --seed reproduces a sample anywhere. */
static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* The subsets to produce, n of them, w words each. */
struct states {
	uint64_t n;
	size_t w;
	uint64_t *sets;
	bool all;
};

/* An open-addressing set of the subsets drawn so far (indexes + 1 into st->sets), so that a
 * sample has no subset twice. */
struct seen {
	uint32_t *slot;
	uint64_t mask;
};

static uint64_t set_hash(const uint64_t *s, size_t w)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < w; i++)
		h = (h ^ s[i]) * 0x100000001b3ULL;
	return h ^ (h >> 29);
}

/* Add subset i of st; false if an equal one is there already. */
static bool seen_add(struct seen *sn, const struct states *st, uint64_t i)
{
	const uint64_t *s = st->sets + i * st->w;
	for (uint64_t h = set_hash(s, st->w) & sn->mask;; h = (h + 1) & sn->mask) {
		if (!sn->slot[h]) {
			sn->slot[h] = (uint32_t)(i + 1);
			return true;
		}
		if (!memcmp(st->sets + (sn->slot[h] - 1) * st->w, s, st->w * 8))
			return false;
	}
}

static void draw(uint64_t *set, size_t w, uint64_t units, uint64_t *rng)
{
	for (size_t i = 0; i < w; i++)
		set[i] = splitmix64(rng);
	if (units % 64)
		set[w - 1] &= (1ULL << (units % 64)) - 1;
}

/* Every subset (bit pattern i for state i) when there are at most limit, else a sample of
 * `sample`: none, all, then distinct draws. */
static int pick_states(uint64_t units, uint64_t limit, uint64_t sample, uint64_t seed,
		       struct states *st)
{
	st->w = units ? (size_t)((units + 63) / 64) : 1;
	st->all = units < 64 && (1ULL << units) <= (limit > sample ? limit : sample);
	st->n = st->all ? 1ULL << units : sample;
	if (st->w > MAX_SETWORDS / st->n)
		return fail(EX_USAGE, "--sample %llu: too many states of %llu units to hold; "
			    "a smaller --sample", (unsigned long long)st->n,
			    (unsigned long long)units);
	st->sets = calloc(st->n * st->w, 8);
	if (!st->sets)
		return fail(EX_IO, "out of memory");
	if (st->all) {
		for (uint64_t i = 0; i < st->n; i++)
			st->sets[i] = i;
		return EX_OK;
	}
	struct seen sn = { .mask = 1 };
	while (sn.mask + 1 < 2 * st->n)
		sn.mask = sn.mask * 2 + 1;
	sn.slot = calloc(sn.mask + 1, sizeof(*sn.slot));
	if (!sn.slot)
		return fail(EX_IO, "out of memory");
	uint64_t *ones = st->sets + st->w;
	memset(ones, 0xff, st->w * 8);
	if (units % 64)
		ones[st->w - 1] = (1ULL << (units % 64)) - 1;
	seen_add(&sn, st, 0);
	seen_add(&sn, st, 1);
	uint64_t rng = seed;
	for (uint64_t i = 2; i < st->n;) {
		draw(st->sets + i * st->w, st->w, units, &rng);
		i += seen_add(&sn, st, i);
	}
	free(sn.slot);
	return EX_OK;
}

/* The applied units of a subset as ranges: "0-3,5"; "-" for none. */
static void print_ranges(FILE *f, const uint64_t *set, uint64_t units)
{
	bool any = false;
	for (uint64_t u = 0; u < units; u++) {
		if (!bit(set, u))
			continue;
		uint64_t v = u;
		while (v + 1 < units && bit(set, v + 1))
			v++;
		fprintf(f, any ? ",%llu" : "%llu", (unsigned long long)u);
		if (v > u)
			fprintf(f, "-%llu", (unsigned long long)v);
		any = true;
		u = v;
	}
	if (!any)
		fputc('-', f);
}

/* Apply the epoch's entries to fd in log order: each FUA entry whole, and the units that
 * `set` has, runs of adjacent units of one entry in one go. */
static int apply_state(int fd, const char *out, const struct epoch *ep, const uint64_t *set)
{
	for (uint64_t i = ep->start; i < ep->end; i++) {
		const struct entry *e = &ep->e[i];
		uint64_t us, nu = units_of(e, &us), fu = ep->first[i - ep->start];
		int rc = EX_OK;
		if ((e->flags & F_FUA) && e->nr)
			rc = apply_part(fd, out, i, e, 0, e->nr);
		for (uint64_t a = 0; a < nu && !rc; a++) {
			if (!bit(set, fu + a))
				continue;
			uint64_t b = a + 1;
			while (b < nu && bit(set, fu + b))
				b++;
			uint64_t end = b * us < e->nr ? b * us : e->nr;
			rc = apply_part(fd, out, i, e, a * us, end - a * us);
			a = b;
		}
		if (rc)
			return rc;
	}
	return EX_OK;
}

static int write_units(const char *dir, const struct epoch *ep)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/units.txt", dir);
	FILE *f = fopen(path, "w");
	if (!f)
		return fail(EX_IO, "'%s': %s", path, strerror(errno));
	for (uint64_t i = ep->start; i < ep->end; i++) {
		const struct entry *e = &ep->e[i];
		uint64_t us, nu = units_of(e, &us), fu = ep->first[i - ep->start];
		const char *kind = (e->flags & F_DISCARD) ? "discard"
				   : (e->flags & F_PMEM_WB) ? "page" : "sector";
		for (uint64_t a = 0; a < nu; a++) {
			uint64_t end = (a + 1) * us < e->nr ? (a + 1) * us : e->nr;
			fprintf(f, "%llu %llu %llu %llu %s\n", (unsigned long long)(fu + a),
				(unsigned long long)i, (unsigned long long)(e->sector + a * us),
				(unsigned long long)(end - a * us), kind);
		}
	}
	if (fclose(f))
		return fail(EX_IO, "'%s': %s", path, strerror(errno));
	return EX_OK;
}

/* One state: a copy of the prefix image with the epoch's chosen entries applied. */
static int write_state(const char *path, int prefix, const struct epoch *ep, const uint64_t *set)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return fail(EX_IO, "out '%s': %s", path, strerror(errno));
	int rc = copy_fd(prefix, fd) ? EX_OK : fail(EX_IO, "out '%s': %s", path, strerror(errno));
	if (!rc)
		rc = apply_state(fd, path, ep, set);
	if (close(fd) < 0 && !rc)
		rc = fail(EX_IO, "out '%s': %s", path, strerror(errno));
	return rc;
}

/* The image every state of the epoch starts from: BASE and the entries before the epoch,
 * built once. */
static int build_prefix(const char *base, const char *path, const struct epoch *ep, int *fd)
{
	uint64_t image;
	int rc = copy_base(base, path, fd, &image);
	for (uint64_t i = 0; i < ep->end && !rc; i++)
		rc = check_fits(i, &ep->e[i], image);
	for (uint64_t i = 0; i < ep->start && !rc; i++)
		rc = apply_part(*fd, path, i, &ep->e[i], 0, ep->e[i].nr);
	if (rc && *fd >= 0) {
		close(*fd);
		*fd = -1;
	}
	return rc;
}

struct crash_opts {
	uint64_t epoch, max_states, sample, seed;
	const char *base, *dir;
};

/* Print the states of the epoch and, with a DIR, write them. */
static int emit_states(const struct crash_opts *o, const struct epoch *ep, const struct states *st)
{
	char path[4096], name[128];
	FILE *man = NULL;
	int prefix = -1, rc = EX_OK;
	if (o->dir) {
		if (mkdir(o->dir, 0700) < 0 && errno != EEXIST)
			return fail(EX_IO, "--out-dir '%s': %s", o->dir, strerror(errno));
		snprintf(path, sizeof(path), "%s/.prefix-%llu.img", o->dir,
			 (unsigned long long)ep->k);
		rc = build_prefix(o->base, path, ep, &prefix);
		if (!rc)
			rc = write_units(o->dir, ep);
		snprintf(path, sizeof(path), "%s/states.txt", o->dir);
		if (!rc && !(man = fopen(path, "w")))
			rc = fail(EX_IO, "'%s': %s", path, strerror(errno));
	}
	for (uint64_t i = 0; i < st->n && !rc; i++) {
		const uint64_t *set = st->sets + i * st->w;
		snprintf(name, sizeof(name), "state-%llu-%llu.img", (unsigned long long)ep->k,
			 (unsigned long long)i);
		if (o->dir) {
			snprintf(path, sizeof(path), "%s/%s", o->dir, name);
			rc = write_state(path, prefix, ep, set);
			if (rc)
				break;
			fprintf(man, "%s %llu ", name, (unsigned long long)ep->k);
			print_ranges(man, set, ep->units);
			fputc('\n', man);
		}
		printf("%s %llu ", name, (unsigned long long)ep->k);
		print_ranges(stdout, set, ep->units);
		putchar('\n');
	}
	if (man && fclose(man) && !rc)
		rc = fail(EX_IO, "%s/states.txt: %s", o->dir, strerror(errno));
	if (prefix >= 0)
		close(prefix);
	if (o->dir) {
		snprintf(path, sizeof(path), "%s/.prefix-%llu.img", o->dir,
			 (unsigned long long)ep->k);
		unlink(path);
	}
	return rc;
}

static int do_crash_states(const struct crash_opts *o)
{
	struct epoch ep = { 0 };
	struct states st = { 0 };
	int rc = load_epoch(o->epoch, &ep);
	if (!rc)
		rc = pick_states(ep.units, o->max_states, o->sample, o->seed, &st);
	if (!rc) {
		printf("epoch %llu: ", (unsigned long long)ep.k);
		if (ep.start == ep.end)
			printf("no entries");
		else
			printf("entries %llu..%llu", (unsigned long long)ep.start,
			       (unsigned long long)ep.end - 1);
		printf(", %llu units, ", (unsigned long long)ep.units);
		if (ep.units < 64)
			printf("%llu states", (unsigned long long)(1ULL << ep.units));
		else
			printf("2^%llu states", (unsigned long long)ep.units);
		if (st.all)
			printf(", producing all %llu\n", (unsigned long long)st.n);
		else
			printf(", producing a sample of %llu (splitmix64, seed %llu)\n",
			       (unsigned long long)st.n, (unsigned long long)o->seed);
		fflush(stdout);
		rc = emit_states(o, &ep, &st);
	}
	free(ep.e);
	free(ep.first);
	free(st.sets);
	return rc;
}

/* ---- command line ---- */

enum opt_id { O_BASE, O_OUT, O_ENTRY, O_MARK, O_FLUSH, O_LIST, O_CRASH, O_EPOCH, O_DIR,
	      O_MAX, O_SAMPLE, O_SEED, O_HELP, O_COUNT };

static const struct option opts[] = {
	{ "base", required_argument, 0, O_BASE },
	{ "out", required_argument, 0, O_OUT },
	{ "end-at-entry", required_argument, 0, O_ENTRY },
	{ "end-at-mark", required_argument, 0, O_MARK },
	{ "end-at-flush", required_argument, 0, O_FLUSH },
	{ "list", no_argument, 0, O_LIST },
	{ "crash-states", no_argument, 0, O_CRASH },
	{ "epoch", required_argument, 0, O_EPOCH },
	{ "out-dir", required_argument, 0, O_DIR },
	{ "max-states", required_argument, 0, O_MAX },
	{ "sample", required_argument, 0, O_SAMPLE },
	{ "seed", required_argument, 0, O_SEED },
	{ "help", no_argument, 0, O_HELP },
	{ 0, 0, 0, 0 },
};

/* One line naming the argument, then exit status 64. */
__attribute__((format(printf, 1, 2)))
static int bad_usage(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "cvmm-replay: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, " (cvmm-replay --help)\n");
	va_end(ap);
	return EX_USAGE;
}

static bool parse_u64(const char *s, uint64_t *v)
{
	char *end;
	errno = 0;
	*v = strtoull(s, &end, 0);
	return !errno && *s && !*end && s[0] != '-';
}

/* The options each form allows (bit per opt_id) and what to call the form in errors. */
#define BIT(x) (1u << (x))
static const unsigned list_ok = BIT(O_LIST);
static const unsigned prefix_ok = BIT(O_BASE) | BIT(O_OUT) | BIT(O_ENTRY) | BIT(O_MARK) |
				  BIT(O_FLUSH);
static const unsigned crash_ok = BIT(O_CRASH) | BIT(O_EPOCH) | BIT(O_BASE) | BIT(O_DIR) |
				 BIT(O_MAX) | BIT(O_SAMPLE) | BIT(O_SEED);

/* Which option combinations are refused, with the first offending option named. */
static int check_combination(unsigned seen, int nargs)
{
	const char *form = (seen & BIT(O_LIST)) ? "not with --list"
			   : (seen & BIT(O_CRASH)) ? "not with --crash-states"
			   : "only with --crash-states";
	unsigned ok = (seen & BIT(O_LIST)) ? list_ok : (seen & BIT(O_CRASH)) ? crash_ok : prefix_ok;
	for (int i = 0; i < O_COUNT; i++)
		if ((seen & ~ok) & BIT(i))
			return bad_usage("--%s: %s", opts[i].name, form);
	if (nargs != 1)
		return bad_usage(nargs ? "more than one LOG argument" : "LOG: missing");
	unsigned ends = seen & (BIT(O_ENTRY) | BIT(O_MARK) | BIT(O_FLUSH));
	if (ends & (ends - 1))
		return bad_usage("--end-at-entry, --end-at-mark, --end-at-flush: one at most");
	if (seen & BIT(O_LIST))
		return EX_OK;
	if (seen & BIT(O_CRASH)) {
		if (!(seen & BIT(O_EPOCH)))
			return bad_usage("--epoch: missing (--crash-states needs it)");
		if ((seen & BIT(O_BASE)) && !(seen & BIT(O_DIR)))
			return bad_usage("--base: only with --out-dir here");
		if ((seen & BIT(O_DIR)) && !(seen & BIT(O_BASE)))
			return bad_usage("--out-dir: needs --base");
		return EX_OK;
	}
	if (!(seen & BIT(O_BASE)))
		return bad_usage("--base: missing (or --list, or --crash-states)");
	if (!(seen & BIT(O_OUT)))
		return bad_usage("--out: missing");
	return EX_OK;
}

int main(int argc, char **argv)
{
	const char *out = NULL, *mark_name = NULL;
	uint64_t end = 0, flush = 0;
	struct crash_opts co = { .max_states = 256 };
	unsigned seen = 0;
	int c;
	if (argc < 2) {
		fputs(usage, stderr);
		return EX_USAGE;
	}
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		const char *name = c >= 0 && c < O_COUNT ? opts[c].name : "";
		uint64_t v = 0;
		if (c == '?' || c == ':')
			return bad_usage(c == '?' ? "'%s': unknown option" : "'%s': needs an argument",
					 argv[optind - 1]);
		seen |= BIT(c);
		switch (c) {
		case O_BASE: co.base = optarg; break;
		case O_OUT: out = optarg; break;
		case O_MARK: mark_name = optarg; break;
		case O_DIR: co.dir = optarg; break;
		case O_LIST: case O_CRASH: break;
		case O_HELP: fputs(usage, stdout); return EX_OK;
		default: /* the options with a number */
			if (c == O_FLUSH && !strcmp(optarg, "last")) {
				flush = UINT64_MAX;
				break;
			}
			if (!parse_u64(optarg, &v))
				return bad_usage("--%s '%s': not a number", name, optarg);
			if (c == O_ENTRY)
				end = v;
			else if (c == O_FLUSH && v == 0)
				return bad_usage("--end-at-flush '0': FLUSH entries count from 1");
			else if (c == O_FLUSH)
				flush = v;
			else if (c == O_EPOCH)
				co.epoch = v;
			else if (c == O_SEED)
				co.seed = v;
			else if (v < (c == O_SAMPLE ? 2u : 1u) || v > MAX_STATES)
				return bad_usage("--%s '%s': from %u to %u", name, optarg,
						 c == O_SAMPLE ? 2u : 1u, MAX_STATES);
			else if (c == O_MAX)
				co.max_states = v;
			else
				co.sample = v;
		}
	}
	int rc = check_combination(seen, argc - optind);
	if (rc)
		return rc;
	if (!co.sample)
		co.sample = co.max_states < 2 ? 2 : co.max_states;
	logpath = argv[optind];
	rc = open_log();
	if (rc)
		return rc;
	if (seen & BIT(O_LIST))
		return do_list();
	if (seen & BIT(O_CRASH))
		return do_crash_states(&co);
	if ((seen & BIT(O_ENTRY)) && end >= nr_entries)
		return fail(EX_NOTFOUND, "--end-at-entry: log '%s' has %llu entries", logpath,
			    (unsigned long long)nr_entries);
	if (mark_name || flush) {
		struct stop s = { .mark = mark_name, .flush = flush };
		rc = find_stop(&s, &end);
		if (rc)
			return rc;
	} else if (!(seen & BIT(O_ENTRY))) {
		end = UINT64_MAX;
	}
	return replay_prefix(co.base, out, end);
}
