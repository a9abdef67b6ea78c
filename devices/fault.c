/* Fault injection rules: parse, format, match. See fault.h for the syntax and semantics. */
#include "devices/fault.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const char *const op_names[FAULT_OP_COUNT] = {
	[FAULT_OP_ANY] = "any",         [FAULT_OP_READ] = "read",
	[FAULT_OP_WRITE] = "write",     [FAULT_OP_FLUSH] = "flush",
	[FAULT_OP_DISCARD] = "discard", [FAULT_OP_WRITE_ZEROES] = "write-zeroes",
	[FAULT_OP_LOAD] = "load",
};

static const char *const effect_names[FAULT_EFFECT_COUNT] = {
	[FAULT_NONE] = "none",     [FAULT_IOERR] = "ioerr", [FAULT_UNSUPP] = "unsupp",
	[FAULT_DELAY] = "delay",   [FAULT_TORN] = "torn",   [FAULT_ENOSPC] = "enospc",
	[FAULT_MEDIA_ERROR] = "media-error",
};

const char *fault_op_name(enum fault_op op)
{
	return (unsigned)op < FAULT_OP_COUNT ? op_names[op] : "?";
}

const char *fault_effect_name(enum fault_effect e)
{
	return (unsigned)e < FAULT_EFFECT_COUNT ? effect_names[e] : "?";
}

/* ---- the set ----------------------------------------------------------------------------- */

void fault_set_init(struct fault_set *s, const char *who, unsigned ops_mask,
		    unsigned effects_mask)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->state_lock, NULL);
	s->next_id = 1;
	s->ops_mask = ops_mask | (1u << FAULT_OP_ANY);
	s->effects_mask = effects_mask;
	s->who = who;
	/* Its own limiter: a storm of injected faults must not hide the guest's own mistakes,
	 * which the device logs through its limiter. */
	ratelimit_init(&s->rl, who, 10);
}

void fault_set_destroy(struct fault_set *s)
{
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->state_lock);
	ratelimit_destroy(&s->rl);
}

void fault_set_state_hook(struct fault_set *s, int (*hook)(void *ctx, const struct fault_rule *r,
							   bool on), void *ctx)
{
	pthread_mutex_lock(&s->state_lock);
	s->state_hook = hook;
	s->state_ctx = ctx;
	pthread_mutex_unlock(&s->state_lock);
	fault_set_allow(s, FAULT_MEDIA_ERROR, hook != NULL);
}

void fault_set_allow(struct fault_set *s, enum fault_effect e, bool allow)
{
	pthread_mutex_lock(&s->lock);
	if (allow)
		s->effects_mask |= 1u << e;
	else
		s->effects_mask &= ~(1u << e);
	pthread_mutex_unlock(&s->lock);
}

uint64_t fault_fired(struct fault_set *s)
{
	return __atomic_load_n(&s->fired, __ATOMIC_RELAXED);
}

/* ---- parsing ----------------------------------------------------------------------------- */

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	char msg[384];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(err, errlen, "fault rule: %s", msg);
	return -1;
}

/* An unsigned number, decimal or 0x hex, all of s. */
static bool parse_u64(const char *s, uint64_t *out)
{
	if (!isdigit((unsigned char)s[0]))
		return false; /* strtoull would take "-1" and " 1" */
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || *end || (s[0] == '0' && s[1] && s[1] != 'x' && s[1] != 'X'))
		return false; /* overflow, junk, or an octal-looking 010 */
	*out = v;
	return true;
}

static const char size_suffix[] = "KMGT";

