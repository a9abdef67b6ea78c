/* Files cvmm creates (lib/file.h; issue 14 defect 6): the serial log, the stats JSON and the
 * pmem image are created 0600 whatever the umask, and a symbolic link where a new file is
 * expected is refused with one line, never followed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/serial.h"
#include "lib/file.h"

static char dir[64];
static char path[128], target[128], link_[128];

static int setup(void **state)
{
	strcpy(dir, "/tmp/cvmm-file-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/new", dir);
	snprintf(target, sizeof(target), "%s/target", dir);
	snprintf(link_, sizeof(link_), "%s/link", dir);
	umask(0); /* the modes checked below must not depend on the caller's umask */
	return 0;
}

static int teardown(void **state)
{
	unlink(path);
	unlink(target);
	unlink(link_);
	rmdir(dir);
	umask(022);
	return 0;
}

static unsigned mode_of(const char *p)
{
	struct stat st;
	assert_int_equal(lstat(p, &st), 0);
	return st.st_mode & 07777;
}

static void write_file(const char *p, const char *text)
{
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void read_file(const char *p, char *buf, size_t len)
{
	FILE *f = fopen(p, "r");
	assert_non_null(f);
	size_t n = fread(buf, 1, len - 1, f);
	buf[n] = 0;
	fclose(f);
}

/* One line, naming the path and what is wrong. */
static void assert_symlink_error(const char *err, const char *p)
{
	if (!strstr(err, p) || !strstr(err, "symbolic link") || strchr(err, '\n'))
		fail_msg("error '%s' should be one line naming '%s' and the symbolic link", err, p);
}

/* ---- the serial log, through serial_init (devices/serial.c) -------------------------- */

static void test_serial_log_created_0600(void **state)
{
	struct serial s;
	char err[512] = "";
	unlink(path);
	if (serial_init(&s, path, err, sizeof(err)))
		fail_msg("%s", err);
	serial_destroy(&s);
	assert_int_equal(mode_of(path), 0600);
}

static void test_serial_log_symlink_refused(void **state)
{
	struct serial s;
	char err[512] = "";
	write_file(target, "precious\n");
	unlink(link_);
	assert_int_equal(symlink(target, link_), 0);
	int rc = serial_init(&s, link_, err, sizeof(err));
	if (rc == 0)
		serial_destroy(&s);
	assert_int_equal(rc, -1);
	assert_symlink_error(err, link_);
	char buf[64];
	read_file(target, buf, sizeof(buf));
	assert_string_equal(buf, "precious\n"); /* not truncated through the link */

	/* A dangling link: nothing created at its target. */
	unlink(target);
	rc = serial_init(&s, link_, err, sizeof(err));
	if (rc == 0)
		serial_destroy(&s);
	assert_int_equal(rc, -1);
	assert_int_equal(access(target, F_OK), -1);
}

/* ---- file_create: the serial log and the stats JSON ------------------------------------ */

static void test_create_truncates_existing_regular_file(void **state)
{
	char err[512] = "";
	write_file(path, "old contents\n");
	chmod(path, 0640);
	int fd = file_create(path, "stats_json", err, sizeof(err));
	if (fd < 0)
		fail_msg("%s", err);
	assert_int_equal(write(fd, "new\n", 4), 4);
	close(fd);
	char buf[64];
	read_file(path, buf, sizeof(buf));
	assert_string_equal(buf, "new\n");
	assert_int_equal(mode_of(path), 0640); /* an existing file keeps the mode its owner gave */
	unlink(path);
	fd = file_create(path, "stats_json", err, sizeof(err));
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(mode_of(path), 0600);
}

static void test_create_refuses_symlink(void **state)
{
	char err[512] = "";
	write_file(target, "precious\n");
	unlink(link_);
	assert_int_equal(symlink(target, link_), 0);
	assert_int_equal(file_create(link_, "stats_json", err, sizeof(err)), -1);
	assert_symlink_error(err, link_);
	assert_non_null(strstr(err, "stats_json"));
	char buf[64];
	read_file(target, buf, sizeof(buf));
	assert_string_equal(buf, "precious\n");
	/* Other errors are one line too, and name the path. */
	char missing[200];
	snprintf(missing, sizeof(missing), "%s/no/such/dir", dir);
	assert_int_equal(file_create(missing, "serial", err, sizeof(err)), -1);
	assert_non_null(strstr(err, missing));
	assert_null(strstr(err, "symbolic link"));
}

/* ---- file_precreate: the pmem image (created if missing, an existing one used as is) --- */

static void test_precreate(void **state)
{
	char err[512] = "";
	unlink(path);
	assert_int_equal(file_precreate(path, "pmem path", err, sizeof(err)), 0);
	assert_int_equal(mode_of(path), 0600);
	/* An existing image is left alone: contents and mode. */
	write_file(path, "image");
	chmod(path, 0644);
	assert_int_equal(file_precreate(path, "pmem path", err, sizeof(err)), 0);
	assert_int_equal(mode_of(path), 0644);
	char buf[64];
	read_file(path, buf, sizeof(buf));
	assert_string_equal(buf, "image");
	/* A link to an existing image: the user's own choice, used. */
	unlink(link_);
	assert_int_equal(symlink(path, link_), 0);
	assert_int_equal(file_precreate(link_, "pmem path", err, sizeof(err)), 0);
	/* A dangling link, where a new file would be created: refused, nothing created. */
	unlink(target);
	unlink(link_);
	assert_int_equal(symlink(target, link_), 0);
	assert_int_equal(file_precreate(link_, "pmem path", err, sizeof(err)), -1);
	assert_symlink_error(err, link_);
	assert_int_equal(access(target, F_OK), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_serial_log_created_0600),
		cmocka_unit_test(test_serial_log_symlink_refused),
		cmocka_unit_test(test_create_truncates_existing_regular_file),
		cmocka_unit_test(test_create_refuses_symlink),
		cmocka_unit_test(test_precreate),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
