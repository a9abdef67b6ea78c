/* A small strict JSON parser for the control socket (vmm/control.c): one flat object per
 * line, members whose values are strings, integers, booleans or null. Nothing else is
 * accepted: no nesting (objects, arrays), no fractions or exponents, no duplicate keys, no
 * trailing garbage, no raw control characters or invalid UTF-8 in strings, no \u0000, no
 * unpaired surrogates. Whitespace as RFC 8259 defines it. Kept free of everything else so the
 * fuzz target (tests/fuzz/fuzz_control.c) links only this file. */
#ifndef CVMM_CONTROL_JSON_H
#define CVMM_CONTROL_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CJ_MAX_MEMBERS 16
#define CJ_MAX_KEY     32     /* bytes of a key, decoded, without the NUL */

enum cj_type { CJ_STRING, CJ_INT, CJ_BOOL, CJ_NULL };

struct cj_member {
	char key[CJ_MAX_KEY + 1];
	enum cj_type type;
	const char *str;   /* CJ_STRING: decoded, NUL-terminated, in the caller's buffer */
	size_t str_len;
	int64_t i;         /* CJ_INT */
	bool b;            /* CJ_BOOL */
};

struct cj_object {
	unsigned n;
	struct cj_member m[CJ_MAX_MEMBERS];
};

/* Parse text[0, len) (which need not be NUL-terminated) as one object. Decoded strings go to
 * strbuf (strbuf_len >= len + 1 always suffices). Returns 0, or -1 with a message naming the
 * byte offset in err. */
int cj_parse(const char *text, size_t len, struct cj_object *o, char *strbuf, size_t strbuf_len,
	     char *err, size_t errlen);

/* The member named key, or NULL. */
const struct cj_member *cj_get(const struct cj_object *o, const char *key);

/* Write s[0, len) as a JSON string literal (quotes included) with the escapes RFC 8259 needs;
 * bytes >= 0x80 are passed through (callers give UTF-8 or ASCII). */
void cj_put_string(FILE *f, const char *s, size_t len);

#endif