/* A byte count: a number with an optional binary suffix K, M, G, T. */
static bool parse_size(const char *s, uint64_t *out)
{
	char num[32];
	size_t n = strlen(s);
	if (n == 0 || n >= sizeof(num))
		return false;
	memcpy(num, s, n + 1);
	unsigned shift = 0;
	const char *sfx = strchr(size_suffix, toupper((unsigned char)num[n - 1]));
	/* no suffix letter is a hex digit: 0x1f is a number, 0x1fK a size */
	if (sfx) {
		shift = 10 * (unsigned)(sfx - size_suffix + 1);
		num[--n] = 0;
	}
	uint64_t v;
	if (!parse_u64(num, &v) || (shift && v > (UINT64_MAX >> shift)))
		return false;
	*out = v << shift;
	return true;
}

static void format_size(uint64_t v, char *buf, size_t len)
{
	unsigned i = 4;
	while (i > 0 && (v == 0 || v % (1ULL << (10 * i))))
		i--;
	if (i == 0)
		snprintf(buf, len, "%" PRIu64, v);
	else
		snprintf(buf, len, "%" PRIu64 "%c", v >> (10 * i), size_suffix[i - 1]);
}

/* START+LEN or START-END, END exclusive: [start, end) with end > start. */
static int parse_range(const char *v, struct fault_rule *r, char *err, size_t errlen)
{
	const char *sep = strpbrk(v, "+-");
	char a[32];
	if (!sep || (size_t)(sep - v) >= sizeof(a))
		return fail(err, errlen, "range '%s': want START+LEN or START-END", v);
	memcpy(a, v, (size_t)(sep - v));
	a[sep - v] = 0;
	uint64_t start, x;
	if (!parse_size(a, &start))
		return fail(err, errlen, "range '%s': bad start '%s' (a number, K/M/G/T suffix)", v, a);
	if (!parse_size(sep + 1, &x))
		return fail(err, errlen, "range '%s': bad %s '%s' (a number, K/M/G/T suffix)", v,
			    *sep == '+' ? "length" : "end", sep + 1);
	r->range_dash = *sep == '-';
	if (r->range_dash) {
		if (x <= start)
			return fail(err, errlen, "range '%s': the end is not after the start", v);
		r->end = x;
	} else {
		if (x == 0)
			return fail(err, errlen, "range '%s': the length is 0", v);
		if (x > UINT64_MAX - start)
			return fail(err, errlen, "range '%s': start + length overflows", v);
		r->end = start + x;
	}
	r->start = start;
	r->has_range = true;
	return 0;
}

/* A probability 0..1 with at most 9 decimals, exactly, in parts per 1e9 (no floating point:
 * the text formats back to itself and the same rule fires on the same requests anywhere). */
static bool parse_prob(const char *s, uint32_t *out)
{
	if (!isdigit((unsigned char)s[0]))
		return false;
	uint64_t ip = (uint64_t)(s[0] - '0'), frac = 0;
	const char *p = s + 1;
	if (*p == '.') {
		unsigned digits = 0;
		for (p++; isdigit((unsigned char)*p); p++) {
			if (++digits > 9)
				return false;
			frac = frac * 10 + (uint64_t)(*p - '0');
		}
		if (!digits)
			return false;
		for (; digits < 9; digits++)
			frac *= 10;
	}
	if (*p || ip > 1 || (ip == 1 && frac))
		return false;
	*out = (uint32_t)(ip * FAULT_PROB_ONE + frac);
	return true;
}

static void format_prob(uint32_t p, char *buf, size_t len)
{
	if (p == 0 || p == FAULT_PROB_ONE) {
		snprintf(buf, len, "%u", p / FAULT_PROB_ONE);
		return;
	}
	char d[16];
	snprintf(d, sizeof(d), "%09u", p);
	size_t n = strlen(d);
	while (n > 1 && d[n - 1] == '0')
		d[--n] = 0;
	snprintf(buf, len, "0.%s", d);
}

