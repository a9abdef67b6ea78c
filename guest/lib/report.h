/* A TAP-like reporter: `ok N - name` / `not ok N - name` (a `# reason` line before a failure),
 * and one closing line `N passed, M failed`. Called from the BSP. */
#ifndef GUEST_REPORT_H
#define GUEST_REPORT_H

#include <stdbool.h>

/* Report one check; on failure first print the formatted reason as a `# ` line.
 * Returns cond. */
bool t_check(bool cond, const char *name, const char *why, ...) __attribute__((format(printf, 3, 4)));
/* A `# ` diagnostic line. */
void t_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
unsigned t_failed(void);
/* Print the closing line and end the VM: status 0 if nothing failed, else 1. */
__attribute__((noreturn)) void t_done(void);

#endif
