/* VM configuration: parse `key = value` files and flags into struct vm_config (see config.h).
 *
 * One table describes every key, so a file line and a command-line flag go through exactly
 * the same code (config_set_at) and cannot drift apart. Nothing is ever truncated silently:
 * a value that does not fit its field is an error that names the key. */
#include "vmm/config.h"

#include "devices/fault.h"
#include "vmm/power_cut.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* A config file is a few dozen lines; anything this big is a wrong path, not a config. */
#define CONFIG_FILE_MAX (1u << 20)

#define KIB 1024ull
#define MIB (1024ull * KIB)
#define GIB (1024ull * MIB)

enum key_type {
	KEY_STR,     /* copied as is */
	KEY_PATH,    /* relative paths from a file resolve against the file's directory */
	KEY_SERIAL,  /* a KEY_PATH where "stdio" is a keyword, not a file */
	KEY_SIZE,    /* config_parse_size */
	KEY_BOOL,    /* config_parse_bool */
	KEY_INT,     /* decimal, 0..INT_MAX; ranges are config_validate's job */
	KEY_UINT,    /* decimal, 0..UINT_MAX */
	KEY_FLUSH,   /* "sync" (false) or "ignore" (true): a device's flush policy */
	KEY_FAULT,   /* one more line of a struct fault_lines (a fault-injection rule) */
};

struct key_desc {
	const char *section;   /* "vm": field of struct vm_config; "pmem" / "blk": of the device's
				* struct pmem_config / struct blk_config */
	const char *key;
	enum key_type type;
	size_t off;
	size_t size;
};

#define FIELD(f) offsetof(struct vm_config, f), sizeof(((struct vm_config *)0)->f)
#define PMEM(f) offsetof(struct pmem_config, f), sizeof(((struct pmem_config *)0)->f)
#define BLK(f) offsetof(struct blk_config, f), sizeof(((struct blk_config *)0)->f)

static const struct key_desc config_keys[] = {
	{ "vm", "kernel", KEY_PATH, FIELD(kernel) },
	{ "vm", "initrd", KEY_PATH, FIELD(initrd) },
	{ "vm", "cmdline", KEY_STR, FIELD(cmdline) },
	{ "vm", "mem", KEY_SIZE, FIELD(mem_size) },
	{ "vm", "cpus", KEY_INT, FIELD(cpus) },
	{ "vm", "serial", KEY_SERIAL, FIELD(serial) },
	{ "vm", "serial_limit", KEY_SIZE, FIELD(serial_limit) },
	{ "vm", "cpuid_mask", KEY_STR, FIELD(cpuid_mask) },
	{ "vm", "stats_json", KEY_PATH, FIELD(stats_json) },
	{ "vm", "control", KEY_PATH, FIELD(control) },
	{ "vm", "timeout", KEY_UINT, FIELD(timeout_s) },
	{ "vm", "seccomp", KEY_BOOL, FIELD(seccomp) },
	{ "vm", "power_cut", KEY_STR, FIELD(power_cut) },
	{ "vm", "power_cut_state", KEY_STR, FIELD(power_cut_state) },
	{ "pmem", "path", KEY_PATH, PMEM(path) },
	{ "pmem", "size", KEY_SIZE, PMEM(size) },
	{ "pmem", "granule", KEY_SIZE, PMEM(granule) },
	{ "pmem", "populate", KEY_BOOL, PMEM(populate) },
	{ "pmem", "readonly", KEY_BOOL, PMEM(readonly) },
	{ "pmem", "flush", KEY_FLUSH, PMEM(flush_ignore) },
	{ "pmem", "write_log", KEY_PATH, PMEM(write_log) },
	{ "pmem", "fault", KEY_FAULT, PMEM(faults) },
	{ "blk", "path", KEY_PATH, BLK(path) },
	{ "blk", "offset", KEY_SIZE, BLK(offset) },
	{ "blk", "size", KEY_SIZE, BLK(size) },
	{ "blk", "readonly", KEY_BOOL, BLK(readonly) },
	{ "blk", "direct", KEY_BOOL, BLK(direct) },
	{ "blk", "workers", KEY_UINT, BLK(workers) },
	{ "blk", "write_log", KEY_PATH, BLK(write_log) },
	{ "blk", "flush", KEY_FLUSH, BLK(flush_ignore) },
	{ "blk", "fault", KEY_FAULT, BLK(faults) },
};