/* when=always | once | after:N | nth:N | prob:P */
static int parse_when(const char *v, struct fault_rule *r, char *err, size_t errlen)
{
	if (!strcmp(v, "always")) {
		r->when = FAULT_ALWAYS;
	} else if (!strcmp(v, "once")) {
		r->when = FAULT_ONCE;
	} else if (!strncmp(v, "after:", 6)) {
		r->when = FAULT_AFTER;
		if (!parse_u64(v + 6, &r->n))
			return fail(err, errlen, "when '%s': N is not a number", v);
	} else if (!strncmp(v, "nth:", 4)) {
		r->when = FAULT_NTH;
		if (!parse_u64(v + 4, &r->n) || r->n == 0)
			return fail(err, errlen, "when '%s': N is not a number >= 1", v);
	} else if (!strncmp(v, "prob:", 5)) {
		r->when = FAULT_PROB;
		if (!parse_prob(v + 5, &r->prob))
			return fail(err, errlen, "when '%s': P is not a number 0..1 with at most 9 "
				    "decimals", v);
	} else {
		return fail(err, errlen, "unknown when '%s' (always, once, after:N, nth:N, prob:P)",
			    v);
	}
	return 0;
}

/* A delay: N us | ms | s. */
static bool parse_delay(const char *s, uint64_t *us)
{
	static const struct { const char *unit; uint64_t mul; } u[] = {
		{ "us", 1 }, { "ms", 1000 }, { "s", 1000000 },
	};
	size_t n = strlen(s);
	for (size_t i = 0; i < sizeof(u) / sizeof(u[0]); i++) {
		size_t k = strlen(u[i].unit);
		char num[32];
		if (n <= k || n - k >= sizeof(num) || strcmp(s + n - k, u[i].unit))
			continue;
		if (i == 2 && (s[n - 2] == 'u' || s[n - 2] == 'm'))
			continue; /* "5ms" is not "5m" seconds */
		memcpy(num, s, n - k);
		num[n - k] = 0;
		uint64_t v;
		if (!parse_u64(num, &v) || v > FAULT_DELAY_MAX_US / u[i].mul)
			return false;
		*us = v * u[i].mul;
		return true;
	}
	return false;
}

static void format_delay(uint64_t us, char *buf, size_t len)
{
	if (us && us % 1000000 == 0)
		snprintf(buf, len, "%" PRIu64 "s", us / 1000000);
	else if (us && us % 1000 == 0)
		snprintf(buf, len, "%" PRIu64 "ms", us / 1000);
	else
		snprintf(buf, len, "%" PRIu64 "us", us);
}

/* effect=ioerr | unsupp | delay:D | torn:K | enospc */
static int parse_effect(const char *v, struct fault_rule *r, char *err, size_t errlen)
{
	if (!strcmp(v, "ioerr")) {
		r->effect = FAULT_IOERR;
	} else if (!strcmp(v, "unsupp")) {
		r->effect = FAULT_UNSUPP;
	} else if (!strcmp(v, "enospc")) {
		r->effect = FAULT_ENOSPC;
	} else if (!strcmp(v, "media-error")) {
		r->effect = FAULT_MEDIA_ERROR;
	} else if (!strncmp(v, "delay:", 6)) {
		r->effect = FAULT_DELAY;
		if (!parse_delay(v + 6, &r->arg))
			return fail(err, errlen, "effect '%s': want delay:N with a unit us, ms or s, "
				    "at most 60 s", v);
	} else if (!strncmp(v, "torn:", 5)) {
		r->effect = FAULT_TORN;
		if (!parse_u64(v + 5, &r->arg) || r->arg == 0)
			return fail(err, errlen, "effect '%s': want torn:K, K >= 1 sectors of 512 "
				    "bytes (K = 0 is effect=ioerr)", v);
	} else {
		return fail(err, errlen, "unknown effect '%s' (ioerr, unsupp, delay:D, torn:K, "
			    "enospc, media-error)", v);
	}
	return 0;
}

static int parse_op(const char *v, struct fault_rule *r, char *err, size_t errlen)
{
	for (unsigned i = 0; i < FAULT_OP_COUNT; i++) {
		if (!strcmp(v, op_names[i])) {
			r->op = (enum fault_op)i;
			return 0;
		}
	}
	return fail(err, errlen, "unknown op '%s' (read, write, flush, discard, write-zeroes, load, "
		    "any)", v);
}

