/* libFuzzer target: the control socket's JSON parser (vmm/control_json.c) on arbitrary bytes
 * (one request line as a client could send it) must never crash, overrun or leak; whatever it
 * accepts must be well formed (keys unique and short, strings NUL-terminated, no NUL inside),
 * and every string it accepts must survive a round trip through cj_put_string (the writer the
 * replies use) and the parser again.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -D_GNU_SOURCE \
 *         tests/fuzz/fuzz_control.c vmm/control_json.c */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/control_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* exactly `size` bytes, not NUL-terminated: the parser must not read past them */
	char *text = malloc(size ? size : 1);
	char *buf = malloc(size + 1);
	struct cj_object o;
	char err[256];
	if (!text || !buf)
		abort();
	memcpy(text, data, size);
	if (cj_parse(text, size, &o, buf, size + 1, err, sizeof(err)) == 0) {
		if (o.n > CJ_MAX_MEMBERS)
			abort();
		for (unsigned i = 0; i < o.n; i++) {
			const struct cj_member *m = &o.m[i];
			if (strlen(m->key) > CJ_MAX_KEY || cj_get(&o, m->key) != m)
				abort(); /* too long, or a duplicate key was accepted */
			if (m->type != CJ_STRING)
				continue;
			if (strlen(m->str) != m->str_len || m->str_len > size)
				abort(); /* a NUL inside, or longer than the input */
			/* round trip: {"k":<written string>} parses back to the same bytes */
			char *w = NULL;
			size_t wl = 0;
			FILE *f = open_memstream(&w, &wl);
			fputs("{\"k\":", f);
			cj_put_string(f, m->str, m->str_len);
			fputc('}', f);
			fclose(f);
			struct cj_object o2;
			char *b2 = malloc(wl + 1);
			if (cj_parse(w, wl, &o2, b2, wl + 1, err, sizeof(err)) || o2.n != 1 ||
			    o2.m[0].str_len != m->str_len || memcmp(o2.m[0].str, m->str, m->str_len))
				abort();
			free(b2);
			free(w);
		}
	} else if (!memchr(err, '\0', sizeof(err)) || !err[0]) {
		abort(); /* a failure always says why */
	}
	free(buf);
	free(text);
	return 0;
}
