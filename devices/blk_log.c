/* The write log wrapper of virtio-blk (format and rules in devices/blk_log.h).
 *
 * Locking: `order` is a writer-preferring rwlock. write, write_zeroes and discard hold it
 * shared from before the inner call until their entry is appended, so when flush (or a mark)
 * holds it exclusively no request is between "completed" and "logged". The writer's `lock`
 * serialises the appends themselves (file position, entry count, superblock). A failed append does not fail
 * the guest's request (the disk did it): it is reported once and the log ends there. */
#include "devices/blk_log.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define ZBUF (64u << 10)

/* The writer: one log file, shared by the blk wrapper below and the pmem log
 * (devices/pmem_log.c). `lock` serialises the appends (file position, entry count,
 * superblock). */
struct blk_log_writer {
	int fd;
	pthread_mutex_t lock;
	uint64_t pos;        /* next entry's byte offset in the log */
	uint64_t entries;
	int err;             /* first append error: later entries would be misplaced */
	char path[256];
};

struct blk_log {
	struct blk_backend be;
	struct blk_backend *inner;
	pthread_rwlock_t order;
	struct blk_log_writer *w;
};

static const struct blk_backend_ops log_ops;
static const uint8_t zeroes[ZBUF];

static struct blk_log *L(struct blk_backend *be)
{
	return (struct blk_log *)be;
}