enum { K_OP, K_RANGE, K_WHEN, K_SEED, K_EFFECT, K_COUNT };
static const char *const key_names[K_COUNT] = { "op", "range", "when", "seed", "effect" };

static int parse_word(char *w, struct fault_rule *r, bool *seen, char *err, size_t errlen)
{
	char *eq = strchr(w, '=');
	if (!eq)
		return fail(err, errlen, "'%s' is not key=value", w);
	*eq = 0;
	const char *v = eq + 1;
	unsigned k = 0;
	while (k < K_COUNT && strcmp(w, key_names[k]))
		k++;
	if (k == K_COUNT)
		return fail(err, errlen, "unknown key '%s' (op, range, when, seed, effect)", w);
	if (seen[k])
		return fail(err, errlen, "'%s' given twice", w);
	seen[k] = true;
	switch (k) {
	case K_OP:
		return parse_op(v, r, err, errlen);
	case K_RANGE:
		return parse_range(v, r, err, errlen);
	case K_WHEN:
		return parse_when(v, r, err, errlen);
	case K_SEED:
		r->has_seed = true;
		if (!parse_u64(v, &r->seed))
			return fail(err, errlen, "seed '%s' is not a number", v);
		return 0;
	default:
		return parse_effect(v, r, err, errlen);
	}
}

/* The combinations that make no sense, refused with the words to change. */
static int check_rule(const struct fault_rule *r, const bool *seen, char *err, size_t errlen)
{
	if (!seen[K_OP])
		return fail(err, errlen, "no op= (read, write, flush, discard, write-zeroes, any)");
	if (!seen[K_EFFECT])
		return fail(err, errlen, "no effect= (ioerr, unsupp, delay:D, torn:K, enospc)");
	if (r->has_range && r->op == FAULT_OP_FLUSH)
		return fail(err, errlen, "range with op=flush: a flush has no range");
	if (r->has_seed && r->when != FAULT_PROB)
		return fail(err, errlen, "seed without when=prob:P");
	if (r->effect == FAULT_TORN && r->op != FAULT_OP_WRITE)
		return fail(err, errlen, "effect=torn with op=%s: only a write can be torn",
			    op_names[r->op]);
	/* A media error is what the media is, for as long as the rule exists: no timing. */
	if ((r->effect == FAULT_MEDIA_ERROR) != (r->op == FAULT_OP_LOAD))
		return fail(err, errlen, r->op == FAULT_OP_LOAD
			    ? "op=load takes only effect=media-error"
			    : "effect=media-error goes with op=load (the range is bad for loads)");
	if (r->effect == FAULT_MEDIA_ERROR && !r->has_range)
		return fail(err, errlen, "effect=media-error needs a range= (the bad media)");
	if (r->effect == FAULT_MEDIA_ERROR && seen[K_WHEN])
		return fail(err, errlen, "effect=media-error takes no when=: the range stays bad "
			    "until the rule is removed");
	return 0;
}

int fault_rule_parse(const char *text, struct fault_rule *r, char *err, size_t errlen)
{
	char buf[FAULT_RULE_MAX * 2];
	if (strlen(text) >= sizeof(buf))
		return fail(err, errlen, "longer than %zu bytes", sizeof(buf) - 1);
	strcpy(buf, text);
	memset(r, 0, sizeof(*r));
	bool seen[K_COUNT] = { false };
	char *save = NULL;
	for (char *w = strtok_r(buf, " \t\r\n", &save); w; w = strtok_r(NULL, " \t\r\n", &save))
		if (parse_word(w, r, seen, err, errlen))
			return -1;
	return check_rule(r, seen, err, errlen);
}

