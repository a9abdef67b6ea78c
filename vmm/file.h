/* Reading a whole input file (kernel, initrd) with the checks a user's mistake needs: a
 * missing or unreadable path, a directory or FIFO (opened O_NONBLOCK so open() cannot hang),
 * a file over `max` bytes. Every message is one line: "WHAT 'PATH': why". */
#ifndef CVMM_FILE_H
#define CVMM_FILE_H

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

#endif