__attribute__((format(printf, 3, 4)))
static int config_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static bool config_is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == '\v' || ch == '\f';
}

static bool config_is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

void config_defaults(struct vm_config *c)
{
	memset(c, 0, sizeof(*c));
	c->mem_size = 256 * MIB;
	c->cpus = 1;
	strcpy(c->serial, "stdio");
	c->serial_limit = CONFIG_SERIAL_LIMIT_DEFAULT;
	c->seccomp = true;
}

/* Plain decimal only: strtoull would quietly accept "-1" (as 2^64-1), "+5" and " 7". */
static int config_parse_decimal(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (!*s)
		return -1;
	for (; *s; s++) {
		if (!config_is_digit(*s))
			return -1;
		unsigned d = (unsigned)(*s - '0');
		if (v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

int config_hex_digit(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

int config_parse_size(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	unsigned shift = 0;
	const char *p = s;

	if (!s || !*s)
		return -1;
	/* Hex (offsets copied from a partition table) takes no suffix: "0x1B" would be ambiguous. */
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		p += 2;
		if (!*p)
			return -1;
		for (; *p; p++) {
			int d = config_hex_digit(*p);
			if (d < 0 || v >> 60)
				return -1;
			v = v << 4 | (unsigned)d;
		}
		*out = v;
		return 0;
	}
	if (!config_is_digit(*p))
		return -1;
	for (; config_is_digit(*p); p++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	/* Suffixes are binary whatever the spelling: "4k" = "4K" = "4KiB" = "4KB" = 4096. */
	switch (*p) {
	case '\0':
		break;
	case 'b': case 'B': shift = 0; p++; break;
	case 'k': case 'K': shift = 10; p++; break;
	case 'm': case 'M': shift = 20; p++; break;
	case 'g': case 'G': shift = 30; p++; break;
	case 't': case 'T': shift = 40; p++; break;
	default:
		return -1;
	}
	if (shift && (p[0] == 'i' || p[0] == 'I') && (p[1] == 'b' || p[1] == 'B'))
		p += 2;
	else if (shift && (p[0] == 'b' || p[0] == 'B'))
		p++;
	if (*p)
		return -1;
	if (shift && v > UINT64_MAX >> shift)
		return -1;
	*out = v << shift;
	return 0;
}

int config_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "on", "yes", "true", "1" };
	static const char *const no[] = { "off", "no", "false", "0" };

	if (!s)
		return -1;
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (!strcasecmp(s, yes[i])) {
			*out = true;
			return 0;
		}
		if (!strcasecmp(s, no[i])) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

/* Copy value into a path field, joining it to base (the config file's directory) when it is
 * relative and base is set. Returns -1 if the result does not fit. */
static int config_resolve_path(char *dst, size_t dstsz, const char *base, const char *value)
{
	int n;

	if (!*value || value[0] == '/' || !base || !*base)
		n = snprintf(dst, dstsz, "%s", value);
	else if (!strcmp(base, "/"))
		n = snprintf(dst, dstsz, "/%s", value);
	else
		n = snprintf(dst, dstsz, "%s/%s", base, value);
	return n < 0 || (size_t)n >= dstsz ? -1 : 0;
}

static const struct key_desc *config_find_key(const char *section, const char *key)
{
	for (size_t i = 0; i < sizeof(config_keys) / sizeof(config_keys[0]); i++)
		if (!strcmp(config_keys[i].section, section) && !strcmp(config_keys[i].key, key))
			return &config_keys[i];
	return NULL;
}

static bool config_known_section(const char *section)
{
	return !strcmp(section, "vm") || !strcmp(section, "pmem") || !strcmp(section, "blk");
}

/* A device name: what the control socket and the stats call it, so plain and short. */
static bool config_valid_name(const char *name)
{
	size_t n = strlen(name);
	if (!n || n >= CONFIG_NAME_MAX)
		return false;
	for (const char *p = name; *p; p++)
		if (!(config_is_digit(*p) || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      *p == '_' || *p == '-'))
			return false;
	return true;
}

static int config_find_pmem(const struct vm_config *c, const char *name)
{
	for (unsigned i = 0; i < c->npmem; i++)
		if (!strcmp(c->pmem[i].name, name))
			return (int)i;
	return -1;
}

static int config_find_blk(const struct vm_config *c, const char *name)
{
	for (unsigned i = 0; i < c->nblk; i++)
		if (!strcmp(c->blk[i].name, name))
			return (int)i;
	return -1;
}

/* The device struct a [pmem "NAME"] / [blk "NAME"] line sets: found, or created at the end
 * (order of first appearance is the device order). name NULL or "": the plain section's. */
static void *config_device(struct vm_config *c, const char *section, const char *name,
			   const char *where, char *err, size_t errlen)
{
	bool pmem = !strcmp(section, "pmem");
	if (!name || !*name)
		name = section;
	if (!config_valid_name(name)) {
		config_fail(err, errlen, "%s: bad device name \"%s\" (1..%d of A-Z a-z 0-9 _ -)",
			    where, name, CONFIG_NAME_MAX - 1);
		return NULL;
	}
	int i = pmem ? config_find_pmem(c, name) : config_find_blk(c, name);
	if (i >= 0)
		return pmem ? (void *)&c->pmem[i] : (void *)&c->blk[i];
	if (pmem ? config_find_blk(c, name) >= 0 : config_find_pmem(c, name) >= 0) {
		config_fail(err, errlen, "%s: device name \"%s\" is taken by a [%s] section; names "
			    "are shared by [blk] and [pmem]", where, name, pmem ? "blk" : "pmem");
		return NULL;
	}
	if (pmem) {
		if (c->npmem == CONFIG_MAX_PMEM) {
			config_fail(err, errlen, "%s: [pmem \"%s\"]: at most %d pmem devices", where,
				    name, CONFIG_MAX_PMEM);
			return NULL;
		}
		struct pmem_config *d = &c->pmem[c->npmem++];
		memset(d, 0, sizeof(*d));
		strcpy(d->name, name);
		return d;
	}
	if (c->nblk == CONFIG_MAX_BLK) {
		config_fail(err, errlen, "%s: [blk \"%s\"]: at most %d blk devices", where, name,
			    CONFIG_MAX_BLK);
		return NULL;
	}
	struct blk_config *d = &c->blk[c->nblk++];
	memset(d, 0, sizeof(*d));
	strcpy(d->name, name);
	d->direct = true;
	return d;
}

/* The one place a key gets its value. base != NULL: the value came from a file in that
 * directory (flags pass NULL: a relative path on the command line means the cwd).
 * name: the device of a pmem/blk section (NULL: the plain one). */
static int config_set_at(struct vm_config *c, const char *section, const char *name,
			 const char *key, const char *value, const char *where, const char *base,
			 char *err, size_t errlen)
{
	const struct key_desc *k;
	void *field;
	uint64_t u;
	bool b;

	if (!section || !key || !value)
		return config_fail(err, errlen, "%s: missing section, key or value", where);
	if (!config_known_section(section))
		return config_fail(err, errlen, "%s: unknown section [%s]", where, section);
	k = config_find_key(section, key);
	if (!k)
		return config_fail(err, errlen, "%s: unknown key '%s' in [%s]", where, key, section);
	if (!strcmp(section, "vm")) {
		field = (char *)c + k->off;
	} else {
		void *dev = config_device(c, section, name, where, err, errlen);
		if (!dev)
			return -1;
		field = (char *)dev + k->off;
	}

	switch (k->type) {
	case KEY_STR:
		if (strlen(value) >= k->size)
			return config_fail(err, errlen,
					   "%s: value of '%s' too long (%zu bytes, max %zu)", where,
					   key, strlen(value), k->size - 1);
		memcpy(field, value, strlen(value) + 1);
		break;
	case KEY_SERIAL:
	case KEY_PATH:
		if (k->type == KEY_SERIAL && !strcmp(value, "stdio"))
			base = NULL;
		if (config_resolve_path(field, k->size, base, value) < 0)
			return config_fail(err, errlen, "%s: path for '%s' too long (max %zu bytes)",
					   where, key, k->size - 1);
		break;
	case KEY_SIZE:
		if (config_parse_size(value, &u) < 0)
			return config_fail(err, errlen,
					   "%s: bad size '%s' for '%s' (want e.g. 4096, 4k, 256M, 1G, 2MiB)",
					   where, value, key);
		*(uint64_t *)field = u;
		break;
	case KEY_BOOL:
		if (config_parse_bool(value, &b) < 0)
			return config_fail(err, errlen,
					   "%s: bad boolean '%s' for '%s' (want on/off/yes/no/true/false/1/0)",
					   where, value, key);
		*(bool *)field = b;
		break;
	case KEY_INT:
		if (config_parse_decimal(value, INT_MAX, &u) < 0)
			return config_fail(err, errlen, "%s: bad number '%s' for '%s'", where, value,
					   key);
		*(int *)field = (int)u;
		break;
	case KEY_UINT:
		if (config_parse_decimal(value, UINT_MAX, &u) < 0)
			return config_fail(err, errlen, "%s: bad number '%s' for '%s'", where, value,
					   key);
		*(unsigned *)field = (unsigned)u;
		break;
	case KEY_FLUSH:
		if (strcmp(value, "sync") && strcmp(value, "ignore"))
			return config_fail(err, errlen, "%s: bad flush policy '%s' for '%s' (want sync "
					   "or ignore)", where, value, key);
		*(bool *)field = !strcmp(value, "ignore");
		break;
	case KEY_FAULT: {
		struct fault_lines *fl = field;
		if (fl->n == CONFIG_MAX_FAULTS)
			return config_fail(err, errlen, "%s: more than %d fault rules in one device",
					   where, CONFIG_MAX_FAULTS);
		if (!*value || strlen(value) >= CONFIG_FAULT_MAX)
			return config_fail(err, errlen, "%s: fault rule %s (1..%d bytes)", where,
					   *value ? "too long" : "empty", CONFIG_FAULT_MAX - 1);
		strcpy(fl->text[fl->n], value);
		snprintf(fl->where[fl->n], sizeof(fl->where[0]), "%s", where);
		fl->n++;
		break;
	}
	}
	return 0;
}

int config_set(struct vm_config *c, const char *section, const char *key, const char *value,
	       const char *where, char *err, size_t errlen)
{
	return config_set_at(c, section, NULL, key, value, where ? where : "config", NULL, err,
			     errlen);
}

int config_set_dev(struct vm_config *c, const char *section, const char *name, const char *key,
		   const char *value, const char *where, char *err, size_t errlen)
{
	return config_set_at(c, section, name, key, value, where ? where : "config", NULL, err,
			     errlen);
}

static char *config_trim(char *s)
{
	size_t n;

	while (config_is_space(*s))
		s++;
	n = strlen(s);
	while (n && config_is_space(s[n - 1]))
		s[--n] = '\0';
	return s;
}

/* An unquoted comment starts at '#' or ';' at the start of the text or after whitespace, so
 * "a#b" stays one value while "mem = 1G  # RAM" loses its comment. */
static void config_strip_comment(char *s)
{
	for (char *p = s; *p; p++) {
		if ((*p == '#' || *p == ';') && (p == s || config_is_space(p[-1]))) {
			*p = '\0';
			return;
		}
	}
}

/* Unquote a "..." value in place: \" and \\ are escapes, any other backslash is literal.
 * After the closing quote only whitespace or a comment may follow. */
static int config_unquote(char *v, const char *where, const char *key, char *err, size_t errlen)
{
	char *src = v + 1, *dst = v;

	for (;;) {
		if (!*src)
			return config_fail(err, errlen, "%s: unterminated quote in value of '%s'",
					   where, key);
		if (*src == '"')
			break;
		if (*src == '\\' && (src[1] == '"' || src[1] == '\\'))
			src++;
		*dst++ = *src++;
	}
	*dst = '\0';
	src++;
	while (config_is_space(*src))
		src++;
	if (*src && *src != '#' && *src != ';')
		return config_fail(err, errlen, "%s: unexpected text after closing quote in '%s'",
				   where, key);
	return 0;
}

/* `vm`, `pmem`, `blk`, `pmem "NAME"` or `blk "NAME"` (the text between the brackets): sets
 * section and name (section[8], name[CONFIG_NAME_MAX]) and creates the device, so that a
 * section without keys still asks for one. */
static int config_section_header(struct vm_config *c, char *line, char *section, char *name,
				 const char *where, char *err, size_t errlen)
{
	char *q = strchr(line, '"');
	char *nm = NULL;
	if (q) {
		char *end = strchr(q + 1, '"');
		if (!end || *config_trim(end + 1))
			return config_fail(err, errlen, "%s: malformed section header [%s] (want "
					   "[blk \"NAME\"])", where, line);
		*end = '\0';
		nm = q + 1;
		*q = '\0';
		line = config_trim(line);
	}
	if (!config_known_section(line) || (nm && !strcmp(line, "vm")))
		return config_fail(err, errlen, "%s: unknown section [%s] (want [vm], [pmem], [blk], "
				   "[pmem \"NAME\"] or [blk \"NAME\"])", where, line);
	strcpy(section, line);
	name[0] = '\0';
	if (nm) {
		if (!config_valid_name(nm))
			return config_fail(err, errlen, "%s: bad device name \"%s\" (1..%d of A-Z a-z "
					   "0-9 _ -)", where, nm, CONFIG_NAME_MAX - 1);
		strcpy(name, nm);
	}
	if (strcmp(section, "vm") && !config_device(c, section, name, where, err, errlen))
		return -1;
	return 0;
}

static int config_parse_text(struct vm_config *c, const char *text, size_t len, const char *name,
			     const char *base, char *err, size_t errlen)
{
	char where[CONFIG_PATH_MAX + 32];
	char section[8] = "";
	char dev[CONFIG_NAME_MAX] = "";
	char *buf, *line, *next;
	unsigned lineno = 0;
	int rc = -1;

	if (!name)
		name = "config";
	buf = malloc(len + 1);
	if (!buf)
		return config_fail(err, errlen, "%s: out of memory", name);
	memcpy(buf, text, len);
	buf[len] = '\0';

	for (line = buf; line; line = next) {
		char *eq, *key, *value;

		lineno++;
		next = memchr(line, '\n', (size_t)(buf + len - line));
		if (next)
			*next++ = '\0';
		snprintf(where, sizeof(where), "%s:%u", name, lineno);
		/* Only a file can hold a NUL; it would silently end the line here. */
		if (line + strlen(line) != (next ? next - 1 : buf + len)) {
			config_fail(err, errlen, "%s: NUL byte in line", where);
			goto out;
		}

		line = config_trim(line);
		if (!*line || *line == '#' || *line == ';')
			continue;

		if (*line == '[') {
			char *close = strchr(line, ']');
			char *rest;

			if (!close) {
				config_fail(err, errlen, "%s: malformed section header '%s'", where,
					    line);
				goto out;
			}
			*close = '\0';
			rest = close + 1;
			config_strip_comment(rest);
			if (*config_trim(rest)) {
				config_fail(err, errlen, "%s: unexpected text after [%s]", where,
					    config_trim(line + 1));
				goto out;
			}
			line = config_trim(line + 1);
			if (config_section_header(c, line, section, dev, where, err, errlen) < 0)
				goto out;
			continue;
		}

		eq = strchr(line, '=');
		if (!eq) {
			config_strip_comment(line);
			config_fail(err, errlen, "%s: expected 'key = value', got '%s'", where,
				    config_trim(line));
			goto out;
		}
		*eq = '\0';
		key = config_trim(line);
		value = eq + 1;
		while (config_is_space(*value))
			value++;
		if (!*key) {
			config_fail(err, errlen, "%s: missing key before '='", where);
			goto out;
		}
		if (!*section) {
			config_fail(err, errlen,
				    "%s: key '%s' outside any section (start with [vm], [pmem] or [blk])",
				    where, key);
			goto out;
		}
		if (*value == '"') {
			if (config_unquote(value, where, key, err, errlen) < 0)
				goto out;
		} else {
			config_strip_comment(value);
			value = config_trim(value);
		}
		if (config_set_at(c, section, dev, key, value, where, base, err, errlen) < 0)
			goto out;
	}
	rc = 0;
out:
	free(buf);
	return rc;
}

int config_parse_string(struct vm_config *c, const char *text, const char *name, char *err,
			size_t errlen)
{
	/* A string has no directory of its own: relative paths use base_dir if the caller set
	 * one, and stay relative (to the cwd) otherwise. */
	return config_parse_text(c, text, strlen(text), name, c->base_dir, err, errlen);
}

/* Directory of path, made absolute when possible so that stored paths survive a chdir. */
static int config_dir_of(const char *path, char *dir, size_t dirsz)
{
	char lex[CONFIG_PATH_MAX];
	char abs[PATH_MAX];
	const char *slash = strrchr(path, '/');
	int n;

	if (!slash)
		n = snprintf(lex, sizeof(lex), ".");
	else if (slash == path)
		n = snprintf(lex, sizeof(lex), "/");
	else
		n = snprintf(lex, sizeof(lex), "%.*s", (int)(slash - path), path);
	if (n < 0 || (size_t)n >= sizeof(lex))
		return -1;
	if (realpath(lex, abs))
		n = snprintf(dir, dirsz, "%s", abs);
	else
		n = snprintf(dir, dirsz, "%s", lex);
	return n < 0 || (size_t)n >= dirsz ? -1 : 0;
}

int config_parse_file(struct vm_config *c, const char *path, char *err, size_t errlen)
{
	struct stat st;
	char *buf;
	size_t len = 0;
	int fd, rc;

	/* O_NONBLOCK: a FIFO given by mistake must not hang us in open(); it is then refused
	 * as not a regular file (for which the flag changes nothing). */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return config_fail(err, errlen, "config '%s': %s", path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		rc = config_fail(err, errlen, "config '%s': %s", path, strerror(errno));
		close(fd);
		return rc;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return config_fail(err, errlen, "config '%s': not a regular file", path);
	}
	/* Read up to one byte past the cap so a file that grew since fstat is still refused. */
	buf = malloc(CONFIG_FILE_MAX + 1);
	if (!buf) {
		close(fd);
		return config_fail(err, errlen, "config '%s': out of memory", path);
	}
	while (len <= CONFIG_FILE_MAX) {
		ssize_t r = read(fd, buf + len, CONFIG_FILE_MAX + 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = config_fail(err, errlen, "config '%s': %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	if (len > CONFIG_FILE_MAX) {
		rc = config_fail(err, errlen, "config '%s': larger than %u bytes", path,
				 CONFIG_FILE_MAX);
		goto out;
	}
	if (config_dir_of(path, c->base_dir, sizeof(c->base_dir)) < 0) {
		rc = config_fail(err, errlen, "config '%s': directory path too long", path);
		goto out;
	}
	rc = config_parse_text(c, buf, len, path, c->base_dir, err, errlen);
out:
	free(buf);
	close(fd);
	return rc;
}

/* Messages name the device the way its section does: "pmem" / "blk" for the plain one. */
static const char *dev_label(const char *kind, const char *name, char *buf, size_t len)
{
	if (!strcmp(kind, name))
		snprintf(buf, len, "%s", kind);
	else
		snprintf(buf, len, "%s \"%s\"", kind, name);
	return buf;
}

/* Each `fault = RULE` parses (what the device can do is checked when it is created). */
static int config_validate_faults(const struct fault_lines *fl, const char *label, char *err,
				  size_t errlen)
{
	for (unsigned i = 0; i < fl->n; i++) {
		struct fault_rule r;
		char why[256];
		if (fault_rule_parse(fl->text[i], &r, why, sizeof(why)))
			return config_fail(err, errlen, "%s: fault rule for %s: %s", fl->where[i], label,
					   why);
	}
	return 0;
}

/* A write_log path (any device): a new file, not a device's image or another device's log;
 * the device writable and syncing (a log without FLUSH points has nothing to replay to). */
static int config_validate_log(const struct vm_config *c, const char *w, const char *l,
			       bool readonly, bool flush_ignore, char *err, size_t errlen)
{
	size_t n = strlen(w);
	if (flush_ignore)
		return config_fail(err, errlen, "%s flush = ignore with write_log: the log would "
				   "have no FLUSH points to replay to; drop one of them", l);
	if (readonly)
		return config_fail(err, errlen, "%s write_log '%s': the device is read-only "
				   "(readonly = on): there is nothing to log", l, w);
	if (w[n - 1] == '/')
		return config_fail(err, errlen, "%s write_log '%s': is a directory name, give a "
				   "file", l, w);
	if (n + sizeof(".base") > CONFIG_PATH_MAX)
		return config_fail(err, errlen, "%s write_log: path too long (PATH.base must fit in "
				   "%d bytes)", l, CONFIG_PATH_MAX);
	/* (device setup also compares the files themselves, by device and inode) */
	unsigned logs = 0;
	for (unsigned i = 0; i < c->nblk; i++) {
		if (!strcmp(w, c->blk[i].path))
			return config_fail(err, errlen, "%s write_log '%s': is a disk image itself; "
					   "give a new file", l, w);
		logs += !strcmp(w, c->blk[i].write_log);
	}
	for (unsigned i = 0; i < c->npmem; i++) {
		if (!strcmp(w, c->pmem[i].path))
			return config_fail(err, errlen, "%s write_log '%s': is a pmem image; give a "
					   "new file", l, w);
		logs += !strcmp(w, c->pmem[i].write_log);
	}
	if (logs > 1)
		return config_fail(err, errlen, "%s write_log '%s': is also the log of another "
				   "device; give each its own", l, w);
	return 0;
}

static int config_validate_pmem(const struct vm_config *c, const struct pmem_config *p,
				char *err, size_t errlen)
{
	char l[64];
	uint64_t g = p->granule;

	dev_label("pmem", p->name, l, sizeof(l));
	if (!p->path[0])
		return config_fail(err, errlen, "%s path: not set ([%s] path = FILE)", l, l);
	if (p->size % (2 * MIB))
		return config_fail(err, errlen, "%s size: %llu bytes is not a multiple of 2 MiB", l,
				   (unsigned long long)p->size);
	if (g && (g & (g - 1) || g < 4 * KIB || g > 2 * MIB))
		return config_fail(err, errlen,
				   "%s granule: %llu bytes is not a power of two in 4 KiB..2 MiB", l,
				   (unsigned long long)g);
	if (p->write_log[0] && config_validate_log(c, p->write_log, l, p->readonly, p->flush_ignore,
						   err, errlen))
		return -1;
	for (unsigned i = 0; p->write_log[0] && i < c->npmem; i++)
		if (&c->pmem[i] != p && !strcmp(c->pmem[i].path, p->path) &&
		    c->pmem[i].write_log[0] && &c->pmem[i] < p)
			return config_fail(err, errlen, "%s write_log: pmem \"%s\" is the same file and "
					   "has a write_log too; one log per file covers every view: "
					   "keep one", l, c->pmem[i].name);
	return config_validate_faults(&p->faults, l, err, errlen);
}

static int config_validate_blk(const struct vm_config *c, const struct blk_config *d,
			       char *err, size_t errlen)
{
	char l[64];

	dev_label("blk", d->name, l, sizeof(l));
	if (!d->path[0])
		return config_fail(err, errlen, "%s path: not set ([%s] path = FILE)", l, l);
	if (d->workers > CONFIG_MAX_BLK_WORKERS)
		return config_fail(err, errlen, "%s workers: %u is more than %u", l, d->workers,
				   CONFIG_MAX_BLK_WORKERS);
	if (config_validate_faults(&d->faults, l, err, errlen))
		return -1;
	if (!d->write_log[0])
		return 0;
	if (config_validate_log(c, d->write_log, l, d->readonly, d->flush_ignore, err, errlen))
		return -1;
	for (unsigned i = 0; i < c->npmem; i++)
		if (!strcmp(d->path, c->pmem[i].path))
			return config_fail(err, errlen, "%s write_log '%s': the disk is the file of pmem "
					   "\"%s\": set write_log in that [pmem] section instead, its "
					   "log covers both views", l, d->write_log, c->pmem[i].name);
	return 0;
}

int config_validate(const struct vm_config *c, char *err, size_t errlen)
{
	struct stat st;
	int fd;

	if (!c->kernel[0])
		return config_fail(err, errlen, "kernel: no kernel image given ([vm] kernel = PATH)");
	/* Open, not access(): it is what the loader will do, and it catches directories.
	 * O_NONBLOCK so that a FIFO cannot hang validation. */
	fd = open(c->kernel, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return config_fail(err, errlen, "kernel '%s': %s", c->kernel, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return config_fail(err, errlen, "kernel '%s': not a regular file", c->kernel);
	}
	close(fd);
	if (c->initrd[0]) {
		fd = open(c->initrd, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0)
			return config_fail(err, errlen, "initrd '%s': %s", c->initrd, strerror(errno));
		if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
			close(fd);
			return config_fail(err, errlen, "initrd '%s': not a regular file", c->initrd);
		}
		close(fd);
	}

	if (c->mem_size < 16 * MIB)
		return config_fail(err, errlen, "mem: %llu bytes is below the 16 MiB minimum",
				   (unsigned long long)c->mem_size);
	if (c->mem_size > 64 * GIB)
		return config_fail(err, errlen, "mem: %llu bytes is above the 64 GiB maximum",
				   (unsigned long long)c->mem_size);
	if (c->mem_size % (4 * KIB))
		return config_fail(err, errlen, "mem: %llu bytes is not a multiple of 4 KiB",
				   (unsigned long long)c->mem_size);
	if (c->cpus < 1 || c->cpus > CONFIG_MAX_CPUS)
		return config_fail(err, errlen, "cpus: %d is out of range 1..%d", c->cpus,
				   CONFIG_MAX_CPUS);

	struct power_cut_plan plan;
	if (power_cut_parse(c->power_cut, c->power_cut_state, &plan, err, errlen))
		return -1;
	/* The pmem and blk backing files are not required to exist: the VMM creates them (pmem
	 * sized by [pmem] size) when it sets the device up, and reports errors then. */
	for (unsigned i = 0; i < c->npmem; i++)
		if (config_validate_pmem(c, &c->pmem[i], err, errlen))
			return -1;
	for (unsigned i = 0; i < c->nblk; i++)
		if (config_validate_blk(c, &c->blk[i], err, errlen))
			return -1;
	return 0;
}
