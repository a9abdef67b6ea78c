/* Fault injection rules for a storage device (issue 15 item 2): a device owns one
 * struct fault_set and asks it, per request, whether a fault fires and which.
 *
 * A rule is one line of text, the same in the config file and over the control socket:
 *
 *     op=OP [range=RANGE] [when=WHEN [seed=S]] effect=EFFECT
 *
 *   op      read | write | flush | discard | write-zeroes | any        (required)
 *   range   START+LEN or START-END (END exclusive), bytes of the device, each a decimal or 0x
 *           number with an optional binary suffix K, M, G, T. A request matches when one of
 *           its extents overlaps the range. No range: every request of the op. A flush has no
 *           extent, so it never matches a rule with a range (op=flush range=... is refused).
 *   when    always (default) | once | after:N (the (N+1)-th matching request and every one
 *           after it) | nth:N (only the N-th, N >= 1) | prob:P (0 <= P <= 1, at most 9
 *           decimals: each matching request fires with probability P)
 *   seed    the seed of the rule's generator (only with when=prob; default 0). The generator
 *           is splitmix64, one step per matching request: for a given sequence of matching
 *           requests the rule fires on the same ones in every run (requests running at once
 *           on several workers reach the rule in an order that is theirs, not the guest's).
 *   effect  ioerr | unsupp | delay:D (D = N us|ms|s, at most 60 s; the request then runs
 *           normally) | torn:K (op=write only: the first K sectors (512 B) of the write reach
 *           the device, then it fails; K >= the write's sectors: all of it, then it fails) |
 *           enospc (a pmem FLUSH's writeback finds the file full) |
 *           media-error (pmem: `op=load range=R effect=media-error`: the range is bad media
 *           while the rule exists: loads get a machine check, mm/memory_failure.c. It is a
 *           state of the media, not a per-request decision: it needs a range and takes no
 *           `when`; the set's state hook applies it at add time and lifts it at removal)
 *
 * Keys may come in any order, each at most once; fault_rule_format writes the canonical form
 * (the order above, sizes with the largest exact suffix, delays with the largest exact unit),
 * and a canonical text formats back to itself.
 *
 * Rules are tried in id order (ids are handed out at add time, 1, 2, ...; never reused in a
 * set); a rule whose op and range match counts the request (matched), then its `when` decides
 * whether it fires; the first rule that fires decides the request's fault, and the rules after
 * it do not see the request. Each fired fault is counted (per rule and per set) and logged on
 * stderr through the set's rate limiter. Thread-safe: requests of one device run on up to 64
 * workers; rules may be added and removed while they run. */
#ifndef CVMM_FAULT_H
#define CVMM_FAULT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "devices/virtio.h"

enum fault_op {
	FAULT_OP_ANY,
	FAULT_OP_READ,
	FAULT_OP_WRITE,
	FAULT_OP_FLUSH,
	FAULT_OP_DISCARD,
	FAULT_OP_WRITE_ZEROES,
	FAULT_OP_LOAD,          /* pmem: a guest load from the window (media-error only) */
	FAULT_OP_COUNT
};

enum fault_effect {
	FAULT_NONE,
	FAULT_IOERR,
	FAULT_UNSUPP,
	FAULT_DELAY,
	FAULT_TORN,
	FAULT_ENOSPC,
	FAULT_MEDIA_ERROR,      /* a state, not a per-request fault: see below */
	FAULT_EFFECT_COUNT
};

enum fault_when { FAULT_ALWAYS, FAULT_ONCE, FAULT_AFTER, FAULT_NTH, FAULT_PROB };

#define FAULT_MAX_RULES    32
#define FAULT_RULE_MAX     256          /* bytes of a formatted rule, NUL included */
#define FAULT_DELAY_MAX_US 60000000ULL  /* 60 s */
#define FAULT_PROB_ONE     1000000000U  /* probabilities are parts per 1e9 */

struct fault_rule {
	enum fault_op op;
	bool has_range;
	bool range_dash;        /* written START-END (else START+LEN): kept for the round trip */
	uint64_t start, end;    /* [start, end), end > start */
	enum fault_when when;
	uint64_t n;             /* after:N, nth:N */
	uint32_t prob;          /* prob:P, in parts per FAULT_PROB_ONE */
	bool has_seed;
	uint64_t seed;
	enum fault_effect effect;
	uint64_t arg;           /* delay: microseconds; torn: sectors */
};

/* What a request must do. */
struct fault_action {
	enum fault_effect effect;  /* FAULT_NONE: nothing fired */
	uint64_t delay_us;         /* FAULT_DELAY */
	uint64_t torn_sectors;     /* FAULT_TORN */
	unsigned rule_id;          /* the rule that fired */
};

