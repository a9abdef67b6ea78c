#include "lib/cmdline.h"

#include "lib/console.h"
#include "lib/rt.h"
#include "lib/string.h"

#define CMDLINE_MAX 1024
#define MAX_ARGS 32

static char raw[CMDLINE_MAX];
static char buf[CMDLINE_MAX];
static struct {
	const char *key, *val;
} args[MAX_ARGS];
static int nargs;

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

void cmdline_parse(const char *s)
{
	size_t len = strlen(s);
	char *p = buf;

	if (len >= CMDLINE_MAX) {
		printf("guest: command line longer than %d bytes\n", CMDLINE_MAX - 1);
		guest_exit(2);
	}
	memcpy(raw, s, len + 1);
	memcpy(buf, s, len + 1);
	for (;;) {
		char *key, *eq;

		while (is_space(*p))
			p++;
		if (!*p)
			break;
		if (nargs == MAX_ARGS) {
			printf("guest: more than %d command-line arguments\n", MAX_ARGS);
			guest_exit(2);
		}
		key = p;
		while (*p && !is_space(*p))
			p++;
		if (*p)
			*p++ = '\0';
		for (eq = key; *eq && *eq != '='; eq++)
			;
		if (*eq)
			*eq++ = '\0'; /* split "key=value"; a bare word keeps "" as its value */
		args[nargs].key = key;
		args[nargs].val = eq;
		nargs++;
	}
}

const char *cmdline_raw(void)
{
	return raw;
}

const char *arg_str(const char *key, const char *def)
{
	for (int i = nargs - 1; i >= 0; i--)
		if (!strcmp(args[i].key, key))
			return args[i].val;
	return def;
}

static int parse_u64(const char *s, uint64_t *out)
{
	unsigned base = 10, shift = 0;
	uint64_t v = 0;
	int digits = 0;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	for (;; s++, digits++) {
		unsigned d;

		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = *s - 'a' + 10;
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			d = *s - 'A' + 10;
		else
			break;
		if (v > (UINT64_MAX - d) / base)
			return -1;
		v = v * base + d;
	}
	switch (*s) {
	case 'k': case 'K': shift = 10; s++; break;
	case 'm': case 'M': shift = 20; s++; break;
	case 'g': case 'G': shift = 30; s++; break;
	}
	if (!digits || *s || (shift && v > UINT64_MAX >> shift))
		return -1;
	*out = v << shift;
	return 0;
}

uint64_t arg_u64(const char *key, uint64_t def)
{
	const char *s = arg_str(key, 0);
	uint64_t v;

	if (!s)
		return def;
	if (parse_u64(s, &v) < 0) {
		printf("guest: bad number '%s' for %s= on the command line\n", s, key);
		guest_exit(2);
	}
	return v;
}
