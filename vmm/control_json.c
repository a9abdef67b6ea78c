/* Strict flat-object JSON parser: see control_json.h. */
#include "vmm/control_json.h"

#include <stdarg.h>
#include <string.h>

struct p {
	const unsigned char *s;
	size_t len, i;
	char *out;          /* string buffer */
	size_t out_len, out_i;
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 2, 3)))
static int perr(struct p *p, const char *fmt, ...)
{
	if (p->err && p->errlen) {
		char msg[160];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		snprintf(p->err, p->errlen, "bad JSON at byte %zu: %s", p->i, msg);
	}
	return -1;
}

static void ws(struct p *p)
{
	while (p->i < p->len && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' ||
				 p->s[p->i] == '\r'))
		p->i++;
}

static int put(struct p *p, unsigned char c)
{
	if (p->out_i + 1 >= p->out_len)
		return perr(p, "string too long");
	p->out[p->out_i++] = (char)c;
	return 0;
}

static int put_utf8(struct p *p, uint32_t cp)
{
	if (cp < 0x80)
		return put(p, (unsigned char)cp);
	if (cp < 0x800)
		return put(p, (unsigned char)(0xc0 | cp >> 6)) ||
		       put(p, (unsigned char)(0x80 | (cp & 0x3f)));
	if (cp < 0x10000)
		return put(p, (unsigned char)(0xe0 | cp >> 12)) ||
		       put(p, (unsigned char)(0x80 | ((cp >> 6) & 0x3f))) ||
		       put(p, (unsigned char)(0x80 | (cp & 0x3f)));
	return put(p, (unsigned char)(0xf0 | cp >> 18)) ||
	       put(p, (unsigned char)(0x80 | ((cp >> 12) & 0x3f))) ||
	       put(p, (unsigned char)(0x80 | ((cp >> 6) & 0x3f))) ||
	       put(p, (unsigned char)(0x80 | (cp & 0x3f)));
}

