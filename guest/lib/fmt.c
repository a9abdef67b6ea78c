#include "lib/fmt.h"

#include <stdint.h>

struct spec {
	int left, zero, width, prec;
};

static int emit(fmt_put_fn put, void *ctx, const char *s, int len, const struct spec *sp,
		char pad)
{
	int n = 0, fill = sp->width > len ? sp->width - len : 0;

	if (!sp->left)
		for (; fill > 0; fill--, n++)
			put(ctx, pad);
	for (int i = 0; i < len; i++, n++)
		put(ctx, s[i]);
	for (; fill > 0; fill--, n++)
		put(ctx, ' ');
	return n;
}

static int number(fmt_put_fn put, void *ctx, uint64_t v, int neg, unsigned base, int upper,
		  const struct spec *sp)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	char tmp[24];
	int i = sizeof(tmp);

	do {
		tmp[--i] = digits[v % base];
		v /= base;
	} while (v);
	if (neg) {
		if (sp->zero && !sp->left) { /* sign before the zero padding */
			struct spec s2 = *sp;

			put(ctx, '-');
			s2.width = sp->width > 0 ? sp->width - 1 : 0;
			return 1 + emit(put, ctx, tmp + i, sizeof(tmp) - i, &s2, '0');
		}
		tmp[--i] = '-';
	}
	return emit(put, ctx, tmp + i, sizeof(tmp) - i, sp, sp->zero && !sp->left ? '0' : ' ');
}

int vformat(fmt_put_fn put, void *ctx, const char *fmt, va_list ap)
{
	int n = 0;

	for (; *fmt; fmt++) {
		struct spec sp = { 0, 0, 0, -1 };
		int lng = 0;

		if (*fmt != '%') {
			put(ctx, *fmt);
			n++;
			continue;
		}
		for (fmt++;; fmt++) {
			if (*fmt == '-')
				sp.left = 1;
			else if (*fmt == '0')
				sp.zero = 1;
			else
				break;
		}
		if (*fmt == '*') {
			sp.width = va_arg(ap, int);
			fmt++;
		}
		for (; *fmt >= '0' && *fmt <= '9'; fmt++)
			sp.width = sp.width * 10 + (*fmt - '0');
		if (*fmt == '.') {
			sp.prec = 0;
			if (*++fmt == '*') {
				sp.prec = va_arg(ap, int);
				fmt++;
			}
			for (; *fmt >= '0' && *fmt <= '9'; fmt++)
				sp.prec = sp.prec * 10 + (*fmt - '0');
		}
		for (; *fmt == 'l' || *fmt == 'z' || *fmt == 'h'; fmt++)
			if (*fmt != 'h')
				lng = 1;
		switch (*fmt) {
		case 'c': {
			char c = (char)va_arg(ap, int);

			n += emit(put, ctx, &c, 1, &sp, ' ');
			break;
		}
		case 's': {
			const char *s = va_arg(ap, const char *);
			int len = 0;

			if (!s)
				s = "(null)";
			while (s[len] && (sp.prec < 0 || len < sp.prec))
				len++;
			n += emit(put, ctx, s, len, &sp, ' ');
			break;
		}
		case 'd':
		case 'i': {
			int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);

			n += number(put, ctx, v < 0 ? -(uint64_t)v : (uint64_t)v, v < 0, 10, 0, &sp);
			break;
		}
		case 'u':
		case 'x':
		case 'X': {
			uint64_t v = lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);

			n += number(put, ctx, v, 0, *fmt == 'u' ? 10 : 16, *fmt == 'X', &sp);
			break;
		}
		case 'p':
			put(ctx, '0');
			put(ctx, 'x');
			n += 2 + number(put, ctx, (uint64_t)va_arg(ap, void *), 0, 16, 0, &sp);
			break;
		case '%':
			put(ctx, '%');
			n++;
			break;
		case '\0':
			return n;
		default: /* unknown conversion: show it */
			put(ctx, '%');
			put(ctx, *fmt);
			n += 2;
		}
	}
	return n;
}

struct bufout {
	char *buf;
	size_t size, len;
};

static void buf_put(void *ctx, char c)
{
	struct bufout *o = ctx;

	if (o->len + 1 < o->size)
		o->buf[o->len] = c;
	o->len++;
}

int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct bufout o = { buf, size, 0 };
	int n = vformat(buf_put, &o, fmt, ap);

	if (size)
		buf[o.len < size ? o.len : size - 1] = '\0';
	return n;
}

int snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}
