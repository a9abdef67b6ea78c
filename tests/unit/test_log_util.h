/* Helpers shared by the write-log tests (test_blk_log, test_pmem_log, test_replay): the replay
 * tool, shell commands, whole files, seeded bytes. Include after cmocka.h. */
#ifndef CVMM_TEST_LOG_UTIL_H
#define CVMM_TEST_LOG_UTIL_H

#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* build/cvmm-replay, or $CVMM_REPLAY (e.g. one built with the sanitizers) */
static inline const char *replay_bin(void)
{
	const char *e = getenv("CVMM_REPLAY");
	return e ? e : "build/cvmm-replay";
}

/* A shell command's exit status (255 if it did not exit). */
__attribute__((format(printf, 1, 2)))
static inline int run(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 255;
}

/* The whole file, NUL-terminated one byte past *len (text files can be used as strings). */
static inline uint8_t *slurp(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		fail_msg("cannot open %s", path);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	uint8_t *b = malloc((size_t)st.st_size + 1);
	assert_non_null(b);
	assert_int_equal(pread(fd, b, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	b[st.st_size] = 0;
	*len = (size_t)st.st_size;
	return b;
}

/* A new directory $TMPDIR/PREFIXxxxxxx (TMPDIR default /tmp) into dir. */
static inline void make_tmpdir(char *dir, size_t len, const char *prefix)
{
	const char *t = getenv("TMPDIR");
	snprintf(dir, len, "%s/%sXXXXXX", t ? t : "/tmp", prefix);
	assert_non_null(mkdtemp(dir));
}

/* n bytes from a seeded LCG: the same seed, the same bytes. */
static inline void fill(uint8_t *b, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		b[i] = (uint8_t)(seed >> 16);
	}
}

#endif
