/* The write log wrapper of virtio-blk (format and rules in devices/blk_log.h).
 *
 * Locking: `order` is a writer-preferring rwlock. write, write_zeroes and discard hold it
 * shared from before the inner call until their entry is appended, so when flush (or a mark)
 * holds it exclusively no request is between "completed" and "logged". `lock` serialises the
 * appends themselves (file position, entry count, superblock). A failed append does not fail
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

struct blk_log {
	struct blk_backend be;
	struct blk_backend *inner;
	int fd;
	pthread_rwlock_t order;
	pthread_mutex_t lock;
	uint64_t pos;        /* next entry's byte offset in the log */
	uint64_t entries;
	int err;             /* first append error: later entries would be misplaced */
	char path[256];
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

static int write_super(struct blk_log *l)
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

/* Append one entry: header sector (+ mark text) then `data` (n iovecs, nr sectors' worth;
 * data NULL and nr > 0: that many sectors of zeroes, unless DISCARD). Under l->lock. */
static int append(struct blk_log *l, uint64_t sector, uint64_t nr, uint64_t flags,
		  const char *mark, const struct iovec *data, unsigned n)
{
	uint8_t hdr[BLK_LOG_SECTOR];
	size_t mlen = mark ? strlen(mark) : 0;
	fill_hdr(hdr, sector, nr, flags, mlen);
	if (mlen)
		memcpy(hdr + BLK_LOG_ENTRY_HDR, mark, mlen);
	uint64_t dbytes = (flags & BLK_LOG_DISCARD) ? 0 : nr * BLK_LOG_SECTOR;
	unsigned nv = 1 + (data ? n : (unsigned)((dbytes + ZBUF - 1) / ZBUF));
	struct iovec stack[16], *v = nv <= 16 ? stack : calloc(nv, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v[0] = (struct iovec){ hdr, sizeof(hdr) };
	if (data) {
		memcpy(v + 1, data, n * sizeof(*v));
	} else {
		for (unsigned i = 1; i < nv; i++) {
			uint64_t left = dbytes - (uint64_t)(i - 1) * ZBUF;
			v[i] = (struct iovec){ (void *)zeroes, left < ZBUF ? left : ZBUF };
		}
	}
	pthread_mutex_lock(&l->lock);
	int rc = l->err;
	if (!rc) {
		rc = writev_all(l->fd, v, nv, l->pos);
		if (rc == 0) {
			l->pos += BLK_LOG_SECTOR + dbytes;
			l->entries++;
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
	return rc;
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
		(void)append(l, off / BLK_LOG_SECTOR, len / BLK_LOG_SECTOR, 0, NULL, iov, n);
	pthread_rwlock_unlock(&l->order);
	return rc;
}

static int log_flush(struct blk_backend *be)
{
	struct blk_log *l = L(be);
	pthread_rwlock_wrlock(&l->order);
	int rc = l->inner->ops->flush(l->inner);
	if (rc == 0)
		(void)append(l, 0, 0, BLK_LOG_FLUSH, NULL, NULL, 0);
	pthread_rwlock_unlock(&l->order);
	return rc;
}

static int log_discard(struct blk_backend *be, uint64_t off, uint64_t len)
{
	struct blk_log *l = L(be);
	pthread_rwlock_rdlock(&l->order);
	int rc = l->inner->ops->discard(l->inner, off, len);
	if (rc == 0)
		(void)append(l, off / BLK_LOG_SECTOR, len / BLK_LOG_SECTOR, BLK_LOG_DISCARD,
			     NULL, NULL, 0);
	pthread_rwlock_unlock(&l->order);
	return rc;
}

static int log_write_zeroes(struct blk_backend *be, uint64_t off, uint64_t len, bool unmap)
{
	struct blk_log *l = L(be);
	pthread_rwlock_rdlock(&l->order);
	int rc = l->inner->ops->write_zeroes(l->inner, off, len, unmap);
	if (rc == 0)
		(void)append(l, off / BLK_LOG_SECTOR, len / BLK_LOG_SECTOR, 0, NULL, NULL, 0);
	pthread_rwlock_unlock(&l->order);
	return rc;
}

static void log_destroy(struct blk_backend *be)
{
	struct blk_log *l = L(be);
	if (l->inner)
		l->inner->ops->destroy(l->inner);
	if (l->fd >= 0) {
		pthread_mutex_lock(&l->lock);
		if (!l->err)
			write_super(l);
		pthread_mutex_unlock(&l->lock);
		close(l->fd);
	}
	pthread_rwlock_destroy(&l->order);
	pthread_mutex_destroy(&l->lock);
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
	if (!be || be->ops != &log_ops || !text)
		return -EINVAL;
	size_t n = strlen(text);
	if (n == 0 || n > BLK_LOG_MARK_MAX)
		return -EINVAL;
	struct blk_log *l = L(be);
	pthread_rwlock_wrlock(&l->order);
	int rc = append(l, 0, 0, BLK_LOG_MARK, text, NULL, 0);
	pthread_rwlock_unlock(&l->order);
	return rc;
}

uint64_t blk_log_entries(struct blk_backend *be)
{
	if (!be || be->ops != &log_ops)
		return 0;
	struct blk_log *l = L(be);
	pthread_mutex_lock(&l->lock);
	uint64_t n = l->entries;
	pthread_mutex_unlock(&l->lock);
	return n;
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
	l->fd = create_out(log_path, err, errlen, "blk write_log");
	if (l->fd < 0) {
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
	pthread_mutex_init(&l->lock, NULL);
	l->inner = inner;
	l->pos = BLK_LOG_SECTOR;
	snprintf(l->path, sizeof(l->path), "%s", log_path);
	l->be = *inner;
	l->be.ops = &log_ops;
	int rc = write_super(l);
	if (rc) {
		snprintf(err, errlen, "blk write_log '%s': %s", log_path, strerror(-rc));
		log_destroy(&l->be);
		return -1;
	}
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
