/* The guest command line: whitespace-separated `key=value` tokens (a bare word is a key with
 * an empty value; the last occurrence of a key wins). `scenario=NAME` picks the scenario. */
#ifndef GUEST_CMDLINE_H
#define GUEST_CMDLINE_H

#include <stdint.h>

void cmdline_parse(const char *s);
const char *cmdline_raw(void);
const char *arg_str(const char *key, const char *def);
/* Decimal or 0x hex, with an optional k/m/g suffix (powers of 1024). A malformed value ends
 * the VM with status 2 (bad command line) after saying which key. */
uint64_t arg_u64(const char *key, uint64_t def);

#endif
