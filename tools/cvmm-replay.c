/* cvmm-replay: materialise a disk image from a dm-log-writes format log (cvmm's [blk]
 * write_log, devices/blk_log.h; also logs made by Linux's dm-log-writes) and its base image.
 * Standalone: reads the format itself and shares no code with the writer. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC    0x6a736677736872ULL
#define F_FLUSH   1ULL
#define F_FUA     2ULL
#define F_DISCARD 4ULL
#define F_MARK    8ULL
#define F_META    16ULL

enum { EX_OK = 0, EX_BADLOG = 1, EX_IO = 2, EX_NOTFOUND = 3, EX_USAGE = 64 };

static const char *usage =
"usage: cvmm-replay LOG --list\n"
"       cvmm-replay LOG --base BASE --out IMAGE [--end-at-entry N | --end-at-mark NAME]\n"
"\n"
"LOG is a write log in the dm-log-writes format ([blk] write_log = PATH; BASE is PATH.base,\n"
"the disk as it was when logging started).\n"
"  --list              print every entry (index, sector, count, flags, mark text) and the\n"
"                      number of FLUSH points and marks\n"
"  --base BASE         the image the log starts from\n"
"  --out IMAGE         created (or truncated): BASE with the log's entries applied\n"
"  --end-at-entry N    apply entries 0..N (default: all)\n"
"  --end-at-mark NAME  apply entries up to and including the first mark NAME\n"
"Entries: a write puts its data at its sector; a DISCARD zeroes its range; FLUSH and MARK\n"
"change nothing. Sectors are the log's sector size (the superblock's; cvmm writes 512).\n"
"Exit status: 0 done; 1 bad log (wrong magic or version, truncated, malformed entry, an\n"
"entry past the end of BASE);\n"
"2 I/O error on BASE or IMAGE; 3 entry or mark not found; 64 bad usage.\n";

struct entry {
	uint64_t sector, nr, flags, dlen;
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
	mark[0] = 0;
	int rc = EX_OK;
	if (!e->flags && !e->nr)
		rc = fail(EX_BADLOG, "log '%s': malformed entry %llu (all zero)", logpath,
			  (unsigned long long)idx);
	else if (e->flags & ~(F_FLUSH | F_FUA | F_DISCARD | F_MARK | F_META))
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
	static const char *names[] = { "FLUSH", "FUA", "DISCARD", "MARK", "METADATA" };
	for (int i = 0; i < 5; i++)
		if (f & (1ULL << i))
			strcat(strcat(buf, buf[0] ? "|" : ""), names[i]);
	return buf[0] ? buf : "WRITE";
}

static int do_list(void)
{
	uint64_t pos = sectorsize, flushes = 0, marks = 0;
	printf("log %s: %llu entries, sector size %llu\n", logpath,
	       (unsigned long long)nr_entries, (unsigned long long)sectorsize);
	for (uint64_t i = 0; i < nr_entries; i++) {
		struct entry e;
		char mark[4096], fb[64];
		int rc = next_entry(i, &pos, &e, mark, sizeof(mark));
		if (rc)
			return rc;
		flushes += !!(e.flags & F_FLUSH);
		marks += !!(e.flags & F_MARK);
		printf("%llu sector %llu count %llu flags %s", (unsigned long long)i,
		       (unsigned long long)e.sector, (unsigned long long)e.nr, flagstr(e.flags, fb));
		if (e.flags & F_MARK)
			printf(" mark '%s'", mark);
		putchar('\n');
	}
	printf("%llu FLUSH points, %llu marks\n", (unsigned long long)flushes,
	       (unsigned long long)marks);
	if (pos < logsize)
		printf("%llu bytes after the last entry the superblock counts (the writer stopped "
		       "before it updated nr_entries: they are not replayed)\n",
		       (unsigned long long)(logsize - pos));
	return EX_OK;
}

static int copy_base(const char *base, const char *out, int *outfd)
{
	int in = open(base, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		fprintf(stderr, "cvmm-replay: base '%s': %s\n", base, strerror(errno));
		return EX_IO;
	}
	int fd = open(out, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "cvmm-replay: out '%s': %s\n", out, strerror(errno));
		close(in);
		return EX_IO;
	}
	static char buf[1 << 20];
	uint64_t off = 0;
	for (;;) {
		ssize_t r = pread(in, buf, sizeof(buf), (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			fprintf(stderr, "cvmm-replay: base '%s': %s\n", base, strerror(errno));
			close(in);
			close(fd);
			return EX_IO;
		}
		if (r == 0)
			break;
		if (!write_at(fd, buf, (size_t)r, off)) {
			fprintf(stderr, "cvmm-replay: out '%s': %s\n", out, strerror(errno));
			close(in);
			close(fd);
			return EX_IO;
		}
		off += (uint64_t)r;
	}
	close(in);
	*outfd = fd;
	return EX_OK;
}

int main(int argc, char **argv)
{
	const char *base = NULL, *out = NULL, *mark_name = NULL;
	bool list = false, have_end = false;
	uint64_t end = 0;
	static const struct option opts[] = {
		{ "base", required_argument, 0, 'b' },
		{ "out", required_argument, 0, 'o' },
		{ "end-at-entry", required_argument, 0, 'e' },
		{ "end-at-mark", required_argument, 0, 'm' },
		{ "list", no_argument, 0, 'l' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		char *endp;
		switch (c) {
		case 'b': base = optarg; break;
		case 'o': out = optarg; break;
		case 'm': mark_name = optarg; break;
		case 'l': list = true; break;
		case 'e':
			errno = 0;
			end = strtoull(optarg, &endp, 0);
			if (errno || !*optarg || *endp || optarg[0] == '-') {
				fprintf(stderr, "cvmm-replay: --end-at-entry '%s': not a number\n%s",
					optarg, usage);
				return EX_USAGE;
			}
			have_end = true;
			break;
		case 'h': fputs(usage, stdout); return EX_OK;
		default: fputs(usage, stderr); return EX_USAGE;
		}
	}
	if (optind != argc - 1 || (have_end && mark_name) ||
	    (!list && (!base || !out)) || (list && (base || out || have_end || mark_name))) {
		fputs(usage, stderr);
		return EX_USAGE;
	}
	logpath = argv[optind];
	int rc = open_log();
	if (rc)
		return rc;
	if (list)
		return do_list();
	if (have_end && end >= nr_entries)
		return fail(EX_NOTFOUND, "--end-at-entry: log '%s' has %llu entries", logpath,
			    (unsigned long long)nr_entries);
	int fd;
	rc = copy_base(base, out, &fd);
	if (rc)
		return rc;
	struct stat bst;
	if (fstat(fd, &bst) < 0) {
		close(fd);
		return fail(EX_IO, "out '%s': %s", out, strerror(errno));
	}
	uint64_t image = (uint64_t)bst.st_size;
	uint64_t pos = sectorsize, last = have_end ? end : nr_entries ? nr_entries - 1 : 0;
	bool found = !mark_name;
	uint8_t *buf = NULL;
	size_t bufsize = 0;
	for (uint64_t i = 0; i < nr_entries && (mark_name || i <= last); i++) {
		struct entry e;
		char mark[4096];
		uint64_t data = pos + sectorsize;
		rc = next_entry(i, &pos, &e, mark, sizeof(mark));
		if (rc)
			break;
		uint64_t bytes = e.nr * sectorsize, off = e.sector * sectorsize;
		if (e.sector > image / sectorsize || e.nr > image / sectorsize - e.sector) {
			rc = fail(EX_BADLOG, "log '%s': entry %llu (sectors %llu+%llu) is past the end "
				  "of the base image (%llu bytes): wrong base?", logpath,
				  (unsigned long long)i, (unsigned long long)e.sector,
				  (unsigned long long)e.nr, (unsigned long long)image);
			break;
		}
		if (bytes && bufsize < bytes && !(e.flags & F_DISCARD)) {
			free(buf);
			bufsize = bytes;
			buf = malloc(bufsize);
			if (!buf) {
				rc = fail(EX_IO, "out of memory");
				break;
			}
		}
		if (bytes && (e.flags & F_DISCARD)) {
			/* The contents of a discarded range are unspecified: zeroes, which is what
			 * cvmm's file backend leaves (a punched hole). */
			static const uint8_t z[1 << 16];
			for (uint64_t d = 0; d < bytes && !rc; d += sizeof(z))
				if (!write_at(fd, z, bytes - d < sizeof(z) ? bytes - d : sizeof(z), off + d))
					rc = fail(EX_IO, "out '%s': write failed at %llu", out,
						  (unsigned long long)(off + d));
		} else if (bytes) {
			if (!read_at(logfd, buf, bytes, data))
				rc = fail(EX_BADLOG, "log '%s': truncated in entry %llu", logpath,
					  (unsigned long long)i);
			else if (!write_at(fd, buf, bytes, off))
				rc = fail(EX_IO, "out '%s': write failed at %llu", out,
					  (unsigned long long)off);
		}
		if (rc)
			break;
		if (mark_name && (e.flags & F_MARK) && !strcmp(mark, mark_name)) {
			found = true;
			break;
		}
	}
	free(buf);
	if (close(fd) < 0 && !rc)
		rc = fail(EX_IO, "out '%s': %s", out, strerror(errno));
	if (!rc && !found)
		rc = fail(EX_NOTFOUND, "log '%s': no mark '%s'", logpath, mark_name);
	return rc;
}
