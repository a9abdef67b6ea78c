#include "lib/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fail_labelled(char *err, size_t errlen, const char *label, const char *fmt, ...)
{
	if (!err || !errlen)
		return -1;
	int n = snprintf(err, errlen, "%s: ", label);
	if (n >= 0 && (size_t)n < errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -1;
}

int file_read_all(const char *path, const char *what, uint64_t max, uint8_t **bufp,
		    size_t *lenp, char *err, size_t errlen)
{
	char label[4200];
	snprintf(label, sizeof(label), "%s '%s'", what, path);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return fail_labelled(err, errlen, label, "%s", strerror(errno));
	struct stat st;
	int rc = -1;
	uint8_t *buf = NULL;
	size_t len = 0;
	if (fstat(fd, &st) < 0) {
		fail_labelled(err, errlen, label, "%s", strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		fail_labelled(err, errlen, label, "not a regular file");
		goto out;
	}
	if ((uint64_t)st.st_size > max) {
		fail_labelled(err, errlen, label, "%llu bytes, larger than the %llu MiB limit",
		      (unsigned long long)st.st_size, (unsigned long long)(max >> 20));
		goto out;
	}
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf) {
		fail_labelled(err, errlen, label, "out of memory reading %llu bytes",
			  (unsigned long long)st.st_size);
		goto out;
	}
	while (len < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + len, (size_t)st.st_size - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			fail_labelled(err, errlen, label, "%s", strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	*bufp = buf;
	*lenp = len;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	close(fd);
	return rc;
}

/* After an O_NOFOLLOW open failed with ELOOP (or an O_EXCL one with EEXIST): is it a link? */
static bool is_symlink(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0 && S_ISLNK(st.st_mode);
}

int file_create(const char *path, const char *what, char *err, size_t errlen)
{
	char label[4200];
	snprintf(label, sizeof(label), "%s '%s'", what, path);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		int e = errno;
		if (e == ELOOP && is_symlink(path))
			return fail_labelled(err, errlen, label,
				     "is a symbolic link: cvmm does not follow one where it creates a "
				     "file (name the file itself)");
		return fail_labelled(err, errlen, label, "%s", strerror(e));
	}
	return fd;
}

int file_precreate(const char *path, const char *what, char *err, size_t errlen)
{
	char label[4200];
	snprintf(label, sizeof(label), "%s '%s'", what, path);
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd >= 0) {
		close(fd);
		return 0;
	}
	int e = errno;
	if (e != EEXIST)
		return fail_labelled(err, errlen, label, "%s", strerror(e));
	/* Something is there. O_EXCL does not follow links: a dangling one gives EEXIST too. */
	struct stat st;
	if (stat(path, &st) < 0) {
		e = errno;
		if (is_symlink(path))
			return fail_labelled(err, errlen, label,
				     "is a symbolic link to a missing file: cvmm does not create a "
				     "file through one (create the image, or name it directly)");
		return fail_labelled(err, errlen, label, "%s", strerror(e));
	}
	return 0;
}
