/* Serial console for ring 3. Output is collected per CPU and sent a whole line at a time with
 * one syscall, under a lock so lines from different CPUs never mix. It costs ~20 us per line
 * plus ~16 us per byte (KVM exits to the VMM once per byte of a string outs): keep it short. */
#ifndef GUEST_CONSOLE_H
#define GUEST_CONSOLE_H

#include <stdarg.h>

int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int vprintf(const char *fmt, va_list ap);
void console_putc(char c);
/* Send this CPU's partial line, if any. */
void console_flush(void);

#endif