/* Write the whole iovec stream at off (pwritev, resuming after short writes and EINTR). */
static int writev_all(int fd, struct iovec *iov, unsigned n, uint64_t off)
{
	while (n) {
		unsigned batch = n < IOV_MAX ? n : IOV_MAX;
		ssize_t w = pwritev(fd, iov, (int)batch, (off_t)off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (w == 0)
			return -EIO;
		off += (uint64_t)w;
		while (n && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n) {
			iov->iov_base = (uint8_t *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

static int write_super(struct blk_log_writer *l)
{
	uint8_t s[BLK_LOG_SECTOR] = { 0 };
	uint64_t v;
	v = htole64(BLK_LOG_MAGIC);
	memcpy(s, &v, 8);
	v = htole64(BLK_LOG_VERSION);
	memcpy(s + 8, &v, 8);
	v = htole64(l->entries);
	memcpy(s + 16, &v, 8);
	uint32_t ss = htole32(BLK_LOG_SECTOR);
	memcpy(s + 24, &ss, 4);
	struct iovec io = { s, sizeof(s) };
	return writev_all(l->fd, &io, 1, 0);
}

static void fill_hdr(uint8_t *h, uint64_t sector, uint64_t nr, uint64_t flags, uint64_t dlen)
{
	uint64_t f[4] = { htole64(sector), htole64(nr), htole64(flags), htole64(dlen) };
	memset(h, 0, BLK_LOG_SECTOR);
	memcpy(h, f, sizeof(f));
}

/* Append `count` entries in one pwritev: entry k is (sector + k * nr, nr, flags) with data
 * from the stream `data` (n iovecs, count * nr sectors; NULL: zeroes, unless DISCARD), and
 * a mark's text in its header (MARK, count 1). */
static int append_entries(struct blk_log_writer *l, uint64_t sector, uint64_t nr, uint64_t count,
			  uint64_t flags, const char *mark, const struct iovec *data, unsigned n)
{
	size_t mlen = mark ? strlen(mark) : 0;
	uint64_t dbytes = (flags & BLK_LOG_DISCARD) ? 0 : nr * BLK_LOG_SECTOR;
	/* iovecs: per entry a header, then its data (a slice of the stream, or zero chunks) */
	uint64_t per = data ? (uint64_t)n + 1 : (dbytes + ZBUF - 1) / ZBUF;
	uint64_t nv = count * (1 + per);
	uint8_t hstack[BLK_LOG_SECTOR], *hdr = count == 1 ? hstack : malloc(count * BLK_LOG_SECTOR);
	struct iovec stack[16], *v = nv <= 16 ? stack : calloc(nv, sizeof(*v));
	if (!v || !hdr) {
		if (v != stack)
			free(v);
		if (hdr != hstack)
			free(hdr);
		return -ENOMEM;
	}
	unsigned i = 0, di = 0;
	size_t dskip = 0;
	for (uint64_t k = 0; k < count; k++) {
		uint8_t *h = hdr + k * BLK_LOG_SECTOR;
		fill_hdr(h, (flags & (BLK_LOG_FLUSH | BLK_LOG_MARK)) ? 0 : sector + k * nr,
			 (flags & (BLK_LOG_FLUSH | BLK_LOG_MARK)) ? 0 : nr, flags, mlen);
		if (mlen)
			memcpy(h + BLK_LOG_ENTRY_HDR, mark, mlen);
		v[i++] = (struct iovec){ h, BLK_LOG_SECTOR };
		uint64_t left = dbytes;
		while (data && left && di < n) {
			size_t c = data[di].iov_len - dskip;
			if (c > left)
				c = (size_t)left;
			v[i++] = (struct iovec){ (uint8_t *)data[di].iov_base + dskip, c };
			left -= c;
			dskip += c;
			if (dskip == data[di].iov_len) {
				di++;
				dskip = 0;
			}
		}
		for (uint64_t z = 0; !data && z < dbytes; z += ZBUF)
			v[i++] = (struct iovec){ (void *)zeroes, dbytes - z < ZBUF ? dbytes - z : ZBUF };
		if (data && left) { /* the stream is shorter than the entries say */
			i = 0;
			break;
		}
	}
	int rc = i ? 0 : -EINVAL;
	pthread_mutex_lock(&l->lock);
	if (!rc)
		rc = l->err;
	if (!rc) {
		rc = writev_all(l->fd, v, i, l->pos);
		if (rc == 0) {
			l->pos += count * (BLK_LOG_SECTOR + dbytes);
			l->entries += count;
			if (flags & (BLK_LOG_FLUSH | BLK_LOG_MARK))
				rc = write_super(l);
		}
		if (rc) {
			l->err = rc;
			fprintf(stderr, "cvmm: write_log '%s': %s; logging stops here (the log holds "
				"%llu entries)\n", l->path, strerror(-rc), (unsigned long long)l->entries);
		}
	}
	pthread_mutex_unlock(&l->lock);
	if (v != stack)
		free(v);
	if (hdr != hstack)
		free(hdr);
	return rc;
}

int blk_log_writer_append(struct blk_log_writer *w, uint64_t sector, uint64_t nr, uint64_t flags,
			  const char *mark, const struct iovec *data, unsigned n)
{
	return append_entries(w, sector, nr, 1, flags, mark, data, n);
}

int blk_log_writer_append_units(struct blk_log_writer *w, uint64_t off, const void *data,
				uint64_t len, uint64_t unit, uint64_t flags)
{
	if (!unit || unit % BLK_LOG_SECTOR || off % BLK_LOG_SECTOR || len % unit || !len)
		return -EINVAL;
	struct iovec v = { (void *)data, len };
	return append_entries(w, off / BLK_LOG_SECTOR, unit / BLK_LOG_SECTOR, len / unit, flags,
			      NULL, data ? &v : NULL, data ? 1 : 0);
}

int blk_log_check_mark(const char *text)
{
	if (!text)
		return -EINVAL;
	size_t n = strlen(text);
	return n == 0 || n > BLK_LOG_MARK_MAX ? -EINVAL : 0;
}

int blk_log_writer_mark(struct blk_log_writer *w, const char *text)
{
	int rc = blk_log_check_mark(text);
	return rc ? rc : append_entries(w, 0, 0, 1, BLK_LOG_MARK, text, NULL, 0);
}

int blk_log_writer_flush(struct blk_log_writer *w)
{
	return append_entries(w, 0, 0, 1, BLK_LOG_FLUSH, NULL, NULL, 0);
}

uint64_t blk_log_writer_entries(struct blk_log_writer *w)
{
	pthread_mutex_lock(&w->lock);
	uint64_t n = w->entries;
	pthread_mutex_unlock(&w->lock);
	return n;
}

void blk_log_writer_close(struct blk_log_writer *w)
{
	if (!w)
		return;
	if (w->fd >= 0) {
		pthread_mutex_lock(&w->lock);
		if (!w->err)
			write_super(w);
		pthread_mutex_unlock(&w->lock);
		close(w->fd);
	}
	pthread_mutex_destroy(&w->lock);
	free(w);
}

static int log_read(struct blk_backend *be, const struct iovec *iov, const uint64_t *gpa,
		    unsigned n, uint64_t off, uint64_t len)
{
	struct blk_backend *in = L(be)->inner;
	return in->ops->read(in, iov, gpa, n, off, len);
}

static int log_write(struct blk_backend *be, const struct iovec *iov, const uint64_t *gpa,
		     unsigned n, uint64_t off, uint64_t len)
{
	struct blk_log *l = L(be);
	pthread_rwlock_rdlock(&l->order);
	int rc = l->inner->ops->write(l->inner, iov, gpa, n, off, len);
	if (rc == 0)
		(void)blk_log_writer_append(l->w, off / BLK_LOG_SECTOR, len / BLK_LOG_SECTOR, 0,
					     NULL, iov, n);
	pthread_rwlock_unlock(&l->order);
	return rc;
}

static int log_flush(struct blk_backend *be)
{
	struct blk_log *l = L(be);
	pthread_rwlock_wrlock(&l->order);
	int rc = l->inner->ops->flush(l->inner);
	if (rc == 0)
		(void)blk_log_writer_flush(l->w);
	pthread_rwlock_unlock(&l->order);
	return rc;
}

static int log_discard(struct blk_backend *be, uint64_t off, uint64_t len)
{
	struct blk_log *l = L(be);
	pthread_rwlock_rdlock(&l->order);
	int rc = l->inner->ops->discard(l->inner, off, len);
	if (rc == 0)
		(void)blk_log_writer_append(l->w, off / BLK_LOG_SECTOR, len / BLK_LOG_SECTOR,
					    BLK_LOG_DISCARD, NULL, NULL, 0);
	pthread_rwlock_unlock(&l->order);
	return rc;
}

static int log_write_zeroes(struct blk_backend *be, uint64_t off, uint64_t len, bool unmap)
{
	struct blk_log *l = L(be);
	pthread_rwlock_rdlock(&l->order);
	int rc = l->inner->ops->write_zeroes(l->inner, off, len, unmap);
	if (rc == 0)
		(void)blk_log_writer_append(l->w, off / BLK_LOG_SECTOR, len / BLK_LOG_SECTOR, 0,
					     NULL, NULL, 0);
	pthread_rwlock_unlock(&l->order);
	return rc;
}

static void log_destroy(struct blk_backend *be)
{
	struct blk_log *l = L(be);
	if (l->inner)
		l->inner->ops->destroy(l->inner);
	blk_log_writer_close(l->w);
	pthread_rwlock_destroy(&l->order);
	free(l);
}

static const struct blk_backend_ops log_ops = {
	.read = log_read,
	.write = log_write,
	.flush = log_flush,
	.discard = log_discard,
	.write_zeroes = log_write_zeroes,
	.destroy = log_destroy,
};

int blk_log_mark(struct blk_backend *be, const char *text)
{
	if (!be || be->ops != &log_ops || blk_log_check_mark(text))
		return -EINVAL;
	struct blk_log *l = L(be);
	pthread_rwlock_wrlock(&l->order);
	int rc = blk_log_writer_mark(l->w, text);
	pthread_rwlock_unlock(&l->order);
	return rc;
}

uint64_t blk_log_entries(struct blk_backend *be)
{
	if (!be || be->ops != &log_ops)
		return 0;
	return blk_log_writer_entries(L(be)->w);
}

/* Create a new output file: 0600, O_NOFOLLOW, truncating an existing regular file. */
static int create_out(const char *path, char *err, size_t errlen, const char *what)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		if (errno == ELOOP)
			snprintf(err, errlen, "%s '%s': is a symbolic link: give the file itself", what,
				 path);
		else
			snprintf(err, errlen, "%s '%s': %s", what, path, strerror(errno));
	}
	return fd;
}

int blk_log_writer_open(const char *path, const char *what, struct blk_log_writer **out,
			char *err, size_t errlen)
{
	*out = NULL;
	struct blk_log_writer *w = calloc(1, sizeof(*w));
	if (!w) {
		snprintf(err, errlen, "%s: out of memory", what);
		return -1;
	}
	w->fd = create_out(path, err, errlen, what);
	if (w->fd < 0) {
		free(w);
		return -1;
	}
	pthread_mutex_init(&w->lock, NULL);
	w->pos = BLK_LOG_SECTOR;
	snprintf(w->path, sizeof(w->path), "%s", path);
	int rc = write_super(w);
	if (rc) {
		snprintf(err, errlen, "%s '%s': %s", what, path, strerror(-rc));
		blk_log_writer_close(w);
		return -1;
	}
	*out = w;
	return 0;
}

int blk_log_wrap(struct blk_backend *inner, const char *log_path, struct blk_backend **out,
		 char *err, size_t errlen)
{
	*out = NULL;
	struct blk_log *l = calloc(1, sizeof(*l));
	if (!l) {
		inner->ops->destroy(inner);
		snprintf(err, errlen, "write_log: out of memory");
		return -1;
	}
	if (blk_log_writer_open(log_path, "blk write_log", &l->w, err, errlen)) {
		inner->ops->destroy(inner);
		free(l);
		return -1;
	}
	pthread_rwlockattr_t ra;
	pthread_rwlockattr_init(&ra);
	/* A flush must not starve behind a steady stream of writes. */
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&l->order, &ra);
	pthread_rwlockattr_destroy(&ra);
	l->inner = inner;
	l->be = *inner;
	l->be.ops = &log_ops;
	*out = &l->be;
	return 0;
}

int blk_log_capture_base(const char *src, uint64_t offset, uint64_t size, const char *dst,
			 const char **how, char *err, size_t errlen)
{
	*how = NULL;
	int in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		snprintf(err, errlen, "blk write_log base: '%s': %s", src, strerror(errno));
		return -1;
	}
	int fd = create_out(dst, err, errlen, "blk write_log base");
	if (fd < 0) {
		close(in);
		return -1;
	}
	int rc = -1;
	if (ftruncate(fd, (off_t)size) < 0) {
		snprintf(err, errlen, "blk write_log base '%s': %s", dst, strerror(errno));
		goto out;
	}
	struct file_clone_range cr = { .src_fd = in, .src_offset = offset, .src_length = size };
	if (ioctl(fd, FICLONERANGE, &cr) == 0) {
		*how = "reflink";
		rc = 0;
		goto out;
	}
	uint64_t done = 0;
	bool cfr = true;
	while (done < size && cfr) {
		loff_t io = (loff_t)(offset + done), oo = (loff_t)done;
		ssize_t n = copy_file_range(in, &io, fd, &oo, size - done, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0 || done || (errno != EXDEV && errno != EINVAL && errno != ENOSYS &&
					       errno != EOPNOTSUPP)) {
				snprintf(err, errlen, "blk write_log base '%s': copy_file_range: %s", dst,
					 n == 0 ? "source ended early" : strerror(errno));
				goto out;
			}
			cfr = false;
			break;
		}
		done += (uint64_t)n;
	}
	if (cfr) {
		*how = "copy_file_range";
		rc = 0;
		goto out;
	}
	static uint8_t buf[1u << 20];
	static pthread_mutex_t buf_lock = PTHREAD_MUTEX_INITIALIZER;
	pthread_mutex_lock(&buf_lock);
	for (done = 0; done < size;) {
		size_t c = size - done < sizeof(buf) ? size - done : sizeof(buf);
		ssize_t r = pread(in, buf, c, (off_t)(offset + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			snprintf(err, errlen, "blk write_log base: reading '%s': %s", src,
				 r == 0 ? "ended early" : strerror(errno));
			break;
		}
		struct iovec v = { buf, (size_t)r };
		int w = writev_all(fd, &v, 1, done);
		if (w) {
			snprintf(err, errlen, "blk write_log base '%s': %s", dst, strerror(-w));
			break;
		}
		done += (uint64_t)r;
	}
	pthread_mutex_unlock(&buf_lock);
	if (done == size) {
		*how = "copy";
		rc = 0;
	}
out:
	close(in);
	if (close(fd) < 0 && rc == 0) {
		snprintf(err, errlen, "blk write_log base '%s': %s", dst, strerror(errno));
		rc = -1;
	}
	return rc;
}

int blk_log_attach(const char *disk_path, uint64_t disk_offset, const char *log_path,
		   struct blk_backend **be, char *err, size_t errlen)
{
	size_t n = strlen(log_path);
	char *base = malloc(n + sizeof(".base"));
	const char *how;
	if (!base) {
		(*be)->ops->destroy(*be);
		*be = NULL;
		snprintf(err, errlen, "blk write_log: out of memory");
		return -1;
	}
	memcpy(base, log_path, n);
	memcpy(base + n, ".base", sizeof(".base"));
	int rc = blk_log_capture_base(disk_path, disk_offset, (*be)->size, base, &how, err, errlen);
	free(base);
	if (rc) {
		(*be)->ops->destroy(*be);
		*be = NULL;
		return -1;
	}
	struct blk_backend *in = *be;
	return blk_log_wrap(in, log_path, be, err, errlen);
}