static int hex4(struct p *p, uint32_t *v)
{
	if (p->len - p->i < 4)
		return perr(p, "truncated \\u escape");
	uint32_t x = 0;
	for (int k = 0; k < 4; k++) {
		unsigned char c = p->s[p->i++];
		x <<= 4;
		if (c >= '0' && c <= '9')
			x |= (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			x |= (uint32_t)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			x |= (uint32_t)(c - 'A' + 10);
		else
			return perr(p, "bad hex digit in \\u escape");
	}
	*v = x;
	return 0;
}

/* One raw UTF-8 sequence starting at p->i (first byte >= 0x80), copied out if valid. */
static int utf8_raw(struct p *p)
{
	unsigned char c = p->s[p->i];
	unsigned n;
	uint32_t cp, min;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 1; cp = c & 0x1f; min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 2; cp = c & 0x0f; min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 3; cp = c & 0x07; min = 0x10000;
	} else {
		return perr(p, "invalid UTF-8");
	}
	if (p->len - p->i < n + 1)
		return perr(p, "truncated UTF-8");
	for (unsigned k = 1; k <= n; k++) {
		unsigned char d = p->s[p->i + k];
		if ((d & 0xc0) != 0x80)
			return perr(p, "invalid UTF-8");
		cp = cp << 6 | (d & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return perr(p, "invalid UTF-8");
	for (unsigned k = 0; k <= n; k++)
		if (put(p, p->s[p->i + k]))
			return -1;
	p->i += n + 1;
	return 0;
}

/* A string literal at p->i (the opening quote). Decoded into p->out from out_i. */
static int string(struct p *p, const char **str, size_t *slen)
{
	if (p->i >= p->len || p->s[p->i] != '"')
		return perr(p, "expected a string");
	p->i++;
	size_t start = p->out_i;
	for (;;) {
		if (p->i >= p->len)
			return perr(p, "unterminated string");
		unsigned char c = p->s[p->i];
		if (c == '"') {
			p->i++;
			break;
		}
		if (c < 0x20)
			return perr(p, "control character in string");
		if (c >= 0x80) {
			if (utf8_raw(p))
				return -1;
			continue;
		}
		if (c != '\\') {
			if (put(p, c))
				return -1;
			p->i++;
			continue;
		}
		p->i++;
		if (p->i >= p->len)
			return perr(p, "unterminated escape");
		c = p->s[p->i++];
		int r = 0;
		switch (c) {
		case '"': r = put(p, '"'); break;
		case '\\': r = put(p, '\\'); break;
		case '/': r = put(p, '/'); break;
		case 'b': r = put(p, '\b'); break;
		case 'f': r = put(p, '\f'); break;
		case 'n': r = put(p, '\n'); break;
		case 'r': r = put(p, '\r'); break;
		case 't': r = put(p, '\t'); break;
		case 'u': {
			uint32_t v;
			if (hex4(p, &v))
				return -1;
			if (v == 0)
				return perr(p, "\\u0000 is not accepted");
			if (v >= 0xdc00 && v <= 0xdfff)
				return perr(p, "unpaired low surrogate");
			if (v >= 0xd800 && v <= 0xdbff) {
				uint32_t lo;
				if (p->len - p->i < 2 || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u')
					return perr(p, "unpaired high surrogate");
				p->i += 2;
				if (hex4(p, &lo))
					return -1;
				if (lo < 0xdc00 || lo > 0xdfff)
					return perr(p, "unpaired high surrogate");
				v = 0x10000 + ((v - 0xd800) << 10) + (lo - 0xdc00);
			}
			r = put_utf8(p, v);
			break;
		}
		default:
			return perr(p, "bad escape \\%c", c >= 0x20 && c < 0x7f ? c : '?');
		}
		if (r)
			return -1;
	}
	if (p->out_i >= p->out_len)
		return perr(p, "string too long");
	p->out[p->out_i++] = 0;
	*str = p->out + start;
	*slen = p->out_i - 1 - start;
	return 0;
}

static bool lit(struct p *p, const char *w)
{
	size_t n = strlen(w);
	if (p->len - p->i >= n && !memcmp(p->s + p->i, w, n)) {
		p->i += n;
		return true;
	}
	return false;
}

static int integer(struct p *p, int64_t *out)
{
	bool neg = false;
	if (p->s[p->i] == '-') {
		neg = true;
		p->i++;
	}
	if (p->i >= p->len || p->s[p->i] < '0' || p->s[p->i] > '9')
		return perr(p, "expected a digit");
	if (p->s[p->i] == '0' && p->i + 1 < p->len && p->s[p->i + 1] >= '0' &&
	    p->s[p->i + 1] <= '9')
		return perr(p, "leading zero in a number");
	uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	while (p->i < p->len && p->s[p->i] >= '0' && p->s[p->i] <= '9') {
		unsigned d = (unsigned)(p->s[p->i] - '0');
		if (v > (lim - d) / 10)
			return perr(p, "integer out of range");
		v = v * 10 + d;
		p->i++;
	}
	if (p->i < p->len && (p->s[p->i] == '.' || p->s[p->i] == 'e' || p->s[p->i] == 'E'))
		return perr(p, "only integers are accepted");
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

int cj_parse(const char *text, size_t len, struct cj_object *o, char *strbuf, size_t strbuf_len,
	     char *err, size_t errlen)
{
	struct p p = { .s = (const unsigned char *)text, .len = len, .out = strbuf,
		       .out_len = strbuf_len, .err = err, .errlen = errlen };
	o->n = 0;
	if (err && errlen)
		err[0] = 0;
	ws(&p);
	if (p.i >= p.len || p.s[p.i] != '{')
		return perr(&p, "expected '{'");
	p.i++;
	ws(&p);
	if (p.i < p.len && p.s[p.i] == '}') {
		p.i++;
		goto end;
	}
	for (;;) {
		ws(&p);
		const char *key;
		size_t klen;
		if (string(&p, &key, &klen))
			return -1;
		if (klen > CJ_MAX_KEY)
			return perr(&p, "key longer than %d bytes", CJ_MAX_KEY);
		for (unsigned k = 0; k < o->n; k++)
			if (!strcmp(o->m[k].key, key))
				return perr(&p, "duplicate key \"%s\"", key);
		if (o->n >= CJ_MAX_MEMBERS)
			return perr(&p, "more than %d members", CJ_MAX_MEMBERS);
		struct cj_member *m = &o->m[o->n];
		memset(m, 0, sizeof(*m));
		memcpy(m->key, key, klen + 1);
		ws(&p);
		if (p.i >= p.len || p.s[p.i] != ':')
			return perr(&p, "expected ':'");
		p.i++;
		ws(&p);
		if (p.i >= p.len)
			return perr(&p, "expected a value");
		unsigned char c = p.s[p.i];
		if (c == '"') {
			m->type = CJ_STRING;
			if (string(&p, &m->str, &m->str_len))
				return -1;
		} else if (c == '-' || (c >= '0' && c <= '9')) {
			m->type = CJ_INT;
			if (integer(&p, &m->i))
				return -1;
		} else if (lit(&p, "true")) {
			m->type = CJ_BOOL;
			m->b = true;
		} else if (lit(&p, "false")) {
			m->type = CJ_BOOL;
		} else if (lit(&p, "null")) {
			m->type = CJ_NULL;
		} else if (c == '{' || c == '[') {
			return perr(&p, "nested objects and arrays are not accepted");
		} else {
			return perr(&p, "expected a value");
		}
		o->n++;
		ws(&p);
		if (p.i < p.len && p.s[p.i] == ',') {
			p.i++;
			continue;
		}
		if (p.i < p.len && p.s[p.i] == '}') {
			p.i++;
			break;
		}
		return perr(&p, "expected ',' or '}'");
	}
end:
	ws(&p);
	if (p.i != p.len)
		return perr(&p, "trailing characters after the object");
	return 0;
}

const struct cj_member *cj_get(const struct cj_object *o, const char *key)
{
	for (unsigned i = 0; i < o->n; i++)
		if (!strcmp(o->m[i].key, key))
			return &o->m[i];
	return NULL;
}

void cj_put_string(FILE *f, const char *s, size_t len)
{
	fputc('"', f);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", f);
		else if (c == '\t')
			fputs("\\t", f);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}
