/* Power cut plans (power_cut.h): the trigger and state texts of [vm] power_cut /
 * power_cut_state and the control socket's "state". No VM here: config validation and
 * fuzz_config link this file alone. */
#include "vmm/power_cut.h"

#include <stdio.h>
#include <string.h>

static int fail(char *err, size_t errlen, const char *what, const char *text)
{
	snprintf(err, errlen, "power_cut: %s '%s'", what, text);
	return -1;
}

/* Plain decimal (no sign, no spaces), at least one digit; *end after it. */
static int decimal(const char *s, uint64_t *v, const char **end)
{
	uint64_t x = 0;
	const char *p = s;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');
		if (x > (UINT64_MAX - d) / 10)
			return -1;
		x = x * 10 + d;
	}
	if (p == s)
		return -1;
	*v = x;
	*end = p;
	return 0;
}

static int duration_ms(const char *s, uint64_t *ms)
{
	uint64_t v, mul;
	const char *u;
	if (decimal(s, &v, &u))
		return -1;
	if (!strcmp(u, "ms"))
		mul = 1;
	else if (!strcmp(u, "s"))
		mul = 1000;
	else if (!strcmp(u, "m"))
		mul = 60000;
	else
		return -1;
	if (v > UINT64_MAX / mul)
		return -1;
	*ms = v * mul;
	return 0;
}

int power_cut_parse_state(const char *state, struct power_cut_plan *p, char *err,
			  size_t errlen)
{
	p->sample = false;
	p->seed = 0;
	if (!state || !*state || !strcmp(state, "last-flush"))
		return 0;
	const char *end;
	/* SEED >= 1: seed 0 is devices/log_cut.h's "exactly the last FLUSH" */
	if (!strncmp(state, "sample:", 7) && !decimal(state + 7, &p->seed, &end) && !*end &&
	    p->seed) {
		p->sample = true;
		return 0;
	}
	return fail(err, errlen, "bad state (want last-flush or sample:SEED, SEED >= 1)", state);
}

int power_cut_parse(const char *trigger, const char *state, struct power_cut_plan *p,
		    char *err, size_t errlen)
{
	memset(p, 0, sizeof(*p));
	if (power_cut_parse_state(state, p, err, errlen))
		return -1;
	if (!trigger || !*trigger)
		return 0;
	const char *end;
	if (!strncmp(trigger, "after-flushes:", 14)) {
		if (decimal(trigger + 14, &p->n, &end) || *end || p->n == 0)
			return fail(err, errlen, "bad count in (want after-flushes:N, N >= 1)",
				    trigger);
		p->when = POWER_CUT_AFTER_FLUSHES;
	} else if (!strncmp(trigger, "after:", 6)) {
		if (duration_ms(trigger + 6, &p->ms))
			return fail(err, errlen, "bad duration in (want after:N{ms|s|m})", trigger);
		p->when = POWER_CUT_AFTER_MS;
	} else if (!strncmp(trigger, "at-mark:", 8)) {
		size_t n = strlen(trigger + 8);
		if (!n || n >= POWER_CUT_MARK_MAX)
			return fail(err, errlen, "bad mark in (want at-mark:NAME, 1..127 bytes)",
				    trigger);
		memcpy(p->mark, trigger + 8, n + 1);
		p->when = POWER_CUT_AT_MARK;
	} else {
		return fail(err, errlen, "unknown trigger (want after-flushes:N, after:DURATION or "
			    "at-mark:NAME)", trigger);
	}
	return 0;
}
