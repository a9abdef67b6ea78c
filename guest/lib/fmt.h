/* printf-style formatting with no I/O: usable from ring 3 and from the ring-0 trap reporter.
 * Conversions: %s %c %d %i %u %x %X %p %%, length l/ll/z, flags '-' and '0', width and
 * precision (also '*'); precision on %s limits the bytes read. */
#ifndef GUEST_FMT_H
#define GUEST_FMT_H

#include <stdarg.h>
#include <stddef.h>

typedef void (*fmt_put_fn)(void *ctx, char c);

/* Returns the number of characters produced. */
int vformat(fmt_put_fn put, void *ctx, const char *fmt, va_list ap);
int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int snprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