/* A byte range a request touches (a read or write has one; a discard one per segment). */
struct fault_extent {
	uint64_t off, len;
};

struct fault_slot {
	unsigned id;            /* 0: free */
	struct fault_rule rule;
	uint64_t matched, fired;
	uint64_t prng;          /* splitmix64 state, starts at the seed */
};

struct fault_set {
	pthread_mutex_t lock;
	struct fault_slot slot[FAULT_MAX_RULES]; /* in id order: new rules go after the others */
	unsigned nrules;        /* atomic: the no-rule fast path reads it without the lock */
	unsigned next_id;
	unsigned ops_mask;      /* 1 << enum fault_op the device has (FAULT_OP_ANY always) */
	unsigned effects_mask;  /* 1 << enum fault_effect the device can do */
	const char *who;        /* "virtio-blk": names the device in messages */
	/* State effects (media-error): apply (on) when such a rule is added, lift (!on) when it
	 * is removed; 0 or -errno (the rule is then not added). Serialized by state_lock, never
	 * called with `lock` held (a poison waits for DMAs in flight). NULL: refused. */
	int (*state_hook)(void *ctx, const struct fault_rule *r, bool on);
	void *state_ctx;
	pthread_mutex_t state_lock;
	uint64_t fired;         /* atomic: faults injected on this device */
	struct ratelimit rl;
};

/* The ops and effects of each device kind (fault_set_init masks). */
#define FAULT_OPS_BLK ((1u << FAULT_OP_ANY) | (1u << FAULT_OP_READ) | (1u << FAULT_OP_WRITE) | \
		       (1u << FAULT_OP_FLUSH) | (1u << FAULT_OP_DISCARD) |                    \
		       (1u << FAULT_OP_WRITE_ZEROES))
#define FAULT_EFFECTS_BLK ((1u << FAULT_IOERR) | (1u << FAULT_UNSUPP) | (1u << FAULT_DELAY) | \
			   (1u << FAULT_TORN))
#define FAULT_OPS_PMEM ((1u << FAULT_OP_ANY) | (1u << FAULT_OP_FLUSH) | (1u << FAULT_OP_LOAD))
#define FAULT_EFFECTS_PMEM ((1u << FAULT_IOERR) | (1u << FAULT_DELAY))

void fault_set_init(struct fault_set *s, const char *who, unsigned ops_mask,
		    unsigned effects_mask);
void fault_set_destroy(struct fault_set *s);
/* The hook for state effects (media-error); allows FAULT_MEDIA_ERROR. */
void fault_set_state_hook(struct fault_set *s, int (*hook)(void *ctx, const struct fault_rule *r,
							   bool on), void *ctx);
/* Let the device do (or not) an effect from now on (pmem: enospc once it has a page cache). */
void fault_set_allow(struct fault_set *s, enum fault_effect e, bool allow);

/* Parse one rule. Returns 0, or -1 with a message naming the offending word in err. */
int fault_rule_parse(const char *text, struct fault_rule *r, char *err, size_t errlen);
/* The canonical text of a rule into buf (FAULT_RULE_MAX is always enough). */
void fault_rule_format(const struct fault_rule *r, char *buf, size_t len);

/* Add a rule (checked against what the device can do). Returns its id (> 0), or -1 with a
 * message in err (an op or effect the device lacks, or FAULT_MAX_RULES rules already). */
int fault_add(struct fault_set *s, const struct fault_rule *r, char *err, size_t errlen);
/* fault_rule_parse + fault_add: what the config file and the control socket call. */
int fault_add_text(struct fault_set *s, const char *text, char *err, size_t errlen);
/* Remove rule `id`: 0, or -1 if there is no such rule. */
int fault_remove(struct fault_set *s, unsigned id);
/* Remove every rule (the counters of the set stay). */
void fault_clear(struct fault_set *s);
/* [{"id": 1, "rule": "op=write effect=ioerr", "matched": 3, "fired": 3}, ...] (no newline). */
void fault_list_json(struct fault_set *s, FILE *f);
/* Faults injected on this device since it was created. */
uint64_t fault_fired(struct fault_set *s);

/* Consult the rules for a request of `op` touching the n extents (n = 0: a flush). Fills
 * *act (FAULT_NONE if nothing fired) and returns true if a fault fired; the caller applies
 * it. Cheap when the set has no rule (no lock taken). */
bool fault_check(struct fault_set *s, enum fault_op op, const struct fault_extent *ext,
		 unsigned n, struct fault_action *act);

/* Names, as in the rule text ("write-zeroes", "ioerr"). */
const char *fault_op_name(enum fault_op op);
const char *fault_effect_name(enum fault_effect e);

#endif