void fault_rule_format(const struct fault_rule *r, char *buf, size_t len)
{
	char range[80] = "", when[48] = "", seed[40] = "", effect[48], a[32], b[32];
	if (r->has_range) {
		format_size(r->start, a, sizeof(a));
		format_size(r->range_dash ? r->end : r->end - r->start, b, sizeof(b));
		snprintf(range, sizeof(range), " range=%s%c%s", a, r->range_dash ? '-' : '+', b);
	}
	switch (r->when) {
	case FAULT_ALWAYS:
		break; /* the default: not written (an explicit when=always formats without it) */
	case FAULT_ONCE:
		snprintf(when, sizeof(when), " when=once");
		break;
	case FAULT_AFTER:
	case FAULT_NTH:
		snprintf(when, sizeof(when), " when=%s:%" PRIu64,
			 r->when == FAULT_AFTER ? "after" : "nth", r->n);
		break;
	case FAULT_PROB:
		format_prob(r->prob, a, sizeof(a));
		snprintf(when, sizeof(when), " when=prob:%s", a);
		break;
	}
	if (r->has_seed)
		snprintf(seed, sizeof(seed), " seed=%" PRIu64, r->seed);
	if (r->effect == FAULT_DELAY) {
		format_delay(r->arg, a, sizeof(a));
		snprintf(effect, sizeof(effect), "delay:%s", a);
	} else if (r->effect == FAULT_TORN) {
		snprintf(effect, sizeof(effect), "torn:%" PRIu64, r->arg);
	} else {
		snprintf(effect, sizeof(effect), "%s", fault_effect_name(r->effect));
	}
	snprintf(buf, len, "op=%s%s%s%s effect=%s", fault_op_name(r->op), range, when, seed,
		 effect);
}

/* ---- adding, removing, listing ----------------------------------------------------------- */

/* "read, write" from a mask of op or effect names. */
static void names_of(unsigned mask, const char *const *names, unsigned count, unsigned skip,
		     char *buf, size_t len)
{
	size_t o = 0;
	buf[0] = 0;
	for (unsigned i = 0; i < count && o < len; i++)
		if (i != skip && (mask & (1u << i)))
			o += (size_t)snprintf(buf + o, len - o, "%s%s", o ? ", " : "", names[i]);
}

/* Can the set take r? 0, or -1 with the message. Under s->lock. */
static int add_check(struct fault_set *s, const struct fault_rule *r, char *err, size_t errlen)
{
	char have[128];
	if (!(s->ops_mask & (1u << r->op))) {
		names_of(s->ops_mask, op_names, FAULT_OP_COUNT, FAULT_OP_ANY, have, sizeof(have));
		return fail(err, errlen, "op=%s: %s has no such request (it has: %s)",
			    op_names[r->op], s->who, have);
	}
	if (!(s->effects_mask & (1u << r->effect))) {
		names_of(s->effects_mask, effect_names, FAULT_EFFECT_COUNT, FAULT_NONE, have,
			 sizeof(have));
		return fail(err, errlen, "effect=%s: %s cannot do it (it can: %s)",
			    effect_names[r->effect], s->who, have);
	}
	if (s->nrules == FAULT_MAX_RULES)
		return fail(err, errlen, "%s has %u rules already, the most it takes", s->who,
			    FAULT_MAX_RULES);
	return 0;
}

static bool is_state(const struct fault_rule *r)
{
	return r->effect == FAULT_MEDIA_ERROR;
}

