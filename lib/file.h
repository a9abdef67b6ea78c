/* Reading a whole input file (kernel, initrd) with the checks a user's mistake needs: a
 * missing or unreadable path, a directory or FIFO (opened O_NONBLOCK so open() cannot hang),
 * a file over `max` bytes. Every message is one line: "WHAT 'PATH': why". */
#ifndef CVMM_LIB_FILE_H
#define CVMM_LIB_FILE_H

#include <stddef.h>
#include <stdint.h>

/* The one-line error every loader reports: "LABEL: " then the formatted reason, in err
 * (truncated to errlen). Always returns -1, so callers can `return fail_labelled(...)`. */
int fail_labelled(char *err, size_t errlen, const char *label, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* On success *buf (malloc'd, free it) holds *len bytes: a file that shrinks while read just
 * comes back shorter and is checked as such by the caller. Returns 0 or -1 with err set. */
int file_read_all(const char *path, const char *what, uint64_t max, uint8_t **buf, size_t *len,
		  char *err, size_t errlen);

/* Files cvmm creates (the serial log, the stats JSON): opened write-only, truncated, created
 * 0600 (a umask can only take bits away from that; cvmm often runs as root), with
 * O_NOFOLLOW: a symbolic link at `path` is refused with "WHAT 'PATH': is a symbolic link ...",
 * never followed. An existing regular file (or device, e.g. /dev/null) keeps its mode.
 * Returns the fd (O_CLOEXEC) or -1 with a one-line err. */
int file_create(const char *path, const char *what, char *err, size_t errlen);

/* A file used if it exists and created empty (0600) if not, such as the pmem image. A link to
 * an existing file is used (the user's choice); a dangling one, through which a new file would
 * be created, is refused with one line and nothing is created. Returns 0 or -1 with err set. */
int file_precreate(const char *path, const char *what, char *err, size_t errlen);

#endif