int fault_add(struct fault_set *s, const struct fault_rule *r, char *err, size_t errlen)
{
	/* A state rule is applied first (outside `lock`: a poison waits for the DMAs in flight,
	 * whose requests consult this set), then listed; state_lock keeps add/remove of state
	 * rules in one order. */
	bool state = is_state(r);
	if (state)
		pthread_mutex_lock(&s->state_lock);
	pthread_mutex_lock(&s->lock);
	int bad = add_check(s, r, err, errlen);
	pthread_mutex_unlock(&s->lock);
	if (!bad && state) {
		int e = s->state_hook(s->state_ctx, r, true);
		if (e) {
			fail(err, errlen, "effect=%s: %s", effect_names[r->effect], strerror(-e));
			bad = -1;
		}
	}
	int id = -1;
	if (!bad) {
		pthread_mutex_lock(&s->lock);
		if (s->nrules < FAULT_MAX_RULES) {
			struct fault_slot *sl = &s->slot[s->nrules];
			*sl = (struct fault_slot){ .id = s->next_id++, .rule = *r, .prng = r->seed };
			id = (int)sl->id;
			__atomic_store_n(&s->nrules, s->nrules + 1, __ATOMIC_RELEASE);
		} else {
			fail(err, errlen, "%s has %u rules already, the most it takes", s->who,
			     FAULT_MAX_RULES);
		}
		pthread_mutex_unlock(&s->lock);
		if (id < 0 && state)
			s->state_hook(s->state_ctx, r, false);
	}
	if (state)
		pthread_mutex_unlock(&s->state_lock);
	return id;
}

/* After state rules were lifted: the ones still listed apply again (two media-error rules may
 * overlap; lifting one must not heal the other's range). Under state_lock. */
static void reapply_states(struct fault_set *s)
{
	struct fault_rule keep[FAULT_MAX_RULES];
	unsigned n = 0;
	pthread_mutex_lock(&s->lock);
	for (unsigned i = 0; i < s->nrules; i++)
		if (is_state(&s->slot[i].rule))
			keep[n++] = s->slot[i].rule;
	pthread_mutex_unlock(&s->lock);
	for (unsigned i = 0; i < n; i++)
		s->state_hook(s->state_ctx, &keep[i], true);
}

int fault_add_text(struct fault_set *s, const char *text, char *err, size_t errlen)
{
	struct fault_rule r;
	if (fault_rule_parse(text, &r, err, errlen))
		return -1;
	return fault_add(s, &r, err, errlen);
}

int fault_remove(struct fault_set *s, unsigned id)
{
	int ret = -1;
	struct fault_rule gone;
	pthread_mutex_lock(&s->state_lock);
	pthread_mutex_lock(&s->lock);
	for (unsigned i = 0; i < s->nrules; i++) {
		if (s->slot[i].id != id)
			continue;
		gone = s->slot[i].rule;
		/* keep the others in id order: they are tried in that order */
		memmove(&s->slot[i], &s->slot[i + 1], (s->nrules - i - 1) * sizeof(s->slot[0]));
		__atomic_store_n(&s->nrules, s->nrules - 1, __ATOMIC_RELEASE);
		ret = 0;
		break;
	}
	pthread_mutex_unlock(&s->lock);
	if (ret == 0 && is_state(&gone) && s->state_hook) {
		s->state_hook(s->state_ctx, &gone, false);
		reapply_states(s);
	}
	pthread_mutex_unlock(&s->state_lock);
	return ret;
}

void fault_clear(struct fault_set *s)
{
	struct fault_rule gone[FAULT_MAX_RULES];
	unsigned n = 0;
	pthread_mutex_lock(&s->state_lock);
	pthread_mutex_lock(&s->lock);
	for (unsigned i = 0; i < s->nrules; i++)
		if (is_state(&s->slot[i].rule))
			gone[n++] = s->slot[i].rule;
	__atomic_store_n(&s->nrules, 0, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&s->lock);
	for (unsigned i = 0; i < n && s->state_hook; i++)
		s->state_hook(s->state_ctx, &gone[i], false);
	pthread_mutex_unlock(&s->state_lock);
}

void fault_list_json(struct fault_set *s, FILE *f)
{
	char text[FAULT_RULE_MAX];
	pthread_mutex_lock(&s->lock);
	fputc('[', f);
	for (unsigned i = 0; i < s->nrules; i++) {
		const struct fault_slot *sl = &s->slot[i];
		/* the canonical text has no character that needs escaping in a JSON string */
		fault_rule_format(&sl->rule, text, sizeof(text));
		fprintf(f, "%s{\"id\": %u, \"rule\": \"%s\", \"matched\": %" PRIu64
			   ", \"fired\": %" PRIu64 "}", i ? ", " : "", sl->id, text, sl->matched,
			sl->fired);
	}
	fputc(']', f);
	pthread_mutex_unlock(&s->lock);
}

/* ---- matching ---------------------------------------------------------------------------- */

/* splitmix64 (Steele, Lea, Flood 2014; the seeding generator of xoshiro): one add and a
 * mix per step, every seed (0 included) gives a full-period sequence. */
static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Does [off, off + len) overlap the rule's range? A request's arithmetic is the guest's: an
 * end past 2^64 is clamped rather than trusted to wrap. */
static bool extent_hits(const struct fault_rule *r, const struct fault_extent *e)
{
	if (e->len == 0)
		return false;
	uint64_t end = e->len > UINT64_MAX - e->off ? UINT64_MAX : e->off + e->len;
	return e->off < r->end && r->start < end;
}

static bool rule_matches(const struct fault_rule *r, enum fault_op op,
			 const struct fault_extent *ext, unsigned n)
{
	if (r->op != FAULT_OP_ANY && r->op != op)
		return false;
	if (!r->has_range)
		return true;
	for (unsigned i = 0; i < n; i++)
		if (extent_hits(r, &ext[i]))
			return true;
	return false;
}

/* The rule matched (sl->matched already counts this request): does it fire? */
static bool rule_fires(struct fault_slot *sl)
{
	const struct fault_rule *r = &sl->rule;
	switch (r->when) {
	case FAULT_ALWAYS:
		return true;
	case FAULT_ONCE:
		return sl->matched == 1;
	case FAULT_AFTER:
		return sl->matched > r->n;
	case FAULT_NTH:
		return sl->matched == r->n;
	case FAULT_PROB:
		/* x * 1e9 / 2^64 is uniform in [0, 1e9): fires with probability prob / 1e9 */
		return (uint64_t)(((unsigned __int128)splitmix64(&sl->prng) * FAULT_PROB_ONE) >> 64) <
		       r->prob;
	}
	return false;
}

bool fault_check(struct fault_set *s, enum fault_op op, const struct fault_extent *ext,
		 unsigned n, struct fault_action *act)
{
	*act = (struct fault_action){ .effect = FAULT_NONE };
	/* the common case, no rule: no lock for 64 workers to meet on */
	if (!__atomic_load_n(&s->nrules, __ATOMIC_ACQUIRE))
		return false;
	struct fault_rule fired;
	pthread_mutex_lock(&s->lock);
	for (unsigned i = 0; i < s->nrules; i++) {
		struct fault_slot *sl = &s->slot[i];
		if (!rule_matches(&sl->rule, op, ext, n))
			continue;
		sl->matched++;
		if (!rule_fires(sl))
			continue;
		sl->fired++;
		fired = sl->rule;
		act->effect = fired.effect;
		act->rule_id = sl->id;
		if (fired.effect == FAULT_DELAY)
			act->delay_us = fired.arg;
		else if (fired.effect == FAULT_TORN)
			act->torn_sectors = fired.arg;
		break;
	}
	pthread_mutex_unlock(&s->lock);
	if (act->effect == FAULT_NONE)
		return false;
	__atomic_add_fetch(&s->fired, 1, __ATOMIC_RELAXED);
	char text[FAULT_RULE_MAX];
	fault_rule_format(&fired, text, sizeof(text));
	if (n)
		rl_log(&s->rl, "fault %u injected (%s) on a %s at byte %" PRIu64 " (%" PRIu64
			       " bytes)", act->rule_id, text, op_names[op], ext[0].off, ext[0].len);
	else
		rl_log(&s->rl, "fault %u injected (%s) on a %s", act->rule_id, text, op_names[op]);
	return true;
}
